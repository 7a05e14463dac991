"""Layer kinds: one frozen dataclass each, holding every fact about that kind.

Names, argument names and defaults are torch.nn's, so ``Conv2d(**args)`` here and
``torch.nn.Conv2d(**args)`` describe the same layer. Arguments are keyword-only;
``in_channels`` / ``in_features`` may be left out (inferred from the input).

Counting conventions (per sample; :meth:`Network.cost` scales by the batch):

* ``macs``: multiply-accumulates of Conv2d and Linear, bias excluded.
* ``bias_adds``: one add per output element of a layer that has a bias.
* ``other_ops``: every other arithmetic op, per output element ``y``:
  ReLU/Tanh/Sigmoid 1; MaxPool2d ``kH*kW - 1`` comparisons; AvgPool2d ``kH*kW``
  (adds and the divide); AdaptiveAvgPool2d the exact sum of its window sizes;
  LocalResponseNorm ``size + 4`` (square, ``size - 1`` adds, scale, add k, power,
  divide); Softmax 3 (exp, add, divide); Dropout, Flatten 0 (inference).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from math import prod
from typing import ClassVar

from . import arguments as check
from .errors import SpecError, format_shape
from .shapes import adaptive_window_total, effective_kernel, window_positions

Shape = tuple[int, ...]

LAYER_KINDS: dict[str, type["Layer"]] = {}
"""Layer kinds by ``type`` name, as spec files name them."""


def register_layer(cls: type["Layer"] | None = None, *, replace: bool = False):
    """Make a :class:`Layer` subclass available to spec files under its class name.

    Use as a decorator, ``@register_layer``; a name already taken needs ``replace=True``.
    """
    def add(kind: type[Layer]) -> type[Layer]:
        if not (isinstance(kind, type) and issubclass(kind, Layer)):
            raise TypeError(f"register_layer expects a Layer subclass, got {kind!r}")
        key = kind.__name__
        if key in LAYER_KINDS and LAYER_KINDS[key] is not kind and not replace:
            raise ValueError(f"a layer kind named {key!r} is already registered; pass replace=True")
        LAYER_KINDS[key] = kind
        return kind
    return add if cls is None else add(cls)


def _side(value) -> str:
    """A pair shown as the seed shows it: ``4`` when square, ``4, 2`` otherwise."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]) if value[0] == value[1] else f"{value[0]}, {value[1]}"
    return "" if value is None else str(value)


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base of every layer kind.

    A subclass defines :meth:`output_shape` (which also validates the input) and
    overrides the counts it has; the defaults are zero. ``x`` is the per-sample input
    shape, ``y`` the per-sample output shape. ``group`` files the layer under
    ``"conv"``, ``"fc"`` or ``"other"`` for the conv-vs-FC split.
    """

    name: str | None = None
    group: ClassVar[str] = "other"

    def __post_init__(self):
        object.__setattr__(self, "name", check.name(self.name))

    # -- shape ---------------------------------------------------------------
    def output_shape(self, x: Shape) -> Shape:
        """The per-sample output shape, or :class:`SpecError` if ``x`` does not fit."""
        raise NotImplementedError(f"{type(self).__name__} must define output_shape")

    # -- counts (per sample) ---------------------------------------------------
    def weight_params(self, x: Shape) -> int:
        return 0

    def bias_params(self, x: Shape) -> int:
        return 0

    def macs(self, x: Shape, y: Shape) -> int:
        return 0

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 0

    # -- presentation ------------------------------------------------------------
    def args(self) -> dict:
        """The torch.nn constructor arguments as given (``name`` excluded)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def torch_args(self, x: Shape) -> dict:
        """Arguments for ``torch.nn.<type>(**args)`` on input ``x`` (inferred ones filled in)."""
        return self.args()

    def torch_module(self, x: Shape):
        """The equivalent ``torch.nn`` module (imports torch). A custom kind overrides this."""
        import torch.nn

        kind = getattr(torch.nn, type(self).__name__, None)
        if kind is None:
            raise SpecError(f"{type(self).__name__} has no torch.nn counterpart; define torch_module() on it")
        return kind(**self.torch_args(x))

    def columns(self) -> tuple[str, str, str, str]:
        """The seed table's Filter, Depth, Stride and Padding cells."""
        return ("", "", "", "")

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        """The parameter count as arithmetic, e.g. ``(11*11*3 + 1)*96`` ('' if none).

        ``x_factors`` is ``x`` as the seed writes it: ``(256, 6, 6)`` for a flattened 9216.
        """
        return ""

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        """``macs + bias_adds`` per sample as arithmetic ('' if none)."""
        return ""

    def label(self) -> str:
        """A short description for tables: ``MaxPool2d 3*3/2``."""
        return type(self).__name__


