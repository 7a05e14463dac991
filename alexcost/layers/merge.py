"""Merging several tensors: Add (residual connections), Mul (squeeze-and-excitation, layer
scale), Cat (inception and dense blocks).

Add and Mul broadcast as torch does; every input here is a batched activation of the same
rank, except a `Parameter`, which has no batch dimension and broadcasts against the
whole batched tensor. other_ops: Add and Mul do one op per output element for every
input after the first; Cat copies and does no arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

from .. import arguments as check
from ..errors import SpecError, format_shape
from .base import Layer, ParameterShape, Shape, register_layer


def broadcast(shapes) -> Shape:
    """torch's broadcasting of batched tensors, per sample: ``shapes`` are per-sample shapes of
    batched tensors (equal ranks), or `ParameterShape`s, aligned with the batched shape."""
    batched = [s for s in shapes if not isinstance(s, ParameterShape)]
    if not batched:
        raise SpecError("needs at least one activation among its inputs, not only parameters")
    rank = len(batched[0])
    for s in batched[1:]:
        if len(s) != rank:
            raise SpecError(f"inputs of different ranks per sample, {format_shape(batched[0])} and {format_shape(s)}: "
                            f"torch would broadcast the batch dimension against a sample dimension")
    aligned = []
    for s in shapes:
        if isinstance(s, ParameterShape):
            if len(s) > rank + 1:
                raise SpecError(f"a parameter of shape {format_shape(s)} has more dimensions than the batched "
                                f"input {format_shape(('N', *batched[0]))}")
            if len(s) == rank + 1:
                if s[0] != 1:
                    raise SpecError(f"a parameter of shape {format_shape(s)} would broadcast against the batch "
                                    f"dimension; its first size must be 1")
                s = s[1:]
            s = (1,) * (rank - len(s)) + tuple(s)
        aligned.append(s)
    out = []
    for i in range(rank):
        sizes = {s[i] for s in aligned} - {1}
        if len(sizes) > 1:
            raise SpecError(f"The size of tensor a must match the size of tensor b at non-singleton dimension "
                            f"{i + 1}: got {', '.join(format_shape(s) for s in shapes)}")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class _Broadcasting(Layer):
    """An elementwise op of two or more tensors, broadcast as torch does; with ``inplace`` the
    result is written into the first input (``a += b``), whose shape it must have."""

    inplace: bool = False

    arity: ClassVar[int | None] = None
    layout: ClassVar[str] = "elementwise"
    symbol: ClassVar[str] = "+"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "inplace", check.flag(self.inplace, "inplace"))

    def output_shape(self, x) -> Shape:
        y = broadcast(x)
        if self.inplace and (isinstance(x[0], ParameterShape) or y != tuple(x[0])):
            raise SpecError(f"in place, the result {format_shape(y)} must have the first input's shape "
                            f"{format_shape(x[0])}")
        return y

    def other_ops(self, x, y: Shape) -> int:
        return (len(x) - 1) * prod(y)

    def view_strides(self, x, y, strides, batch):
        return strides if self.inplace else None

    def torch_module(self, x):
        from ..torch_modules import elementwise

        return elementwise(type(self).__name__, self.inplace)


@register_layer
@dataclass(frozen=True, kw_only=True)
class Add(_Broadcasting):
    """Elementwise sum (residual connections): one add per output element per extra input."""


@register_layer
@dataclass(frozen=True, kw_only=True)
class Mul(_Broadcasting):
    """Elementwise product with broadcasting (squeeze-and-excitation, layer scale): one multiply
    per output element per extra input."""

    symbol: ClassVar[str] = "*"


@register_layer
@dataclass(frozen=True, kw_only=True)
class Cat(Layer):
    """Concatenation along ``dim`` of the batched tensor (1: channels), as ``torch.cat``. No ops."""

    dim: int

    arity: ClassVar[int | None] = None
    layout: ClassVar[str] = "common format"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))

    def output_shape(self, x) -> Shape:
        if any(isinstance(s, ParameterShape) for s in x):
            raise SpecError("cannot concatenate a parameter with activations")
        rank = len(x[0])
        d = check.dim(self.dim, "dim", rank + 1)
        if d == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        for s in x[1:]:
            if len(s) != rank or s[:d - 1] != x[0][:d - 1] or s[d:] != x[0][d:]:
                raise SpecError(f"Sizes of tensors must match except in dimension {d}: got "
                                f"{', '.join(format_shape(s) for s in x)}")
        return (*x[0][:d - 1], sum(s[d - 1] for s in x), *x[0][d:])

    def torch_module(self, x):
        from ..torch_modules import concatenate

        return concatenate(self.dim)
