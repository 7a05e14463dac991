"""Many candidate networks in, a table of totals out: the batch API for architecture search.

`evaluate` costs each candidate (a spec dict, as spec files hold them, or a built `Network`)
and never raises for a bad one: its row says why it is invalid, and the others go on.
Candidates drawn from one search space share most of their layers, so a layer entry seen
before is not parsed and checked again (remembered for the length of one call), and what
the rules of the layer object it gave, shared by every candidate that holds the entry, give
for an input shape is worked out once (`alexcost.engine.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from marshal import dumps
from typing import NamedTuple

from .engine.bulk import paused_gc
from .engine.cost import DTYPE_BYTES, dtype_bytes
from .errors import SpecError
from .engine.network import Network

COLUMNS = ("index", "name", "params", "macs", "flops", "activation_bytes", "output_shape", "error")
"""What each row holds (``error`` is None for a valid candidate; its counts are then ints)."""


class Candidate(NamedTuple):
    """One candidate's totals for the batch and dtype of the call (counts None when invalid)."""

    index: int
    name: str
    params: int | None
    macs: int | None
    flops: int | None
    activation_bytes: int | None
    output_shape: tuple | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Results:
    """The rows of `evaluate`, in the order the candidates came."""

    rows: tuple[Candidate, ...]
    batch: int
    dtype: str

    @property
    def valid(self) -> tuple[Candidate, ...]:
        return tuple(r for r in self.rows if r.ok)

    @property
    def invalid(self) -> tuple[Candidate, ...]:
        return tuple(r for r in self.rows if not r.ok)

    def __str__(self) -> str:
        """One line; `alexcost.render.search.table` gives the table."""
        return (f"{len(self.rows)} candidates, {len(self.valid)} valid, {len(self.invalid)} invalid "
                f"(batch {self.batch}, {self.dtype})")


def _key(entry):
    """A layer entry as a hashable key: its items in order, each value with its type (``3`` and
    ``3.0``, ``1`` and ``true`` are equal in Python but not to a spec), lists as tuples. An entry
    written with its keys in another order is a different key, and is parsed once more: no harm."""
    return tuple([(k, v.__class__, tuple([_key_value(x) for x in v]) if v.__class__ is list else v)
                  for k, v in entry.items()])


def _key_value(value):
    return (value.__class__, tuple(_key_value(x) for x in value) if value.__class__ is list else value)


_PLAIN = frozenset((str, int, float, bool, type(None)))


def _plain(entry) -> bool:
    """Is ``entry`` a dict of str, int, float, bool or None values, or lists or tuples of them?
    Then its `marshal` bytes name it exactly: marshal writes each of these types with a code of
    its own (it refuses their subclasses), so equal bytes mean equal values of equal types. (It
    writes every bytes-like object alike, which is why only plain entries are remembered by them.)"""
    if entry.__class__ is not dict:
        return False
    for value in entry.values():
        if value.__class__ is list or value.__class__ is tuple:
            if not all(x.__class__ in _PLAIN for x in value):
                return False
        elif value.__class__ not in _PLAIN:
            return False
    return True


def _marshalled(entry) -> bytes | None:
    try:
        return dumps(entry, 0)
    except (ValueError, TypeError):
        return None


