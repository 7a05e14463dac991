"""Indexing and broadcasting views: Slice (``x[:, 0]``, ``x[:, :c]``), Expand, Unsqueeze, Squeeze, UnfoldView
(``x.unfold(dim, size, step)``, the windows along one dimension); SliceAdd
(``x[:, 1:] += y``), an add in place into a slice; IndexSelect (a gather by a fixed index: a new tensor); and
Repeat (``x.repeat``, ``x.tile``: Expand's copy, a new tensor).

The views are views of their input (no ops, no new storage) and keep nothing for the backward
pass. Slice's gradient is the output's, copied into zeros of the input's shape; UnfoldView's is added
back into zeros of the input's shape (one add per output element, windows may overlap); Expand's
sums the output's gradient back over the expanded dimensions (adds), and so does Repeat's over its
copies. SliceAdd writes into its first input and keeps nothing either.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, ParameterShape, Saved, Shape, TrainContext, layer_kind, register_layer


def _entry(value, what: str):
    """One index entry: an int (selects, dropping the dimension) or ``(start, stop, step)``."""
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise SpecError(f"{what}: a slice is [start, stop, step], got {check.shown(value)}")
        start, stop, step = (None if v is None else check.integer(v, what, minimum=-check.INT64_MAX)
                             for v in value)
        if step is not None and step <= 0:
            raise SpecError(f"{what}: step must be greater than zero, got {step}")
        return (start, stop, step)
    return check.integer(value, what, minimum=-check.INT64_MAX)


@register_layer
@layer_kind
class Slice(Layer):
    """``x[:, e1, e2, ...]``: ``index`` lists an entry per sample dimension from the first (fewer
    keep the rest whole); an int selects (the dimension is dropped), ``[start, stop, step]`` slices
    (None for a bound left out, as Python's ``slice``). Every dimension selected leaves none: a network
    reads that only of a tensor computed once per pass (a 0-d tensor). A view: no ops."""

    index: tuple[int | tuple[int | None, int | None, int | None], ...]

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.index, (list, tuple)) or not self.index or len(self.index) > check.MAX_RANK:
            raise SpecError(f"index must list 1 to {check.MAX_RANK} entries, got {check.shown(self.index)}")
        object.__setattr__(self, "index", tuple(_entry(v, "index") for v in self.index))

    def _ranges(self, x: Shape):
        if len(self.index) > len(x):
            raise SpecError(f"too many indices for a tensor of {len(x) + 1} dimensions: {len(self.index)} "
                            f"after the batch's, on input {format_shape(('N', *x))}")
        out = []
        for d, (entry, size) in enumerate(zip(self.index, x), start=1):
            if isinstance(entry, tuple):
                out.append(range(*slice(*entry).indices(size)))
            elif not -size <= entry < size:
                raise SpecError(f"index {entry} is out of bounds for dimension {d} with size {size}")
            else:
                out.append(entry % size)
        return out

    def output_shape(self, x: Shape) -> Shape:
        picked = self._ranges(x)
        return tuple(len(r) for r in picked if isinstance(r, range)) + tuple(x[len(picked):])

    def view_strides(self, x, y, strides, batch):
        picked = self._ranges(x)
        kept = [s * r.step for r, s in zip(picked, strides[1:]) if isinstance(r, range)]
        return (strides[0], *kept, *strides[1 + len(picked):])

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def label(self) -> str:
        return "Slice"


def _sizes(value, what: str, minimum: int) -> tuple[int, ...]:
    """One int per sample dimension (Expand's sizes, Repeat's counts), each at least ``minimum``."""
    if not isinstance(value, (list, tuple)) or not value or len(value) > check.MAX_RANK:
        raise SpecError(f"{what} must list 1 to {check.MAX_RANK} sizes, got {check.shown(value)}")
    return tuple(check.integer(s, what, minimum=minimum) for s in value)


@layer_kind
class _SummedBack(Layer):
    """What Expand and Repeat share: the output's gradient summed back over the copies of each input element,
    ``prod(y) - prod(x)`` adds per sample; nothing kept. With ``batch`` (a field of each), the input is a tensor
    computed once per pass of shape ``(1, *s)``, taken for each sample: ``N * prod(y) - prod(x)`` adds in all."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "batch", check.flag(self.batch, "batch"))

    def per_sample(self) -> bool:
        return self.batch

    def _sample(self, x: Shape) -> Shape:
        """The shape the sizes apply to: ``s`` of a ``(1, *s)`` input with ``batch``, else the input's."""
        return _once(x) if self.batch else x

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.input:
            return 0
        return batch * prod(y) - prod(x) if self.batch else batch * (prod(y) - prod(x))

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()


def _once(x: Shape) -> Shape:
    """A tensor computed once per pass of shape ``(1, *s)`` (what ``batch=True`` takes): ``s``."""
    if not isinstance(x, ParameterShape) or not x or x[0] != 1:
        raise SpecError(f"batch=True takes a tensor computed once per pass, of shape (1, ...), over the batch; got "
                        f"{'an activation of shape ' if not isinstance(x, ParameterShape) else ''}{format_shape(x)}")
    return tuple(x[1:])


@register_layer
@layer_kind
class Expand(_SummedBack):
    """``x.expand(N, *sizes)``: ``sizes`` per sample, of the input's rank; -1 keeps a size, a
    dimension of size 1 may grow. A view (stride 0 where it grows): no ops. Its gradient sums
    over the grown dimensions: ``prod(y) - prod(x)`` adds per sample."""

    sizes: tuple[int, ...]
    batch: bool = False
    """The input is a tensor computed once per pass of shape ``(1, *s)``, viewed for each sample
    (``t.expand(N, ...)``: SigLIP's latent query, ConViT's positions): ``sizes`` apply to ``s``, the batch's
    stride is 0. The gradient sums the ``N`` views back: ``N * prod(y) - prod(x)`` adds in all."""

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "sizes", _sizes(self.sizes, "sizes", -1))
        if 0 in self.sizes:
            raise SpecError(f"sizes={list(self.sizes)}: sizes must be positive (or -1)")

    def output_shape(self, x: Shape) -> Shape:
        x = self._sample(x)
        if len(self.sizes) != len(x):
            raise SpecError(f"expand to {len(self.sizes)} sizes per sample {list(self.sizes)} of an input of "
                            f"{len(x)} {format_shape(x)}; alexcost expands without adding dimensions")
        y = []
        for d, (want, have) in enumerate(zip(self.sizes, x), start=1):
            if want != -1 and want != have and have != 1:
                raise SpecError(f"The expanded size of the tensor ({want}) must match the existing size ({have}) "
                                f"at non-singleton dimension {d}.  Target sizes: {list(self.sizes)}")
            y.append(have if want == -1 else want)
        return tuple(y)

    def view_strides(self, x, y, strides, batch):
        if self.batch:  # strides: the whole (1, *s) tensor's
            return (0, *(0 if a != b else s for a, b, s in zip(x[1:], y, strides[1:])))
        return (strides[0], *(0 if a != b else s for a, b, s in zip(x, y, strides[1:])))


