"""The JSON Schema of spec files, generated from the registered layer kinds.

``python -m alexcost.specs.schema > docs/spec.schema.json`` writes the published copy; a
test keeps the two equal. The schema checks structure and types; values (positive
sizes, divisibility, shapes that fit) are checked by alexcost itself.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields

from ..layers import BUILTIN_KINDS, LAYER_KINDS

_INT = {"type": "integer"}
_PAIR = {"type": "array", "items": _INT, "minItems": 2, "maxItems": 2}
_OPT_INT = {"type": ["integer", "null"]}
_INTS = {"type": "array", "items": _INT, "minItems": 1}
_ONE = {"type": "array", "items": _INT, "minItems": 1, "maxItems": 1}
_TRIPLE = {"type": "array", "items": _INT, "minItems": 3, "maxItems": 3}


def _spatial(item: dict) -> dict:
    """A value per spatial dimension: 1 to 3 of them."""
    return {"type": "array", "items": item, "minItems": 1, "maxItems": 3}


ANNOTATIONS = {
    "int": _INT,
    "int | None": _OPT_INT,
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "str | None": {"type": ["string", "null"]},
    "int | tuple[int, int]": {"oneOf": [_INT, _PAIR]},
    "int | tuple[int, int] | None": {"oneOf": [_INT, _PAIR, {"type": "null"}]},
    "int | tuple[int, int] | str": {"oneOf": [_INT, _PAIR, {"enum": ["same", "valid"]}]},
    "int | tuple[int | None, int | None]": {
        "oneOf": [_INT, {"type": "array", "items": _OPT_INT, "minItems": 2, "maxItems": 2}]},
    "float | None": {"type": ["number", "null"]},
    "float | str | None": {"oneOf": [{"type": "number"}, {"enum": ["inf", "-inf"]}, {"type": "null"}]},
    "tuple[int, ...]": _INTS,
    "tuple[int | tuple[int | None, int | None, int | None], ...]": {
        "type": "array", "minItems": 1, "items": {"oneOf": [_INT, {"type": "array", "items": _OPT_INT, "minItems": 3,
                                                                   "maxItems": 3}]}},
    "int | tuple[int, ...]": {"oneOf": [_INT, _INTS]},
    "int | tuple[int, int, int, int]": {
        "oneOf": [_INT, {"type": "array", "items": _INT, "minItems": 4, "maxItems": 4}]},
    # dense and video kinds: one, three or any number of spatial dimensions
    "int | tuple[int]": {"oneOf": [_INT, _ONE]},
    "int | tuple[int] | str": {"oneOf": [_INT, _ONE, {"enum": ["same", "valid"]}]},
    "int | tuple[int, int, int]": {"oneOf": [_INT, _TRIPLE]},
    "int | tuple[int, int, int] | None": {"oneOf": [_INT, _TRIPLE, {"type": "null"}]},
    "int | tuple[int, int, int] | str": {"oneOf": [_INT, _TRIPLE, {"enum": ["same", "valid"]}]},
    "int | tuple[int | None, int | None, int | None]": {
        "oneOf": [_INT, {"type": "array", "items": _OPT_INT, "minItems": 3, "maxItems": 3}]},
    "int | tuple[int, ...] | None": {"oneOf": [_INT, _spatial(_INT), {"type": "null"}]},
    "float | tuple[float, ...] | None": {"oneOf": [{"type": "number"}, _spatial({"type": "number"}), {"type": "null"}]},
    "bool | None": {"type": ["boolean", "null"]},
    "tuple[str, ...] | None": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                                               "minItems": 1}]},
}
"""Schema fragment per field annotation, as the layer classes spell them."""


def layer_schema(kind) -> dict:
    props, required = {"type": {"const": kind.__name__}}, ["type"]
    for f in fields(kind):
        if not f.init:
            continue
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        prop = dict(ANNOTATIONS.get(annotation, {}))
        if f.default is MISSING:
            required.append(f.name)
        else:
            prop["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        props[f.name] = prop
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False,
            "description": (kind.__doc__ or "").strip().split("\n")[0]}


def spec_schema(kinds=None) -> dict:
    """The schema of a spec file whose layers are ``kinds`` (default: alexcost's own kinds;
    pass ``LAYER_KINDS`` to include kinds registered with `register_layer`)."""
    if kinds is None:
        kinds = {name: kind for name, kind in LAYER_KINDS.items() if kind in BUILTIN_KINDS}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "alexcost network spec",
        "type": "object",
        "required": ["input_shape", "layers"],
        "additionalProperties": False,
        "properties": {
            "$schema": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "input_shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
            "layers": {"type": "array", "items": {"oneOf": [{"$ref": f"#/$defs/{k}"} for k in sorted(kinds)]}},
        },
        "$defs": {k: layer_schema(kinds[k]) for k in sorted(kinds)},
    }


if __name__ == "__main__":
    print(json.dumps(spec_schema(), indent=2))
