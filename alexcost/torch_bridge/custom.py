"""Kinds registered in Python that name what they read in torch (``register_layer(..., reads=...)``).

A layer kind imports no torch; it names a torch module class or function (or its dotted name) in
``torch_reads``, and this module, on the torch side, maps them: `custom_reads` for the tracer and
the reader (a module class read as the kind; a function call read by `read_function`), and the
builder of a network's torch module (the class a kind reads is the module it builds).
"""

from __future__ import annotations

from ..errors import SpecError
from ..layers.base import LAYER_KINDS, TORCH_READERS

_READS: dict = {}
"""What `custom_reads` last built, by the registered (kind, torch_reads) pairs it was built from."""


def _resolve(target, kind):
    """A dotted name (``"torch.nn.GroupNorm"``) as the object it names; objects as they are."""
    if not isinstance(target, str):
        return target
    import importlib

    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                value = getattr(value, part)
        except AttributeError:
            break
        return value
    raise SpecError(f"layer kind {kind.__name__} reads {target!r}, which names nothing importable")


def custom_reads() -> tuple[dict, dict]:
    """``(module class -> kind, function -> kind)`` for the registered kinds that name what they read
    in torch (``register_layer(..., reads=...)``); a class is read with the kind's arguments taken
    from the module's attributes of the same names, a function with its arguments bound by name."""
    if not TORCH_READERS:
        return {}, {}
    pairs = tuple((kind, kind.torch_reads) for name, kind in TORCH_READERS.items()
                  if LAYER_KINDS.get(name) is kind and kind.torch_reads)
    if not pairs:
        return {}, {}
    found = _READS.get(pairs)
    if found is None:
        classes, functions = {}, {}
        for kind, reads in pairs:
            for target in reads:
                value = _resolve(target, kind)
                (classes if isinstance(value, type) else functions)[value] = kind
        _READS.clear()
        found = _READS[pairs] = (classes, functions)
    return found


def read_function(r, node, kind, args, kwargs):
    """A call of a function a registered kind reads: its first argument is the input; ``weight`` and
    ``bias`` are the layer's parameters (or None); every other argument given is the kind's argument of
    the same name. A function with no signature Python can read (torch's builtins, ``F.prelu``) binds
    its positional arguments after the input as the weight, then the bias. Anything else is refused."""
    import inspect
    from dataclasses import fields

    try:
        values = list(inspect.signature(node.target).bind(*args, **kwargs).arguments.items())
    except ValueError:  # no signature: (input, weight, bias) by position, the rest by keyword
        if len(args) > 3:
            r.refuse(node, f"passes {len(args)} arguments by position; alexcost reads a function with no "
                           f"signature as (input, weight, bias), the rest by keyword")
        values = [*zip(("input", "weight", "bias"), args), *kwargs.items()]
    except TypeError as err:
        r.refuse(node, f"cannot be read as {kind.__name__}: {err}")
    if not values:
        r.refuse(node, f"has no input to read as {kind.__name__}")
    names = {f.name for f in fields(kind) if f.init and f.name not in ("name", "inputs")}
    x = r.tensor(values[0][1], node)
    layer_args, params = {}, []
    for key, value in values[1:]:
        if key in ("weight", "bias"):
            if value is not None and (not r.is_attribute(value) or value.kind != "parameter"):
                r.refuse(node, f"its {key} is not a parameter of the module, got {r.show(value)}")
            params.append((key, value))
        elif key in names:
            layer_args[key] = r.constant(value, node, key)
        else:
            r.refuse(node, f"has an argument {key!r} that {kind.__name__} has no field for")
    return r.emit(node, r.build(node, kind, layer_args), [x], params=tuple(params))