def _need_rank(layer: Layer, x: Shape, rank: int, form: str) -> None:
    if len(x) != rank:
        raise SpecError(f"{type(layer).__name__} expects a {form} input per sample, got {format_shape(x)}")


@register_layer
@dataclass(frozen=True, kw_only=True)
class Conv2d(Layer):
    """2-D convolution. params ``C_out*(C_in/groups)*kH*kW (+ C_out)``;
    macs ``C_out*H_out*W_out*(C_in/groups)*kH*kW``; bias adds ``C_out*H_out*W_out``."""

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
                raise SpecError(f"padding='same' is not supported for strided convolutions, got stride={_side(self.stride)}")
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
        _need_rank(self, x, 3, "(C, H, W)")
        c, h, w = x
        if self.in_channels is not None and self.in_channels != c:
            raise SpecError(f"expected input with in_channels={self.in_channels} channels, got {c} channels")
        if c % self.groups:
            raise SpecError(f"in_channels must be divisible by groups, got in_channels={c}, groups={self.groups}")
        top, bottom, left, right = self._pads()
        padded_h, padded_w = h + top + bottom, w + left + right
        span_h = effective_kernel(self.kernel_size[0], self.dilation[0])
        span_w = effective_kernel(self.kernel_size[1], self.dilation[1])
        if padded_h < span_h or padded_w < span_w:
            raise SpecError(f"Kernel size can't be greater than actual input size: padded input "
                            f"{padded_h}x{padded_w}, kernel {span_h}x{span_w} "
                            f"(kernel_size={_side(self.kernel_size)}, dilation={_side(self.dilation)})")
        if self.padding_mode in ("reflect", "circular"):
            for size, pad in ((h, max(top, bottom)), (w, max(left, right))):
                if pad >= size if self.padding_mode == "reflect" else pad > size:
                    bound = "<" if self.padding_mode == "reflect" else "<="
                    raise SpecError(f"padding_mode={self.padding_mode!r} needs padding {bound} input size, "
                                    f"got padding={pad}, size={size}")
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

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "in_channels": x[0]}

    def columns(self):
        kh, kw = self.kernel_size
        pad = self.padding if isinstance(self.padding, str) else _side(self.padding)
        depth = f"{self.out_channels} ({self.groups} groups)" if self.groups > 1 else str(self.out_channels)
        return (f"{kh} * {kw}", depth, _side(self.stride), pad)

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        per_filter = f"{self.kernel_size[0]}*{self.kernel_size[1]}*{x[0] // self.groups}"
        return f"({per_filter} + 1)*{self.out_channels}" if self.bias else f"{per_filter}*{self.out_channels}"

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        return f"{self.params_formula(x, x_factors)}*{y[1]}*{y[2]}"


@register_layer
@dataclass(frozen=True, kw_only=True)
class Linear(Layer):
    """Fully connected. params ``in*out (+ out)``; macs ``in*out``; bias adds ``out``.

    The input must be flat (per sample ``(in_features,)``): put a Flatten before it.
    """

    in_features: int | None = None
    out_features: int
    bias: bool = True

    group: ClassVar[str] = "fc"

    def __post_init__(self):
        super().__post_init__()
        if self.in_features is not None:
            object.__setattr__(self, "in_features", check.integer(self.in_features, "in_features"))
        object.__setattr__(self, "out_features", check.integer(self.out_features, "out_features"))
        object.__setattr__(self, "bias", check.flag(self.bias, "bias"))

    def output_shape(self, x: Shape) -> Shape:
        if len(x) != 1:
            raise SpecError(f"Linear expects a flat (features,) input per sample, got {format_shape(x)}; "
                            f"put a Flatten layer before it")
        if self.in_features is not None and self.in_features != x[0]:
            raise SpecError(f"expected in_features={self.in_features}, got an input of {x[0]} features")
        return (self.out_features,)

    def weight_params(self, x: Shape) -> int:
        return x[0] * self.out_features

    def bias_params(self, x: Shape) -> int:
        return self.out_features if self.bias else 0

    def macs(self, x: Shape, y: Shape) -> int:
        return x[0] * self.out_features

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return self.out_features if self.bias else 0

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "in_features": x[0]}

    def columns(self):
        return ("", str(self.out_features), "", "")

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        features = "*".join(str(d) for d in x_factors)
        return f"({features} + 1)*{self.out_features}" if self.bias else f"{features}*{self.out_features}"

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        return self.params_formula(x, x_factors)


