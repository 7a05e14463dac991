"""A parameter reshaped before use: ``x * self.gamma.view(1, -1, 1, 1)`` (timm's layer scale).

``view`` and ``reshape`` of a module's ``nn.Parameter`` with fixed sizes give a view of it: no
operation torch counts and no new parameter. The reader keeps it as a parameter of the new
shape whose elements are the original's (``base``), so it counts once, where first read, as
any parameter does (a `Parameter` layer when it is an operand of ``+`` or ``*``). Anything
computed from a parameter (weight standardisation, ``gain * scale``) stays refused: it is an
operation on the parameter, which alexcost has no layer for.

A parameter's rows gathered by a fixed index (``table[index]``, ``index`` an integer buffer, itself viewed
with fixed sizes, or a constant fx keeps for an index torch computes in the forward pass), or its slices along
a later dimension (``table[:, index]``, LeViT's): a relative position bias. The reader keeps the gathered tensor, and its views, permutes
and contiguous copies, as a parameter whose elements are the table's, marked ``gathered``: a `PositionBias`
when an operand of ``+``. Imports torch.
"""

from __future__ import annotations


def reshaped_parameter(handler, name: str = "shape"):
    """``handler`` (a ``view`` or ``reshape`` of an activation), which reads a parameter's view too."""
    def handle(r, node, args, kwargs):
        value = args[0] if args else kwargs.get("input")
        if not (r.is_attribute(value) and (value.kind == "parameter" or _index(value))):
            return handler(r, node, args, kwargs)
        rest = list(args[1:])
        if kwargs:
            if rest or set(kwargs) - {"input"} != {name}:
                r.refuse(node, f"takes its {name} positionally or as {name}=")
            rest = [kwargs[name]]
        if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
            rest = list(rest[0])
        sizes = tuple(r.constant(s, node, name) for s in rest)
        if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
            r.refuse(node, f"reshapes {r.show(value)} to {list(sizes)}; alexcost reads a parameter's view with "
                           f"fixed integer sizes only")
        import torch

        try:
            with torch.enable_grad():
                view = getattr(value.tensor, node.target if node.op == "call_method" else "reshape")(sizes)
        except RuntimeError as err:
            r.refuse(node, f"fails on {r.show(value)} of shape {list(value.tensor.shape)}: {err}")
        if value.kind != "parameter":
            return type(value)(value.path, view, value.kind, node)
        base = value.base if value.base is not None else value.tensor
        return type(value)(value.path, view, "parameter", node, base=base, gathered=value.gathered, dim=value.dim)
    return handle


def _index(value) -> bool:
    """A buffer or constant of integers (an index)."""
    return not value.tensor.is_floating_point() and not value.tensor.is_complex() and value.kind != "parameter"


def gathered_parameter(handler):
    """``handler`` (``x[...]`` of an activation), which reads ``table[index]`` too: a parameter's rows
    gathered by an integer buffer."""
    def handle(r, node, args, kwargs):
        value, index = (list(args) + [None, None])[:2]
        if not (r.is_attribute(value) and value.kind == "parameter" and value.base is None and not kwargs):
            return handler(r, node, args, kwargs)
        dim = 0
        if isinstance(index, tuple) and index and all(s == slice(None) for s in index[:-1]):
            dim, index = len(index) - 1, index[-1]
        if not (r.is_attribute(index) and _index(index)):
            r.refuse(node, f"indexes {r.show(value)} with {r.show(index)}; alexcost reads a parameter indexed by an "
                           f"integer buffer only (a relative position bias table: table[index], table[:, index])")
        import torch

        if index.tensor.dtype != torch.int64:
            r.refuse(node, f"indexes {r.show(value)} with {r.show(index)} of {index.tensor.dtype}; alexcost reads a "
                           f"gathered table's index as torch.int64 only (its buffer's bytes)")
        try:
            with torch.enable_grad():
                rows = value.tensor[(slice(None),) * dim + (index.tensor,)]
        except (IndexError, RuntimeError) as err:
            r.refuse(node, f"fails on {r.show(value)} of shape {list(value.tensor.shape)}: {err}")
        held = index.kind == "buffer" or any(b is index.tensor or b is index.tensor._base for b in r.root.buffers())
        return type(value)(value.path, rows, "parameter", node, base=value.tensor, gathered="buffer" if held else
                           "computed", dim=dim)
    return handle


def gathered_view(handler, method: str):
    """``handler`` (``x.permute(...)``, ``x.contiguous()``, ``x.unsqueeze(d)`` of an activation), which reads
    the same of a gathered parameter (see `gathered_parameter`): computed on its tensor, fixed arguments only."""
    def handle(r, node, args, kwargs):
        value = args[0] if args else None
        if not (r.is_attribute(value) and value.gathered):
            return handler(r, node, args, kwargs)
        rest = [r.constant(a, node, "argument") for a in args[1:]]
        more = {k: r.constant(v, node, k) for k, v in kwargs.items()}
        try:
            out = getattr(value.tensor, method)(*rest, **more)
        except (RuntimeError, TypeError, IndexError) as err:
            r.refuse(node, f"fails on {r.show(value)} of shape {list(value.tensor.shape)}: {err}")
        return type(value)(value.path, out, "parameter", node, base=value.base, gathered=value.gathered, dim=value.dim)
    return handle
