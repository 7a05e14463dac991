"""Spec files: JSON or TOML text -> Network, and back. Data only: nothing in a spec is executed.

The structure (see ``docs/spec.schema.json``)::

    {"name": "tiny", "input_shape": [3, 32, 32],
     "layers": [{"type": "Conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}, ...]}

``type`` is a torch.nn class name registered in `alexcost.layers.LAYER_KINDS`;
the other keys are that class's arguments, with its defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, fields

from ..layers import arguments as check
from ..layers.arguments import shown, text
from ..units import dumps_json
from ..errors import SpecError, describe_layer
from ..layers import BUILTIN_KINDS, LAYER_KINDS, Layer
from ..engine import rules
from ..engine.network import Network

MAX_SPEC_BYTES = 16 * 2**20
"""Largest spec text read. Parsed JSON can take ~25x its text in memory: 16 MiB keeps that under ~0.5 GB."""
MAX_LAYERS = 100_000
"""Most layers a spec may list (ten times the largest benchmarked network; ~3 s and ~0.2 GB to report)."""
TOP_LEVEL_KEYS = ("name", "input_shape", "layers", "description", "$schema")


def _did_you_mean(word: str, options) -> str:
    import difflib

    by_lower = {str(o).lower(): o for o in options}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def _reject_constant(token: str):
    raise SpecError(f"{token} is not a valid number in a spec")


def _unique_keys(pairs):
    """A JSON object as a dict, refusing a key given twice (json would keep the last silently)."""
    out = dict(pairs)
    if len(out) < len(pairs):  # some key given twice: name the first that repeats
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise SpecError(f"duplicate key {shown(key)} in one object; each key may appear once")
            seen.add(key)
    return out


def parse_text(text: str, fmt: str, source: str = "spec") -> dict:
    """JSON or TOML text -> the spec's dict, or one SpecError naming ``source``."""
    try:
        if fmt == "toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except SpecError as err:
        raise err.at(source) from None
    except RecursionError:
        raise SpecError("nested too deeply", where=source) from None
    except ValueError as err:  # JSONDecodeError, TOMLDecodeError, int too long to parse
        raise SpecError(f"malformed {fmt.upper()}: {err}", where=source) from None
    if not isinstance(data, dict):
        raise SpecError(f"a spec must be an object with input_shape and layers, got {type(data).__name__}",
                        where=source)
    return data


_ARGUMENTS: dict = {}


def _arguments(kind) -> tuple[frozenset, tuple]:
    """A kind's argument names, and the ones without a default (looked up once per kind)."""
    found = _ARGUMENTS.get(kind)
    if found is None:
        init = [f for f in fields(kind) if f.init]
        found = _ARGUMENTS[kind] = (frozenset(f.name for f in init),
                                    tuple(f.name for f in init if f.default is MISSING and f.default_factory is MISSING))
    return found


def layer_from_dict(entry, index: int, made: dict | None = None) -> Layer:
    """One ``layers[index]`` entry -> a Layer, checking type, argument names and values.

    ``made``: the layers one spec made so far, by their arguments (`arguments_key`). An entry of a
    built-in kind whose arguments, but for its name and inputs, equal an earlier entry's gives that
    layer with its own name and inputs, checked: a kind's checks are pure functions of its arguments."""
    if not isinstance(entry, dict):
        raise SpecError(f"layers[{index}] must be an object with a 'type', got {shown(entry)}")
    kind_name = entry.get("type")
    if not isinstance(kind_name, str):
        raise SpecError(f"layers[{index}] needs a 'type' naming a layer kind, e.g. \"Conv2d\"")
    kind = LAYER_KINDS.get(kind_name)
    if kind is None:
        known = sorted(LAYER_KINDS)
        listed = ", ".join(known) if len(known) <= 12 else f"{', '.join(known[:10])} and {len(known) - 10} more"
        raise SpecError(f"unknown layer type {shown(kind_name)}{_did_you_mean(kind_name, LAYER_KINDS)} "
                        f"(known: {listed}; docs/spec-format.md lists them all)",
                        where=_where(entry, index, kind_name, kind))
    key = arguments_key(entry) if made is not None and kind in BUILTIN_KINDS else None
    if key is not None:
        first = made.get(key)
        if first is not None:
            return _renamed(first, entry, index, kind_name)
    layer = _made(entry, index, kind_name, kind)
    if key is not None:
        made[key] = layer
    return layer


