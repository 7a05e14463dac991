"""Convolution: Conv2d."""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .windows import effective_kernel
from .base import (Grads, KEEPS_INPUT, Layer, Saved, Shape, TrainContext, layer_kind, need_rank,
                   register_layer, side)


@register_layer
@layer_kind
class Conv2d(Layer):
    """2-D convolution. params ``C_out*(C_in/groups)*kH*kW (+ C_out)``;
    macs ``C_out*H_out*W_out*(C_in/groups)*kH*kW``; bias adds ``C_out*H_out*W_out``.

    Backward: the gradient with respect to the input (a transposed convolution) and the one
    with respect to the weight (a convolution of the input with the output's gradient) each
    take ``macs``; the bias gradient sums the output's gradient (one add per output element).
    Autograd keeps the convolution's input: the input itself, or the padded copy torch makes
    first (``padding_mode`` other than zeros; ``padding="same"`` with an odd total padding),
    and, for reflect and replicate padding, the input too (their own backward reads it)."""

    in_channels: int | None = None
    out_channels: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"

    group: ClassVar[str] = "conv"

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        if self.in_channels is not None:
            put("in_channels", check.integer(self.in_channels, "in_channels"))
        put("out_channels", check.integer(self.out_channels, "out_channels"))
        put("kernel_size", check.pair(self.kernel_size, "kernel_size"))
        put("stride", check.pair(self.stride, "stride"))
        if isinstance(self.padding, str):
            if self.padding not in ("same", "valid"):
                raise SpecError(f"Invalid padding string {check.shown(self.padding)}, should be one of {{'same', 'valid'}}")
            if self.padding == "same" and self.stride != (1, 1):
                raise SpecError(f"padding='same' is not supported for strided convolutions, got stride={side(self.stride)}")
        else:
            put("padding", check.pair(self.padding, "padding", minimum=0))
        put("dilation", check.pair(self.dilation, "dilation"))
        put("groups", check.integer(self.groups, "groups"))
        put("bias", check.flag(self.bias, "bias"))
        check.choice(self.padding_mode, "padding_mode", ("zeros", "reflect", "replicate", "circular"))
        if self.in_channels is not None and self.in_channels % self.groups:
            raise SpecError(f"in_channels must be divisible by groups, got in_channels={self.in_channels}, groups={self.groups}")
        if self.out_channels % self.groups:
            raise SpecError(f"out_channels must be divisible by groups, got out_channels={self.out_channels}, groups={self.groups}")

    @property
    def layout(self) -> str:
        """Channels-last in, channels-last out, as cuDNN and oneDNN choose; with circular padding
        torch first pads into a new contiguous tensor, so the output is contiguous."""
        return "contiguous" if self.padding_mode == "circular" else "format"

    def _pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding; 'same' puts an odd extra pixel after, as torch does."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            th = effective_kernel(self.kernel_size[0], self.dilation[0]) - 1
            tw = effective_kernel(self.kernel_size[1], self.dilation[1]) - 1
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        c, h, w = x
        if self.in_channels is not None and self.in_channels != c:
            raise SpecError(f"expected input with in_channels={self.in_channels} channels, got {c} channels")
        if c % self.groups:
            raise SpecError(f"in_channels must be divisible by groups, got in_channels={c}, groups={self.groups}")
        top, bottom, left, right = self._pads()
        padded_h, padded_w = h + top + bottom, w + left + right
        if max(padded_h, padded_w) > check.INT64_MAX:
            raise SpecError(f"the padded input {padded_h}x{padded_w} is larger than torch's int64 limit "
                            f"{check.INT64_MAX}")
        span_h = effective_kernel(self.kernel_size[0], self.dilation[0])
        span_w = effective_kernel(self.kernel_size[1], self.dilation[1])
        if padded_h < span_h or padded_w < span_w:
            raise SpecError(f"Kernel size can't be greater than actual input size: padded input "
                            f"{padded_h}x{padded_w}, kernel {span_h}x{span_w} "
                            f"(kernel_size={side(self.kernel_size)}, dilation={side(self.dilation)})")
        if self.padding_mode in ("reflect", "circular"):
            for size, pad in ((h, max(top, bottom)), (w, max(left, right))):
                if pad >= size if self.padding_mode == "reflect" else pad > size:
                    bound = "<" if self.padding_mode == "reflect" else "<="
                    raise SpecError(f"padding_mode={self.padding_mode!r} needs padding {bound} input size, "
                                    f"got padding={pad}, size={size}")
        weight = self.weight_params(x)
        if weight > check.INT64_MAX:
            raise SpecError(f"the weight would hold {weight} elements, more than torch's int64 limit "
                            f"{check.INT64_MAX}")
        return (self.out_channels, (padded_h - span_h) // self.stride[0] + 1,
                (padded_w - span_w) // self.stride[1] + 1)

    def weight_params(self, x: Shape) -> int:
        return self.out_channels * (x[0] // self.groups) * self.kernel_size[0] * self.kernel_size[1]

    def bias_params(self, x: Shape) -> int:
        return self.out_channels if self.bias else 0

    def macs(self, x: Shape, y: Shape) -> int:
        return y[0] * y[1] * y[2] * (x[0] // self.groups) * self.kernel_size[0] * self.kernel_size[1]

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return y[0] * y[1] * y[2] if self.bias else 0

    def backward_macs(self, x: Shape, y: Shape, grads: Grads) -> int:
        return self.macs(x, y) * (grads.input + grads.weight)

    def torch_backward_flops(self, x: Shape, y: Shape, grads: Grads, *, groups_counted: bool = True) -> int:
        """torch 2.14's ``conv_backward_flop`` counts the weight gradient without dividing by
        ``groups`` (fixed by pytorch/pytorch#183405): ``groups`` times the real work."""
        weight = self.macs(x, y) * (self.groups if groups_counted else 1)
        return 2 * (self.macs(x, y) * grads.input + weight * grads.weight)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * self.bias_adds(x, y) if grads.bias else 0

    def _padded(self, x: Shape) -> Shape | None:
        """The padded input torch builds before convolving, or None when it convolves ``x`` itself."""
        top, bottom, left, right = self._pads()
        if self.padding_mode != "zeros":
            return (x[0], x[1] + top + bottom, x[2] + left + right)
        if (bottom - top, right - left) != (0, 0):  # padding='same', odd total: one extra row/column after
            return (x[0], x[1] + bottom - top, x[2] + right - left)
        return None

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        padded = self._padded(x)
        if padded is None:
            return KEEPS_INPUT
        copy = Saved("padded input", "new", elements=ctx.batch * prod(padded), itemsize=ctx.itemsize)
        if self.padding_mode in ("reflect", "replicate") and grads.input:
            return (Saved("input"), copy)
        return (copy,)

    def fvcore_count(self, x: Shape, y: Shape) -> int | None:
        # padding='same'/'valid' with zeros traces to aten::_convolution_mode, which fvcore 0.1.5 does not
        # count; the other padding modes pad first (aten::pad), then run aten::_convolution, which it counts
        return None if isinstance(self.padding, str) and self.padding_mode == "zeros" else self.macs(x, y)

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "in_channels": x[0]}

    def columns(self):
        kh, kw = self.kernel_size
        pad = self.padding if isinstance(self.padding, str) else side(self.padding)
        depth = f"{self.out_channels} ({self.groups} groups)" if self.groups > 1 else str(self.out_channels)
        return (f"{kh} * {kw}", depth, side(self.stride), pad)

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        per_filter = f"{self.kernel_size[0]}*{self.kernel_size[1]}*{x[0] // self.groups}"
        return f"({per_filter} + 1)*{self.out_channels}" if self.bias else f"{per_filter}*{self.out_channels}"

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        return f"{self.params_formula(x, x_factors)}*{y[1]}*{y[2]}"
