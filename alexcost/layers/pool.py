"""Pooling: MaxPool2d, AvgPool2d (and AvgPool1d over a (C, L) input), AdaptiveAvgPool2d, AdaptiveMaxPool2d, and over three spatial
dimensions (video: time, height, width) MaxPool3d, AvgPool3d, AdaptiveAvgPool3d.

other_ops count what each window really reads: taps that fall in the padding (or past
the input, with ``ceil_mode``) are not read. Max pooling does one comparison fewer
than the taps it reads; average pooling adds them and divides once.

Backward (gradient with respect to the input): max pooling adds each output's gradient
at the position of its maximum (1 op per output element); average pooling divides each
output's gradient once and adds it to every tap it read (taps + 1 per output element).
Autograd keeps the input, and for max pooling the int64 index of each maximum; adaptive
average pooling to 1x1 (1x1x1) is a mean, which keeps nothing.

Every rule reads each spatial dimension alike: a 3-D pool's windows read ``C*T_D*T_H*T_W``
taps, with each ``T`` counted as the 2-D pools count theirs.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .windows import adaptive_window_total, first_empty_window, window_positions, window_total
from .base import (Grads, KEEPS_INPUT, Layer, Saved, Shape, TrainContext, layer_kind, need_rank,
                   register_layer, side)
from .conv import FORMS


def _indices(y: Shape, ctx: TrainContext) -> Saved:
    """The int64 position of every output's maximum."""
    return Saved("indices", "new", elements=ctx.batch * prod(y), itemsize=8)


@layer_kind
class _Pool(Layer):
    """What the max and average pools share: a window of ``kernel_size`` moved by ``stride``
    (default: ``kernel_size``) over an input padded by at most half the kernel, in ``dims``
    spatial dimensions."""

    kernel_size: int | tuple[int, ...]
    stride: int | tuple[int, ...] | None = None
    padding: int | tuple[int, ...] = 0
    ceil_mode: bool = False

    layout: ClassVar[str] = "format"
    dims: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        n = self.dims
        put("kernel_size", check.ntuple(self.kernel_size, "kernel_size", n))
        put("stride", self.kernel_size if self.stride is None else check.ntuple(self.stride, "stride", n))
        put("padding", check.ntuple(self.padding, "padding", n, minimum=0))
        put("ceil_mode", check.flag(self.ceil_mode, "ceil_mode"))
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise SpecError(f"pad should be at most half of kernel size, but got padding={side(self.padding)}, "
                            f"kernel_size={side(self.kernel_size)}")

    def _dilation(self) -> tuple[int, ...]:
        return (1,) * self.dims

    def _windows(self):
        """Per spatial dimension: (kernel, stride, padding, dilation)."""
        return tuple(zip(self.kernel_size, self.stride, self.padding, self._dilation()))

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, self.dims + 1, FORMS[self.dims])
        out = tuple(window_positions(size, k, s, p, d, self.ceil_mode) for size, (k, s, p, d) in
                    zip(x[1:], self._windows()))
        if min(out) < 1:
            raise SpecError(f"Given input size: ({'x'.join(map(str, x))}). Calculated output size: "
                            f"({'x'.join(map(str, (x[0], *out)))}). Output size is too small")
        return (x[0], *out)

    def taps(self, x: Shape, y: Shape) -> int:
        """Input elements read by all windows of one sample (each window's in-bounds taps)."""
        if not (any(self.padding) or self.ceil_mode):  # every window lies wholly inside the input
            return x[0] * prod(y[1:]) * prod(self.kernel_size)
        return x[0] * prod(window_total(size, k, s, p, d, out) for size, out, (k, s, p, d) in
                           zip(x[1:], y[1:], self._windows()))

    def columns(self):
        return (" * ".join(map(str, self.kernel_size)), "", side(self.stride), side(self.padding))


AXES = {1: ("position",), 2: ("row", "column"), 3: ("frame", "row", "column")}
"""How messages name a window's position along each spatial dimension."""


@layer_kind
class _MaxPool(_Pool):
    """Max pooling: per output element, one comparison fewer than the taps its window reads
    (``prod(kernel_size) - 1`` for a window wholly inside the input). No parameters."""

    dilation: int | tuple[int, ...] = 1
    return_indices: bool = False

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dilation", check.ntuple(self.dilation, "dilation", self.dims))
        if check.flag(self.return_indices, "return_indices"):
            raise SpecError("return_indices=True is not supported: the layer would return a tuple, not a tensor")

    def _dilation(self) -> tuple[int, ...]:
        return self.dilation

    def output_shape(self, x: Shape) -> Shape:
        """As for every pool; and, with a dilation, refused where a window reads only padding: torch
        returns -inf there, with an index outside the input that its backward pass writes through."""
        y = super().output_shape(x)
        if set(self.dilation) != {1}:  # taps one apart reach the input from every window torch keeps
            for axis, size, out, (k, s, p, d) in zip(AXES[self.dims], x[1:], y[1:], self._windows()):
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
class MaxPool2d(_MaxPool):
    """Max pooling: per output element, one comparison fewer than the taps its window reads
    (``kH*kW - 1`` for a window wholly inside the input). No parameters."""

    autocast: ClassVar[str | None] = "follow"

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1


