"""Normalisation: LocalResponseNorm, BatchNorm2d (inference), LayerNorm."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from .. import arguments as check
from ..errors import SpecError, format_shape
from .base import Layer, Shape, need_rank, register_layer


def _floats(layer, *names) -> None:
    for arg in names:
        object.__setattr__(layer, arg, float(check.real(getattr(layer, arg), arg)))


@register_layer
@dataclass(frozen=True, kw_only=True)
class LocalResponseNorm(Layer):
    """Local response normalisation across channels, ``b = a / (k + alpha/size * sum a^2)^beta``.

    ``size + 4`` ops per element: square, ``size - 1`` adds, scale, add k, power, divide.
    torch's defaults (k=1.0) differ from AlexNet's (k=2).
    """

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "size", check.integer(self.size, "size"))
        _floats(self, "alpha", "beta", "k")

    def output_shape(self, x: Shape) -> Shape:
        if len(x) < 2:
            raise SpecError(f"LocalResponseNorm expects a (C, ...) input with at least 2 dims per sample, "
                            f"got {format_shape(x)}")
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * (self.size + 4)

    def columns(self):
        return (f"size {self.size}", "", "", "")

    def label(self) -> str:
        return "LRN"


@register_layer
@dataclass(frozen=True, kw_only=True)
class BatchNorm2d(Layer):
    """Batch normalisation at inference, with the running statistics: torch folds them into one
    scale and one shift per channel, so 2 ops per element (multiply, add).

    params ``2*C`` (weight and bias, with ``affine``); buffers ``2*C + 1`` (running mean and
    variance at the run's dtype, ``num_batches_tracked`` as one int64), memory not parameters.
    fvcore counts 2 per element with ``affine``, 1 without. ``num_features`` may be left out.
    """

    num_features: int | None = None
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        if self.num_features is not None:
            put("num_features", check.integer(self.num_features, "num_features"))
        _floats(self, "eps")
        if self.momentum is not None:
            _floats(self, "momentum")
        put("affine", check.flag(self.affine, "affine"))
        if not check.flag(self.track_running_stats, "track_running_stats"):
            raise SpecError("track_running_stats=False normalises over the batch even at inference; "
                            "alexcost analyses each sample on its own")

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        if self.num_features is not None and self.num_features != x[0]:
            raise SpecError(f"expected num_features={self.num_features}, got {x[0]} channels")
        return x

    def weight_params(self, x: Shape) -> int:
        return x[0] if self.affine else 0

    def bias_params(self, x: Shape) -> int:
        return x[0] if self.affine else 0

    def buffers(self, x: Shape) -> int:
        return 2 * x[0] + 1

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        return 2 * x[0] * itemsize + 8

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 2 * prod(y)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (2 if self.affine else 1)

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "num_features": x[0]}

    def label(self) -> str:
        return "BatchNorm"


@register_layer
@dataclass(frozen=True, kw_only=True)
class LayerNorm(Layer):
    """Layer normalisation over the last dimensions, ``normalized_shape`` (channels last, for
    ConvNeXt's blocks). Per element: the mean (1 add), the variance (subtract, multiply-add),
    normalising (subtract, multiply): 5 ops; the affine transform adds a multiply and, with
    ``bias``, an add. params ``prod(normalized_shape)`` each for weight and bias.
    fvcore counts 5 per element with a weight, 4 without.
    """

    normalized_shape: int | tuple[int, ...]
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        shape = self.normalized_shape
        put("normalized_shape", check.shape((shape,) if not isinstance(shape, (tuple, list)) else shape,
                                            "normalized_shape"))
        _floats(self, "eps")
        put("elementwise_affine", check.flag(self.elementwise_affine, "elementwise_affine"))
        put("bias", check.flag(self.bias, "bias"))

    def output_shape(self, x: Shape) -> Shape:
        n = len(self.normalized_shape)
        if x[len(x) - n:] != self.normalized_shape or len(x) < n:
            raise SpecError(f"Given normalized_shape={list(self.normalized_shape)}, expected an input whose last "
                            f"{n} dimension(s) are {list(self.normalized_shape)}, got {format_shape(x)} per sample")
        return x

    def weight_params(self, x: Shape) -> int:
        return prod(self.normalized_shape) if self.elementwise_affine else 0

    def bias_params(self, x: Shape) -> int:
        return prod(self.normalized_shape) if self.elementwise_affine and self.bias else 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        per = 5 + (1 + self.bias if self.elementwise_affine else 0)
        return prod(y) * per

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (5 if self.elementwise_affine else 4)

    def label(self) -> str:
        return "LayerNorm"
