"""Convolution: Conv1d, Conv2d, Conv3d (one rule for every number of spatial dimensions) and
ConvTranspose2d.

A convolution over ``d`` spatial dimensions reads a ``(C, *spatial)`` input per sample. Its
weight holds ``C_out*(C/groups)*prod(kernel_size)`` elements; its MACs are those of every output
position: ``numel(y)*(C/groups)*prod(kernel_size)``. A transposed convolution is the gradient of
a convolution with respect to its input: its weight holds as many elements, and its MACs are
those of every *input* position, ``numel(x)*(C_out/groups)*prod(kernel_size)`` (taps that land
in the cropped ``padding`` are multiplied too, as torch and fvcore count them).

Backward: the gradient with respect to the input and the one with respect to the weight each
take the forward MACs; the bias gradient sums the output's gradient (one add per output
element). Autograd keeps the input (see `Conv2d` for the padding modes).
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .windows import effective_kernel
from .base import (Grads, KEEPS_INPUT, Layer, Saved, Shape, TrainContext, layer_kind, need_rank,
                   register_layer, side)

FORMS = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}
"""How messages name a per-sample input of 1, 2 and 3 spatial dimensions."""


def _by(sizes) -> str:
    return "x".join(map(str, sizes))


@layer_kind
class _Convolution(Layer):
    """What a convolution and a transposed one share: channels, kernel, stride, groups, bias and
    their counts, backward rules and torch's arguments. ``dims``: spatial dimensions."""

    in_channels: int | None = None
    out_channels: int

    group: ClassVar[str] = "conv"
    dims: ClassVar[int] = 2

    def _check(self):
        """Normalise the arguments the two kinds share (after each sets its own)."""
        put = object.__setattr__.__get__(self)
        if self.in_channels is not None:
            put("in_channels", check.integer(self.in_channels, "in_channels"))
        put("out_channels", check.integer(self.out_channels, "out_channels"))
        for name in ("kernel_size", "stride", "dilation"):
            put(name, check.ntuple(getattr(self, name), name, self.dims))
        put("groups", check.integer(self.groups, "groups"))
        put("bias", check.flag(self.bias, "bias"))
        if self.in_channels is not None and self.in_channels % self.groups:
            raise SpecError(f"in_channels must be divisible by groups, got in_channels={self.in_channels}, groups={self.groups}")
        if self.out_channels % self.groups:
            raise SpecError(f"out_channels must be divisible by groups, got out_channels={self.out_channels}, groups={self.groups}")

    def _channels(self, x: Shape) -> None:
        need_rank(self, x, self.dims + 1, FORMS[self.dims])
        c = x[0]
        if self.in_channels is not None and self.in_channels != c:
            raise SpecError(f"expected input with in_channels={self.in_channels} channels, got {c} channels")
        if c % self.groups:
            raise SpecError(f"in_channels must be divisible by groups, got in_channels={c}, groups={self.groups}")

    def _weight_fits(self, x: Shape) -> None:
        weight = self.weight_params(x)
        if weight > check.INT64_MAX:
            raise SpecError(f"the weight would hold {weight} elements, more than torch's int64 limit "
                            f"{check.INT64_MAX}")

    def weight_params(self, x: Shape) -> int:
        return self.out_channels * (x[0] // self.groups) * prod(self.kernel_size)

    def bias_params(self, x: Shape) -> int:
        return self.out_channels if self.bias else 0

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return prod(y) if self.bias else 0

    def backward_macs(self, x: Shape, y: Shape, grads: Grads) -> int:
        return self.macs(x, y) * (grads.input + grads.weight)

    def torch_backward_flops(self, x: Shape, y: Shape, grads: Grads, *, groups_counted: bool = True) -> int:
        """torch 2.14's ``conv_backward_flop`` counts the weight gradient without dividing by
        ``groups`` (fixed by pytorch/pytorch#183405): ``groups`` times the real work."""
        weight = self.macs(x, y) * (self.groups if groups_counted else 1)
        return 2 * (self.macs(x, y) * grads.input + weight * grads.weight)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * self.bias_adds(x, y) if grads.bias else 0

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "in_channels": x[0]}

    def _depth(self) -> str:
        return f"{self.out_channels} ({self.groups} groups)" if self.groups > 1 else str(self.out_channels)

    def _kernel(self) -> str:
        return " * ".join(map(str, self.kernel_size))


