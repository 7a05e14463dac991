"""Elementwise activations, Softmax, and the layers that are the identity at inference
(Identity, Dropout, Dropout2d, StochasticDepth).

Ops per element (other_ops): ReLU 1 (max); ReLU6 2 (two clamps); LeakyReLU 2 (compare,
multiply); Tanh 1 and Sigmoid 1 (one function each); SiLU 2 (sigmoid, multiply); GELU 5
(scale, erf, add, two multiplies; 9 with ``approximate="tanh"``: cube, multiply-add,
scale, tanh, add, two multiplies); Hardswish 5 (add 3, two clamps, multiply, divide);
Hardsigmoid 4 (add 3, two clamps, divide); Softmax 3 (exp, add, divide). The identity
layers: 0, and their output is their input.

Training (the gradient with respect to the input, ops per element): ReLU 1 (select);
ReLU6 2 (two compares); LeakyReLU 2 (compare, multiply); Tanh 3 (``g*(1 - y*y)``);
Sigmoid 3 (``g*y*(1 - y)``); SiLU 6 (``g*s*(1 + x*(1 - s))``, ``s`` recomputed); GELU 11
(``g*(Phi(x) + x*phi(x))``: 4 for ``Phi``, 4 for ``phi``, multiply, add, multiply; 16 with
``approximate="tanh"``); Hardswish 5 (two compares, ``2x + 3``, divide, multiply); Hardsigmoid
3 (two compares, multiply); Softmax 4 (``y*(g - sum(g*y))``); Dropout, Dropout2d and
StochasticDepth 1 (multiply by the scaled mask). What autograd keeps, as torch's derivatives
say and its saved-tensor hooks confirm: ReLU, Tanh, Sigmoid and Softmax their output; the
others their input (in place: ReLU and LeakyReLU their output, which is the input's storage;
ReLU6, SiLU, Hardswish and Hardsigmoid a copy of the input made before overwriting it).
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .base import (Elementwise, Grads, InplaceElementwise, Passthrough, Saved, Shape, TrainContext, layer_kind,
                   register_layer)


@register_layer
@layer_kind
class ReLU(InplaceElementwise):
    """``max(0, x)``: one comparison per element."""

    autocast: ClassVar[str | None] = "follow"

    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class ReLU6(InplaceElementwise):
    """``min(max(0, x), 6)``: two comparisons per element."""

    autocast: ClassVar[str | None] = "follow"

    ops_per_element: ClassVar[int] = 2
    backward_ops_per_element: ClassVar[int] = 2


@register_layer
@layer_kind
class LeakyReLU(InplaceElementwise):
    """``x if x > 0 else negative_slope*x``: a comparison and a multiply per element."""

    autocast: ClassVar[str | None] = "follow"

    negative_slope: float = 1e-2
    ops_per_element: ClassVar[int] = 2
    backward_ops_per_element: ClassVar[int] = 2
    inplace_saves: ClassVar[str] = "output"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "negative_slope", float(check.real(self.negative_slope, "negative_slope")))

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if self.inplace and self.negative_slope < 0:
            raise SpecError(f"In-place leakyReLu backward calculation is triggered with a negative slope which "
                            f"is not supported (negative_slope={self.negative_slope}); use inplace=False")
        return super().saved_tensors(x, y, grads, ctx)


@register_layer
@layer_kind
class SiLU(InplaceElementwise):
    """``x*sigmoid(x)`` (swish): a sigmoid and a multiply per element."""

    autocast: ClassVar[str | None] = "follow"

    ops_per_element: ClassVar[int] = 2
    backward_ops_per_element: ClassVar[int] = 6


@register_layer
@layer_kind
class Hardswish(InplaceElementwise):
    """``x*relu6(x + 3)/6``: add, two clamps, multiply, divide per element."""

    autocast: ClassVar[str | None] = "follow"

    ops_per_element: ClassVar[int] = 5
    backward_ops_per_element: ClassVar[int] = 5


@register_layer
@layer_kind
class Hardsigmoid(InplaceElementwise):
    """``relu6(x + 3)/6``: add, two clamps, divide per element."""

    autocast: ClassVar[str | None] = "follow"

    ops_per_element: ClassVar[int] = 4
    backward_ops_per_element: ClassVar[int] = 3


@register_layer
@layer_kind
class Tanh(Elementwise):
    """``tanh(x)``: one op per element."""

    autocast: ClassVar[str | None] = "follow"

    backward_ops_per_element: ClassVar[int] = 3
    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class Sigmoid(Elementwise):
    """``1 / (1 + exp(-x))``: one op per element."""

    autocast: ClassVar[str | None] = "follow"

    backward_ops_per_element: ClassVar[int] = 3
    saves: ClassVar[str] = "output"


@register_layer
@layer_kind
class GELU(Elementwise):
    """``x*Phi(x)``: 5 ops per element (scale, erf, add, two multiplies); ``approximate="tanh"``: 9."""

    autocast: ClassVar[str | None] = "follow"

    approximate: str = "none"

    def __post_init__(self):
        super().__post_init__()
        check.choice(self.approximate, "approximate", ("none", "tanh"))

    def other_ops(self, x: Shape, y: Shape) -> int:
        return super().other_ops(x, y) * (9 if self.approximate == "tanh" else 5)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return super().backward_other_ops(x, y, grads, batch) * (16 if self.approximate == "tanh" else 11)


@register_layer
@layer_kind
class Softmax(Elementwise):
    """Softmax along ``dim`` (of the batched tensor): 3 ops per element (exp, add, divide)."""

    dim: int | None = None
    ops_per_element: ClassVar[int] = 3
    layout: ClassVar[str] = "contiguous"
    backward_ops_per_element: ClassVar[int] = 4
    saves: ClassVar[str] = "output"

    def __post_init__(self):
        super().__post_init__()
        if self.dim is not None:
            object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))

    def output_shape(self, x: Shape) -> Shape:
        if self.dim is None and len(x) == 2:
            raise SpecError("dim=None on a (C, L) sample makes torch normalise a 3-D tensor over dim 0, the "
                            "batch; alexcost analyses each sample on its own: give dim")
        if self.dim is not None and check.dim(self.dim, "dim", len(x) + 1) == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        return x


@register_layer
@layer_kind
class Identity(Passthrough):
    """The input itself: no ops, no new storage."""

    autocast: ClassVar[str | None] = "follow"


def _probability(layer, name: str = "p") -> None:
    p = float(check.real(getattr(layer, name), name))
    if not 0 <= p <= 1:
        raise SpecError(f"dropout probability has to be between 0 and 1, but got {name}={p}")
    object.__setattr__(layer, name, p)


@register_layer
@layer_kind
class Dropout(Passthrough):
    """Identity at inference (alexcost counts inference): 0 ops. Training scales by a mask.

    In training it multiplies by the mask (1 op per element) into a new tensor (in place with
    ``inplace``). What autograd keeps: on the CPU the scaled mask at the dtype (torch builds
    dropout from ``bernoulli_`` and ``mul``), on CUDA a bool mask, 1 byte per element
    (``native_dropout``); with ``p=1``, a 0-d zero; with ``p=0``, nothing (the input is returned)."""

    autocast: ClassVar[str | None] = "follow"

    p: float = 0.5
    inplace: bool = False

    def __post_init__(self):
        super().__post_init__()
        _probability(self)
        check.flag(self.inplace, "inplace")

    def _drops(self) -> bool:
        return self.p > 0

    def train_copies(self) -> bool:
        return self._drops() and not self.inplace

    def train_inplace(self) -> bool:
        return self._drops() and self.inplace

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) if self._drops() else 0

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(x) if self._drops() and grads.input else 0

    def _mask(self, x: Shape, ctx: TrainContext) -> Saved:
        if ctx.device == "cuda":
            return Saved("mask", "new", elements=ctx.batch * prod(x), itemsize=1)
        return Saved("mask", "new", elements=ctx.batch * prod(x), itemsize=ctx.itemsize)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if not self._drops():
            return ()
        if self.p == 1:
            return (Saved("zero", "new", elements=1, itemsize=ctx.itemsize),)
        return (self._mask(x, ctx),)

    def label(self) -> str:
        return f"Dropout (rate {self.p})"


@register_layer
@layer_kind
class Dropout2d(Dropout):
    """Channel dropout: identity at inference; training zeroes whole channels.

    What autograd keeps in training (CPU and CUDA alike): the scaled mask, one value per sample
    and channel."""

    def output_shape(self, x: Shape) -> Shape:
        if len(x) != 3:
            raise SpecError(f"Dropout2d expects a (C, H, W) input per sample, got {list(x)}")
        return x

    def _mask(self, x: Shape, ctx: TrainContext) -> Saved:
        return Saved("mask", "new", elements=ctx.batch * x[0], itemsize=ctx.itemsize)


@register_layer
@layer_kind
class StochasticDepth(Passthrough):
    """torchvision.ops.StochasticDepth: identity at inference; training drops a residual branch
    for a whole sample (``mode="row"``) or the whole batch (``mode="batch"``) with probability ``p``."""

    p: float
    mode: str

    def __post_init__(self):
        super().__post_init__()
        _probability(self)
        check.choice(self.mode, "mode", ("batch", "row"))

    def train_copies(self) -> bool:
        return self.p > 0

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) if self.p > 0 else 0

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(x) if self.p > 0 and grads.input else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """``x * noise``: the noise, one value per sample (``"row"``) or one in all (``"batch"``)."""
        if self.p == 0:
            return ()
        return (Saved("mask", "new", elements=ctx.batch if self.mode == "row" else 1, itemsize=ctx.itemsize),)

    def label(self) -> str:
        return f"Stochastic depth (p {self.p})"
