"""Views that move the batch and put it back, and ``unbind``.

timm's attention writes ``qkv = x.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)`` then ``qkv.unbind(0)``
(or ``qkv[0]``, ``qkv[1]``, ...): the permute moves the batch to dim 1, and selecting dim 0 puts it in
front again. Per sample, output ``i`` is the sample's ``x[..., i, ...]`` along the dim moved to the
front, with the rest in the permuted order. Such a permute is read only where every use of it selects
its dim 0 with a constant (``unbind(0)``, ``[i]``) and the batch lands at dim 1 (see `Selections`):
per output, views of ``x`` as torch's are; or where each use is a reshape that keeps dim 0 and folds the
batch with what follows (SAM's ``.reshape(3, B*h, N, -1)``), each use of which selects so
(`Selections.reshaped`).
Such a value, whose batch is moved and which every use puts back, is a `Moved` (a stack reduced over
the batch, in `alexcost.torch_bridge.stacks`, is another). Any other permute that moves the batch is
refused at the permute. ``x.unbind(d)`` of a tensor whose
batch is in front is a `Chunk` into pieces of one, each squeezed (``d`` not the batch's). Handlers as in
`alexcost.torch_bridge.ops`. Imports torch.
"""

from __future__ import annotations

import operator
from math import prod

import torch

from ..layers import Chunk, Permute, Reshape, Slice, Squeeze
from .calls import REQUIRED, bind
from .folded import FoldedBatch, mark

_WHOLE = (None, None, None)


class Moved:
    """A value whose batch is not in front, read because every use of it puts the batch back in front (checked
    by `every_use` where it is made): each use calls a method of it, which emits the layers, named after
    ``node``, the call that moved the batch."""

    __slots__ = ("r", "node")


class Selections(Moved):
    """``x.permute(dims)`` whose batch is at dim 1, every use of which selects its dim 0 (checked at the
    permute): ``[i]`` is a `Slice` of ``x``, ``unbind(0)`` a `Chunk` of ``x`` into pieces of one, each
    squeezed, as torch's are views of several (one written in place fails torch's training step); then,
    where the order of the rest changes, a `Permute`. Made when used, from ``x`` as it is then (a write in
    place into ``x`` since shows through, as through torch's view), and named after the permute.
    ``then``: a reshape between the permute and the selections (`reshaped`), as ``(node, per-sample
    shape, fold)``."""

    __slots__ = ("x", "front", "rest", "then")

    def __init__(self, r, node, x, front: int, rest: tuple, then=None):
        self.r, self.node, self.x, self.front, self.rest, self.then = r, node, x, front, rest, then

    def _ordered(self, view):
        r = self.r
        if self.rest != tuple(range(len(self.rest))):
            view = r.emit(self.node, r.build(self.node, Permute, {"dims": self.rest}), [view])
        if self.then is None:
            return view
        node, shape, k = self.then
        return mark(r, r.emit(node, r.build(node, Reshape, {"shape": shape}), [view]), k)

    def reshaped(self, node, sizes):
        """``.reshape(n, B*m, ...)`` (``-1`` for ``B*m``; a ``view`` is refused) of the permute, keeping its dim
        0 (``n``) and folding the batch, now at dim 1, with the next ``m`` elements of each sample (``B`` alone:
        ``m = 1``); every use of it selects dim 0 (checked at the permute). Selection ``i`` of it is torch's
        selection ``i`` of the permute reshaped to ``(B*m, ...)``, which per sample is that sample's selection
        reshaped to ``(m, ...)``, its batch folded by ``m``. Torch copies the whole permute into one storage
        where no view can follow, the selections its views: a training step is refused (each selection read
        is a copy of its own)."""
        r, n = self.r, self.x.shape[self.front - 1]
        first, rest = (sizes[1] if len(sizes) > 1 else None), tuple(sizes[2:])
        each, known = prod(self.x.shape) // n, prod(rest)
        if first is r.BATCH:
            k = 1
        elif isinstance(first, FoldedBatch):
            k = first.k
        elif first == -1 and -1 not in rest and known > 0 and each % known == 0:
            k = each // known
        else:
            k = None
        if node.target == "view":
            r.refuse(node, "views a permute that moves the batch to dim 1 with sizes that fold the batch; alexcost "
                           "reads reshape there (torch's view fails where the permute's strides cannot be merged)")
        if self.then is not None or not rest or sizes[0] != n or k is None or any(
                s is r.BATCH or isinstance(s, FoldedBatch) for s in rest):
            r.refuse(node, f"reshapes a permute that moves the batch to dim 1 to {list(sizes)}; alexcost reads "
                           f"such a reshape only to ({n}, the batch times a number or -1, fixed sizes), each use "
                           f"selecting dim 0")
        r.untrainable.append(f"{r.where(node)} reshapes a permute that moves the batch: torch copies it into "
                               f"one storage, which alexcost does not follow in a training step")
        return Selections(r, self.node, self.x, self.front, self.rest, (node, ((k,) if k > 1 else ()) + rest, k))

    def __getitem__(self, index):
        r, node, front = self.r, self.node, self.front
        x = r.fresh(self.x)
        return self._ordered(r.emit(node, r.build(node, Slice, {"index": (_WHOLE,) * (front - 1) + (index,)}), [x]))

    def unbind(self, dim=0):
        r, node, front = self.r, self.node, self.front
        x = r.fresh(self.x)
        pieces = r.emit(node, r.build(node, Chunk, {"chunks": x.shape[front - 1], "dim": front}), [x])
        return tuple(self._ordered(r.emit(node, r.build(node, Squeeze, {"dim": front}), [piece]))
                     for piece in pieces)

    def __repr__(self) -> str:
        return "a permuted view of a tensor whose batch is its dim 1"


