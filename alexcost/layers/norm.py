"""Normalisation: LocalResponseNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm, GroupNorm,
InstanceNorm2d.

Two ways to normalise, each counted one way whatever the kind: with statistics computed from
the input (5 ops per element: the mean 1, the variance 2, normalising 2), or, at inference with
running statistics, folded into one scale and one shift per channel (2 ops per element). An
affine transform adds 2 per element (weight and bias) to the first; the second folds it in.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from . import strides as st
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, need_rank, register_layer


def _floats(layer, *names) -> None:
    for arg in names:
        object.__setattr__(layer, arg, float(check.real(getattr(layer, arg), arg)))


@register_layer
@layer_kind
class LocalResponseNorm(Layer):
    """Local response normalisation across channels, ``b = a / (k + alpha/size * sum a^2)^beta``.

    ``size + 4`` ops per element: square, ``size - 1`` adds, scale, add k, power, divide.
    torch's defaults (k=1.0) differ from AlexNet's (k=2).

    Backward: ``size + 6`` ops per element (for each element ``j``, ``g_j*b_j/d_j``: 2; its
    window's sum: ``size - 1``; times ``a_i`` and the constant ``2*alpha*beta/size``: 2;
    ``g_i*d_i^-beta``: 2; subtract: 1). torch builds LRN from smaller ops
    (``torch.nn.functional.local_response_norm``), and autograd keeps the input, the squares
    padded by ``size - 1`` channels, the denominator's base ``k + alpha*avg`` and the
    denominator itself.
    """

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    layout: ClassVar[str] = "elementwise"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "size", check.integer(self.size, "size"))
        _floats(self, "alpha", "beta", "k")

    def output_shape(self, x: Shape) -> Shape:
        if len(x) < 2:
            raise SpecError(f"LocalResponseNorm expects a (C, ...) input with at least 2 dims per sample, "
                            f"got {format_shape(x)}")
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * (self.size + 4)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(x) * (self.size + 6) if grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if len(x) > 3:  # torch views the squares (laid out as the input) as (N, 1, C, D, -1)
            full, strides = (ctx.batch, *x), ctx.strides[0]
            squares = st.like(full, strides, full) if st.is_dense(full, strides) else st.contiguous(full)
            if st.view(full, squares, (ctx.batch, 1, x[0], x[1], prod(x[2:]))) is None:
                raise SpecError("view size is not compatible with input tensor's size and stride: torch's "
                                "local_response_norm views the squares of this input as 5-D")
        n = ctx.batch * prod(x)
        return (Saved("input"),
                Saved("padded squares", "new", elements=ctx.batch * (x[0] + self.size - 1) * prod(x[1:]),
                      itemsize=ctx.itemsize),
                Saved("denominator base", "new", elements=n, itemsize=ctx.itemsize),
                Saved("denominator", "new", elements=n, itemsize=ctx.itemsize))

    def columns(self):
        return (f"size {self.size}", "", "", "")

    def label(self) -> str:
        return "LRN"


@layer_kind
class _NormBase(Layer):
    """What batch and instance normalisation share, as torch's ``_NormBase``: their arguments,
    parameters (``C`` each for the weight and the bias, with ``affine``) and buffers (with
    ``track_running_stats``: the running mean and variance at the run's dtype, and
    ``num_batches_tracked``, one int64)."""

    num_features: int | None = None
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    bias: bool = True

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        if self.num_features is not None:
            put("num_features", check.integer(self.num_features, "num_features"))
        _floats(self, "eps")
        if self.momentum is not None:
            _floats(self, "momentum")
        for name in ("affine", "track_running_stats", "bias"):
            put(name, check.flag(getattr(self, name), name))

    def weight_params(self, x: Shape) -> int:
        return x[0] if self.affine else 0

    def bias_params(self, x: Shape) -> int:
        return x[0] if self.affine and self.bias else 0

    def buffers(self, x: Shape) -> int:
        return 2 * x[0] + 1 if self.track_running_stats else 0

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        return 2 * x[0] * itemsize + 8 if self.track_running_stats else 0

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "num_features": x[0]}


@layer_kind
class _BatchNorm(_NormBase):
    """What BatchNorm1d, BatchNorm2d and BatchNorm3d share: every rule (see `BatchNorm2d`); they
    differ in the ranks of input they take."""

    layout: ClassVar[str] = "format"
    ranks: ClassVar[tuple[int, ...]] = (3,)
    """The ranks of a per-sample input the kind takes."""
    form: ClassVar[str] = "(C, H, W)"

    def __post_init__(self):
        super().__post_init__()
        if not self.track_running_stats:
            raise SpecError("track_running_stats=False normalises over the batch even at inference; "
                            "alexcost analyses each sample on its own")

    def output_shape(self, x: Shape) -> Shape:
        if len(x) not in self.ranks:
            raise SpecError(f"{type(self).__name__} expects a {self.form} input per sample, got {format_shape(x)}")
        if self.num_features is not None and self.num_features != x[0]:
            raise SpecError(f"expected num_features={self.num_features}, got {x[0]} channels")
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 2 * prod(y)

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * _by_statistics(self.affine, self.bias)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return _statistics_backward(x, grads, batch)

    def check_training(self, x: Shape, batch: int) -> None:
        if batch * prod(x[1:]) == 1:
            raise SpecError(f"Expected more than 1 value per channel when training, got input size "
                            f"[{batch}, {', '.join(map(str, x))}]")

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        caveat = ""
        if ctx.device == "cuda" and ctx.itemsize == 4 and self.affine:
            caveat = "cuDNN's batch-norm reserve buffer (its own size) is not counted"
        stats = ctx.stats_itemsize
        if ctx.device == "cpu" and ctx.params_itemsize > ctx.itemsize and (self.affine or self.track_running_stats):
            stats = ctx.params_itemsize  # the CPU's mixed-dtype batch norm keeps them at the parameters' dtype
        return (Saved("input"),
                Saved("batch mean", "new", elements=x[0], itemsize=stats, caveat=caveat),
                Saved("batch inverse std", "new", elements=x[0], itemsize=stats))

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (2 if self.affine else 1)

    def label(self) -> str:
        return "BatchNorm"


def _by_statistics(affine: bool, bias: bool) -> int:
    """Ops per element of normalising by statistics computed from the input: the mean 1, the variance
    2, normalising 2; then, with ``affine``, the weight's multiply and the bias's add (when it has one)."""
    return 5 + (1 + bias if affine else 0)


def _rows_backward(x: Shape, grads: Grads, batch: int) -> int:
    """The backward pass of a normalisation of rows (layer and group norm): 10 ops per element for the
    input's gradient; the weight's adds 2 per element (4 when the input needs no gradient: the
    normalised input is recomputed), the bias's 1."""
    per = 10 if grads.input else 0
    per += (2 if grads.input else 4) * grads.weight + grads.bias
    return batch * prod(x) * per


