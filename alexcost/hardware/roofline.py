"""The roofline model and the answer to "where does the time go?".

Conventions (all counts from `Network.cost`, never re-derived):

* bytes moved by a layer = input + weights + output at the run's dtype; a layer with
  no ops at all (Flatten, Dropout at inference: a view or an identity) moves nothing.
* arithmetic intensity = FLOPs / bytes moved (FLOPs = 2*MACs + bias adds + other ops).
* lower bound = ``max(FLOPs / peak FLOP/s, bytes / bandwidth)``; the layer is
  compute-bound when the first term is the larger, memory-bound otherwise;
  ``x bound`` = measured median / lower bound (1 would be perfect).
* peaks: the better of a large matrix product (2*n^3 FLOPs) and a large 3x3
  convolution, each the best of several runs at the run's dtype; and the best of
  several device-to-device copies (counting bytes read and written); or the values
  the user gives.
* shares: a layer's time share is its median over the sum of all layers' medians;
  MAC and parameter shares are over the network's totals. Groups: ``conv`` (Conv2d),
  ``fc`` (Linear) and ``other`` (everything else); a group's bound is the roofline of
  its summed FLOPs and bytes, as if it were one kernel.

Only `measure_peaks` touches torch (imported when it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..engine.cost import NetworkCost, Totals, percent
from .kernels import GROUPS, group_of


# -- peaks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Peaks:
    """The device's peak arithmetic rate (FLOP/s) and memory bandwidth (bytes/s), and where each came from."""

    flops_per_s: float
    bytes_per_s: float
    flops_source: str
    bytes_source: str

    @property
    def ridge(self) -> float:
        """The intensity (FLOP/byte) above which a kernel can be compute-bound."""
        return self.flops_per_s / self.bytes_per_s

    def to_dict(self) -> dict:
        return {"flops_per_s": self.flops_per_s, "bytes_per_s": self.bytes_per_s,
                "ridge_flop_per_byte": self.ridge,
                "flops_source": self.flops_source, "bytes_source": self.bytes_source}


# -- per-layer model ----------------------------------------------------------------------

def bytes_moved(row) -> int:
    """Input + weights + output bytes; 0 for a layer with no ops (a view or identity)."""
    if row.macs + row.bias_adds + row.other_ops == 0:
        return 0
    return row.input_bytes + row.weight_bytes + row.output_bytes


@dataclass(frozen=True)
class Bound:
    """The roofline lower bound for some FLOPs and bytes on some peaks."""

    flops: int
    bytes: int
    compute_ms: float
    memory_ms: float

    @classmethod
    def of(cls, flops: int, nbytes: int, peaks: Peaks) -> "Bound":
        return cls(flops, nbytes, flops / peaks.flops_per_s * 1e3, nbytes / peaks.bytes_per_s * 1e3)

    @property
    def ms(self) -> float:
        return max(self.compute_ms, self.memory_ms)

    @property
    def kind(self) -> str | None:
        """``"compute"`` or ``"memory"`` (None when there is nothing to do)."""
        if self.ms == 0:
            return None
        return "compute" if self.compute_ms >= self.memory_ms else "memory"

    @property
    def intensity(self) -> float | None:
        return self.flops / self.bytes if self.bytes else None

    def ratio(self, measured_ms: float) -> float | None:
        return measured_ms / self.ms if self.ms else None

    def to_dict(self, measured_ms: float) -> dict:
        """The roofline columns of a JSON record, for something measured at ``measured_ms``."""
        return {"flops": self.flops, "bytes_moved": self.bytes, "intensity": self.intensity,
                "bound_ms": self.ms, "bound": self.kind, "bound_ratio": self.ratio(measured_ms)}


@dataclass(frozen=True)
class LayerTime:
    """One layer at one batch: measured time, static counts, roofline and shares."""

    name: str
    type: str
    group: str
    stats: object  # timing.Stats
    macs: int
    params: int
    bound: Bound
    time_share: float
    mac_share: float
    param_share: float
    spec: Bound | None = None

    def to_dict(self) -> dict:
        out = {"name": self.name, "type": self.type, "group": self.group, **self.stats.to_dict(),
               "macs": self.macs, "params": self.params, **self.bound.to_dict(self.stats.median_ms),
               "time_share": self.time_share, "mac_share": self.mac_share, "param_share": self.param_share}
        if self.spec is not None:
            out.update(spec_bound_ms=self.spec.ms, spec_bound=self.spec.kind,
                       spec_ratio=self.spec.ratio(self.stats.median_ms))
        return out