@dataclass(frozen=True, kw_only=True)
class _Pool2d(Layer):
    """What MaxPool2d and AvgPool2d share: a window of ``kernel_size`` moved by ``stride``
    (default: ``kernel_size``) over an input padded by at most half the kernel."""

    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0
    ceil_mode: bool = False

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        put("kernel_size", check.pair(self.kernel_size, "kernel_size"))
        put("stride", self.kernel_size if self.stride is None else check.pair(self.stride, "stride"))
        put("padding", check.pair(self.padding, "padding", minimum=0))
        put("ceil_mode", check.flag(self.ceil_mode, "ceil_mode"))
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise SpecError(f"pad should be at most half of kernel size, but got padding={_side(self.padding)}, "
                            f"kernel_size={_side(self.kernel_size)}")

    def _dilation(self) -> tuple[int, int]:
        return (1, 1)

    def output_shape(self, x: Shape) -> Shape:
        _need_rank(self, x, 3, "(C, H, W)")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self._dilation()
        h = window_positions(x[1], kh, sh, ph, dh, self.ceil_mode)
        w = window_positions(x[2], kw, sw, pw, dw, self.ceil_mode)
        if h < 1 or w < 1:
            raise SpecError(f"Given input size: ({x[0]}x{x[1]}x{x[2]}). Calculated output size: "
                            f"({x[0]}x{h}x{w}). Output size is too small")
        return (x[0], h, w)

    def columns(self):
        return (f"{self.kernel_size[0]} * {self.kernel_size[1]}", "", _side(self.stride), _side(self.padding))


@register_layer
@dataclass(frozen=True, kw_only=True)
class MaxPool2d(_Pool2d):
    """Max pooling: ``kH*kW - 1`` comparisons per output element, no parameters."""

    dilation: int | tuple[int, int] = 1
    return_indices: bool = False

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dilation", check.pair(self.dilation, "dilation"))
        if check.flag(self.return_indices, "return_indices"):
            raise SpecError("return_indices=True is not supported: the layer would return a tuple, not a tensor")

    def _dilation(self) -> tuple[int, int]:
        return self.dilation

    def other_ops(self, x: Shape, y: Shape) -> int:
        return y[0] * y[1] * y[2] * (self.kernel_size[0] * self.kernel_size[1] - 1)

    def label(self) -> str:
        return "Max Pooling"


@register_layer
@dataclass(frozen=True, kw_only=True)
class AvgPool2d(_Pool2d):
    """Average pooling: ``kH*kW`` ops per output element (``kH*kW - 1`` adds, one divide)."""

    count_include_pad: bool = True
    divisor_override: int | None = None

    def __post_init__(self):
        super().__post_init__()
        check.flag(self.count_include_pad, "count_include_pad")
        if self.divisor_override is not None:
            check.integer(self.divisor_override, "divisor_override", minimum=-check.INT64_MAX)
            if self.divisor_override == 0:
                raise SpecError("divisor must be not zero, got divisor_override=0")

    def other_ops(self, x: Shape, y: Shape) -> int:
        return y[0] * y[1] * y[2] * self.kernel_size[0] * self.kernel_size[1]

    def label(self) -> str:
        return "Average Pooling"


@register_layer
@dataclass(frozen=True, kw_only=True)
class AdaptiveAvgPool2d(Layer):
    """Adaptive average pooling to ``output_size`` (``None`` keeps that input size).

    other_ops: the exact sum of window sizes, ``C*(H + oH - gcd(H, oH))*(W + oW - gcd(W, oW))``.
    """

    output_size: int | tuple[int | None, int | None]

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "output_size", check.optional_pair(self.output_size, "output_size"))

    def output_shape(self, x: Shape) -> Shape:
        _need_rank(self, x, 3, "(C, H, W)")
        oh, ow = self.output_size
        return (x[0], x[1] if oh is None else oh, x[2] if ow is None else ow)

    def other_ops(self, x: Shape, y: Shape) -> int:
        return x[0] * adaptive_window_total(x[1], y[1]) * adaptive_window_total(x[2], y[2])

    def label(self) -> str:
        return "Adaptive Average Pooling"