def _statistics_backward(x: Shape, grads: Grads, batch: int) -> int:
    """The backward pass of a normalisation by statistics computed from the input (batch norm in
    training, instance norm): 10 ops per element for the input's gradient (which gives the
    weight's and the bias's too); without it, 4 for the weight's and 1 for the bias's."""
    if grads.input:
        return batch * prod(x) * 10
    return batch * prod(x) * (4 * grads.weight + grads.bias)


@register_layer
@layer_kind
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of a (C,) or (C, L) input per sample: as `BatchNorm2d` (2 ops per
    element at inference, with the running statistics)."""

    ranks: ClassVar[tuple[int, ...]] = (1, 2)
    form: ClassVar[str] = "(C,) or (C, L)"


@register_layer
@layer_kind
class BatchNorm2d(_BatchNorm):
    """Batch normalisation at inference, with the running statistics: torch folds them into one
    scale and one shift per channel, so 2 ops per element (multiply, add).

    params ``2*C`` (weight and bias, with ``affine``); buffers ``2*C + 1`` (running mean and
    variance at the run's dtype, ``num_batches_tracked`` as one int64), memory not parameters.
    fvcore counts 2 per element with ``affine``, 1 without. ``num_features`` may be left out.

    Training normalises with the batch's statistics: 5 ops per element (mean 1, variance 2,
    normalise 2), 7 with ``affine`` (scale, shift; 6 with ``bias=False``, torch's flag for a weight
    without a bias). Backward: the input's gradient takes 10 ops
    per element (the normalised input 2, the sums ``sum(g*x_hat)`` 2 and ``sum(g)`` 1, which
    give the weight's and the bias's gradients too, and 5 to combine them); without it, the
    weight's gradient takes 4 (normalised input and ``sum(g*x_hat)``) and the bias's 1 (``sum(g)``). Autograd keeps the input and the batch's mean and inverse
    standard deviation, one per channel each: at the dtype on the CPU, in float32 on CUDA for
    float32, float16 and bfloat16 (torch's accumulate type). On CUDA in float32 with
    ``affine``, torch uses cuDNN, which may keep a reserve buffer of a size only it knows.
    """

    autocast: ClassVar[str | None] = "follow"


@register_layer
@layer_kind
class BatchNorm3d(_BatchNorm):
    """Batch normalisation of a (C, D, H, W) input per sample (video): as `BatchNorm2d` (2 ops
    per element at inference, with the running statistics)."""

    ranks: ClassVar[tuple[int, ...]] = (4,)
    form: ClassVar[str] = "(C, D, H, W)"


@register_layer
@layer_kind
class LayerNorm(Layer):
    """Layer normalisation over the last dimensions, ``normalized_shape`` (channels last, for
    ConvNeXt's blocks). Per element: the mean (1 add), the variance (subtract, multiply-add),
    normalising (subtract, multiply): 5 ops; the affine transform adds a multiply and, with
    ``bias``, an add. params ``prod(normalized_shape)`` each for weight and bias.
    fvcore counts 5 per element with a weight, 4 without.

    Backward: 10 ops per element for the input's gradient (normalised input 2, ``g*w`` 1, its
    two row sums 3, the combination 4); the weight's gradient adds 2 per element
    (``sum(g*x_hat)``; 4 when the input needs no gradient: ``x_hat`` recomputed), the bias's 1
    (``sum(g)``). Autograd keeps the input and one mean and one inverse standard deviation per
    normalised row: at the dtype on the CPU, in float32 on CUDA for float32, float16 and bfloat16.
    """

    normalized_shape: int | tuple[int, ...]
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        shape = self.normalized_shape
        put("normalized_shape", check.shape((shape,) if not isinstance(shape, (tuple, list)) else shape,
                                            "normalized_shape"))
        _floats(self, "eps")
        put("elementwise_affine", check.flag(self.elementwise_affine, "elementwise_affine"))
        put("bias", check.flag(self.bias, "bias"))

    def output_shape(self, x: Shape) -> Shape:
        n = len(self.normalized_shape)
        if x[len(x) - n:] != self.normalized_shape or len(x) < n:
            raise SpecError(f"Given normalized_shape={list(self.normalized_shape)}, expected an input whose last "
                            f"{n} dimension(s) are {list(self.normalized_shape)}, got {format_shape(x)} per sample")
        return x

    def weight_params(self, x: Shape) -> int:
        return prod(self.normalized_shape) if self.elementwise_affine else 0

    def bias_params(self, x: Shape) -> int:
        return prod(self.normalized_shape) if self.elementwise_affine and self.bias else 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * _by_statistics(self.elementwise_affine, self.bias)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (5 if self.elementwise_affine else 4)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return _rows_backward(x, grads, batch)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        rows = ctx.batch * prod(x[:len(x) - len(self.normalized_shape)])
        return (Saved("input"),
                Saved("row mean", "new", elements=rows, itemsize=ctx.stats_itemsize),
                Saved("row inverse std", "new", elements=rows, itemsize=ctx.stats_itemsize))

    def label(self) -> str:
        return "LayerNorm"


@register_layer
@layer_kind
class GroupNorm(Layer):
    """Group normalisation: each sample's channels in ``num_groups`` groups, each group normalised
    by its own mean and variance, then, with ``affine``, a weight and a bias per channel. Per
    element 5 ops (mean 1, variance 2, normalising 2), 7 with ``affine`` (6 with ``bias=False``);
    params ``2*C`` with ``affine``. fvcore counts 5 per element with ``affine``, 4 without.
    ``num_channels`` may be left out.

    Backward, as LayerNorm's: 10 ops per element for the input's gradient; the weight's adds 2
    per element (4 when the input needs no gradient), the bias's 1. Autograd keeps the input and
    one mean and one inverse standard deviation per sample and group, at the dtype (torch's
    statistics take the parameters' dtype, on every device)."""

    num_groups: int
    num_channels: int | None = None
    eps: float = 1e-5
    affine: bool = True
    bias: bool = True

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        put("num_groups", check.integer(self.num_groups, "num_groups"))
        if self.num_channels is not None:
            put("num_channels", check.integer(self.num_channels, "num_channels"))
            if self.num_channels % self.num_groups:
                raise SpecError(f"num_channels must be divisible by num_groups, got num_channels="
                                f"{self.num_channels}, num_groups={self.num_groups}")
        _floats(self, "eps")
        put("affine", check.flag(self.affine, "affine"))
        put("bias", check.flag(self.bias, "bias"))

    def output_shape(self, x: Shape) -> Shape:
        if self.num_channels is not None and self.num_channels != x[0]:
            raise SpecError(f"expected num_channels={self.num_channels}, got {x[0]} channels")
        if x[0] % self.num_groups:
            raise SpecError(f"Expected number of channels in input to be divisible by num_groups, but got input "
                            f"of shape {format_shape(('N', *x))} and num_groups={self.num_groups}")
        return x

    def weight_params(self, x: Shape) -> int:
        return x[0] if self.affine else 0

    def bias_params(self, x: Shape) -> int:
        return x[0] if self.affine and self.bias else 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * _by_statistics(self.affine, self.bias)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (5 if self.affine else 4)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return _rows_backward(x, grads, batch)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        groups = ctx.batch * self.num_groups
        return (Saved("input"),
                Saved("group mean", "new", elements=groups, itemsize=ctx.itemsize),
                Saved("group inverse std", "new", elements=groups, itemsize=ctx.itemsize))

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "num_channels": x[0]}

    def label(self) -> str:
        return "GroupNorm"


@register_layer
@layer_kind
class InstanceNorm2d(_NormBase):
    """Instance normalisation of a (C, H, W) input: each sample's channel normalised by its own
    mean and variance (5 ops per element, 7 with ``affine``, 6 with ``bias=False``); with
    ``track_running_stats``, at
    inference, by the running statistics instead, folded into a scale and a shift per channel (2
    ops per element). params ``2*C`` with ``affine``; buffers ``2*C + 1`` with
    ``track_running_stats``. fvcore counts 5 per element with ``affine``, 4 without.

    torch computes it as batch normalisation of the input viewed as ``(1, N*C, H, W)``: training
    always normalises by the sample's statistics (5 ops per element, 7 with ``affine``), and the
    backward pass is batch norm's (10 ops per element for the input's gradient). Autograd keeps
    the input (a contiguous copy when it is not contiguous), one mean and one inverse standard
    deviation per sample and channel (at the dtype on the CPU, in float32 on CUDA for float32,
    float16 and bfloat16), and the weight and the running statistics repeated for every sample."""

    affine: bool = False
    track_running_stats: bool = False

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        if self.num_features is not None and self.num_features != x[0] and (self.affine or self.track_running_stats):
            raise SpecError(f"expected input's size at dim=1 to match num_features ({self.num_features}), "
                            f"but got: {x[0]}.")
        if not self.track_running_stats:
            self._spatial(x, 1)
        return x

    @staticmethod
    def _spatial(x: Shape, batch: int) -> None:
        if x[1] * x[2] == 1:
            raise SpecError(f"Expected more than 1 spatial element when training, got input size "
                            f"[{batch}, {', '.join(map(str, x))}]")

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 2 * prod(y) if self.track_running_stats else self.train_other_ops(x, y)

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * _by_statistics(self.affine, self.bias)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (5 if self.affine else 4)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return _statistics_backward(x, grads, batch)

    def check_training(self, x: Shape, batch: int) -> None:
        self._spatial(x, batch)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        rows = ctx.batch * x[0]
        full = (ctx.batch, *x)
        kept = Saved("input") if st.is_contiguous(full, ctx.strides[0]) else \
            Saved("contiguous input", "new", elements=prod(full), itemsize=ctx.itemsize)
        caveat = "cuDNN's batch-norm reserve buffer (its own size) is not counted" if (
            ctx.device == "cuda" and ctx.itemsize == 4 and self.affine) else ""
        saved = [kept, Saved("instance mean", "new", elements=rows, itemsize=ctx.stats_itemsize, caveat=caveat),
                 Saved("instance inverse std", "new", elements=rows, itemsize=ctx.stats_itemsize)]
        if self.affine:
            saved.append(Saved("weight repeated", "new", elements=rows, itemsize=ctx.itemsize))
        if self.track_running_stats:
            saved += [Saved("running mean repeated", "new", elements=rows, itemsize=ctx.itemsize),
                      Saved("running var repeated", "new", elements=rows, itemsize=ctx.itemsize)]
        return tuple(saved)

    def label(self) -> str:
        return "InstanceNorm"


@register_layer
@layer_kind
class Standardize(Layer):
    """``F.batch_norm(x, None, None, weight, training=True)`` on a batch of one (C, ...) sample: a weight
    standardised once per forward pass. Its weight is the second input, of shape (C,): each channel is
    normalised by its own mean and variance, then times the channel's weight (its gain, computed from
    parameters). Per element 6 ops (mean 1, variance 2, normalising 2, the weight 1); fvcore counts 5 per
    element, as for any normalisation with a weight. No parameters of its own.

    Backward, as batch norm's in training: 10 ops per element for the input's gradient (which gives the
    weight's too); without it, 4 for the weight's. Autograd keeps the input, the weight and one mean and
    one inverse standard deviation per channel."""

    eps: float = 1e-5

    arity: ClassVar[int | None] = None
    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        _floats(self, "eps")

    def output_shape(self, x) -> Shape:
        if len(x) != 2:
            raise SpecError(f"Standardize takes 2 inputs (the tensor, then the weight), got {len(x)}")
        x, weight = x
        if len(x) < 2 or prod(x[1:]) < 2:
            raise SpecError(f"Expected more than 1 value per channel when training, got input size "
                            f"{format_shape((1, *x))}")
        if tuple(weight) != (x[0],):
            raise SpecError(f"Standardize expects a weight of shape ({x[0]},) for input {format_shape(x)}, got "
                            f"{format_shape(weight)}")
        return x

    def other_ops(self, x, y: Shape) -> int:
        return prod(y) * _by_statistics(True, False)

    def fvcore_count(self, x, y: Shape) -> int:
        return prod(x[0]) * 5

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        return _statistics_backward(x[0], Grads(grads.inputs[:1], grads.inputs[1], False), batch)

    def check_training(self, x, batch: int) -> None:
        if batch != 1:
            raise SpecError(f"Standardize normalises one sample by its own statistics; in training torch's batch "
                            f"norm would take the statistics of {batch} (it is read where it runs once per pass)")

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        stats = ctx.stats_itemsize
        return (Saved("input"), Saved("weight", "input", 1),
                Saved("batch mean", "new", elements=x[0][0], itemsize=stats),
                Saved("batch inverse std", "new", elements=x[0][0], itemsize=stats))

    def label(self) -> str:
        return "Standardize"
