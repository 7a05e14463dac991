"""A parameter reshaped before use: ``x * self.gamma.view(1, -1, 1, 1)`` (timm's layer scale).

``view`` and ``reshape`` of a module's ``nn.Parameter`` with fixed sizes give a view of it: no
operation torch counts and no new parameter. The reader keeps it as a parameter of the new
shape whose elements are the original's (``base``), so it counts once, where first read, as
any parameter does (a `Parameter` layer when it is an operand of ``+`` or ``*``). Anything
computed from a parameter (weight standardisation, ``gain * scale``) stays refused: it is an
operation on the parameter, which alexcost has no layer for. Imports torch.
"""

from __future__ import annotations


def reshaped_parameter(handler, name: str = "shape"):
    """``handler`` (a ``view`` or ``reshape`` of an activation), which reads a parameter's view too."""
    def handle(r, node, args, kwargs):
        value = args[0] if args else kwargs.get("input")
        if not (r.is_attribute(value) and value.kind == "parameter"):
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
        base = value.base if value.base is not None else value.tensor
        return type(value)(value.path, view, "parameter", node, base=base)
    return handle
