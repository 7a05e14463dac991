"""Reductions and rearrangements of transformers: Sum, Amax, Norm, Var (reductions over dims, as Mean), Roll.

Dimensions are numbered on the batched tensor, as torch numbers them; none may be the batch's.
Sum adds the elements it reduces (one add fewer than it reads, per output element); Amax compares
them (one comparison fewer than it reads). Norm with
``p=2`` squares each element, adds them and takes one square root per output element; with ``p=1``
takes each element's absolute value and adds them. Var averages the elements (as Mean), subtracts the mean
from each, squares and adds them, and divides each sum by the count less ``correction``: ``4 * numel(x)``.
Roll copies and does no arithmetic.

Backward: Sum spreads its gradient (0 ops) and keeps nothing; Amax shares each output's gradient among
the elements equal to the maximum (3 ops per input element) and keeps its input and output; Norm's
gradient is ``x * g / norm`` (``p=2``: a divide per output element, then two multiplies per input
element) or ``sign(x) * g`` (``p=1``: two ops per input element), and it keeps its input and its
output; Var's gradient is ``2 / (n - correction) * g * (x - mean(x))`` (the mean again, a subtract and two
multiplies: 4 ops per input element), keeping its input; Roll rolls its gradient back (0 ops), keeping
nothing.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer
from .shape import Mean


@register_layer
@layer_kind
class Sum(Mean):
    """``x.sum(dim, keepdim)`` over dims of the batched tensor (not the batch): ``numel(x) - numel(y)``
    adds per sample."""

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(x) - prod(y)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return 0

    def label(self) -> str:
        return "Sum"


@register_layer
@layer_kind
class Amax(Mean):
    """``x.amax(dim, keepdim)`` (``torch.amax``) over dims of the batched tensor (not the batch): one comparison
    fewer than the elements it reads, ``numel(x) - numel(y)`` per sample. Backward, as torch's: each input
    element compared with its output (1), the equal ones counted per output (1 add per input element, less
    one per output), the gradient divided by the count (1 per output element) and masked (1 per input
    element): ``3 * numel(x)``; it keeps its input and its output."""

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(x) - prod(y)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * 3 * prod(x) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return (Saved("input"), Saved("output", "output"))

    def label(self) -> str:
        return "Amax"


@register_layer
@layer_kind
class Norm(Mean):
    """``torch.linalg.vector_norm(x, ord, dim, keepdim)`` (and ``x.norm(p, dim, keepdim)``) over dims of the
    batched tensor, for ``ord`` 2 or 1: per sample, ``2 * numel(x)`` ops for 2 (square, add, one square root
    per output element), ``2 * numel(x) - numel(y)`` for 1 (absolute value, add)."""

    ord: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        value = check.real(self.ord, "ord")
        if value not in (1, 2):
            raise SpecError(f"ord={self.ord!r}: alexcost counts the 1- and 2-norms only")
        object.__setattr__(self, "ord", float(value))

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 2 * prod(x) - (prod(y) if self.ord == 1 else 0)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.input:
            return 0
        return batch * (2 * prod(x) + (prod(y) if self.ord == 2 else 0))

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return (Saved("input"), Saved("output", "output"))

    def label(self) -> str:
        return "Norm"


@register_layer
@layer_kind
class Var(Mean):
    """``x.var(dim, correction=1, keepdim)`` (``torch.var``; ``unbiased=False`` is ``correction=0``) over dims of
    the batched tensor (not the batch). Its ops: the mean (``numel(x)``), a subtract and a square per element, the adds
    (``numel(x) - numel(y)``) and a divide per output element, ``4 * numel(x)`` in all. Backward ``2 / (n -
    correction) * g * (x - mean(x))``, ``4 * numel(x)``; it keeps its input."""

    correction: int = 1

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "correction", check.integer(self.correction, "correction", minimum=0))

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 4 * prod(x)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * 4 * prod(x) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return (Saved("input"),)

    def label(self) -> str:
        return "Var"


def _dim(layer, value: int, rank: int) -> int:
    d = check.dim(value, "dims", rank)
    if d == 0:
        raise SpecError(f"{type(layer).__name__}: dim 0 is the batch dimension; alexcost analyses each sample on "
                        f"its own")
    return d


@register_layer
@layer_kind
class Roll(Layer):
    """``torch.roll(x, shifts, dims)``: each of ``dims`` (of the batched tensor, not the batch) rolled by its
    shift. A copy (channels-last in, channels-last out): no ops."""

    shifts: int | tuple[int, ...]
    dims: int | tuple[int, ...]

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        shifts = self.shifts if isinstance(self.shifts, (tuple, list)) else (self.shifts,)
        object.__setattr__(self, "shifts", tuple(check.integer(s, "shifts", minimum=-check.INT64_MAX) for s in shifts))
        object.__setattr__(self, "dims", check.dims(self.dims, "dims"))
        if len(self.shifts) != len(self.dims):
            raise SpecError(f"shifts and dimensions must align. shifts: {len(self.shifts)}, dims:{len(self.dims)}")

    def output_shape(self, x: Shape) -> Shape:
        for d in self.dims:
            _dim(self, d, len(x) + 1)
        return x

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()
