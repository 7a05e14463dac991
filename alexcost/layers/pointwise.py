"""Sqrt: ``torch.sqrt(x)``, the square root of every element (EvoNorm's standard deviation). Rsqrt:
``torch.rsqrt(x)``, one over the square root of every element (an RMS norm written out:
``x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps)``). Clamp: ``torch.clamp(x, min, max)`` with
Python-number bounds. Exp: ``torch.exp(x)`` (Swin V2's logit scale).

Sqrt: one op per element. Backward: ``grad / (2 * y)`` (2 ops per element), keeping the output ``y``.

Rsqrt: one op per element. Backward: torch's formula ``-0.5 * grad * y ** 3`` (a power and two multiplies:
3 ops per element of the input's gradient). What autograd keeps: the output ``y``.

Clamp: one comparison per bound per element (2 with both, as `ReLU6`'s two clamps); backward one
comparison per bound (the gradient passed where the input lies within the bounds). What autograd keeps:
the input (in place, a copy of it made before overwriting it).

Exp: one op per element; backward ``grad * y`` (one per element), keeping the output ``y``.

Sin, Cos: one op per element (a sine and cosine position table). Backward: torch's formulas ``grad * cos(x)``
(2 ops per element) and ``grad * -sin(x)`` (3); what autograd keeps: the input.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .base import Elementwise, Grads, InplaceElementwise, Shape, layer_kind, register_layer


@register_layer
@layer_kind
class Sqrt(Elementwise):
    """``torch.sqrt(x)`` elementwise: one op per element; backward ``grad / (2 * y)`` (2 per element), keeping
    its output."""

    backward_ops_per_element: ClassVar[int] = 2
    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class Rsqrt(Elementwise):
    """``torch.rsqrt(x)`` (``1 / sqrt(x)``) elementwise: one op per element; backward
    ``-0.5 * grad * y ** 3`` (3 per element), keeping its output."""

    backward_ops_per_element: ClassVar[int] = 3
    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class Clamp(InplaceElementwise):
    """``torch.clamp(x, min, max)`` with Python-number bounds, either may be None (``x.clamp_`` in place): one
    comparison per bound per element; backward one per bound; keeps its input (in place: a copy)."""

    min: float | None = None
    max: float | None = None
    inplace: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.min is None and self.max is None:
            raise SpecError("torch.clamp: At least one of 'min' or 'max' must not be None")
        for bound in ("min", "max"):
            if getattr(self, bound) is not None:
                object.__setattr__(self, bound, check.real(getattr(self, bound), bound))

    def _bounds(self) -> int:
        return (self.min is not None) + (self.max is not None)

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * self._bounds()

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(x) * self._bounds() if grads.inputs[0] else 0

    def label(self) -> str:
        return f"clamp({'' if self.min is None else self.min}, {'' if self.max is None else self.max})"


@register_layer
@layer_kind
class Exp(Elementwise):
    """``torch.exp(x)`` elementwise: one op per element; backward ``grad * y`` (one per element), keeping its
    output."""

    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class Sin(Elementwise):
    """``torch.sin(x)`` elementwise: one op per element; backward ``grad * cos(x)`` (2 per element), keeping
    its input."""

    backward_ops_per_element: ClassVar[int] = 2


@register_layer
@layer_kind
class Cos(Elementwise):
    """``torch.cos(x)`` elementwise: one op per element; backward ``grad * -sin(x)`` (3 per element), keeping
    its input."""

    backward_ops_per_element: ClassVar[int] = 3
