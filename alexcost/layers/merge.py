"""Merging several tensors: Add (residual connections), Sub (``a - b``), Mul (squeeze-and-excitation,
layer scale), Div (``a / b``), Cat (inception and dense blocks).

Add and Mul broadcast as torch does; every input here is a batched activation of the same
rank, except a `Parameter`, which has no batch dimension and broadcasts against the
whole batched tensor. other_ops: Add and Mul do one op per output element for every
input after the first (Sub and Div: one, of their two); Cat copies and does no arithmetic.

Backward: Add passes its gradient on (an input it was broadcast from sums it back: one add
per gradient element beyond the input's own); Sub does the same and negates its second input's gradient
(one op per output element); Mul multiplies the gradient by the other
inputs (one multiply per output element for each of them) and sums back the same way;
Div divides ``a``'s gradient by ``b`` (one op per output element) and computes ``b``'s as torch does,
``-grad * ((a / b) / b)`` (four per output element); Cat slices its gradient. Autograd keeps nothing for Add, Sub and Cat; Mul computes ``a*b*c`` as
``(a*b)*c`` and each product keeps each factor the other one's gradient needs (in place,
a copy of the left factor made before overwriting it).
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, ParameterShape, Saved, Shape, TrainContext, layer_kind, register_layer


def _elements(shape, batch: int) -> int:
    """Elements of an input: a parameter's once, an activation's for every sample."""
    return prod(shape) * (1 if isinstance(shape, ParameterShape) else batch)


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


@layer_kind
class _Broadcasting(Layer):
    """An elementwise op of two or more tensors, broadcast as torch does; with ``inplace`` the
    result is written into the first input (``a += b``), whose shape it must have."""

    inplace: bool = False

    arity: ClassVar[int | None] = None
    layout: ClassVar[str] = "elementwise"
    storage: ClassVar[str] = "inplace-if-flag"
    symbol: ClassVar[str] = "+"
    multiplies: ClassVar[bool] = False
    """Does an input's gradient multiply by the other inputs (Mul), or pass on unchanged (Add)?"""

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

    def train_inplace(self) -> bool:
        return self.inplace

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        out = batch * prod(y)
        per_input = (len(x) - 1) * out if self.multiplies else 0
        return sum(per_input + out - _elements(s, batch) for s, g in zip(x, grads.inputs) if g)

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()


@register_layer
@layer_kind
class Add(_Broadcasting):
    """Elementwise sum (residual connections): one add per output element per extra input."""

    autocast: ClassVar[str | None] = "follow"


@register_layer
@layer_kind
class Sub(_Broadcasting):
    """``a - b`` with broadcasting (PoolFormer's ``pool(x) - x``): one subtract per output element; in place,
    ``a -= b``. Backward: ``a``'s gradient passes on and ``b``'s is negated (one op per output element), each
    summed back over what it was broadcast from; autograd keeps nothing."""

    symbol: ClassVar[str] = "-"

    def output_shape(self, x) -> Shape:
        if len(x) != 2:
            raise SpecError(f"Sub takes 2 inputs (a - b), got {len(x)}")
        return super().output_shape(x)

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        negated = batch * prod(y) if grads.inputs[1] else 0
        return super().backward_other_ops(x, y, grads, batch) + negated


@register_layer
@layer_kind
class Mul(_Broadcasting):
    """Elementwise product with broadcasting (squeeze-and-excitation, layer scale): one multiply
    per output element per extra input."""

    autocast: ClassVar[str | None] = "follow"

    symbol: ClassVar[str] = "*"
    multiplies: ClassVar[bool] = True

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """Step ``k`` multiplies the product so far by input ``k``: it keeps input ``k`` when the
        product needs a gradient, and the product (input 0, a new intermediate, or in place a
        copy) when input ``k`` does."""
        saved = []
        for k in range(1, len(x)):
            if any(grads.inputs[:k]):
                saved.append(Saved("input", "input", k))
            if grads.inputs[k]:
                if self.inplace:
                    saved.append(Saved("product copy", "new", elements=_elements(x[0], ctx.batch),
                                       itemsize=ctx.itemsize))
                elif k == 1:
                    saved.append(Saved("input", "input", 0))
                else:
                    if all(isinstance(s, ParameterShape) for s in x[:k]):
                        raise SpecError("alexcost cannot size the product of parameters alone that a Mul "
                                        "keeps; list an activation among its first two inputs")
                    saved.append(Saved("product", "new", elements=ctx.batch * prod(broadcast(x[:k])),
                                       itemsize=ctx.itemsize))
        return tuple(saved)


