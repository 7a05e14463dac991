"""Cost records: one LayerCost per layer, Totals over any rows, NetworkCost for a whole run.

Counts are exact Python ints for the whole batch, except parameter and buffer counts,
which do not depend on the batch. Shapes are per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod
from typing import NamedTuple

from ..errors import SpecError
from ..layers.base import ParameterShape

DTYPE_BYTES = {"float32": 4, "tf32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
"""Bytes per element of each dtype alexcost sizes memory at (tf32 stores float32)."""


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except (KeyError, TypeError):
        raise SpecError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPE_BYTES)}") from None


def _shapes(value) -> tuple:
    """A layer's shapes as a tuple of shapes (one shape, several, or none)."""
    if not value:
        return ()
    return value if isinstance(value[0], tuple) else (value,)


class LayerCost(NamedTuple):
    """What one layer costs for a batch of ``batch`` samples.

    ``forward`` is the seed table's "Forward Computation": ``macs + bias_adds``.
    ``flops`` is ``2*macs + bias_adds + other_ops``. ``input_shape`` is what the layer's
    rules see: a shape, or a tuple of shapes for a merge (``output_shape`` likewise for a
    multi-output layer). ``inputs`` names the layers it reads (None in a chain).
    ``new_storage``: its output takes memory of its own (False for views, in-place
    layers and identities, which share their input's).
    """

    index: int
    name: str
    layer: object
    input_shape: tuple
    output_shape: tuple
    weight_params: int
    bias_params: int
    macs: int
    bias_adds: int
    other_ops: int
    batch: int = 1
    itemsize: int = 4
    inputs: tuple[str, ...] | None = None
    buffers: int = 0
    buffer_bytes: int = 0
    new_storage: bool = True
    per_pass: bool = False
    """It reads no activation (only parameters, or what was computed from them alone): it runs once per
    forward pass, whatever the batch, and ``batch`` is 1."""

    @property
    def type(self) -> str:
        return type(self.layer).__name__

    @property
    def group(self) -> str:
        return self.layer.group

    @property
    def input_shapes(self) -> tuple:
        """Every input's shape (none for a Parameter)."""
        return _shapes(self.input_shape) if type(self.layer).arity != 1 else (self.input_shape,)

    @property
    def output_shapes(self) -> tuple:
        """Every output's shape."""
        return self.output_shape if type(self.layer).multi_output else (self.output_shape,)

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
        """Elements of every input for the whole batch (a parameter's counted once)."""
        return sum(prod(s) * (1 if isinstance(s, ParameterShape) else self.batch) for s in self.input_shapes)

    @property
    def input_bytes(self) -> int:
        return self.input_elements * self.itemsize

    @property
    def output_elements(self) -> int:
        """Elements of every output for the whole batch (a Parameter's: its weight, once)."""
        per = sum(prod(s) for s in self.output_shapes)
        return per if type(self.layer).arity == 0 else self.batch * per

    @property
    def output_bytes(self) -> int:
        return self.output_elements * self.itemsize

    @property
    def stored_elements(self) -> int:
        """Activation elements this layer adds to memory: its output's, or 0 when the output
        shares storage (a view, an in-place op, an identity; a Parameter's weight)."""
        return self.output_elements if self.new_storage else 0

    @property
    def stored_bytes(self) -> int:
        return self.stored_elements * self.itemsize

    @property
    def weight_bytes(self) -> int:
        return self.params * self.itemsize


COUNTS = ("params", "weight_params", "bias_params", "macs", "bias_adds", "other_ops", "flops",
          "forward", "output_elements", "output_bytes", "weight_bytes", "buffers", "buffer_bytes",
          "stored_bytes")
