"""Sliding local blocks: Unfold (torch's im2col, ``nn.Unfold`` and ``F.unfold``).

Unfold copies every window of a (C, H, W) sample into a column: the output is
(C * kH * kW, L), L the window positions, each tap that falls in the padding a zero. A copy
into new storage: no MACs, no other ops. Its backward pass (col2im) adds each column
element that came from the input back into the input's gradient (one add per in-bounds tap);
autograd keeps nothing (col2im needs only the input's size).
"""

from __future__ import annotations

from math import prod

from . import arguments as check
from ..errors import SpecError
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, need_rank, register_layer, side
from .windows import window_positions, window_total


@register_layer
@layer_kind
class Unfold(Layer):
    """``nn.Unfold(kernel_size, dilation, padding, stride)`` on a (C, H, W) sample: (C * kH * kW, L)
    columns, L the window positions (torch's im2col). A copy: no ops; its gradient adds each in-bounds
    tap back (col2im)."""

    kernel_size: int | tuple[int, int]
    dilation: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    stride: int | tuple[int, int] = 1

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        put("kernel_size", check.pair(self.kernel_size, "kernel_size"))
        put("dilation", check.pair(self.dilation, "dilation"))
        put("padding", check.pair(self.padding, "padding", minimum=0))
        put("stride", check.pair(self.stride, "stride"))

    def _windows(self):
        return tuple(zip(self.kernel_size, self.stride, self.padding, self.dilation))

    def _positions(self, x: Shape) -> tuple[int, ...]:
        need_rank(self, x, 3, "(C, H, W)")
        out = tuple(window_positions(size, k, s, p, d) for size, (k, s, p, d) in zip(x[1:], self._windows()))
        if min(out) < 1:
            raise SpecError(f"Given input with spatial size ({x[1]}, {x[2]}), kernel_size=({side(self.kernel_size)}), "
                            f"dilation=({side(self.dilation)}), padding=({side(self.padding)}), calculated shape "
                            f"of the array of sliding blocks as ({out[0]}, {out[1]}), but its components must be "
                            f"at least one.")
        return out

    def output_shape(self, x: Shape) -> Shape:
        return (x[0] * prod(self.kernel_size), prod(self._positions(x)))

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.input:
            return 0
        out = self._positions(x)
        return batch * x[0] * prod(window_total(size, k, s, p, d, n)
                                   for size, n, (k, s, p, d) in zip(x[1:], out, self._windows()))

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def columns(self):
        return (" * ".join(map(str, self.kernel_size)), "", side(self.stride), side(self.padding))

    def label(self) -> str:
        return "Unfold"
