"""Cost records: one LayerCost per layer, Totals over any rows, NetworkCost for a whole run.

Counts are exact Python ints for the whole batch, except parameter and buffer counts,
which do not depend on the batch. Shapes are per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

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


@dataclass(frozen=True)
class LayerCost:
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

    @classmethod
    def _make(cls, index, name, layer, input_shape, output_shape, weight_params, bias_params, macs,
              bias_adds, other_ops, batch, itemsize, inputs=None, buffers=0, buffer_bytes=0,
              new_storage=True) -> "LayerCost":
        """The same record as ``LayerCost(...)``, built three times faster for the engine's
        per-layer loop: a frozen dataclass's ``__init__`` pays ``object.__setattr__`` per field."""
        row = object.__new__(cls)
        row.__dict__.update(index=index, name=name, layer=layer, input_shape=input_shape,
                            output_shape=output_shape, weight_params=weight_params, bias_params=bias_params,
                            macs=macs, bias_adds=bias_adds, other_ops=other_ops, batch=batch, itemsize=itemsize,
                            inputs=inputs, buffers=buffers, buffer_bytes=buffer_bytes, new_storage=new_storage)
        return row

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
    def of(cls, rows, itemsize: int = 4, unused_params: int = 0) -> "Totals":
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


class cached_property:  # noqa: N801 - functools' name, whose 3.11 version takes a lock on every first use
    """A property computed on first use and kept in the instance's ``__dict__`` (functools'
    own, without the lock Python 3.11 takes: a cost record is not shared while it is made)."""

    def __init__(self, func):
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


def percent(part: int, whole: int) -> float:
    """``100*part/whole`` (0 when ``whole`` is 0): the one place shares are computed."""
    return 100.0 * part / whole if whole else 0.0


@dataclass(frozen=True)
class NetworkCost:
    """Every layer's cost for one batch size and dtype, plus totals and the conv-vs-FC split.

    ``str(cost)`` is the report table; ``graph`` is True unless every layer reads the one before it.
    Built by `Network.cost`, the per-layer records are made on first use of ``layers``: the
    totals come straight from the network's per-sample counts, so ``cost().totals`` builds no rows.
    """

    model: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    layers: tuple[LayerCost, ...] | None = None
    graph: bool = False
    unused_params: int = 0
    network: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.layers is None:
            if self.network is None:
                raise TypeError("NetworkCost needs its layers, or the network to derive them from")
            object.__delattr__(self, "layers")  # made on first use, by __getattr__
        elif self.network is not None:  # rows given (dataclasses.replace too): they are the record
            object.__setattr__(self, "network", None)

    @classmethod
    def _of(cls, network, batch: int, dtype: str) -> "NetworkCost":
        """``NetworkCost(network.name, network.input_shape, batch, dtype, None, not
        network.is_chain, network=network)``, without a frozen dataclass's per-field set."""
        cost = object.__new__(cls)
        cost.__dict__.update(model=network.name, input_shape=network.input_shape, batch=batch, dtype=dtype,
                             graph=not network.is_chain, unused_params=0, network=network)
        return cost

    def __getattr__(self, name):
        if name == "layers" and self.__dict__.get("network") is not None:
            rows = self.network.rows(self.batch, self.dtype, self._counts)
            object.__setattr__(self, "layers", rows)
            return rows
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @cached_property
    def _counts(self) -> tuple:
        """The network's per-sample counts, once per cost record."""
        return self.network.counts(DTYPE_BYTES[self.dtype])

    @cached_property
    def totals(self) -> Totals:
        size = DTYPE_BYTES[self.dtype]
        if self.network is not None:
            return self.network.totals(self.batch, size, None, self.unused_params,
                                       self.__dict__.get("_counts"))
        return Totals.of(self.layers, size, self.unused_params)

    @cached_property
    def split(self) -> dict[str, Totals]:
        """Totals of the ``"conv"`` and ``"fc"`` groups (Conv2d and Linear layers)."""
        size = DTYPE_BYTES[self.dtype]
        if self.network is not None:
            return {g: self.network.totals(self.batch, size, g, 0, self.__dict__.get("_counts"))
                    for g in ("conv", "fc")}
        return {g: Totals.of([r for r in self.layers if r.group == g], size) for g in ("conv", "fc")}

    @property
    def output_shape(self) -> tuple:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    def __getitem__(self, name: str) -> LayerCost:
        """A layer's cost by name."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self) -> str:
        from ..render.report import render

        return render(self)

    def __repr__(self) -> str:
        t = self.totals
        return (f"NetworkCost(model={self.model!r}, batch={self.batch}, dtype={self.dtype!r}, "
                f"layers={len(self.layers)}, params={t.params:,}, macs={t.macs:,})")


del NetworkCost.layers  # the dataclass default stays in __init__; lookups fall through to __getattr__
