"""Normalising by a norm, as torch composes it from elementwise calls: RMSNorm (``nn.RMSNorm``,
``F.rms_norm``) and Normalize (``F.normalize``).

RMSNorm over the last dimensions ``normalized_shape`` (R elements to a row): ``x * rsqrt(mean(x²) + eps)``,
times ``weight`` with ``elementwise_affine``. Per element a square and a multiply (and the weight's
multiply); per row R - 1 adds, a divide, the eps add and the reciprocal square root. Normalize along
``dim``: ``x / max(norm_p(x), eps)``; its norm counted as `Norm` counts it, one clamp per output of the
norm, one divide per element.

Backward (alexcost's convention; FlopCounterMode counts none of it): RMSNorm, 3 ops per element for
the input's gradient plus 3 per row, 2 per element for the weight's (a multiply, the sum over the
batch); Normalize, 1 per element for the numerator's gradient and 3 per element for the
denominator's (multiply, divide, sum back), one per row for the clamp, then the norm's as `Norm`.
Autograd keeps, on the CPU, what each call keeps: RMSNorm the input and the reciprocal root (one per
row), and with a weight needing its gradient the normalised input; Normalize the input, the norm
and the clamped norm (one per row each). On CUDA torch may run a fused kernel: refused.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer


def _rows(ctx: TrainContext, count: int, what: str) -> Saved:
    return Saved(what, "new", elements=ctx.batch * count, itemsize=ctx.itemsize)


def _cpu_only(layer, ctx: TrainContext) -> None:
    if ctx.device != "cpu":
        raise SpecError(f"{type(layer).__name__}: what autograd keeps on {ctx.device} depends on the kernel torch "
                        f"picks there; alexcost knows the CPU's")


@register_layer
@layer_kind
class RMSNorm(Layer):
    """``nn.RMSNorm``: ``x * rsqrt(mean(x²) + eps)`` over the last dimensions, ``normalized_shape``, times a
    weight of that shape with ``elementwise_affine``. Per element 2 ops (3 with the weight), per row of
    R elements R + 2 more (adds, divide, eps, root); params ``prod(normalized_shape)``."""

    normalized_shape: int | tuple[int, ...]
    eps: float | None = None
    elementwise_affine: bool = True

    layout: ClassVar[str] = "format"
    """torch's composite ends with a copy in the input's suggested memory format."""

    def __post_init__(self):
        super().__post_init__()
        shape = self.normalized_shape
        object.__setattr__(self, "normalized_shape", check.shape(
            (shape,) if not isinstance(shape, (tuple, list)) else shape, "normalized_shape"))
        if self.eps is not None:
            object.__setattr__(self, "eps", float(check.real(self.eps, "eps")))
        object.__setattr__(self, "elementwise_affine", check.flag(self.elementwise_affine, "elementwise_affine"))

    def output_shape(self, x: Shape) -> Shape:
        n = len(self.normalized_shape)
        if len(x) < n or x[len(x) - n:] != self.normalized_shape:
            raise SpecError(f"Given normalized_shape={list(self.normalized_shape)}, expected an input whose last "
                            f"{n} dimension(s) are {list(self.normalized_shape)}, got {format_shape(x)} per sample")
        return x

    def _rows(self, x: Shape) -> int:
        return prod(x) // prod(self.normalized_shape)

    def weight_params(self, x: Shape) -> int:
        return prod(self.normalized_shape) if self.elementwise_affine else 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        return (2 + self.elementwise_affine) * prod(x) + self._rows(x) * (prod(self.normalized_shape) + 2)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return 0

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        ops = batch * (3 * prod(x) + 3 * self._rows(x)) if grads.input else 0
        return ops + (batch * 2 * prod(x) if grads.weight else 0)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        _cpu_only(self, ctx)
        saved = (Saved("input"), _rows(ctx, self._rows(x), "reciprocal root")) if grads.input else ()
        if self.elementwise_affine and grads.weight:
            saved += (_rows(ctx, prod(x), "normalised input"),)
        return saved

    def label(self) -> str:
        return "RMS Norm"


@register_layer
@layer_kind
class Normalize(Layer):
    """``F.normalize(x, p, dim, eps)``: ``x / max(norm_p(x, dim), eps)`` for ``p`` 2 or 1, along ``dim`` of
    the batched tensor (not 0): the norm as `Norm` counts it, a clamp per row, a divide per element:
    ``3 * numel(x) + rows`` for p=2, ``3 * numel(x)`` for p=1."""

    p: float = 2.0
    dim: int = 1
    eps: float = 1e-12

    layout: ClassVar[str] = "elementwise"

    def __post_init__(self):
        super().__post_init__()
        value = check.real(self.p, "p")
        if value not in (1, 2):
            raise SpecError(f"p={self.p!r}: alexcost counts the 1- and 2-norms only")
        object.__setattr__(self, "p", float(value))
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))
        object.__setattr__(self, "eps", float(check.real(self.eps, "eps")))

    def output_shape(self, x: Shape) -> Shape:
        if check.dim(self.dim, "dim", len(x) + 1) == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        return x

    def _rows(self, x: Shape) -> int:
        return prod(x) // x[check.dim(self.dim, "dim", len(x) + 1) - 1]

    def other_ops(self, x: Shape, y: Shape) -> int:
        norm = 2 * prod(x) - (self._rows(x) if self.p == 1 else 0)
        return norm + self._rows(x) + prod(x)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return 0

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.input:
            return 0
        norm = 2 * prod(x) + (self._rows(x) if self.p == 2 else 0)
        return batch * (4 * prod(x) + self._rows(x) + norm)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        _cpu_only(self, ctx)
        if not grads.input:
            return ()
        return (Saved("input"), _rows(ctx, self._rows(x), "norm"), _rows(ctx, self._rows(x), "clamped norm"))

    def label(self) -> str:
        return "Normalize"
