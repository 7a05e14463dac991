"""Which parameters to freeze, as torch users name parts of a model: names, prefixes and patterns.

`frozen_names` turns ``["layer1", "features.*", "fc.bias"]`` into the names `training_cost`'s
``frozen`` takes (a layer's name, ``"layer.weight"`` or ``"layer.bias"``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from ..errors import SpecError

PARAMETERS = ("weight", "bias")
SEPARATORS = ("_", ".")
"""What follows a prefix in a layer name (``layer1`` -> ``layer1_0_conv1``) or a module path (``layer1.0``)."""


def _matches(pattern: str, name: str, path: str) -> bool:
    """``pattern`` is the layer's name or module path, a prefix of either up to a separator, or a
    shell-style pattern (``*``, ``?``, ``[...]``) matching either whole."""
    for text in (name, path) if path and ":" not in path else (name,):
        if text == pattern or fnmatchcase(text, pattern) or any(text.startswith(pattern + s) for s in SEPARATORS):
            return True
    return False


def frozen_names(network, patterns, paths=()) -> tuple[str, ...]:
    """The layers (and parameters) ``patterns`` name in ``network``, for ``training_cost(frozen=...)``.

    Each pattern is a layer's name, a prefix of layer names or of module paths (``layer1`` freezes
    ``layer1_0_conv1`` and the module ``layer1.0.conv1``), or a shell-style pattern (``features.*``,
    ``layer[12]*``); ``paths`` are the layers' module paths (`ImportedModule.paths`; a function
    call's path is not matched). ``PATTERN.weight`` or ``PATTERN.bias`` freezes that parameter of
    each layer matched. Only layers with parameters are frozen; a pattern that matches none is one
    `SpecError`."""
    rows = network.cost().layers
    paths = tuple(paths) or ("",) * len(rows)
    out: dict[str, None] = {}
    for pattern in (patterns,) if isinstance(patterns, str) else patterns:
        if not isinstance(pattern, str) or not pattern:
            raise SpecError(f"a frozen pattern is a layer name, prefix or pattern, got {pattern!r}")
        base, dot, which = pattern.rpartition(".")
        if dot and base in network.names and which not in PARAMETERS:
            raise SpecError(f"frozen names {pattern!r}: a layer's parameters are 'weight' and 'bias'")
        if not (dot and which in PARAMETERS) or pattern in network.names:
            base, which = pattern, ""
        found = [row for row, path in zip(rows, paths) if _matches(base, row.name, path)]
        held = [row for row in found if (row.weight_params if which == "weight" else row.bias_params
                                         if which == "bias" else row.params)]
        if not held:
            what = "no layer" if not found else f"only layers without {which or 'parameters'} ({found[0].name}, ...)"
            i = next((i for i, row in enumerate(rows) if row.params), 0)
            like = f"layer names such as {rows[i].name!r}" + (f", module paths such as {paths[i]!r}" if paths[i] else "")
            raise SpecError(f"frozen names {pattern!r}, which matches {what} of {network.name!r} ({like})")
        out.update(dict.fromkeys(f"{row.name}.{which}" if which else row.name for row in held))
    return tuple(out)