@register_layer
@dataclass(frozen=True, kw_only=True)
class LocalResponseNorm(Layer):
    """Local response normalisation across channels, ``b = a / (k + alpha/size * sum a^2)^beta``.

    ``size + 4`` ops per element: square, ``size - 1`` adds, scale, add k, power, divide.
    torch's defaults (k=1.0) differ from AlexNet's (k=2).
    """

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "size", check.integer(self.size, "size"))
        for arg in ("alpha", "beta", "k"):
            object.__setattr__(self, arg, float(check.real(getattr(self, arg), arg)))

    def output_shape(self, x: Shape) -> Shape:
        if len(x) < 2:
            raise SpecError(f"LocalResponseNorm expects a (C, ...) input with at least 2 dims per sample, "
                            f"got {format_shape(x)}")
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * (self.size + 4)

    def columns(self):
        return (f"size {self.size}", "", "", "")

    def label(self) -> str:
        return "LRN"


@dataclass(frozen=True, kw_only=True)
class _Elementwise(Layer):
    """Shape-preserving layer with ``ops_per_element`` ops on every element."""

    ops_per_element: ClassVar[int] = 1

    def output_shape(self, x: Shape) -> Shape:
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * self.ops_per_element


@register_layer
@dataclass(frozen=True, kw_only=True)
class ReLU(_Elementwise):
    """``max(0, x)``: one comparison per element."""

    inplace: bool = False

    def __post_init__(self):
        super().__post_init__()
        check.flag(self.inplace, "inplace")


@register_layer
@dataclass(frozen=True, kw_only=True)
class Tanh(_Elementwise):
    """``tanh(x)``: one op per element."""


@register_layer
@dataclass(frozen=True, kw_only=True)
class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``: one op per element."""


@register_layer
@dataclass(frozen=True, kw_only=True)
class Dropout(_Elementwise):
    """Identity at inference (alexcost counts inference): 0 ops. Training scales by a mask."""

    p: float = 0.5
    inplace: bool = False
    ops_per_element: ClassVar[int] = 0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "p", float(check.real(self.p, "p")))
        if not 0 <= self.p <= 1:
            raise SpecError(f"dropout probability has to be between 0 and 1, but got p={self.p}")
        check.flag(self.inplace, "inplace")

    def label(self) -> str:
        return f"Dropout (rate {self.p})"


@register_layer
@dataclass(frozen=True, kw_only=True)
class Softmax(_Elementwise):
    """Softmax along ``dim`` (of the batched tensor): 3 ops per element (exp, add, divide)."""

    dim: int | None = None
    ops_per_element: ClassVar[int] = 3

    def __post_init__(self):
        super().__post_init__()
        if self.dim is not None and (isinstance(self.dim, bool) or not isinstance(self.dim, int)):
            raise SpecError(f"dim must be an integer or null, got {check.shown(self.dim)}")

    def output_shape(self, x: Shape) -> Shape:
        if self.dim is not None and check.dim(self.dim, "dim", len(x) + 1) == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        return x


@register_layer
@dataclass(frozen=True, kw_only=True)
class Flatten(Layer):
    """Flatten dims ``start_dim..end_dim`` of the batched tensor (torch's defaults 1, -1). No ops."""

    start_dim: int = 1
    end_dim: int = -1

    def __post_init__(self):
        super().__post_init__()
        for arg in ("start_dim", "end_dim"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{arg} must be an integer, got {check.shown(value)}")

    def output_shape(self, x: Shape) -> Shape:
        rank = len(x) + 1  # with the batch dimension, as torch numbers dims
        start = check.dim(self.start_dim, "start_dim", rank)
        end = check.dim(self.end_dim, "end_dim", rank)
        if start > end:
            raise SpecError(f"flatten() has invalid args: start_dim cannot come after end_dim "
                            f"(start_dim={self.start_dim}, end_dim={self.end_dim})")
        if start == 0:
            raise SpecError("start_dim=0 would flatten the batch dimension; alexcost analyses each sample on its own")
        return x[:start - 1] + (prod(x[start - 1:end]),) + x[end:]


BUILTIN_KINDS = frozenset(LAYER_KINDS.values())
"""alexcost's own kinds; a user's kinds get their output shapes checked too."""
