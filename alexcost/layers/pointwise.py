"""Rsqrt: ``torch.rsqrt(x)``, one over the square root of every element (an RMS norm written out:
``x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps)``). Exp: ``torch.exp(x)`` (Swin V2's logit scale).

One op per element. Backward: Rsqrt's ``-0.5 * grad * y ** 3`` (a power and two multiplies: 3 ops per
element of the input's gradient), Exp's ``grad * y`` (one). What autograd keeps: the output ``y``.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Elementwise, layer_kind, register_layer


@register_layer
@layer_kind
class Rsqrt(Elementwise):
    """``torch.rsqrt(x)`` (``1 / sqrt(x)``) elementwise: one op per element; backward
    ``-0.5 * grad * y ** 3`` (3 per element), keeping its output."""

    backward_ops_per_element: ClassVar[int] = 3
    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class Exp(Elementwise):
    """``torch.exp(x)`` elementwise: one op per element; backward ``grad * y`` (one per element), keeping its
    output."""

    saves: ClassVar[str] = "output"