class _Memo:
    """What one `evaluate` call remembers: built layers by entry. The rules cache keeps what each
    layer's rules give per input shape (`alexcost.engine.rules`), so a layer shared by many
    candidates is checked and counted once per input."""

    def __init__(self):
        from .specs.specfile import TOP_LEVEL_KEYS, layer_from_dict, network_from_dict

        self.parse, self.checked = layer_from_dict, network_from_dict
        self.top_level = frozenset(TOP_LEVEL_KEYS)
        self.layers: dict = {}
        self.made: dict = {}  # layers by their arguments but name and inputs (see `layer_from_dict`)

    def layer(self, entry, index: int, key: bytes | None):
        """Parse an entry not seen before, remembered by its marshal bytes when they name it
        exactly (`_plain`), else by `_key`."""
        if key is not None and _plain(entry):
            layer = self.layers[key] = self.parse(entry, index, self.made)
            return layer
        try:
            key = _key(entry)
            layer = self.layers.get(key)
        except (TypeError, AttributeError):  # not a flat entry of plain values: the parser says what is wrong
            return self.parse(entry, index, self.made)
        if layer is None:
            layer = self.layers[key] = self.parse(entry, index, self.made)
        return layer

    def network(self, candidate, index: int) -> Network:
        if isinstance(candidate, Network):
            return candidate
        if isinstance(getattr(candidate, "network", None), Network):  # a module read by from_module
            return candidate.network
        if not isinstance(candidate, dict) or not isinstance(candidate.get("layers"), list):
            return self.checked(candidate if isinstance(candidate, dict) else {}, f"candidate{index}")
        if not candidate.keys() <= self.top_level or "input_shape" not in candidate:
            return self.checked(candidate, f"candidate{index}")
        entries = candidate["layers"]
        try:  # version 0: no references, no interning: equal entries, equal bytes
            keys = list(map(dumps, entries, repeat(0, len(entries))))
        except (ValueError, TypeError):  # marshal refuses subclasses of its types
            keys = [_marshalled(entry) for entry in entries]
        layers = list(map(self.layers.get, keys))
        if not all(layers):  # some entry not seen before (a layer is true unless its kind says otherwise)
            for i, (entry, key) in enumerate(zip(entries, keys)):
                if layers[i] is None:
                    layers[i] = self.layer(entry, i, key)
        return Network(candidate["input_shape"], layers, name=candidate.get("name", f"candidate{index}"))


def _row(index: int, network: Network, batch: int, itemsize: int) -> Candidate:
    """The candidate's totals, from the network's per-sample sums (`Network.sums`)."""
    s = network.sums(batch, itemsize)
    return Candidate(index, network.name, s.weight_params + s.bias_params, batch * s.macs,
                     batch * (2 * s.macs + s.bias_adds + s.other_ops), batch * s.stored * itemsize,
                     network.output_shapes[-1])


def evaluate(candidates, *, batch: int = 1, dtype: str = "float32") -> Results:
    """Cost every candidate; an invalid one gets its one-line error in its row instead of raising.

    ``candidates`` is any iterable of spec dicts (``{"input_shape": ..., "layers": [...]}``), built
    Networks, or modules read by ``from_module`` (their parameters counted once, as there). Each row: parameters, MACs, FLOPs (``2*MACs + bias adds + other ops``) and
    activation bytes (each tensor once) for ``batch`` samples at ``dtype``, and the output shape.
    """
    from .layers import arguments as check

    batch = check.integer(batch, "batch")
    itemsize = dtype_bytes(dtype)
    memo, rows = _Memo(), []
    with paused_gc(1_000_000):  # candidates make no reference cycles: the collector would only scan
        for index, candidate in enumerate(candidates):
            try:
                network = memo.network(candidate, index)
                if batch > 1:
                    network.check_batch(batch)
                row = _row(index, network, batch, itemsize)
                if network is not candidate and getattr(candidate, "network", None) is network:
                    row = row._replace(params=candidate.params)  # each parameter once, as from_module counts
            except SpecError as err:
                name = candidate.name if isinstance(candidate, Network) else candidate.network.name if isinstance(
                    getattr(candidate, "network", None), Network) else (
                    candidate.get("name") if isinstance(candidate, dict) and isinstance(candidate.get("name"), str)
                    else f"candidate{index}")
                row = Candidate(index, name, None, None, None, None, None, str(err))
            rows.append(row)
    return Results(tuple(rows), batch, dtype)


def smallest_input(network: Network) -> tuple[int, ...] | None:
    """The smallest per-sample input ``network`` takes, of its own input's rank and channels: its
    spatial sides (every dimension after the first) from 1 up to its own, all equal when its own are,
    else each on its own with the others kept; None when the network takes only other ranks."""
    own = network.input_shape
    if len(own) < 2:
        return None

    def takes(shape) -> bool:
        try:
            network.with_input_shape(shape)
        except SpecError:
            return False
        return True

    sides = own[1:]
    if len(set(sides)) == 1:
        return next(((own[0], *[s] * len(sides)) for s in range(1, sides[0] + 1) if takes((own[0], *[s] * len(sides)))),
                    None)
    shape = list(own)
    for k in range(1, len(own)):
        shape[k] = next((s for s in range(1, own[k] + 1) if takes((*shape[:k], s, *shape[k + 1:]))), own[k])
    return tuple(shape)


__all__ = ["COLUMNS", "Candidate", "DTYPE_BYTES", "Results", "evaluate", "smallest_input"]
