"""Reshaping without arithmetic: Flatten, Reshape, View, Permute, Transpose, Chunk, Split,
Contiguous, Clone, Mean (a reduction).

Dimensions are numbered as torch numbers them on the batched tensor (0 is the batch),
and none of these may move or merge the batch dimension: alexcost analyses each sample
on its own. Shapes given to Reshape and View are per sample. Views (torch's: Permute,
Transpose, Chunk, Split, View, and Flatten/Reshape/Contiguous where torch can avoid a
copy) share their input's storage. No ops, except Mean: per output element, the inputs it
averages (one fewer adds, then a divide), so ``prod(x)`` in all.

Training: none of these keeps a tensor for the backward pass (their gradients are views,
slices, copies or concatenations of the output's); Mean's gradient divides and spreads the
output's gradient, one op per input element.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from . import strides as st
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer


@layer_kind
class _Reshaping(Layer):
    """A layer that moves, slices or copies elements without arithmetic: autograd keeps nothing."""

    def saved_tensors(self, x, y, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()


def _batch_dim(value: int, what: str, rank: int) -> int:
    """A dimension of the batched tensor (``rank`` dims) other than the batch's, normalised."""
    d = check.dim(value, what, rank)
    if d == 0:
        raise SpecError(f"{what}={value} is the batch dimension; alexcost analyses each sample on its own")
    return d


def _reshaped(strides, x: Shape, y: Shape, batch: int):
    """Input strides -> the output's, when ``reshape`` can be a view; None when it copies."""
    return st.view((batch, *x), strides, (batch, *y))


@register_layer
@layer_kind
class Flatten(_Reshaping):
    """Flatten dims ``start_dim..end_dim`` of the batched tensor (torch's defaults 1, -1). No ops;
    a view where torch can make one."""

    autocast: ClassVar[str | None] = "follow"

    start_dim: int = 1
    end_dim: int = -1

    storage: ClassVar[str] = "strided"

    def __post_init__(self):
        super().__post_init__()
        for arg in ("start_dim", "end_dim"):
            object.__setattr__(self, arg, check.dim_index(getattr(self, arg), arg))

    def _range(self, x: Shape) -> tuple[int, int]:
        rank = len(x) + 1  # with the batch dimension, as torch numbers dims
        start = check.dim(self.start_dim, "start_dim", rank)
        end = check.dim(self.end_dim, "end_dim", rank)
        if start > end:
            raise SpecError(f"flatten() has invalid args: start_dim cannot come after end_dim "
                            f"(start_dim={self.start_dim}, end_dim={self.end_dim})")
        if start == 0:
            raise SpecError("start_dim=0 would flatten the batch dimension; alexcost analyses each sample on its own")
        return start, end

    def output_shape(self, x: Shape) -> Shape:
        start, end = self._range(x)
        return x[:start - 1] + (prod(x[start - 1:end]),) + x[end:]

    def view_strides(self, x, y, strides, batch):
        start, end = self._range(x)
        return strides if start == end else _reshaped(strides, x, y, batch)


def _target(shape, x: Shape, what: str) -> Shape:
    """A per-sample target shape with at most one -1, for an input of shape ``x``."""
    if not isinstance(shape, (tuple, list)) or not shape or len(shape) > check.MAX_RANK:
        raise SpecError(f"{what} must be a non-empty list of at most {check.MAX_RANK} sizes, got {check.shown(shape)}")
    sizes = [check.integer(s, what, minimum=-1) for s in shape]
    if sizes.count(-1) > 1:
        raise SpecError(f"only one dimension can be inferred, got {what}={sizes}")
    if 0 in sizes:
        raise SpecError(f"{what}={sizes}: sizes must be positive (or -1 once)")
    known = prod(s for s in sizes if s != -1)
    total = prod(x)
    if -1 in sizes:
        if total % known:
            raise SpecError(f"shape {sizes} is invalid for an input of {total} elements per sample {format_shape(x)}")
        sizes[sizes.index(-1)] = total // known
    elif known != total:
        raise SpecError(f"shape {sizes} is invalid for an input of {total} elements per sample {format_shape(x)}")
    return tuple(sizes)


