"""What every handler of a traced call shares: binding its arguments by name, the arguments that
must have one value, a call on one tensor as one kind, a parameter passed as a weight or bias.

A handler gets the reader (see `alexcost.torch_bridge.reader`), the fx node and its arguments with
every traced value replaced by what the reader knows of it, and returns the node's value (see
`alexcost.torch_bridge.ops`). Imports nothing of torch's.
"""

from __future__ import annotations

REQUIRED = object()


def bind(r, node, spec, args, kwargs) -> dict:
    """``args``/``kwargs`` by parameter name, as the call's signature ``spec`` (name, default) binds them."""
    if len(args) > len(spec):
        r.refuse(node, f"takes at most {len(spec)} positional arguments, got {len(args)}")
    bound = {name: value for (name, _), value in zip(spec, args)}
    names = {name for name, _ in spec}
    for key, value in kwargs.items():
        if key not in names:
            r.refuse(node, f"has an argument {key!r} that alexcost does not read")
        if key in bound:
            r.refuse(node, f"got {key!r} twice")
        bound[key] = value
    for name, default in spec:
        if name not in bound:
            if default is REQUIRED:
                r.refuse(node, f"misses its argument {name!r}")
            bound[name] = default
    return bound


def fixed_args(r, node, bound: dict, fixed: dict) -> None:
    """Arguments that must have one value for the call to be the kind (e.g. ``training=False``)."""
    for name, value in fixed.items():
        got = bound.pop(name)
        if got != value and not (value is None and got is None):
            r.refuse(node, f"{name}={got!r} is not read by alexcost (only {name}={value!r})")


def unary(kind, spec=(), *, fixed=None, drop=(), preset=None, rename=None):
    """A call on one tensor whose other arguments (``spec``: name, default) are the kind's own;
    ``fixed`` arguments must have the value given, ``drop`` ones do not matter, ``preset`` ones
    are the kind's arguments the call implies (``relu_``: ``inplace=True``), ``rename`` maps the
    call's names to the kind's (``torch.swapaxes``'s ``axis0`` is ``dim0``)."""
    full = (("input", REQUIRED), *spec)

    def handle(r, node, args, kwargs):
        bound = bind(r, node, full, args, kwargs)
        x = r.tensor(bound.pop("input"), node, kind)
        fixed_args(r, node, bound, fixed or {})
        for name in drop:
            bound.pop(name)
        for name in bound:
            bound[name] = r.constant(bound[name], node, name)
        if rename:
            bound = {rename.get(name, name): value for name, value in bound.items()}
        return r.emit(node, r.build(node, kind, {**bound, **(preset or {})}), [x])
    return handle


def weight_arg(r, node, value, role, rank):
    """A parameter passed as a weight or bias: its tensor (None when absent)."""
    if value is None:
        return None
    if not r.is_attribute(value) or value.kind != "parameter":
        r.refuse(node, f"its {role} is not a parameter of the module (alexcost counts registered "
                       f"nn.Parameters), got {r.show(value)}")
    if value.tensor.dim() != rank:
        r.refuse(node, f"its {role} {value.path!r} has shape {list(value.tensor.shape)}, not {rank} dimension(s)")
    return value
