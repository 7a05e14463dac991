"""Sliding local blocks: Unfold (torch's im2col, ``nn.Unfold`` and ``F.unfold``) and its inverse Fold (col2im,
``nn.Fold`` and ``F.fold``).

Unfold copies every window of a (C, H, W) sample into a column: the output is
(C * kH * kW, L), L the window positions, each tap that falls in the padding a zero. A copy
into new storage: no MACs, no other ops. Its backward pass (col2im) adds each column
element that came from the input back into the input's gradient (one add per in-bounds tap);
autograd keeps nothing (col2im needs only the input's size). torch returns columns fewer than the input's
elements (windows with gaps between them) in a storage the input's size: refused.

Fold sums (C * kH * kW, L) columns back into the (C, H, W) tensor whose windows they are: each column
element that lands in the output (not in the padding) is added in, one op each, as Unfold's backward counts
them. Its backward pass (im2col of the gradient) is a copy: no ops; autograd keeps nothing. torch returns
the output in a storage the size of the columns where they are more (overlapping windows): refused.
"""

from __future__ import annotations

from math import prod

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, need_rank, register_layer, side
from .windows import window_positions, window_total


def _own_storage(layer, x: Shape, y: Shape, what: str, reads: str) -> None:
    """torch's im2col and col2im allocate their output like their input, then resize it: an output smaller than
    the input lives in a storage the input's size, which alexcost's memory counts cannot hold (refused)."""
    if prod(x) > prod(y):
        name = type(layer).__name__
        raise SpecError(f"{name}: torch returns its output {format_shape(y)} in a storage the size of its {what} "
                        f"({' x '.join(map(str, x))} = {prod(x)} elements per sample, more than the output's "
                        f"{prod(y)}); alexcost's memory counts cannot hold a tensor in a larger storage, so it reads "
                        f"{name} only where its output is no smaller than its {what} ({reads})")


@layer_kind
class _SlidingBlocks(Layer):
    """What Unfold and Fold share: their window arguments as torch's ``nn.Unfold`` takes them, each checked as
    a pair (and Fold's ``output_size``), and the windows along each spatial dimension."""

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        if hasattr(self, "output_size"):
            put("output_size", check.pair(self.output_size, "output_size"))
        put("kernel_size", check.pair(self.kernel_size, "kernel_size"))
        put("dilation", check.pair(self.dilation, "dilation"))
        put("padding", check.pair(self.padding, "padding", minimum=0))
        put("stride", check.pair(self.stride, "stride"))

    def _windows(self):
        """Per spatial dimension, ``(kernel_size, stride, padding, dilation)``."""
        return tuple(zip(self.kernel_size, self.stride, self.padding, self.dilation))


@register_layer
@layer_kind
class Unfold(_SlidingBlocks):
    """``nn.Unfold(kernel_size, dilation, padding, stride)`` on a (C, H, W) sample: (C * kH * kW, L)
    columns, L the window positions (torch's im2col). A copy: no ops; its gradient adds each in-bounds
    tap back (col2im)."""

    kernel_size: int | tuple[int, int]
    dilation: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    stride: int | tuple[int, int] = 1

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
        y = (x[0] * prod(self.kernel_size), prod(self._positions(x)))
        _own_storage(self, x, y, "input", "windows that leave no input element out")
        return y

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


@register_layer
@layer_kind
class Fold(_SlidingBlocks):
    """``nn.Fold(output_size, kernel_size, dilation, padding, stride)`` on a (C * kH * kW, L) sample, L the window
    positions over ``output_size``: the (C, H, W) sum of the columns' windows (torch's col2im), where the columns
    are no more than the output (else torch's output lives in a larger storage: refused). One add per column
    element that lands in the output; its gradient is a copy (im2col)."""

    output_size: int | tuple[int, int]
    kernel_size: int | tuple[int, int]
    dilation: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    stride: int | tuple[int, int] = 1

    def _positions(self, x: Shape) -> tuple[int, ...]:
        need_rank(self, x, 2, "(C * kH * kW, L)")
        kernel = prod(self.kernel_size)
        if x[0] % kernel:
            raise SpecError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
                            f"but got input.size(1)={x[0]} and kernel_size=({side(self.kernel_size)}).")
        out = tuple(window_positions(size, k, s, p, d) for size, (k, s, p, d) in zip(self.output_size,
                                                                                     self._windows()))
        if min(out) < 1 or prod(out) != x[1]:
            raise SpecError(f"Given output_size=({side(self.output_size)}), kernel_size=({side(self.kernel_size)}), "
                            f"dilation=({side(self.dilation)}), padding=({side(self.padding)}), "
                            f"stride=({side(self.stride)}), expected size of input's dimension 2 to match the "
                            f"calculated number of sliding blocks {out[0]} * {out[1]} = {prod(out)}, but got "
                            f"input.size(2)={x[1]}.")
        return out

    def output_shape(self, x: Shape) -> Shape:
        self._positions(x)
        y = (x[0] // prod(self.kernel_size), *self.output_size)
        _own_storage(self, x, y, "columns", "windows that do not overlap")
        return y

    def other_ops(self, x: Shape, y: Shape) -> int:
        out = self._positions(x)
        return y[0] * prod(window_total(size, k, s, p, d, n)
                           for size, n, (k, s, p, d) in zip(self.output_size, out, self._windows()))

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def columns(self):
        return (" * ".join(map(str, self.kernel_size)), "", side(self.stride), side(self.padding))

    def label(self) -> str:
        return "Fold"