@register_layer
@layer_kind
class Reshape(_Reshaping):
    """``x.reshape(N, *shape)``: ``shape`` is per sample, one size may be -1. A view where torch
    can make one, else a copy. No ops."""

    shape: tuple[int, ...]

    storage: ClassVar[str] = "strided"

    def __post_init__(self):
        super().__post_init__()
        shape = self.shape
        if isinstance(shape, list):
            object.__setattr__(self, "shape", tuple(shape))

    def output_shape(self, x: Shape) -> Shape:
        return _target(self.shape, x, "shape")

    def view_strides(self, x, y, strides, batch):
        return _reshaped(strides, x, y, batch)



@register_layer
@layer_kind
class View(Reshape):
    """``x.view(N, *shape)``: like Reshape, but torch refuses when no view is possible."""

    def view_strides(self, x, y, strides, batch):
        out = _reshaped(strides, x, y, batch)
        if out is None:
            raise SpecError(f"view size is not compatible with input tensor's size and stride (at least one "
                            f"dimension spans across two contiguous subspaces). Use .reshape(...) instead. "
                            f"(View of {format_shape(x)} with strides {list(strides[1:])} to {format_shape(y)} "
                            f"per sample; in a spec, a Reshape)")
        return out



@register_layer
@layer_kind
class Permute(_Reshaping):
    """``x.permute(*dims)`` over the batched tensor's dims; ``dims[0]`` must be 0. A view."""

    dims: tuple[int, ...]

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dims", check.dims(self.dims, "dims"))

    def _order(self, x: Shape) -> tuple[int, ...]:
        rank = len(x) + 1
        if len(self.dims) != rank:
            raise SpecError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                            f"length of the desired ordering of dimensions: dims={list(self.dims)} for a "
                            f"{rank}-D batched input {format_shape(('N', *x))}")
        order = tuple(check.dim(d, "dims", rank) for d in self.dims)
        if sorted(order) != list(range(rank)):
            raise SpecError(f"permute(): duplicate dims are not allowed, got dims={list(self.dims)}")
        if order[0] != 0:
            raise SpecError(f"dims={list(self.dims)} moves the batch dimension; alexcost analyses each sample on its own")
        return order

    def output_shape(self, x: Shape) -> Shape:
        order = self._order(x)
        return tuple(x[d - 1] for d in order[1:])

    def view_strides(self, x, y, strides, batch):
        return tuple(strides[d] for d in self._order(x))



@register_layer
@layer_kind
class Transpose(_Reshaping):
    """``x.transpose(dim0, dim1)`` (channel shuffle); neither may be the batch dimension. A view."""

    dim0: int
    dim1: int

    storage: ClassVar[str] = "view"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim0", check.dim_index(self.dim0, "dim0"))
        object.__setattr__(self, "dim1", check.dim_index(self.dim1, "dim1"))

    def _pair(self, x: Shape) -> tuple[int, int]:
        return _batch_dim(self.dim0, "dim0", len(x) + 1), _batch_dim(self.dim1, "dim1", len(x) + 1)

    def output_shape(self, x: Shape) -> Shape:
        a, b = self._pair(x)
        y = list(x)
        y[a - 1], y[b - 1] = y[b - 1], y[a - 1]
        return tuple(y)

    def view_strides(self, x, y, strides, batch):
        a, b = self._pair(x)
        out = list(strides)
        out[a], out[b] = out[b], out[a]
        return tuple(out)



@layer_kind
class _Pieces(_Reshaping):
    """Views of consecutive slices along ``dim``: several outputs, ``"name.0"``, ``"name.1"``, ..."""

    multi_output: ClassVar[bool] = True
    storage: ClassVar[str] = "view"

    def sizes(self, size: int) -> list[int]:
        raise NotImplementedError

    def output_shape(self, x: Shape):
        d = _batch_dim(self.dim, "dim", len(x) + 1)
        return tuple((*x[:d - 1], s, *x[d:]) for s in self.sizes(x[d - 1]))

    def view_strides(self, x, y, strides, batch):
        return tuple(strides for _ in y)