@register_layer
@layer_kind
class Div(_Broadcasting):
    """``a / b`` of two tensors with broadcasting (ConvNeXt-V2's global response norm): one divide per output
    element; in place, ``a /= b``. Backward: ``a``'s gradient is ``grad / b`` (one op per output element),
    ``b``'s is ``-grad * ((a / b) / b)`` (four), each summed back over what it was broadcast from. Autograd
    keeps ``b`` when either input needs a gradient, and ``a`` when ``b`` does (in place, a copy of ``a``
    made before overwriting it)."""

    symbol: ClassVar[str] = "/"

    def output_shape(self, x) -> Shape:
        if len(x) != 2:
            raise SpecError(f"Div takes 2 inputs (a / b), got {len(x)}")
        return super().output_shape(x)

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        out = batch * prod(y)
        own = (out if grads.inputs[0] else 0) + (4 * out if grads.inputs[1] else 0)
        return super().backward_other_ops(x, y, grads, batch) + own

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        saved = []
        if grads.inputs[1]:
            saved.append(Saved("dividend copy", "new", elements=_elements(x[0], ctx.batch), itemsize=ctx.itemsize)
                         if self.inplace else Saved("input", "input", 0))
        if any(grads.inputs):
            saved.append(Saved("input", "input", 1))
        return tuple(saved)


def _tokens(x):
    """Cat's inputs per sample: a parameter of shape ``(1, *s)`` (a class token, expanded over the batch
    as ``token.expand(N, -1, ...)``) reads as ``s`` for every sample."""
    if not any(isinstance(s, ParameterShape) for s in x):
        return x
    batched = [s for s in x if not isinstance(s, ParameterShape)]
    rank = len(batched[0]) if batched else None
    for s in x:
        if isinstance(s, ParameterShape) and (s[0] != 1 or len(s) - 1 != rank):
            raise SpecError(f"cannot concatenate a parameter of shape {format_shape(s)} with activations of "
                            f"{rank} dimensions per sample: only a parameter of shape (1, ...) expanded over "
                            f"the batch (a class token) is read")
    return tuple(tuple(s[1:]) if isinstance(s, ParameterShape) else s for s in x)


@register_layer
@layer_kind
class Cat(Layer):
    """Concatenation along ``dim`` of the batched tensor (1: channels), as ``torch.cat``. No ops. An
    input may be a parameter of shape ``(1, ...)`` expanded over the batch (a class token): its
    gradient sums over the batch (``(batch - 1) * size`` adds)."""

    dim: int

    arity: ClassVar[int | None] = None
    layout: ClassVar[str] = "common format"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))

    def output_shape(self, x) -> Shape:
        x = _tokens(x)
        rank = len(x[0])
        d = check.dim(self.dim, "dim", rank + 1)
        if d == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        for s in x[1:]:
            if len(s) != rank or s[:d - 1] != x[0][:d - 1] or s[d:] != x[0][d:]:
                raise SpecError(f"Sizes of tensors must match except in dimension {d}: got "
                                f"{', '.join(format_shape(s) for s in x)}")
        return (*x[0][:d - 1], sum(s[d - 1] for s in x), *x[0][d:])

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        """A class token's gradient sums its slice of the output's gradient over the batch."""
        return sum((batch - 1) * prod(s) for s, g in zip(x, grads.inputs) if g and isinstance(s, ParameterShape))

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()