@register_layer
@layer_kind
class Repeat(_SummedBack):
    """``x.repeat(1, *repeats)`` (``x.tile``): each dimension of the sample copied ``repeats`` times along itself. One
    entry per sample dimension; the batch is not repeated (``batch``: see below). A copy into new storage: no
    ops. Its gradient
    sums the copies back: ``prod(y) - prod(x)`` adds per sample; it keeps nothing."""

    repeats: tuple[int, ...]
    batch: bool = False
    """The input is a tensor computed once per pass of shape ``(1, *s)``, copied for each sample
    (``x.repeat(N, *repeats)``, XCiT's positions): ``s`` repeated per sample, into storage of each sample's own.
    The gradient sums the ``N`` copies back: ``N * prod(y) - prod(x)`` adds in all."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "repeats", _sizes(self.repeats, "repeats", 1))

    def output_shape(self, x: Shape) -> Shape:
        x = self._sample(x)
        if len(self.repeats) != len(x):
            raise SpecError(f"repeats {list(self.repeats)} per sample of an input of {len(x)} dimensions "
                            f"{format_shape(x)}; alexcost repeats without adding dimensions")
        return tuple(s * r for s, r in zip(x, self.repeats))


@register_layer
@layer_kind
class UnfoldView(Layer):
    """``x.unfold(dim, size, step)``: the windows of ``size`` elements, ``step`` apart, along ``dim`` (of the batched
    tensor, not the batch). ``dim`` becomes the ``(L - size) // step + 1`` window positions and a last dimension
    of ``size`` is added. A view (windows that overlap share elements): no ops. Its gradient adds each
    output element back into the input's: ``numel(y)`` adds per sample; it keeps nothing."""

    dim: int
    size: int
    step: int

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.integer(self.dim, "dim", minimum=-check.MAX_RANK))
        object.__setattr__(self, "size", check.integer(self.size, "size", minimum=0))
        object.__setattr__(self, "step", check.integer(self.step, "step"))

    def _dim(self, x: Shape) -> int:
        d = check.dim(self.dim, "dim", len(x) + 1)
        if d == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        if self.size > x[d - 1]:
            raise SpecError(f"maximum size for tensor at dimension {d} is {x[d - 1]} but size is {self.size}")
        return d

    def output_shape(self, x: Shape) -> Shape:
        d = self._dim(x)
        y = list(x)
        y[d - 1] = (x[d - 1] - self.size) // self.step + 1
        return (*y, self.size)

    def view_strides(self, x, y, strides, batch):
        d = self._dim(x)
        return (*strides[:d], strides[d] * self.step, *strides[d + 1:], strides[d])

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(y) if grads.input else 0

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def label(self) -> str:
        return "unfold"