"""The count fields LayerCost and Totals share, in report order."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums of the counts of some layers (all of them, or one group).

    ``unused_params``: parameters of an imported module that its forward pass never reads
    (torch counts them; no layer holds them). ``stored_bytes`` sums each tensor once.
    """

    weight_params: int = 0
    bias_params: int = 0
    macs: int = 0
    bias_adds: int = 0
    other_ops: int = 0
    output_elements: int = 0
    itemsize: int = 4
    buffers: int = 0
    buffer_bytes: int = 0
    stored_elements: int = 0
    unused_params: int = 0

    @classmethod
    def of_sums(cls, sums, batch: int, itemsize: int, unused_params: int = 0) -> "Totals":
        """The totals of ``batch`` samples from the per-sample sums of the layers' shares
        (`alexcost.engine.rules.Share`)."""
        return cls(sums.weight_params, sums.bias_params, batch * sums.macs + sums.pass_macs,
                   batch * sums.bias_adds + sums.pass_bias_adds, batch * sums.other_ops + sums.pass_other_ops,
                   batch * sums.elements + sums.unbatched, itemsize, sums.buffers, sums.buffer_bytes,
                   batch * sums.stored + sums.unbatched_stored, unused_params)

    @classmethod
    def of(cls, rows, itemsize: int = 4, unused_params: int = 0) -> "Totals":
        """The sums over some `LayerCost` rows."""
        w = b = m = a = o = e = n = nb = s = 0
        for r in rows:
            w += r.weight_params
            b += r.bias_params
            m += r.macs
            a += r.bias_adds
            o += r.other_ops
            e += r.output_elements
            n += r.buffers
            nb += r.buffer_bytes
            if r.new_storage:
                s += r.output_elements
        return cls(w, b, m, a, o, e, itemsize, n, nb, s, unused_params)

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params + self.unused_params

    forward = LayerCost.forward
    flops = LayerCost.flops
    weight_bytes = LayerCost.weight_bytes
    stored_bytes = LayerCost.stored_bytes

    @property
    def output_bytes(self) -> int:
        return self.output_elements * self.itemsize


def percent(part: int, whole: int) -> float:
    """``100*part/whole`` (0 when ``whole`` is 0): the one place shares are computed."""
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class NetworkCost:
    """Every layer's cost for ``batch`` samples of ``network`` at ``dtype``, plus totals and the
    conv-vs-FC split (`Network.cost` makes it).

    The totals come straight from the network's per-sample sums; the per-layer records
    (``layers``) are made on first use, so ``cost().totals`` builds no rows. ``params``, when
    given, holds each layer's ``(weight, bias)`` parameters where the layers' rules alone do not
    say them (an imported module counts a weight two layers share once); ``unused_params``:
    parameters no layer reads, counted in ``totals.params``. ``str(cost)`` is a one-line summary;
    `alexcost.render.report.render` gives the tables.
    """

    network: object
    batch: int = 1
    dtype: str = "float32"
    params: tuple[tuple[int, int], ...] | None = None
    unused_params: int = 0

    @property
    def model(self) -> str:
        return self.network.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.network.input_shape

    @property
    def graph(self) -> bool:
        """True unless every layer reads the one before it."""
        return not self.network.is_chain

    @property
    def itemsize(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @cached_property
    def layers(self) -> tuple[LayerCost, ...]:
        """One `LayerCost` per layer, in order."""
        network, batch, size = self.network, self.batch, self.itemsize
        chain, shares = network.is_chain, network.shares(batch, size)
        params = self.params or [s[:2] for s in shares]
        return tuple([
            LayerCost(i, name, layer, x, y, w, b, batch * s.macs + s.pass_macs, batch * s.bias_adds + s.pass_bias_adds,
                      batch * s.other_ops + s.pass_other_ops, 1 if once else batch, size,
                      None if chain else network.inputs_of(i), s.buffers, s.buffer_bytes, new, once)
            for i, (name, layer, x, y, s, new, (w, b), once) in enumerate(zip(
                network.names, network.layers, network.input_shapes, network.output_shapes, shares,
                network.storage(batch), params, network.once))])

    @cached_property
    def totals(self) -> Totals:
        if self.params is not None:
            return Totals.of(self.layers, self.itemsize, self.unused_params)
        return Totals.of_sums(self.network.sums(self.batch, self.itemsize), self.batch, self.itemsize,
                              self.unused_params)

    @cached_property
    def split(self) -> dict[str, Totals]:
        """Totals of the ``"conv"`` and ``"fc"`` groups (Conv2d and Linear layers)."""
        size = self.itemsize
        if self.params is not None:
            return {g: Totals.of([r for r in self.layers if r.group == g], size) for g in ("conv", "fc")}
        return {g: Totals.of_sums(self.network.sums(self.batch, size, g), self.batch, size) for g in ("conv", "fc")}

    @property
    def output_shape(self) -> tuple:
        return self.network.output_shape

    def __getitem__(self, name: str) -> LayerCost:
        """A layer's cost by name."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self) -> str:
        t = self.totals
        return (f"{self.model}: {len(self.network.layers)} layers, batch {self.batch}, {self.dtype}: "
                f"{t.params:,} parameters, {t.macs:,} MACs, {t.flops:,} FLOPs")

    def __repr__(self) -> str:
        t = self.totals
        return (f"NetworkCost(model={self.model!r}, batch={self.batch}, dtype={self.dtype!r}, "
                f"layers={len(self.network.layers)}, params={t.params:,}, macs={t.macs:,})")
