"""A learned tensor used as an operand (ConvNeXt's layer scale): Parameter."""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer


@register_layer
@layer_kind
class Parameter(Layer):
    """A learned tensor of ``shape`` (its full shape: it has no batch dimension), read by the
    layers that name it in ``inputs`` (a Mul, say, broadcasting it). ``prod(shape)``
    parameters, no ops; its output is the weight itself, not an activation."""

    shape: tuple[int, ...]

    arity: ClassVar[int | None] = 0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "shape", check.shape(self.shape, "shape"))

    def output_shape(self, x) -> Shape:
        return self.shape

    def weight_params(self, x) -> int:
        return prod(self.shape)

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def label(self) -> str:
        return "Parameter"