@register_layer
@layer_kind
class Chunk(_Pieces):
    """``x.chunk(chunks, dim)``: slices of ``ceil(size/chunks)`` (the last may be smaller, and
    there may be fewer than ``chunks``, as in torch). Views."""

    chunks: int
    dim: int = 0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "chunks", check.integer(self.chunks, "chunks"))
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))

    def sizes(self, size: int) -> list[int]:
        step = -(-size // self.chunks)
        if -(-size // step) > 4096:
            raise SpecError(f"chunk() would give {-(-size // step)} pieces; alexcost takes at most 4096")
        return [min(step, size - start) for start in range(0, size, step)]



@register_layer
@layer_kind
class Split(_Pieces):
    """``x.split(split_size_or_sections, dim)``: slices of one size (the last may be smaller), or of
    the listed sizes, which must add up to the dimension. Views."""

    split_size_or_sections: int | tuple[int, ...]
    dim: int = 0

    def __post_init__(self):
        super().__post_init__()
        value = self.split_size_or_sections
        if isinstance(value, (tuple, list)):
            if not value or len(value) > 4096:
                raise SpecError(f"split_size_or_sections must list 1 to 4096 sizes, got {check.shown(value)}")
            value = tuple(check.integer(v, "split_size_or_sections") for v in value)
        else:
            value = check.integer(value, "split_size_or_sections")
        object.__setattr__(self, "split_size_or_sections", value)
        object.__setattr__(self, "dim", check.dim_index(self.dim, "dim"))

    def sizes(self, size: int) -> list[int]:
        value = self.split_size_or_sections
        if isinstance(value, tuple):
            if sum(value) != size:
                raise SpecError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's "
                                f"size at dimension {self.dim}), but got split_sizes={list(value)}")
            return list(value)
        if -(-size // value) > 4096:
            raise SpecError(f"split() would give {-(-size // value)} pieces; alexcost takes at most 4096")
        return [min(value, size - start) for start in range(0, size, value)]



@register_layer
@layer_kind
class Contiguous(_Reshaping):
    """``x.contiguous()``: the input itself when it is contiguous already, else a copy. No ops."""

    storage: ClassVar[str] = "strided"

    def output_shape(self, x: Shape) -> Shape:
        return x

    def view_strides(self, x, y, strides, batch):
        return strides if st.is_contiguous((batch, *x), strides) else None



@register_layer
@layer_kind
class Mean(_Reshaping):
    """``x.mean(dim, keepdim)`` over dims of the batched tensor (not the batch): per output
    element, the elements it averages (adds and one divide), ``prod(x)`` ops in all."""

    dim: int | tuple[int, ...]
    keepdim: bool = False

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dim", check.dims(self.dim, "dim"))
        object.__setattr__(self, "keepdim", check.flag(self.keepdim, "keepdim"))

    def output_shape(self, x: Shape) -> Shape:
        reduced = {_batch_dim(d, "dim", len(x) + 1) for d in self.dim}
        if len(reduced) != len(self.dim):
            raise SpecError(f"dim {list(self.dim)} appears multiple times in the list of dims")
        return tuple(1 if i + 1 in reduced else s for i, s in enumerate(x) if self.keepdim or i + 1 not in reduced)

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(x)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(x) if grads.input else 0


    def label(self) -> str:
        return "Mean"


@register_layer
@layer_kind
class Clone(Layer):
    """A copy of its input in new storage: ``x.clone()``, or ``torch.cat`` of a list holding one
    tensor (DenseNet's first layer of each block concatenates a list of one). No ops."""

    layout: ClassVar[str] = "elementwise"

    def output_shape(self, x: Shape) -> Shape:
        return x

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """A copy keeps nothing for the backward pass: its gradient is the output's."""
        return ()


    def label(self) -> str:
        return "Copy"
