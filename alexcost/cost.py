"""Cost records: one LayerCost per layer, Totals over any rows, NetworkCost for a whole run.

Counts are exact Python ints for the whole batch, except parameter counts, which
do not depend on the batch. Shapes are per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod

from .errors import SpecError

DTYPE_BYTES = {"float32": 4, "tf32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
"""Bytes per element of each dtype alexcost sizes memory at (tf32 stores float32)."""


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except (KeyError, TypeError):
        raise SpecError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPE_BYTES)}") from None


@dataclass(frozen=True)
class LayerCost:
    """What one layer costs for a batch of ``batch`` samples.

    ``forward`` is the seed table's "Forward Computation": ``macs + bias_adds``.
    ``flops`` is ``2*macs + bias_adds + other_ops``.
    """

    index: int
    name: str
    layer: object
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weight_params: int
    bias_params: int
    macs: int
    bias_adds: int
    other_ops: int
    batch: int = 1
    itemsize: int = 4

    @classmethod
    def _make(cls, index, name, layer, input_shape, output_shape, weight_params, bias_params, macs,
              bias_adds, other_ops, batch, itemsize) -> "LayerCost":
        """The same record as ``LayerCost(...)``, built three times faster for the engine's
        per-layer loop: a frozen dataclass's ``__init__`` pays ``object.__setattr__`` per field."""
        row = object.__new__(cls)
        row.__dict__.update(index=index, name=name, layer=layer, input_shape=input_shape,
                            output_shape=output_shape, weight_params=weight_params, bias_params=bias_params,
                            macs=macs, bias_adds=bias_adds, other_ops=other_ops, batch=batch, itemsize=itemsize)
        return row

    @property
    def type(self) -> str:
        return type(self.layer).__name__

    @property
    def group(self) -> str:
        return self.layer.group

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def forward(self) -> int:
        return self.macs + self.bias_adds

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.bias_adds + self.other_ops

    @property
    def input_elements(self) -> int:
        return self.batch * prod(self.input_shape)

    @property
    def input_bytes(self) -> int:
        return self.input_elements * self.itemsize

    @property
    def output_elements(self) -> int:
        return self.batch * prod(self.output_shape)

    @property
    def output_bytes(self) -> int:
        return self.output_elements * self.itemsize

    @property
    def weight_bytes(self) -> int:
        return self.params * self.itemsize


COUNTS = ("params", "weight_params", "bias_params", "macs", "bias_adds", "other_ops", "flops",
          "forward", "output_elements", "output_bytes", "weight_bytes")
"""The count fields LayerCost and Totals share, in report order."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums of the counts of some layers (all of them, or one group)."""

    weight_params: int = 0
    bias_params: int = 0
    macs: int = 0
    bias_adds: int = 0
    other_ops: int = 0
    output_elements: int = 0
    itemsize: int = 4

    @classmethod
    def of(cls, rows, itemsize: int = 4) -> "Totals":
        w = b = m = a = o = e = 0
        for r in rows:
            w += r.weight_params
            b += r.bias_params
            m += r.macs
            a += r.bias_adds
            o += r.other_ops
            e += r.output_elements
        return cls(w, b, m, a, o, e, itemsize)

    params = LayerCost.params
    forward = LayerCost.forward
    flops = LayerCost.flops
    weight_bytes = LayerCost.weight_bytes

    @property
    def output_bytes(self) -> int:
        return self.output_elements * self.itemsize


def percent(part: int, whole: int) -> float:
    """``100*part/whole`` (0 when ``whole`` is 0): the one place shares are computed."""
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class NetworkCost:
    """Every layer's cost for one batch size and dtype, plus totals and the conv-vs-FC split."""

    model: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    layers: tuple[LayerCost, ...]

    @cached_property
    def totals(self) -> Totals:
        return Totals.of(self.layers, DTYPE_BYTES[self.dtype])

    @cached_property
    def split(self) -> dict[str, Totals]:
        """Totals of the ``"conv"`` and ``"fc"`` groups (Conv2d and Linear layers)."""
        size = DTYPE_BYTES[self.dtype]
        return {g: Totals.of([r for r in self.layers if r.group == g], size) for g in ("conv", "fc")}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    def __getitem__(self, name: str) -> LayerCost:
        """A layer's cost by name."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)
