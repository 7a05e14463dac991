"""Elementwise activations, Softmax, and the layers that are the identity at inference
(Identity, Dropout, Dropout2d, StochasticDepth).

Ops per element (other_ops): ReLU 1 (max); ReLU6 2 (two clamps); LeakyReLU 2 (compare,
multiply); Tanh 1 and Sigmoid 1 (one function each); SiLU 2 (sigmoid, multiply); GELU 5
(scale, erf, add, two multiplies; 9 with ``approximate="tanh"``: cube, multiply-add,
scale, tanh, add, two multiplies); Hardswish 5 (add 3, two clamps, multiply, divide);
Hardsigmoid 4 (add 3, two clamps, divide); Softmax 3 (exp, add, divide). The identity
layers: 0, and their output is their input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import arguments as check
from ..errors import SpecError
from .base import Elementwise, InplaceElementwise, Passthrough, Shape, register_layer


@register_layer
@dataclass(frozen=True, kw_only=True)
class ReLU(InplaceElementwise):
    """``max(0, x)``: one comparison per element."""


@register_layer
@dataclass(frozen=True, kw_only=True)
class ReLU6(InplaceElementwise):
    """``min(max(0, x), 6)``: two comparisons per element."""

    ops_per_element: ClassVar[int] = 2


@register_layer
@dataclass(frozen=True, kw_only=True)
class LeakyReLU(InplaceElementwise):
    """``x if x > 0 else negative_slope*x``: a comparison and a multiply per element."""

    negative_slope: float = 1e-2
    ops_per_element: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "negative_slope", float(check.real(self.negative_slope, "negative_slope")))


@register_layer
@dataclass(frozen=True, kw_only=True)
class SiLU(InplaceElementwise):
    """``x*sigmoid(x)`` (swish): a sigmoid and a multiply per element."""

    ops_per_element: ClassVar[int] = 2


@register_layer
@dataclass(frozen=True, kw_only=True)
class Hardswish(InplaceElementwise):
    """``x*relu6(x + 3)/6``: add, two clamps, multiply, divide per element."""

    ops_per_element: ClassVar[int] = 5


@register_layer
@dataclass(frozen=True, kw_only=True)
class Hardsigmoid(InplaceElementwise):
    """``relu6(x + 3)/6``: add, two clamps, divide per element."""

    ops_per_element: ClassVar[int] = 4


@register_layer
@dataclass(frozen=True, kw_only=True)
class Tanh(Elementwise):
    """``tanh(x)``: one op per element."""


@register_layer
@dataclass(frozen=True, kw_only=True)
class Sigmoid(Elementwise):
    """``1 / (1 + exp(-x))``: one op per element."""


@register_layer
@dataclass(frozen=True, kw_only=True)
class GELU(Elementwise):
    """``x*Phi(x)``: 5 ops per element (scale, erf, add, two multiplies); ``approximate="tanh"``: 9."""

    approximate: str = "none"

    def __post_init__(self):
        super().__post_init__()
        check.choice(self.approximate, "approximate", ("none", "tanh"))

    def other_ops(self, x: Shape, y: Shape) -> int:
        return super().other_ops(x, y) * (9 if self.approximate == "tanh" else 5)


@register_layer
@dataclass(frozen=True, kw_only=True)
class Softmax(Elementwise):
    """Softmax along ``dim`` (of the batched tensor): 3 ops per element (exp, add, divide)."""

    dim: int | None = None
    ops_per_element: ClassVar[int] = 3
    layout: ClassVar[str] = "contiguous"

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
@dataclass(frozen=True, kw_only=True)
class Identity(Passthrough):
    """The input itself: no ops, no new storage."""


def _probability(layer, name: str = "p") -> None:
    p = float(check.real(getattr(layer, name), name))
    if not 0 <= p <= 1:
        raise SpecError(f"dropout probability has to be between 0 and 1, but got {name}={p}")
    object.__setattr__(layer, name, p)


@register_layer
@dataclass(frozen=True, kw_only=True)
class Dropout(Passthrough):
    """Identity at inference (alexcost counts inference): 0 ops. Training scales by a mask."""

    p: float = 0.5
    inplace: bool = False

    def __post_init__(self):
        super().__post_init__()
        _probability(self)
        check.flag(self.inplace, "inplace")

    def label(self) -> str:
        return f"Dropout (rate {self.p})"


@register_layer
@dataclass(frozen=True, kw_only=True)
class Dropout2d(Dropout):
    """Channel dropout: identity at inference; training zeroes whole channels."""

    def output_shape(self, x: Shape) -> Shape:
        if len(x) != 3:
            raise SpecError(f"Dropout2d expects a (C, H, W) input per sample, got {list(x)}")
        return x


@register_layer
@dataclass(frozen=True, kw_only=True)
class StochasticDepth(Passthrough):
    """torchvision.ops.StochasticDepth: identity at inference; training drops a residual branch
    for a whole sample (``mode="row"``) or the whole batch (``mode="batch"``) with probability ``p``."""

    p: float
    mode: str

    def __post_init__(self):
        super().__post_init__()
        _probability(self)
        check.choice(self.mode, "mode", ("batch", "row"))

    def torch_module(self, x: Shape):
        from ..torch_modules import stochastic_depth

        return stochastic_depth(self.p, self.mode)

    def label(self) -> str:
        return f"Stochastic depth (p {self.p})"
