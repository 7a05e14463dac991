"""Fully connected: Linear, applied to the last dimension of any input; Embedding, a table looked up by index."""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from . import strides as st
from ..errors import SpecError
from .base import Grads, KEEPS_INPUT, Layer, Saved, Shape, TrainContext, layer_kind, register_layer


@register_layer
@layer_kind
class Linear(Layer):
    """Fully connected over the last dimension, as torch applies it to any input.

    params ``in*out (+ out)``; macs ``rows*in*out``; bias adds ``rows*out``, where
    ``rows`` is the product of the other dimensions (1 for a flat input).

    Backward: the input's gradient and the weight's each take ``macs`` (two matrix
    products); the bias gradient sums the output's gradient (one add per output element).
    Autograd keeps the input for the weight's gradient: the input itself, or, for an input
    of more than two dimensions that torch cannot view as ``(rows, in)``, the copy it makes.
    """

    autocast: ClassVar[str | None] = "lower"

    def keeps_weight(self, grads: Grads) -> bool:
        return True in grads.inputs  # the weight is kept for the input's gradient only

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
        if self.in_features is not None and self.in_features != x[-1]:
            hint = "; put a Flatten layer before it" if len(x) > 1 and prod(x) == self.in_features else ""
            raise SpecError(f"expected in_features={self.in_features}, got an input of {x[-1]} features "
                            f"(its last dimension){hint}")
        weight = x[-1] * self.out_features
        if weight > check.INT64_MAX:
            raise SpecError(f"the weight would hold {weight} elements, more than torch's int64 limit "
                            f"{check.INT64_MAX}")
        return (*x[:-1], self.out_features)

    def weight_params(self, x: Shape) -> int:
        return x[-1] * self.out_features

    def bias_params(self, x: Shape) -> int:
        return self.out_features if self.bias else 0

    def macs(self, x: Shape, y: Shape) -> int:
        return prod(x) * self.out_features

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return prod(y) if self.bias else 0

    def backward_macs(self, x: Shape, y: Shape, grads: Grads) -> int:
        return self.macs(x, y) * (grads.input + grads.weight)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * self.bias_adds(x, y) if grads.bias else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if not grads.weight:
            return ()  # only the weight is kept, for the input's gradient
        if len(x) > 1 and st.view((ctx.batch, *x), ctx.strides[0], (ctx.batch * prod(x[:-1]), x[-1])) is None:
            return (Saved("input copy", "new", elements=ctx.batch * prod(x), itemsize=ctx.itemsize),)
        return KEEPS_INPUT

    def torch_args(self, x: Shape) -> dict:
        return {**self.args(), "in_features": x[-1]}

    def columns(self):
        return ("", str(self.out_features), "", "")

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        features = "*".join(str(d) for d in x_factors) if len(x) == 1 else str(x[-1])
        return f"({features} + 1)*{self.out_features}" if self.bias else f"{features}*{self.out_features}"

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        rows = "".join(f"{d}*" for d in x[:-1])
        return f"{rows}{self.params_formula(x, x_factors)}" if rows else self.params_formula(x, x_factors)


@register_layer
@layer_kind
class Embedding(Layer):
    """``nn.Embedding``: each of the input's integer indices (any per-sample shape) looked up in a
    ``num_embeddings x embedding_dim`` table; output ``(*x, embedding_dim)``. Parameters: the table. No
    arithmetic (a gather).

    Backward: the table's gradient adds each output row's gradient into its row (``numel(y)`` adds per
    sample); the indices get none. Autograd keeps the indices (int64, 8 bytes each, whatever the dtype).
    ``max_norm`` (which renormalises the rows the data picks, in place) and ``sparse`` gradients are refused."""

    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None = None
    max_norm: float | None = None
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False
    sparse: bool = False

    group: ClassVar[str] = "fc"

    def __post_init__(self):
        super().__post_init__()
        for arg in ("num_embeddings", "embedding_dim"):
            object.__setattr__(self, arg, check.integer(getattr(self, arg), arg))
        if self.padding_idx is not None:
            index = check.integer(self.padding_idx, "padding_idx", minimum=-self.num_embeddings)
            if index >= self.num_embeddings:
                raise SpecError("Padding_idx must be within num_embeddings")
            object.__setattr__(self, "padding_idx", index)
        if self.max_norm is not None:
            raise SpecError("Embedding with max_norm renormalises the rows the data picks, in place; alexcost "
                            "cannot count that without the data")
        object.__setattr__(self, "norm_type", check.real(self.norm_type, "norm_type"))
        for arg in ("scale_grad_by_freq", "sparse"):
            object.__setattr__(self, arg, check.flag(getattr(self, arg), arg))

    def output_shape(self, x: Shape) -> Shape:
        return (*x, self.embedding_dim)

    def weight_params(self, x: Shape) -> int:
        return self.num_embeddings * self.embedding_dim

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(y) if grads.weight else 0

    def check_training(self, x: Shape, batch: int) -> None:
        if self.sparse or self.scale_grad_by_freq:
            raise SpecError("Embedding with sparse or scale_grad_by_freq: its gradient depends on the indices the "
                            "data holds; alexcost counts dense gradients only")

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if not grads.weight:
            return ()
        return (Saved("indices", "new", elements=ctx.batch * prod(x), itemsize=8),)

    def columns(self):
        return ("", str(self.embedding_dim), "", "")
