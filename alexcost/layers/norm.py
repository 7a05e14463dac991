"""Normalisation: LocalResponseNorm, BatchNorm2d (inference), LayerNorm."""

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


@register_layer
@layer_kind
class BatchNorm2d(Layer):
    """Batch normalisation at inference, with the running statistics: torch folds them into one
    scale and one shift per channel, so 2 ops per element (multiply, add).

    params ``2*C`` (weight and bias, with ``affine``); buffers ``2*C + 1`` (running mean and
    variance at the run's dtype, ``num_batches_tracked`` as one int64), memory not parameters.
    fvcore counts 2 per element with ``affine``, 1 without. ``num_features`` may be left out.

    Training normalises with the batch's statistics: 5 ops per element (mean 1, variance 2,
    normalise 2), 7 with ``affine`` (scale, shift). Backward: the input's gradient takes 10 ops
    per element (the normalised input 2, the sums ``sum(g*x_hat)`` 2 and ``sum(g)`` 1, which
    give the weight's and the bias's gradients too, and 5 to combine them); without it, the
    weight's gradient takes 4 (normalised input and ``sum(g*x_hat)``) and the bias's 1 (``sum(g)``). Autograd keeps the input and the batch's mean and inverse
    standard deviation, one per channel each: at the dtype on the CPU, in float32 on CUDA for
    float32, float16 and bfloat16 (torch's accumulate type). On CUDA in float32 with
    ``affine``, torch uses cuDNN, which may keep a reserve buffer of a size only it knows.
    """

    num_features: int | None = None
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        if self.num_features is not None:
            put("num_features", check.integer(self.num_features, "num_features"))
        _floats(self, "eps")
        if self.momentum is not None:
            _floats(self, "momentum")
        put("affine", check.flag(self.affine, "affine"))
        if not check.flag(self.track_running_stats, "track_running_stats"):
            raise SpecError("track_running_stats=False normalises over the batch even at inference; "
                            "alexcost analyses each sample on its own")

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        if self.num_features is not None and self.num_features != x[0]:
            raise SpecError(f"expected num_features={self.num_features}, got {x[0]} channels")
        return x

    def weight_params(self, x: Shape) -> int:
        return x[0] if self.affine else 0

    def bias_params(self, x: Shape) -> int:
        return x[0] if self.affine else 0

    def buffers(self, x: Shape) -> int:
        return 2 * x[0] + 1

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        return 2 * x[0] * itemsize + 8

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 2 * prod(y)

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * (7 if self.affine else 5)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if grads.input:
            return batch * prod(x) * 10
        return batch * prod(x) * (4 * grads.weight + grads.bias)

    def check_training(self, x: Shape, batch: int) -> None:
        if batch * x[1] * x[2] == 1:
            raise SpecError(f"Expected more than 1 value per channel when training, got input size "
                            f"[{batch}, {', '.join(map(str, x))}]")

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        caveat = ""
        if ctx.device == "cuda" and ctx.itemsize == 4 and self.affine:
            caveat = "cuDNN's batch-norm reserve buffer (its own size) is not counted"
        stats = ctx.stats_itemsize
        return (Saved("input"),
                Saved("batch mean", "new", elements=x[0], itemsize=stats, caveat=caveat),
                Saved("batch inverse std", "new", elements=x[0], itemsize=stats))

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (2 if self.affine else 1)

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "num_features": x[0]}

    def label(self) -> str:
        return "BatchNorm"


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
        per = 5 + (1 + self.bias if self.elementwise_affine else 0)
        return prod(y) * per

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(x) * (5 if self.elementwise_affine else 4)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        per = 10 if grads.input else 0
        per += (2 if grads.input else 4) * grads.weight + grads.bias
        return batch * prod(x) * per

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        rows = ctx.batch * prod(x[:len(x) - len(self.normalized_shape)])
        return (Saved("input"),
                Saved("row mean", "new", elements=rows, itemsize=ctx.stats_itemsize),
                Saved("row inverse std", "new", elements=rows, itemsize=ctx.stats_itemsize))

    def label(self) -> str:
        return "LayerNorm"
