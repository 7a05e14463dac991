"""The Layer base class, the registry of kinds, and what every kind shares.

A kind is one frozen, keyword-only dataclass holding every fact about it: its
output-shape rule (which also validates the input), its parameter and buffer
counts, its MACs, bias adds and other ops, what fvcore and torch count for it,
whether its output shares storage with its input, and its torch module.

Shapes are per sample (no batch dimension). A kind with ``arity == 1`` sees one
input shape ``x``; a kind with several inputs (``arity`` None, or > 1) sees a tuple
of shapes. A kind with ``multi_output`` returns a tuple of shapes as ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from math import prod
from typing import ClassVar

from .. import arguments as check
from ..errors import SpecError, format_shape

Shape = tuple[int, ...]

INPUT = "input"
"""The network input's name, as ``inputs`` lists refer to it."""

class ParameterShape(tuple):
    """The full shape of a tensor without a batch dimension (a `Parameter`'s), as merges see it."""


LAYER_KINDS: dict[str, type["Layer"]] = {}
"""Layer kinds by ``type`` name, as spec files name them."""


def register_layer(cls: type["Layer"] | None = None, *, replace: bool = False):
    """Make a `Layer` subclass available to spec files under its class name.

    Use as a decorator, ``@register_layer``; a name already taken needs ``replace=True``.
    """
    def add(kind: type[Layer]) -> type[Layer]:
        if not (isinstance(kind, type) and issubclass(kind, Layer)):
            raise TypeError(f"register_layer expects a Layer subclass, got {kind!r}")
        key = kind.__name__
        if key in LAYER_KINDS and LAYER_KINDS[key] is not kind and not replace:
            raise ValueError(f"a layer kind named {key!r} is already registered; pass replace=True")
        LAYER_KINDS[key] = kind
        return kind
    return add if cls is None else add(cls)