def _made(entry: dict, index: int, kind_name: str, kind) -> Layer:
    allowed, required = _arguments(kind)
    if entry.__class__ is dict:
        args = entry.copy()
        del args["type"]
    else:
        args = {k: v for k, v in entry.items() if k != "type"}
    if not args.keys() <= allowed:
        for key in args:
            if key not in allowed:
                raise SpecError(f"unknown argument {shown(key)}{_did_you_mean(str(key), allowed)}",
                                where=_where(entry, index, kind_name, kind))
    for key in required:
        if key not in args:
            raise SpecError(f"missing argument {key!r}", where=_where(entry, index, kind_name, kind))
    try:
        return kind(**args)
    except SpecError as err:
        raise err.at(_where(entry, index, kind_name, kind)) from None


def _renamed(first: Layer, entry: dict, index: int, kind_name: str) -> Layer:
    """``first``, a layer made from the same arguments, with ``entry``'s name and inputs, checked
    as every layer's are (`alexcost.layers.arguments.name` and ``references``); it shares
    ``first``'s rules (`alexcost.engine.rules.of`)."""
    name, inputs = entry.get("name"), entry.get("inputs")
    try:
        name, inputs = check.name(name), None if inputs is None else check.references(inputs)
    except SpecError as err:
        raise err.at(_where(entry, index, kind_name, type(first))) from None
    layer = _new(type(first))
    values = layer.__dict__
    values.update(first.__dict__)
    values["name"], values["inputs"] = name, inputs
    rules.of(layer, like=first)
    return layer


_new = object.__new__
_PLAIN = frozenset((str, int, float, bool, type(None)))


def arguments_key(entry: dict) -> tuple | None:
    """A spec entry's type and arguments, but its name and inputs, as a key that names them exactly:
    each value with its type (``1``, ``1.0`` and ``true`` are equal in Python, not in a spec), a
    zero float by its repr (``0.0`` and ``-0.0`` too), lists as tuples; None for an entry holding
    anything but str, int, float, bool, None, or lists of them."""
    if entry.__class__ is not dict:
        return None
    key = []
    for name, value in entry.items():
        if name == "name" or name == "inputs":
            continue
        kind = value.__class__
        if kind is list:
            value = tuple([_exact(item) for item in value])
            if None in value:
                return None
        elif kind not in _PLAIN:
            return None
        elif kind is float and not value:
            value = repr(value)
        key.append((name, kind, value))
    return tuple(key)


def _exact(value) -> tuple | None:
    kind = value.__class__
    if kind not in _PLAIN:
        return None
    return kind, repr(value) if kind is float and not value else value


def _where(entry: dict, index: int, kind_name: str, kind) -> str:
    """``layers[3] 'conv2' (Conv2d)``: the entry an error is about (made only for an error)."""
    name = entry.get("name")
    name = name if isinstance(name, str) and len(name) <= 200 else None  # a bad name gets its own error
    return describe_layer(index, name, kind_name if kind else shown(kind_name)[1:-1])