@layer_kind
class _ConvNd(_Convolution):
    """A convolution over ``dims`` spatial dimensions (Conv1d, Conv2d, Conv3d: see `Conv2d`)."""

    kernel_size: int | tuple[int, ...]
    stride: int | tuple[int, ...] = 1
    padding: int | tuple[int, ...] | str = 0
    dilation: int | tuple[int, ...] = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"

    def __post_init__(self):
        super().__post_init__()
        self._check()
        if isinstance(self.padding, str):
            if self.padding not in ("same", "valid"):
                raise SpecError(f"Invalid padding string {check.shown(self.padding)}, should be one of {{'same', 'valid'}}")
            if self.padding == "same" and set(self.stride) != {1}:
                raise SpecError(f"padding='same' is not supported for strided convolutions, got stride={side(self.stride)}")
        else:
            object.__setattr__(self, "padding", check.ntuple(self.padding, "padding", self.dims, minimum=0))
        check.choice(self.padding_mode, "padding_mode", ("zeros", "reflect", "replicate", "circular"))

    @property
    def layout(self) -> str:
        """Channels-last in, channels-last out, as cuDNN and oneDNN choose; with circular padding
        torch first pads into a new contiguous tensor, so the output is contiguous."""
        return "contiguous" if self.padding_mode == "circular" else "format"

    def _pads(self) -> tuple[tuple[int, int], ...]:
        """(before, after) padding per spatial dimension; 'same' puts an odd extra element after, as torch does."""
        if self.padding == "valid":
            return ((0, 0),) * self.dims
        if self.padding == "same":
            totals = [effective_kernel(k, d) - 1 for k, d in zip(self.kernel_size, self.dilation)]
            return tuple([(t // 2, t - t // 2) for t in totals])
        return tuple([(p, p) for p in self.padding])

    def output_shape(self, x: Shape) -> Shape:
        self._channels(x)
        pads = self._pads()
        padded = [size + before + after for size, (before, after) in zip(x[1:], pads)]
        if max(padded) > check.INT64_MAX:
            raise SpecError(f"the padded input {_by(padded)} is larger than torch's int64 limit {check.INT64_MAX}")
        spans = list(map(effective_kernel, self.kernel_size, self.dilation))
        if not all([p >= s for p, s in zip(padded, spans)]):
            raise SpecError(f"Kernel size can't be greater than actual input size: padded input "
                            f"{_by(padded)}, kernel {_by(spans)} "
                            f"(kernel_size={side(self.kernel_size)}, dilation={side(self.dilation)})")
        if self.padding_mode in ("reflect", "circular"):
            for size, (before, after) in zip(x[1:], pads):
                pad = max(before, after)
                if pad >= size if self.padding_mode == "reflect" else pad > size:
                    bound = "<" if self.padding_mode == "reflect" else "<="
                    raise SpecError(f"padding_mode={self.padding_mode!r} needs padding {bound} input size, "
                                    f"got padding={pad}, size={size}")
        self._weight_fits(x)
        return (self.out_channels, *[(p - s) // st + 1 for p, s, st in zip(padded, spans, self.stride)])

    def macs(self, x: Shape, y: Shape) -> int:
        return prod(y) * (x[0] // self.groups) * prod(self.kernel_size)

    def _padded(self, x: Shape) -> Shape | None:
        """The padded input torch builds before convolving, or None when it convolves ``x`` itself."""
        pads = self._pads()
        if self.padding_mode != "zeros":
            return (x[0], *(size + before + after for size, (before, after) in zip(x[1:], pads)))
        if any(after != before for before, after in pads):  # padding='same', odd total: one extra after
            return (x[0], *(size + after - before for size, (before, after) in zip(x[1:], pads)))
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

    def columns(self):
        pad = self.padding if isinstance(self.padding, str) else side(self.padding)
        return (self._kernel(), self._depth(), side(self.stride), pad)

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        per_filter = f"{'*'.join(map(str, self.kernel_size))}*{x[0] // self.groups}"
        return f"({per_filter} + 1)*{self.out_channels}" if self.bias else f"{per_filter}*{self.out_channels}"

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        return f"{self.params_formula(x, x_factors)}*{'*'.join(map(str, y[1:]))}"


@register_layer
@layer_kind
class Conv1d(_ConvNd):
    """1-D convolution over a (C, L) input: as `Conv2d`, with one spatial dimension.
    params ``C_out*(C_in/groups)*k (+ C_out)``; macs ``C_out*L_out*(C_in/groups)*k``."""

    kernel_size: int | tuple[int]
    stride: int | tuple[int] = 1
    padding: int | tuple[int] | str = 0
    dilation: int | tuple[int] = 1

    dims: ClassVar[int] = 1


@register_layer
@layer_kind
class Conv2d(_ConvNd):
    """2-D convolution. params ``C_out*(C_in/groups)*kH*kW (+ C_out)``;
    macs ``C_out*H_out*W_out*(C_in/groups)*kH*kW``; bias adds ``C_out*H_out*W_out``.

    Backward: the gradient with respect to the input (a transposed convolution) and the one
    with respect to the weight (a convolution of the input with the output's gradient) each
    take ``macs``; the bias gradient sums the output's gradient (one add per output element).
    Autograd keeps the convolution's input: the input itself, or the padded copy torch makes
    first (``padding_mode`` other than zeros; ``padding="same"`` with an odd total padding),
    and, for reflect and replicate padding, the input too (their own backward reads it)."""

    autocast: ClassVar[str | None] = "lower"

    def keeps_weight(self, grads: Grads) -> bool:
        return True  # one backward formula for input, weight and bias: both kept whenever it runs

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    dilation: int | tuple[int, int] = 1


@register_layer
@layer_kind
class Conv3d(_ConvNd):
    """3-D convolution over a (C, D, H, W) input (video: D is time): as `Conv2d`, with three
    spatial dimensions. params ``C_out*(C_in/groups)*kD*kH*kW (+ C_out)``;
    macs ``C_out*D_out*H_out*W_out*(C_in/groups)*kD*kH*kW``."""

    kernel_size: int | tuple[int, int, int]
    stride: int | tuple[int, int, int] = 1
    padding: int | tuple[int, int, int] | str = 0
    dilation: int | tuple[int, int, int] = 1

    dims: ClassVar[int] = 3


@register_layer
@layer_kind
class ConvTranspose2d(_Convolution):
    """2-D transposed convolution (the gradient of a Conv2d with respect to its input).
    ``H_out = (H - 1)*stride - 2*padding + dilation*(kH - 1) + output_padding + 1``.
    params ``C_in*(C_out/groups)*kH*kW (+ C_out)``; macs ``C*H*W*(C_out/groups)*kH*kW`` (every
    input element times its kernel, as torch's and fvcore's counters count it); bias adds one per
    output element. Backward: the input's gradient is a convolution of the output's gradient
    (``macs``), the weight's too (``macs``); autograd keeps the input."""

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    output_padding: int | tuple[int, int] = 0
    groups: int = 1
    bias: bool = True
    dilation: int | tuple[int, int] = 1
    padding_mode: str = "zeros"

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        self._check()
        put = object.__setattr__.__get__(self)
        put("padding", check.ntuple(self.padding, "padding", self.dims, minimum=0))
        put("output_padding", check.ntuple(self.output_padding, "output_padding", self.dims, minimum=0))
        if self.padding_mode != "zeros":
            raise SpecError(f'Only "zeros" padding mode is supported for {type(self).__name__}, '
                            f'got padding_mode={check.shown(self.padding_mode)}')
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise SpecError(f"output padding must be smaller than either stride or dilation, got "
                                f"output_padding={side(self.output_padding)}, stride={side(self.stride)}, "
                                f"dilation={side(self.dilation)}")

    def output_shape(self, x: Shape) -> Shape:
        self._channels(x)
        out = tuple((size - 1) * s - 2 * p + d * (k - 1) + op + 1 for size, s, p, d, k, op in zip(
            x[1:], self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding))
        if min(out) < 1:
            raise SpecError(f"Given input size per channel: ({_by(x[1:])}). Calculated output size per channel: "
                            f"({_by(out)}). Output size is too small")
        if max(out) > check.INT64_MAX:
            raise SpecError(f"the output {_by(out)} is larger than torch's int64 limit {check.INT64_MAX}")
        self._weight_fits(x)
        return (self.out_channels, *out)

    def weight_params(self, x: Shape) -> int:
        return x[0] * (self.out_channels // self.groups) * prod(self.kernel_size)

    def macs(self, x: Shape, y: Shape) -> int:
        return prod(x) * (self.out_channels // self.groups) * prod(self.kernel_size)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return KEEPS_INPUT

    def columns(self):
        return (self._kernel(), self._depth(), side(self.stride), side(self.padding))

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        weight = f"{'*'.join(map(str, self.kernel_size))}*{self.out_channels // self.groups}*{x[0]}"
        return f"{weight} + {self.out_channels}" if self.bias else weight

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        macs = f"{'*'.join(map(str, self.kernel_size))}*{self.out_channels // self.groups}*{'*'.join(map(str, x))}"
        return f"{macs} + {'*'.join(map(str, y))}" if self.bias else macs


@register_layer
@layer_kind
class DynamicConv2d(Conv2d):
    """``F.conv2d(x, weight)`` whose weight is its second input, not a parameter of its own. That weight is a module's
    buffer (a fixed blur filter) or a tensor computed once per forward pass (a standardised weight). Its
    arguments are `Conv2d`'s, ``out_channels`` and ``kernel_size`` the weight's sizes, which it checks; its
    counts are `Conv2d`'s on the first input, but for the weight's elements, which are not its parameters
    (the bias is its own).

    Backward: as `Conv2d`'s, the weight's gradient that of the second input (``macs``, when it needs one).
    Autograd keeps the convolution's input (as `Conv2d`) and the weight."""

    arity: ClassVar[int | None] = None
    autocast: ClassVar[str | None] = None

    def __post_init__(self):
        super().__post_init__()
        if self.padding_mode != "zeros":
            raise SpecError(f"DynamicConv2d pads with zeros only (F.conv2d), got padding_mode="
                            f"{check.shown(self.padding_mode)}")

    def _parts(self, x) -> Shape:
        """The activation's shape, after checking the weight's."""
        if len(x) != 2:
            raise SpecError(f"DynamicConv2d takes 2 inputs (the activation, then the weight), got {len(x)}")
        x, weight = x
        need_rank(self, x, 3, FORMS[2])
        want = (self.out_channels, x[0] // self.groups, *self.kernel_size)
        if tuple(weight) != want:
            raise SpecError(f"DynamicConv2d expects a weight of shape {_by(want)} for this input, got "
                            f"{_by(weight)}")
        return x

    def output_shape(self, x) -> Shape:
        return super().output_shape(self._parts(x))

    def weight_params(self, x) -> int:
        return 0

    def macs(self, x, y: Shape) -> int:
        return super().macs(self._parts(x), y)

    def keeps_weight(self, grads: Grads) -> bool:
        return False

    def backward_macs(self, x, y: Shape, grads: Grads) -> int:
        return self.macs(x, y) * (grads.inputs[0] + grads.inputs[1])

    def torch_backward_flops(self, x, y: Shape, grads: Grads, *, groups_counted: bool = True) -> int:
        weight = self.macs(x, y) * (self.groups if groups_counted else 1)
        return 2 * (self.macs(x, y) * grads.inputs[0] + weight * grads.inputs[1])

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        return super().backward_other_ops(self._parts(x), y, grads, batch)

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return (*super().saved_tensors(self._parts(x), y, grads, ctx), Saved("weight", "input", 1))

    def torch_args(self, x) -> dict:
        return super().torch_args(self._parts(x))

    def params_formula(self, x, x_factors: Shape) -> str:
        return ""

    def forward_formula(self, x, x_factors: Shape, y: Shape) -> str:
        return ""