def side(value) -> str:
    """A pair shown as the seed shows it: ``4`` when square, ``4, 2`` otherwise."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]) if value[0] == value[1] else f"{value[0]}, {value[1]}"
    return "" if value is None else str(value)


def need_rank(layer: "Layer", x: Shape, rank: int, form: str) -> None:
    """Refuse an input of another rank (per sample), in the kind's own words."""
    if len(x) != rank:
        raise SpecError(f"{type(layer).__name__} expects a {form} input per sample, got {format_shape(x)}")


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base of every layer kind.

    A subclass defines `output_shape` (which also validates the input) and overrides
    the counts it has; the defaults are zero. ``x`` is the per-sample input shape (a
    tuple of them for several inputs), ``y`` the per-sample output shape. ``group``
    files the layer under ``"conv"``, ``"fc"`` or ``"other"`` for the conv-vs-FC split.
    ``inputs`` names the nodes the layer reads (default: the layer before it; the
    network input is called ``"input"``; output ``k`` of a multi-output node ``n`` is ``"n.k"``).
    """

    name: str | None = None
    inputs: tuple[str, ...] | None = None
    group: ClassVar[str] = "other"
    arity: ClassVar[int | None] = 1
    """How many inputs: 1 (``x`` is a shape), 0 (a source), None (two or more; ``x`` is a tuple)."""
    multi_output: ClassVar[bool] = False
    """True when the output is a tuple of tensors (``y`` is a tuple of shapes)."""
    layout: ClassVar[str] = "contiguous"
    """The memory layout of a new output: "contiguous", "elementwise" (the input's dimension
    order, as torch's TensorIterator keeps it), "format" (channels-last in, channels-last out) or
    "common format" (channels-last when every input is, as torch.cat decides)."""

    def __post_init__(self):
        if self.name is not None:
            object.__setattr__(self, "name", check.name(self.name))
        if self.inputs is not None:
            object.__setattr__(self, "inputs", check.references(self.inputs))

    # -- shape ---------------------------------------------------------------
    def output_shape(self, x: Shape) -> Shape:
        """The per-sample output shape, or `SpecError` if ``x`` does not fit."""
        raise NotImplementedError(f"{type(self).__name__} must define output_shape")

    # -- counts (per sample) ---------------------------------------------------
    def weight_params(self, x: Shape) -> int:
        return 0

    def bias_params(self, x: Shape) -> int:
        return 0

    def buffers(self, x: Shape) -> int:
        """Elements of the module's buffers (BatchNorm's running statistics): memory, not parameters."""
        return 0

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        """Bytes of those buffers when floating-point ones are ``itemsize`` wide."""
        return self.buffers(x) * itemsize

    def macs(self, x: Shape, y: Shape) -> int:
        return 0

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 0

    def fvcore_count(self, x: Shape, y: Shape) -> int | None:
        """What fvcore's FlopCountAnalysis counts for this layer and one sample (None: it
        cannot count the op). Default: the MACs (fvcore counts one per multiply-accumulate of
        convolutions and matrix products, and nothing for elementwise ops)."""
        return self.macs(x, y)

    def torch_flops(self, x: Shape, y: Shape) -> int:
        """What ``torch.utils.flop_counter.FlopCounterMode`` counts for one sample: 2 per MAC of
        convolutions and matrix products, nothing else."""
        return 2 * self.macs(x, y)

    # -- storage -----------------------------------------------------------------
    def view_strides(self, x: Shape, y: Shape, strides: tuple[int, ...], batch: int):
        """The output's strides (batch stride first) when the output is a view of (or the same
        tensor as) input 0, whose strides are ``strides``; None when it is new storage.
        ``batch`` matters where torch decides by the full shape (1: one sample)."""
        return None

    # -- presentation ------------------------------------------------------------
    def args(self) -> dict:
        """The torch constructor arguments as given (``name`` and ``inputs`` excluded)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "inputs")}

    def torch_args(self, x: Shape) -> dict:
        """Arguments for ``torch.nn.<type>(**args)`` on input ``x`` (inferred ones filled in)."""
        return self.args()

    def torch_module(self, x: Shape):
        """The equivalent torch module (imports torch). A custom kind overrides this."""
        import torch.nn

        kind = getattr(torch.nn, type(self).__name__, None)
        if kind is None:
            raise SpecError(f"{type(self).__name__} has no torch.nn counterpart; define torch_module() on it")
        return kind(**self.torch_args(x))

    def columns(self) -> tuple[str, str, str, str]:
        """The seed table's Filter, Depth, Stride and Padding cells."""
        return ("", "", "", "")

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        """The parameter count as arithmetic, e.g. ``(11*11*3 + 1)*96`` ('' if none).

        ``x_factors`` is ``x`` as the seed writes it: ``(256, 6, 6)`` for a flattened 9216.
        """
        return ""

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        """``macs + bias_adds`` per sample as arithmetic ('' if none)."""
        return ""

    def label(self) -> str:
        """A short description for tables: ``Max Pooling``."""
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class Elementwise(Layer):
    """Shape-preserving layer doing ``ops_per_element`` ops on every element."""

    ops_per_element: ClassVar[int] = 1
    layout: ClassVar[str] = "elementwise"

    def output_shape(self, x: Shape) -> Shape:
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * self.ops_per_element


@dataclass(frozen=True, kw_only=True)
class Passthrough(Elementwise):
    """The input itself at inference (Identity, Dropout, stochastic depth): no ops, no new storage."""

    ops_per_element: ClassVar[int] = 0

    def view_strides(self, x, y, strides, batch):
        return strides


@dataclass(frozen=True, kw_only=True)
class InplaceElementwise(Elementwise):
    """An elementwise activation with torch's ``inplace`` flag: in place, the output is the input."""

    inplace: bool = False

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "inplace", check.flag(self.inplace, "inplace"))

    def view_strides(self, x, y, strides, batch):
        return strides if self.inplace else None