def network_from_dict(data: dict, default_name: str = "custom") -> Network:
    """A parsed spec -> a validated Network."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError(f"unknown top-level key {shown(key)}{_did_you_mean(str(key), TOP_LEVEL_KEYS)} "
                            f"(a spec has {', '.join(TOP_LEVEL_KEYS[:3])})")
    for key in ("input_shape", "layers"):
        if key not in data:
            raise SpecError(f"a spec needs {key!r}")
    layers = data["layers"]
    if not isinstance(layers, list):
        raise SpecError(f"layers must be a list, got {type(layers).__name__}")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"layers lists {len(layers)} layers; a spec may have at most {MAX_LAYERS}")
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise SpecError(f"name must be a string, got {shown(name)}")
    text(name, "name")
    made: dict = {}
    built = [layer_from_dict(entry, i, made) for i, entry in enumerate(layers)]
    return Network(data["input_shape"], built, name=name)


def load_spec(path: str | os.PathLike) -> Network:
    """Read a spec file (``.toml`` is TOML, anything else JSON; ``-`` is standard input)."""
    import sys

    source = str(path)
    try:
        if source == "-":
            text = sys.stdin.read(MAX_SPEC_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(MAX_SPEC_BYTES + 1)
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise SpecError(f"cannot read spec file {source!r}: {reason}") from None
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"spec file {source!r} is larger than {MAX_SPEC_BYTES // 2**20} MiB")
    if source.lower().endswith(".toml"):
        fmt = "toml"
    elif source.lower().endswith(".json"):
        fmt = "json"
    else:
        fmt = "json" if text.lstrip().startswith("{") else "toml"
    stem = os.path.splitext(os.path.basename(source))[0] if source != "-" else "stdin"
    try:
        return network_from_dict(parse_text(text, fmt, source), default_name=stem or "custom")
    except SpecError as err:
        raise err.at(source) from None  # errors not tied to a layer name the file


PAIRS = ("int | tuple[int, int]", "int | tuple[int, int] | None", "int | tuple[int, int] | str",
         "int | tuple[int | None, int | None]")
"""Annotations of arguments that are pairs, written as one int when square (3 for (3, 3))."""


def _plain(value, annotation: str):
    if not isinstance(value, tuple):
        return value
    if annotation in PAIRS and value[0] == value[1] and value[0] is not None:
        return value[0]
    return list(value)


def network_to_dict(network) -> dict:
    """A Network -> a spec dict that loads back to a network with the same layers, wiring and
    counts. Arguments at their defaults are left out; ``inputs`` is written only where a layer
    does not read the layer before it (by its canonical names: ``"input"``, ``"n"``, ``"n.k"``).
    ``network`` may also be what `alexcost.torch_bridge.bridge.from_module` returns (see `_plain_network`)."""
    network = _plain_network(network)
    layers = []
    for i, (name, layer) in enumerate(zip(network.names, network.layers)):
        entry = {"type": type(layer).__name__, "name": name}
        sources = network.sources[i]
        if sources and sources != ((i - 1, None),):
            entry["inputs"] = list(network.inputs_of(i))
        for f in fields(layer):
            if f.name in ("name", "inputs") or not f.init:
                continue
            value = _plain(getattr(layer, f.name), f.type if isinstance(f.type, str) else str(f.type))
            if f.default is not MISSING and value == f.default:
                continue
            entry[f.name] = value
        layers.append(entry)
    return {"name": network.name, "input_shape": list(network.input_shape), "layers": layers}


def _plain_network(network) -> Network:
    """The Network to write: ``network`` itself, or the ``.network`` of an imported module, refused
    when a spec could not say what the module's parameters are (a module run twice, a weight two
    layers share, a parameter no layer reads): loaded back, it would count them differently."""
    if isinstance(network, Network):
        return network
    inner = getattr(network, "network", None)
    if not isinstance(inner, Network):
        raise SpecError(f"expected an alexcost Network, got {type(network).__name__}")
    imported, plain = network.cost().totals.params, inner.cost().totals.params
    if imported != plain:
        raise SpecError(f"{inner.name!r} has {imported} parameters as imported but its layers hold {plain}: a "
                        f"module run twice or a shared weight, which a spec file cannot express; it would "
                        f"load back with {plain}")
    return inner


def dumps_spec(network, fmt: str = "json") -> str:
    """A Network as spec-file text (``json``, one layer per line, or ``toml`` with ``[[layers]]``
    tables); the file
    loads back to the same report, byte for byte. A `from_module` result is accepted too."""
    data = network_to_dict(network)
    if fmt == "json":
        return dumps_json(data)  # one layer per line
    if fmt != "toml":
        raise SpecError(f"unknown spec format {fmt!r}; choose json or toml")
    lines = [f"name = {_toml_value(data['name'])}", f"input_shape = {_toml_value(data['input_shape'])}"]
    for entry in data["layers"]:
        lines += ["", "[[layers]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if value is None:
        raise SpecError("TOML has no null: write this network as JSON (output_size with None, for example)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    return json.dumps(value)  # ints: JSON's spelling is TOML's


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    """A TOML basic string: characters as they are (the file is UTF-8, so a name beyond the Basic
    Multilingual Plane stays one character, where JSON's escapes would write a surrogate pair that
    TOML refuses), quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise SpecError(f"{text!r} holds a lone surrogate (U+{code:04X}), which no UTF-8 file can hold")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