@dataclass(frozen=True)
class GroupTime:
    """A group's (conv, fc, other) summed time and counts, shares and roofline."""

    group: str
    time_ms: float
    counts: Totals
    bound: Bound
    time_share: float
    mac_share: float
    param_share: float

    def to_dict(self) -> dict:
        return {"time_ms": self.time_ms, "time_share": self.time_share, "mac_share": self.mac_share,
                "param_share": self.param_share, "macs": self.counts.macs, "params": self.counts.params,
                "weight_bytes": self.counts.weight_bytes, **self.bound.to_dict(self.time_ms)}


@dataclass(frozen=True)
class BatchAnalysis:
    """One measured batch: every layer, the groups, the whole network, and a verdict line."""

    batch: int
    dtype: str
    network: object  # timing.Stats
    layers: tuple[LayerTime, ...]
    groups: dict
    peaks: Peaks
    spec: Peaks | None = None

    @property
    def layers_ms(self) -> float:
        return sum(r.stats.median_ms for r in self.layers)

    def verdict(self) -> str:
        conv, fc = self.groups["conv"], self.groups["fc"]
        head = (f"batch {self.batch}: conv {conv.mac_share:.1f}% of MACs, {conv.param_share:.1f}% of params, "
                f"{conv.time_share:.1f}% of time; fc {fc.mac_share:.1f}% of MACs, "
                f"{fc.param_share:.1f}% of params, {fc.time_share:.1f}% of time")
        why = [f"{g.group} {bound_words(g.bound)}" for g in (conv, fc) if g.bound.kind]
        return head + ("; " + ", ".join(why) if why else "")

    def to_dict(self) -> dict:
        return {"batch": self.batch, "network_ms": self.network.median_ms,
                "network_p10_ms": self.network.p10_ms, "network_p90_ms": self.network.p90_ms,
                "network_calls": self.network.calls, "layers_sum_ms": self.layers_ms,
                "layers": [r.to_dict() for r in self.layers],
                "groups": {g: t.to_dict() for g, t in self.groups.items()},
                "verdict": self.verdict()}


def bound_words(b: Bound) -> str:
    return f"{b.kind}-bound ({b.intensity:.1f} FLOP/B)" if b.intensity is not None else f"{b.kind}-bound"


def analyse(cost: NetworkCost, layer_stats: Sequence, network_stats, peaks: Peaks,
            spec: Peaks | None = None) -> BatchAnalysis:
    """Put measured medians (one per layer, in order) next to the static counts of ``cost``, and,
    given the GPU's spec-sheet ``spec`` peaks, each layer's bound on them too."""
    if len(layer_stats) != len(cost.layers):
        raise ValueError(f"{len(layer_stats)} timings for {len(cost.layers)} layers")
    total_ms = sum(s.median_ms for s in layer_stats)
    t = cost.totals
    layers = tuple(
        LayerTime(r.name, r.type, r.group, s, r.macs, r.params, Bound.of(r.flops, bytes_moved(r), peaks),
                  percent(s.median_ms, total_ms), percent(r.macs, t.macs), percent(r.params, t.params),
                  None if spec is None else Bound.of(r.flops, bytes_moved(r), spec))
        for r, s in zip(cost.layers, layer_stats))
    groups = {}
    for g in GROUPS:
        mine = [(r, lt) for r, lt in zip(cost.layers, layers) if group_of(r) == g]
        counts = Totals.of([r for r, _ in mine], t.itemsize)
        ms = sum(lt.stats.median_ms for _, lt in mine)
        bound = Bound.of(counts.flops, sum(lt.bound.bytes for _, lt in mine), peaks)
        groups[g] = GroupTime(g, ms, counts, bound, percent(ms, total_ms),
                              percent(counts.macs, t.macs), percent(counts.params, t.params))
    return BatchAnalysis(cost.batch, cost.dtype, network_stats, layers, groups, peaks, spec)