@register_layer
@layer_kind
class Unsqueeze(Layer):
    """``x.unsqueeze(dim)``: a dimension of size 1 inserted at ``dim`` of the batched tensor (not before
    the batch). A view: no ops."""

    dim: int

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))

    def _at(self, x: Shape) -> int:
        d = check.dim(self.dim, "dim", len(x) + 2)
        if d == 0:
            raise SpecError("dim=0 would put a dimension before the batch; alexcost analyses each sample on its own")
        return d

    def output_shape(self, x: Shape) -> Shape:
        d = self._at(x)
        return (*x[:d - 1], 1, *x[d - 1:])

    def view_strides(self, x, y, strides, batch):
        d = self._at(x)
        sizes = (batch, *x)
        new = strides[d] * sizes[d] if d < len(sizes) else 1
        return (*strides[:d], new, *strides[d:])

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()


@register_layer
@layer_kind
class Squeeze(Layer):
    """``x.squeeze(dim)``: the dimensions ``dim`` (of the batched tensor, not the batch) dropped where
    their size is 1, kept otherwise, as torch does. A view: no ops."""

    dim: int | tuple[int, ...]

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.dims(self.dim, "dim"))

    def _dropped(self, x: Shape) -> set:
        dims = {check.dim(d, "dim", len(x) + 1) for d in self.dim}
        if 0 in dims:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        return {d for d in dims if x[d - 1] == 1}

    def output_shape(self, x: Shape) -> Shape:
        dropped = self._dropped(x)
        y = tuple(s for d, s in enumerate(x, start=1) if d not in dropped)
        if not y:
            raise SpecError(f"squeeze of {format_shape(x)} leaves no dimension per sample")
        return y

    def view_strides(self, x, y, strides, batch):
        dropped = self._dropped(x)
        return tuple(s for d, s in enumerate(strides) if d not in dropped)

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()


