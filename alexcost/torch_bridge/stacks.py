"""``torch.stack``, and a stack before the batch reduced away again.

``torch.stack(xs, d)`` of tensors whose batch is in front, ``d`` not before it, is
``torch.cat([x.unsqueeze(d) for x in xs], d)``: an `Unsqueeze` of each (a view) then a `Cat` (of one
tensor, a `Clone`), not of channels-last tensors (torch lays out such a stack by a rule alexcost does
not model). timm's
ensembles write ``torch.stack(xs).sum(dim=0)`` and ``torch.mean(torch.stack(xs, dim=0), dim=0)``: the
stack puts the batch at dim 1, the reduction of dim 0 puts it in front again. Such a stack is read only
where every use of it sums or averages its dim 0 (with ``keepdim`` off): per sample, the stack along dim
1, then a `Sum` or `Mean` of dim 1. Any other use of a stack at dim 0 is refused at the stack. Handlers
as in `alexcost.torch_bridge.ops`. Imports torch.
"""

from __future__ import annotations

import torch

from ..layers import strides as st
from ..layers import Cat, Clone, Mean, Sum, Unsqueeze
from .calls import REQUIRED, bind
from .moves import Moved, bound_call, every_use

_REDUCTIONS = {"sum": Sum, "mean": Mean}


def _stacked(r, node, tensors, d: int):
    """``torch.stack(tensors, d)`` of activations (``d`` of the batched output, not 0)."""
    xs = [r.emit(node, r.build(node, Unsqueeze, {"dim": d}), [x]) for x in tensors]
    return r.emit(node, Clone(), xs) if len(xs) == 1 else r.emit(node, r.build(node, Cat, {"dim": d}), xs)


class Stack(Moved):
    """A stack at dim 0 (the batch then at dim 1) whose every use reduces dim 0 (checked at the stack):
    per sample, the stack along dim 1 (made at the stack, a copy as torch's), reduced along dim 1 when
    used; named after the stack."""

    __slots__ = ("stacked",)

    def __init__(self, r, node, stacked):
        self.r, self.node, self.stacked = r, node, stacked

    def reduce(self, name: str):
        r, node = self.r, self.node
        return r.emit(node, r.build(node, _REDUCTIONS[name], {"dim": 1}), [r.fresh(self.stacked)])

    def sum(self, dim=0, keepdim=False):
        return self.reduce("sum")

    def mean(self, dim=0, keepdim=False):
        return self.reduce("mean")

    def __repr__(self) -> str:
        return "a stack of tensors at dim 0, before their batch"


def _reduces_dim0(node, rank: int) -> bool:
    """Does every use of ``node`` (one at least) sum or average its dim 0 alone, keepdim off?"""
    def reduces(user) -> bool:
        method = user.op == "call_method" and user.target in _REDUCTIONS
        if not (method or (user.op == "call_function" and user.target in (torch.sum, torch.mean))):
            return False
        bound = bound_call(user, node, ("self" if method else "input", "dim", "keepdim"))
        d = None if bound is None else bound.get("dim")
        return bound is not None and bound.get("keepdim", False) is False and not isinstance(d, bool) and \
            d in (0, -rank)
    return every_use(node, reduces)


def stack(r, node, args, kwargs):
    b = bind(r, node, (("tensors", REQUIRED), ("dim", 0), ("out", None)), args, kwargs)
    tensors, d = b["tensors"], r.constant(b["dim"], node, "dim")
    if b["out"] is not None:
        r.refuse(node, "writes into out=; alexcost reads it without")
    if not isinstance(tensors, (list, tuple)) or not tensors:
        r.refuse(node, "stacks something other than a list of tensors")
    xs = [r.tensor(t, node) for t in tensors]
    for k, x in enumerate(xs[1:], start=1):
        if x.shape != xs[0].shape:
            r.refuse(node, f"stack expects each tensor to be equal size, but got {r.show(xs[0])} at entry 0 and "
                           f"{r.show(x)} at entry {k}")
    for batch in (1, 2):
        for x in xs:
            shape = (batch, *x.shape)
            if st.is_channels_last(shape, r._placed(node, batch, x.src)[1]) and not st.is_contiguous(
                    shape, r._placed(node, batch, x.src)[1]):
                r.refuse(node, "stacks a channels-last tensor; torch lays out such a stack by a rule alexcost does "
                               "not model")
    rank = len(xs[0].shape) + 2  # the batched output's
    if isinstance(d, bool) or not isinstance(d, int) or not -rank <= d < rank:
        r.refuse(node, f"dim={r.show(d)} is out of range for a stack of {rank - 1}-dimensional tensors")
    d %= rank
    if d:
        return _stacked(r, node, xs, d)
    if _reduces_dim0(node, rank):
        return Stack(r, node, _stacked(r, node, xs, 1))
    r.refuse(node, "stacks before the batch dimension (dim=0), and is used otherwise than summed or averaged "
                   "over that dim; alexcost analyses each sample on its own")


def reduced(name: str, handler):
    """``torch.sum``/``torch.mean`` (``handler``), which of a `Stack` reduce it."""
    def handle(r, node, args, kwargs):
        x = args[0] if args else kwargs.get("input")
        if isinstance(x, Stack):
            return x.reduce(name)  # its uses were checked at the stack: dim 0
        return handler(r, node, args, kwargs)
    return handle


FUNCTIONS = {torch.stack: stack}