@register_layer
@layer_kind
class MaxPool3d(_MaxPool):
    """3-D max pooling over a (C, D, H, W) input: per output element, one comparison fewer than
    the taps its window reads (``kD*kH*kW - 1`` inside the input). No parameters."""

    kernel_size: int | tuple[int, int, int]
    stride: int | tuple[int, int, int] | None = None
    padding: int | tuple[int, int, int] = 0
    dilation: int | tuple[int, int, int] = 1

    dims: ClassVar[int] = 3


@layer_kind
class _AvgPool(_Pool):
    """Average pooling: per output element, the taps its window reads (one fewer adds, then one divide)."""

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


@register_layer
@layer_kind
class AvgPool1d(_AvgPool):
    """Average pooling over a (C, L) input: per output element, the taps its window reads (``k``
    inside the input). torch.nn's AvgPool1d takes no ``divisor_override``."""

    kernel_size: int | tuple[int]
    stride: int | tuple[int] | None = None
    padding: int | tuple[int] = 0

    dims: ClassVar[int] = 1
    layout: ClassVar[str] = "unsqueezed format"
    """torch pools the (N, C, 1, L) view in two dimensions: channels-last there gives channels-last out."""

    def __post_init__(self):
        super().__post_init__()
        if self.divisor_override is not None:
            raise SpecError("AvgPool1d takes no divisor_override")

    def torch_args(self, x: Shape) -> dict:
        args = self.args()
        del args["divisor_override"]
        return args


@register_layer
@layer_kind
class AvgPool2d(_AvgPool):
    """Average pooling: per output element, the taps its window reads (one fewer adds, then
    one divide): ``kH*kW`` for a window wholly inside the input."""

    autocast: ClassVar[str | None] = "follow"

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0


@register_layer
@layer_kind
class AvgPool3d(_AvgPool):
    """3-D average pooling over a (C, D, H, W) input: per output element, the taps its window
    reads (``kD*kH*kW`` inside the input). torch's CPU kernel writes a contiguous output whatever
    the input's layout."""

    kernel_size: int | tuple[int, int, int]
    stride: int | tuple[int, int, int] | None = None
    padding: int | tuple[int, int, int] = 0

    layout: ClassVar[str] = "contiguous"
    dims: ClassVar[int] = 3

    def output_shape(self, x: Shape) -> Shape:
        """As for every pool; and torch's avg_pool3d refuses an input smaller than the kernel, padding aside."""
        y = super().output_shape(x)
        if any(size < k for size, k in zip(x[1:], self.kernel_size)):
            (t, h, w), (kt, kh, kw) = x[1:], self.kernel_size
            raise SpecError(f"input image (T: {t} H: {h} W: {w}) smaller than kernel size (kT: {kt} kH: {kh} kW: {kw})")
        return y


@layer_kind
class _AdaptivePool(Layer):
    """Pooling to a fixed ``output_size`` (``None`` keeps that input size); window ``i`` spans
    ``[floor(i*H/oH), ceil((i+1)*H/oH))``, so the windows read
    ``C*(H + oH - gcd(H, oH))*(W + oW - gcd(W, oW))`` elements in all (a factor per dimension)."""

    output_size: int | tuple[int | None, ...]

    layout: ClassVar[str] = "format"
    dims: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "output_size", check.optional_ntuple(self.output_size, "output_size", self.dims))

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, self.dims + 1, FORMS[self.dims])
        return (x[0], *(size if out is None else out for size, out in zip(x[1:], self.output_size)))

    def taps(self, x: Shape, y: Shape) -> int:
        return x[0] * prod(adaptive_window_total(size, out) for size, out in zip(x[1:], y[1:]))


@layer_kind
class _AdaptiveAvgPool(_AdaptivePool):
    """Adaptive average pooling. other_ops: the elements its windows read (adds and one divide
    per window)."""

    def other_ops(self, x: Shape, y: Shape) -> int:
        return self.taps(x, y)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * (self.taps(x, y) + prod(y)) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """torch computes an output of one element per channel as a mean (which keeps nothing),
        any other with the input kept."""
        return () if set(y[1:]) == {1} else KEEPS_INPUT

    def label(self) -> str:
        return "Adaptive Average Pooling"


@register_layer
@layer_kind
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Adaptive average pooling. other_ops: the elements its windows read (adds and one divide
    per window). fvcore counts the input elements, once each."""

    autocast: ClassVar[str | None] = "follow"

    output_size: int | tuple[int | None, int | None]

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x)


@register_layer
@layer_kind
class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """3-D adaptive average pooling over a (C, D, H, W) input: the elements its windows read,
    a factor per dimension. fvcore has no count for it (0); torch's CPU kernel writes a
    contiguous output whatever the input's layout."""

    output_size: int | tuple[int | None, int | None, int | None]

    layout: ClassVar[str] = "contiguous"
    dims: ClassVar[int] = 3


@register_layer
@layer_kind
class AdaptiveMaxPool2d(_AdaptivePool):
    """Adaptive max pooling: the elements its windows read less one comparison per window."""

    output_size: int | tuple[int | None, int | None]
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