@register_layer
@layer_kind
class IndexSelect(Layer):
    """``torch.index_select(x, dim, index)``: the slices of ``x`` along ``dim`` (of the batched tensor, not
    the batch) picked by a fixed int64 index of ``index_size`` entries, the module's buffer (``buffers``,
    8 bytes each). A new tensor, no ops. Backward: the output's gradient added back into zeros of the
    input's shape (one add per output element); it keeps the index only (a buffer). Read from a module
    as ``table[index]`` on a table computed once per pass (Swin V2's position bias)."""

    dim: int
    index_size: int
    index_buffer: bool = True
    """False: the index is a list of numbers in the code (``x[:, :, [0, 1, 8]]``, CSATv2's zigzag order), made
    into a new int64 tensor by every call: no buffer, and a training step keeps that tensor (8 bytes an entry)."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))
        object.__setattr__(self, "index_size", check.integer(self.index_size, "index_size"))
        object.__setattr__(self, "index_buffer", check.flag(self.index_buffer, "index_buffer"))

    def _at(self, x: Shape) -> int:
        d = check.dim(self.dim, "dim", len(x) + 1)
        if d == 0:
            raise SpecError("dim=0 is the batch dimension; alexcost analyses each sample on its own")
        return d

    def output_shape(self, x: Shape) -> Shape:
        d = self._at(x)
        return (*x[:d - 1], self.index_size, *x[d:])

    def buffers(self, x: Shape) -> int:
        return self.index_size if self.index_buffer else 0

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        return 8 * self.buffers(x)  # int64 indices, whatever the dtype

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(y) if grads.input else 0

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if self.index_buffer or not grads.input:
            return ()
        return (Saved("index", "new", elements=self.index_size, itemsize=8),)


@register_layer
@layer_kind
class SliceAdd(Layer):
    """``x[:, e1, e2, ...] += y``: ``y`` added in place into the slice of ``x`` that ``index`` selects (entries
    as `Slice`'s), ``y`` of the slice's shape. The output is ``x`` itself, written. One add per element of
    ``y``. Backward: ``x``'s gradient passes on and ``y``'s is its slice (no ops); autograd keeps nothing."""

    index: tuple[int | tuple[int | None, int | None, int | None], ...]
    accumulate: bool = True
    """False: ``x[:, e1, ...] = y``, ``y`` copied into the slice (torch's ``index_put_`` names it so): no ops;
    ``x``'s gradient passes on with the slice zeroed."""

    arity: ClassVar[int | None] = None
    storage: ClassVar[str] = "same"
    autocast: ClassVar[str | None] = "follow"
    inplace: ClassVar[bool] = True
    """It always writes into its first input (the reader links its output to it as the same tensor)."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "index", Slice(index=self.index).index)
        object.__setattr__(self, "accumulate", check.flag(self.accumulate, "accumulate"))

    def output_shape(self, x) -> Shape:
        if len(x) != 2:
            raise SpecError(f"SliceAdd takes 2 inputs (x, y: x[index] += y), got {len(x)}")
        a, b = x
        if isinstance(a, ParameterShape) or isinstance(b, ParameterShape):
            raise SpecError("SliceAdd reads activations only; a parameter as an operand is not read")
        part = Slice(index=self.index).output_shape(a)
        if tuple(b) != tuple(part):
            raise SpecError(f"adds {format_shape(('N', *b))} into the slice {format_shape(('N', *part))} of "
                            f"{format_shape(('N', *a))}; alexcost reads y of the slice's own shape (no broadcasting)")
        return tuple(a)

    def other_ops(self, x, y: Shape) -> int:
        return prod(x[1]) if self.accumulate else 0

    def train_inplace(self) -> bool:
        return True

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def label(self) -> str:
        return "Slice add" if self.accumulate else "Slice copy"
