"""Pooling: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

other_ops count what each window really reads: taps that fall in the padding (or past
the input, with ``ceil_mode``) are not read. Max pooling does one comparison fewer
than the taps it reads; average pooling adds them and divides once.

Backward (gradient with respect to the input): max pooling adds each output's gradient
at the position of its maximum (1 op per output element); average pooling divides each
output's gradient once and adds it to every tap it read (taps + 1 per output element).
Autograd keeps the input, and for max pooling the int64 index of each maximum; adaptive
average pooling to 1x1 is a mean, which keeps nothing.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .windows import adaptive_window_total, first_empty_window, window_positions, window_total
from .base import (Grads, KEEPS_INPUT, Layer, Saved, Shape, TrainContext, layer_kind, need_rank,
                   register_layer, side)


def _indices(y: Shape, ctx: TrainContext) -> Saved:
    """The int64 position of every output's maximum."""
    return Saved("indices", "new", elements=ctx.batch * prod(y), itemsize=8)


@layer_kind
class _Pool2d(Layer):
    """What MaxPool2d and AvgPool2d share: a window of ``kernel_size`` moved by ``stride``
    (default: ``kernel_size``) over an input padded by at most half the kernel."""

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0
    ceil_mode: bool = False

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        put("kernel_size", check.pair(self.kernel_size, "kernel_size"))
        put("stride", self.kernel_size if self.stride is None else check.pair(self.stride, "stride"))
        put("padding", check.pair(self.padding, "padding", minimum=0))
        put("ceil_mode", check.flag(self.ceil_mode, "ceil_mode"))
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise SpecError(f"pad should be at most half of kernel size, but got padding={side(self.padding)}, "
                            f"kernel_size={side(self.kernel_size)}")

    def _dilation(self) -> tuple[int, int]:
        return (1, 1)

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self._dilation()
        h = window_positions(x[1], kh, sh, ph, dh, self.ceil_mode)
        w = window_positions(x[2], kw, sw, pw, dw, self.ceil_mode)
        if h < 1 or w < 1:
            raise SpecError(f"Given input size: ({x[0]}x{x[1]}x{x[2]}). Calculated output size: "
                            f"({x[0]}x{h}x{w}). Output size is too small")
        return (x[0], h, w)

    def taps(self, x: Shape, y: Shape) -> int:
        """Input elements read by all windows of one sample (each window's in-bounds taps)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self._dilation()
        if not (ph or pw or self.ceil_mode):  # every window lies wholly inside the input
            return x[0] * y[1] * y[2] * kh * kw
        return (x[0] * window_total(x[1], kh, sh, ph, dh, y[1]) * window_total(x[2], kw, sw, pw, dw, y[2]))

    def columns(self):
        return (f"{self.kernel_size[0]} * {self.kernel_size[1]}", "", side(self.stride), side(self.padding))


@register_layer
@layer_kind
class MaxPool2d(_Pool2d):
    """Max pooling: per output element, one comparison fewer than the taps its window reads
    (``kH*kW - 1`` for a window wholly inside the input). No parameters."""

    dilation: int | tuple[int, int] = 1
    return_indices: bool = False

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dilation", check.pair(self.dilation, "dilation"))
        if check.flag(self.return_indices, "return_indices"):
            raise SpecError("return_indices=True is not supported: the layer would return a tuple, not a tensor")

    def _dilation(self) -> tuple[int, int]:
        return self.dilation

    def output_shape(self, x: Shape) -> Shape:
        """As for every pool; and, with a dilation, refused where a window reads only padding: torch
        returns -inf there, with an index outside the input that its backward pass writes through."""
        y = super().output_shape(x)
        if self.dilation != (1, 1):  # taps one apart reach the input from every window torch keeps
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
            for axis, size, k, s, p, d, out in (("row", x[1], kh, sh, ph, dh, y[1]),
                                                ("column", x[2], kw, sw, pw, dw, y[2])):
                i = first_empty_window(size, k, s, p, d, out)
                if i is not None:
                    taps = ", ".join(str(i * s - p + j * d) for j in range(min(k, 4))) + (", ..." if k > 4 else "")
                    raise SpecError(f"window {axis} {i} of {out} reads only padding: its taps at input {axis}s "
                                    f"{taps} all miss the input's {size} {axis}s (kernel_size="
                                    f"{side(self.kernel_size)}, stride={side(self.stride)}, padding="
                                    f"{side(self.padding)}, dilation={side(self.dilation)}); torch returns -inf there")
        return y

    def other_ops(self, x: Shape, y: Shape) -> int:
        return self.taps(x, y) - prod(y)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(y) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return (Saved("input"), _indices(y, ctx))

    def label(self) -> str:
        return "Max Pooling"


@register_layer
@layer_kind
class AvgPool2d(_Pool2d):
    """Average pooling: per output element, the taps its window reads (one fewer adds, then
    one divide): ``kH*kW`` for a window wholly inside the input."""

    count_include_pad: bool = True
    divisor_override: int | None = None

    def __post_init__(self):
        super().__post_init__()
        check.flag(self.count_include_pad, "count_include_pad")
        if self.divisor_override is not None:
            object.__setattr__(self, "divisor_override", check.integer(
                self.divisor_override, "divisor_override", minimum=-check.INT64_MAX))
            if self.divisor_override == 0:
                raise SpecError("divisor must be not zero, got divisor_override=0")

    def other_ops(self, x: Shape, y: Shape) -> int:
        return self.taps(x, y)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * (self.taps(x, y) + prod(y)) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return KEEPS_INPUT

    def label(self) -> str:
        return "Average Pooling"


@layer_kind
class _AdaptivePool2d(Layer):
    """Pooling to a fixed ``output_size`` (``None`` keeps that input size); window ``i`` spans
    ``[floor(i*H/oH), ceil((i+1)*H/oH))``, so the windows read
    ``C*(H + oH - gcd(H, oH))*(W + oW - gcd(W, oW))`` elements in all."""

    output_size: int | tuple[int | None, int | None]

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "output_size", check.optional_pair(self.output_size, "output_size"))

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        oh, ow = self.output_size
        return (x[0], x[1] if oh is None else oh, x[2] if ow is None else ow)

    def taps(self, x: Shape, y: Shape) -> int:
        return x[0] * adaptive_window_total(x[1], y[1]) * adaptive_window_total(x[2], y[2])


@register_layer
@layer_kind
class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Adaptive average pooling. other_ops: the elements its windows read (adds and one divide
    per window). fvcore counts the input elements, once each."""

    def other_ops(self, x: Shape, y: Shape) -> int:
        return self.taps(x, y)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * (self.taps(x, y) + prod(y)) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """torch computes a 1x1 output as a mean (which keeps nothing), any other with the input kept."""
        return () if y[1:] == (1, 1) else KEEPS_INPUT

    def label(self) -> str:
        return "Adaptive Average Pooling"


@register_layer
@layer_kind
class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Adaptive max pooling: the elements its windows read less one comparison per window."""

    return_indices: bool = False

    def __post_init__(self):
        super().__post_init__()
        if check.flag(self.return_indices, "return_indices"):
            raise SpecError("return_indices=True is not supported: the layer would return a tuple, not a tensor")

    def other_ops(self, x: Shape, y: Shape) -> int:
        return self.taps(x, y) - prod(y)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(y) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return (Saved("input"), _indices(y, ctx))

    def label(self) -> str:
        return "Adaptive Max Pooling"