def _dim0(value, rank: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in (0, -rank)


def bound_call(user, node, names: tuple) -> dict | None:
    """The arguments of ``user`` by name (``names``: its signature's, the tensor first), where they bind as
    Python binds them and the tensor is ``node``; None otherwise."""
    args, kwargs = user.args, user.kwargs
    bound = dict(zip(names, args))
    if len(args) > len(names) or set(kwargs) - set(names) or set(kwargs) & set(bound):
        return None
    bound.update(kwargs)
    return bound if bound.get(names[0]) is node else None


def every_use(node, puts_back) -> bool:
    """Does every use of ``node`` (one at least) put the batch back in front (``puts_back(user)``)? A value
    whose batch is moved (a `Moved`) is read only so, checked where it is made, before its uses are read."""
    return bool(node.users) and all(puts_back(user) for user in node.users)


def _reshape_of(user, node) -> int | None:
    """The rank ``user`` reshapes ``node`` to, where it is ``node.reshape(sizes)`` or ``node.view(sizes)``."""
    method = user.op == "call_method" and user.target in ("reshape", "view")
    if not (method or (user.op == "call_function" and user.target is torch.reshape)) or user.kwargs or \
            len(user.args) < 2 or user.args[0] is not node or node in user.args[1:]:
        return None
    sizes = user.args[1:]
    return len(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else len(sizes)


def _selected(node, rank: int, size: int, reshaped: bool = True) -> bool:
    """Does every use of ``node`` (one at least) select its dim 0 with a constant: ``unbind(0)``, ``[i]``, or
    (``reshaped``) a reshape every use of which does (`Selections.reshaped` checks its sizes)?"""
    def selects(user) -> bool:
        if reshaped and _reshape_of(user, node) is not None:
            return _selected(user, _reshape_of(user, node), size, reshaped=False)
        if user.op == "call_function" and user.target is operator.getitem:
            index = user.args[1] if len(user.args) == 2 else None
            return user.args[0] is node and not user.kwargs and isinstance(index, int) and not isinstance(
                index, bool) and -size <= index < size
        if (user.op == "call_method" and user.target == "unbind") or \
                (user.op == "call_function" and user.target is torch.unbind):
            bound = bound_call(user, node, ("self" if user.op == "call_method" else "input", "dim"))
            return bound is not None and _dim0(bound.get("dim", 0), rank)
        return False
    return every_use(node, selects)


def moved_permute(r, node, x, dims):
    """``x.permute(dims)`` with ``dims[0]`` not the batch: its `Selections`, or None where the permute
    is not read so (the caller then refuses it as a permute that moves the batch)."""
    rank = len(x.shape) + 1
    if len(dims) != rank or not all(isinstance(d, int) and -rank <= d < rank for d in dims):
        return None
    order = [d % rank for d in dims]
    if sorted(order) != list(range(rank)) or order[0] == 0 or order[1] != 0:
        return None
    front, size = order[0], x.shape[order[0] - 1]
    if not _selected(node, rank, size):
        return None
    return Selections(r, node, x, front, tuple(d - (d > front) for d in order[1:]))


def unbind(r, node, args, kwargs):
    """``x.unbind(d)``, ``torch.unbind(x, d)``: the views along ``d``, as a `Chunk` into pieces of one,
    each squeezed (views of several, as torch's)."""
    bound = bind(r, node, (("input", REQUIRED), ("dim", 0)), args, kwargs)
    x, d = bound["input"], r.constant(bound["dim"], node, "dim")
    if isinstance(x, Selections):
        return x.unbind(d)  # its uses were checked at the permute: dim 0
    x = r.tensor(x, node)
    rank = len(x.shape) + 1
    if not (isinstance(d, int) and not isinstance(d, bool) and -rank <= d < rank):
        r.refuse(node, f"dim={r.show(d)} is out of range for a tensor of {rank} dimensions")
    d %= rank
    if d == 0:
        r.refuse(node, "unbinds the batch dimension; alexcost analyses each sample on its own")
    pieces = r.emit(node, r.build(node, Chunk, {"chunks": x.shape[d - 1], "dim": d}), [x])
    return tuple(r.emit(node, r.build(node, Squeeze, {"dim": d}), [piece]) for piece in pieces)


FUNCTIONS = {torch.unbind: unbind}
METHODS = {"unbind": unbind}
