"""Kinds that only imported modules need: Clone (``torch.cat`` of a single tensor, ``x.clone()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Layer, Shape, register_layer


@register_layer
@dataclass(frozen=True, kw_only=True)
class Clone(Layer):
    """A copy of its input in new storage: ``x.clone()``, or ``torch.cat`` of a list holding one
    tensor (DenseNet's first layer of each block concatenates a list of one). No ops."""

    layout: ClassVar[str] = "elementwise"

    def output_shape(self, x: Shape) -> Shape:
        return x

    def torch_module(self, x: Shape):
        from ..torch_modules import Method

        return Method("clone")

    def label(self) -> str:
        return "Copy"
