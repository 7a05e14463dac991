"""Views that move the batch and put it back, and ``unbind``.

timm's attention writes ``qkv = x.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)`` then ``qkv.unbind(0)``
(or ``qkv[0]``, ``qkv[1]``, ...): the permute moves the batch to dim 1, and selecting dim 0 puts it in
front again. Per sample, output ``i`` is the sample's ``x[..., i, ...]`` along the dim moved to the
front, with the rest in the permuted order. Such a permute is read only where every use of it selects
its dim 0 with a constant (``unbind(0)``, ``[i]``) and the batch lands at dim 1: each index taken
becomes a `Slice` then, where the order changes, a `Permute`, both views of ``x`` as torch's are.
Any other permute that moves the batch is refused at the permute. ``x.unbind(d)`` of a tensor whose
batch is in front is a `Slice` per index (``d`` not the batch's). Handlers as in
`alexcost.torch_bridge.ops`. Imports torch.
"""

from __future__ import annotations

import operator

import torch

from ..layers import Permute, Slice
from .calls import REQUIRED, bind

_WHOLE = (None, None, None)


class Selections:
    """A permuted view whose batch is at dim 1, held as the selections of its dim 0 its uses take:
    ``[i]`` and ``unbind(0)`` give them (each a view of the permute's input, emitted at the permute)."""

    __slots__ = ("views", "size")

    def __init__(self, views: dict, size: int):
        self.views, self.size = views, size

    def __getitem__(self, index):
        return self.views[index % self.size]

    def unbind(self, dim=0):
        return tuple(self.views[i] for i in range(self.size))

    def __repr__(self) -> str:
        return "a permuted view of a tensor whose batch is its dim 1"


def _dim0(value, rank: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in (0, -rank)


def _taken(node, rank: int, size: int):
    """The indices of dim 0 the uses of ``node`` select (each a constant): ``unbind(0)`` all of them,
    ``[i]`` one. None where a use does anything else."""
    taken = set()
    for user in node.users:
        args, kwargs = user.args, user.kwargs
        if user.op == "call_function" and user.target is operator.getitem:
            if len(args) != 2 or args[0] is not node or kwargs:
                return None
            index = args[1]
            if not (isinstance(index, int) and not isinstance(index, bool) and -size <= index < size):
                return None
            taken.add(index % size)
        elif (user.op == "call_method" and user.target == "unbind") or \
                (user.op == "call_function" and user.target is torch.unbind):
            names = ("self" if user.op == "call_method" else "input", "dim")
            bound = dict(zip(names, args))
            if len(args) > 2 or set(kwargs) - set(names) or set(kwargs) & set(bound):
                return None
            bound.update(kwargs)
            if bound.get(names[0]) is not node or not _dim0(bound.get("dim", 0), rank):
                return None
            taken.update(range(size))
        else:
            return None
    return taken or None


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
    taken = _taken(node, rank, size)
    if taken is None:
        return None
    rest = tuple(d - (d > front) for d in order[1:])
    views = {}
    for i in sorted(taken):
        view = r.emit(node, r.build(node, Slice, {"index": (_WHOLE,) * (front - 1) + (i,)}), [x])
        if rest != tuple(range(rank - 1)):
            view = r.emit(node, r.build(node, Permute, {"dims": rest}), [view])
        views[i] = view
    return Selections(views, size)


def unbind(r, node, args, kwargs):
    """``x.unbind(d)``, ``torch.unbind(x, d)``: the views ``x[:, ..., i]`` along ``d``, one `Slice` each."""
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
    return tuple(r.emit(node, r.build(node, Slice, {"index": (_WHOLE,) * (d - 1) + (i,)}), [x])
                 for i in range(x.shape[d - 1]))


FUNCTIONS = {torch.unbind: unbind}
METHODS = {"unbind": unbind}
