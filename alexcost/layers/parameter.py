"""A tensor the module holds, used as an operand: Parameter (ConvNeXt's layer scale), Buffer (a fixed table),
Constant (a tensor made from constants: a mask, a position table), PositionBias (a table gathered by a fixed
index: a relative position bias). Layers that read only such tensors run once per forward pass, whatever the
batch."""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer


@layer_kind
class _Held(Layer):
    """A tensor the module holds, of ``shape`` (its full shape: it has no batch dimension; ``[]`` a single number,
    NFNet's skip gain), read by the layers that name it in ``inputs``; its output is the tensor itself, not an
    activation, and it keeps nothing."""

    shape: tuple[int, ...]

    arity: ClassVar[int | None] = 0
    held: ClassVar[bool] = True
    """Is the output a tensor the module holds (resident, never kept by autograd as an activation), not one the
    forward pass makes?"""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "shape", () if isinstance(self.shape, (tuple, list)) and not self.shape else
                           check.shape(self.shape, "shape"))

    def output_shape(self, x) -> Shape:
        return self.shape

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()


@register_layer
@layer_kind
class Parameter(_Held):
    """A learned tensor of ``shape`` (its full shape: it has no batch dimension), read by the
    layers that name it in ``inputs`` (a Mul, say, broadcasting it). ``prod(shape)``
    parameters, no ops; its output is the weight itself, not an activation."""

    def weight_params(self, x) -> int:
        return prod(self.shape)

    def label(self) -> str:
        return "Parameter"


@register_layer
@layer_kind
class Buffer(_Held):
    """A tensor the module holds as a buffer (registered, not learned) of ``shape``, its full shape: a table
    of relative coordinates an MLP reads once per pass, or a fixed scale broadcast against activations.
    No parameters, ``prod(shape)`` buffer elements, no ops; like a `Parameter`'s, its output is not an
    activation, and it gets no gradient."""

    def buffers(self, x) -> int:
        return prod(self.shape)


@register_layer
@layer_kind
class Constant(_Held):
    """A tensor of ``shape`` (its full shape: no batch dimension) made from constants alone. It is created in the
    forward pass (``torch.zeros``, ``torch.arange``) or held by the traced graph as a constant (a shift mask, a
    rotary table). Neither a parameter nor a buffer: no parameters, no buffers, no ops (its values never
    matter); its ``prod(shape)`` elements are an output made once per forward pass, and it gets no gradient."""

    held: ClassVar[bool] = False

    def label(self) -> str:
        return "Constant"


@register_layer
@layer_kind
class PositionBias(Layer):
    """A parameter ``table`` gathered by a fixed index along ``dim``, then viewed, permuted or copied to
    ``shape`` (its full shape, no batch dimension): a relative position bias, ``table[index]`` (``dim=0``) or
    ``table[:, index]`` (``dim=1``, LeViT's and EfficientFormer's), added to attention's scores.
    ``prod(table)`` parameters, a buffer (the index, int64, one per slice of ``table`` along ``dim``
    gathered; with ``index_buffer=False`` the index is computed in the forward pass instead, as MViT's
    ``torch.arange`` arithmetic makes it: no buffer), no ops; like a
    `Parameter`'s, its output is read by an `Add` and is not counted as an activation (torch computes it
    once per forward pass, whatever the batch: ``prod(shape)`` elements). Backward: the gradient is
    scattered back into the table, one add per element of ``shape``; autograd keeps the index only (a
    buffer; a computed one it keeps as a tensor of its own, which alexcost does not count: training refused)."""

    table: tuple[int, ...]
    shape: tuple[int, ...]
    dim: int = 0
    index_buffer: bool = True

    arity: ClassVar[int | None] = 0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "table", check.shape(self.table, "table"))
        object.__setattr__(self, "shape", check.shape(self.shape, "shape"))
        object.__setattr__(self, "dim", check.dim(self.dim, "dim", len(self.table)))
        object.__setattr__(self, "index_buffer", check.flag(self.index_buffer, "index_buffer"))
        row = self._row()
        if prod(self.shape) % row:
            slices = "rows" if self.dim == 0 else f"slices along dim {self.dim}"
            raise SpecError(f"PositionBias: {slices} of table {list(self.table)} ({row} elements each) cannot make "
                            f"a tensor of shape {list(self.shape)}")

    def _row(self) -> int:
        """Elements of one slice of the table along ``dim`` (what one index gathers)."""
        return prod(self.table) // self.table[self.dim]

    def output_shape(self, x) -> Shape:
        return self.shape

    def weight_params(self, x) -> int:
        return prod(self.table)

    def _indices(self) -> int:
        """The index's elements: one per slice gathered."""
        return prod(self.shape) // self._row()

    def buffers(self, x) -> int:
        """The index, one int64 per slice gathered, when the module holds it (``index_buffer``)."""
        return self._indices() if self.index_buffer else 0

    def buffer_bytes(self, x, itemsize: int) -> int:
        return self.buffers(x) * 8

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        return prod(self.shape) if grads.weight else 0

    def check_training(self, x, batch: int) -> None:
        if not self.index_buffer:
            raise SpecError("PositionBias with index_buffer=False: autograd keeps the index computed in the forward "
                            "pass for the table's gradient, which alexcost does not count for a layer with no input; "
                            "it derives no training step")

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def label(self) -> str:
        return "Position bias"
