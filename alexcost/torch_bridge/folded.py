"""The marker of a batch folded with a known factor, and the record of which values are folded.

``x.shape[0]`` of a tensor whose first dimension is the batch times ``k`` is a `FoldedBatch`; the reader
keeps ``k`` per activation (its ``folds``). What reads such tensors is in `alexcost.torch_bridge.fold`;
`alexcost.torch_bridge.moves` folds the batch too. Imports nothing of torch's.
"""

from __future__ import annotations

from ..layers import ParameterShape


class FoldedBatch:
    """``x.shape[0]`` of a folded value: the batch size times ``k``, never a number."""

    __slots__ = ("k",)

    def __init__(self, k: int):
        self.k = k

    def __repr__(self) -> str:
        return f"N*{self.k}"


def fold_of(r, value) -> int:
    """The factor ``k`` of an activation (1: the batch alone, or a parameter)."""
    if not r.is_activation(value) or isinstance(value.shape, ParameterShape):
        return 1
    return r.folds.get(value.src, 1)


def mark(r, value, k: int):
    """Record every activation in ``value`` as folded by ``k``; gives ``value`` back."""
    if k > 1:
        if r.is_activation(value) and not isinstance(value.shape, ParameterShape):
            r.folds[value.src] = k
        elif isinstance(value, (list, tuple)):
            for v in value:
                mark(r, v, k)
    return value
