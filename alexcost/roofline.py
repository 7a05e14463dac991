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
from typing import Callable, Sequence

from .cost import NetworkCost, Totals, percent
from .report import bytes_text
from .textable import render_table

GROUPS = ("conv", "fc", "other")


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


PEAK_SETTINGS = {
    # matmul: n x n, n doubling from n_min while one product is shorter than target_ms;
    # conv: a 3x3 convolution, conv_channels -> conv_channels on conv_batch x 32 x 32;
    # copy: copy_bytes; repeats of each (a first call slower than slow_ms is not repeated).
    "cpu": {"n_min": 512, "n_max": 2048, "target_ms": 25.0, "conv_batch": 1, "conv_channels": 256,
            "copy_bytes": 256 * 2**20, "repeats": 3, "slow_ms": 300.0},
    "cuda": {"n_min": 8192, "n_max": 8192, "target_ms": 0.0, "conv_batch": 64, "conv_channels": 256,
             "copy_bytes": 2**30, "repeats": 10, "slow_ms": 300.0},
}
"""How big and how often the peak measurements run: on the CPU about a second."""


def _best_ms(fn, sample, cfg) -> float:
    """The fastest of ``repeats`` calls after one warm-up; one call when that one is slow."""
    first = min(sample(fn, 1, 1))
    return first if first > cfg["slow_ms"] else min(first, *sample(fn, 0, cfg["repeats"]))


def measure_peaks(device: str, dtype: str, tdtype, sample: Callable, *,
                  flops_per_s: float | None = None, bytes_per_s: float | None = None) -> Peaks:
    """Measure what is not given. ``sample(fn, warmup, repeats)`` returns timings in ms.

    The peak rate is the better of a large matrix product and a large 3x3 convolution:
    on some CPUs torch's matrix product (BLAS) runs at half the rate of its convolutions
    (oneDNN), and a "peak" the layers beat would bound nothing.
    """
    import torch
    import torch.nn.functional as F

    cfg = PEAK_SETTINGS[device]
    f_src = b_src = "given"
    if flops_per_s is None:
        n = cfg["n_min"]
        while True:
            a = torch.randn((n, n), device=device, dtype=tdtype)
            b = torch.randn((n, n), device=device, dtype=tdtype)
            once = min(sample(lambda: a @ b, 1, 1))
            if once >= cfg["target_ms"] or n >= cfg["n_max"]:
                break
            n *= 2
        matmul = 2 * n**3 / (_best_ms(lambda: a @ b, sample, cfg) / 1e3)
        del a, b
        c, nb = cfg["conv_channels"], cfg["conv_batch"]
        x = torch.randn((nb, c, 32, 32), device=device, dtype=tdtype)
        w = torch.randn((c, c, 3, 3), device=device, dtype=tdtype)
        conv = 2 * nb * c * c * 9 * 32 * 32 / (_best_ms(lambda: F.conv2d(x, w, padding=1), sample, cfg) / 1e3)
        del x, w
        flops_per_s = max(matmul, conv)
        f_src = (f"measured, {dtype}: {n}x{n} matrix product {matmul / 1e12:.3f} TFLOP/s, "
                 f"3x3 convolution {c}->{c} on {nb}x{c}x32x32 {conv / 1e12:.3f} TFLOP/s; the better of each's "
                 f"best of {cfg['repeats']}")
    if bytes_per_s is None:
        size = cfg["copy_bytes"]
        src = torch.empty(size // 4, device=device, dtype=torch.float32).fill_(1.0)
        dst = torch.empty_like(src)
        best = _best_ms(lambda: dst.copy_(src), sample, cfg)
        del src, dst
        bytes_per_s = 2 * size / (best / 1e3)
        b_src = f"measured: best of {cfg['repeats']} copies of {size // 2**20} MiB, counting read + write"
    return Peaks(float(flops_per_s), float(bytes_per_s), f_src, b_src)


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
        why = [f"{g.group} {_bound_words(g.bound)}" for g in (conv, fc) if g.bound.kind]
        return head + ("; " + ", ".join(why) if why else "")

    def to_dict(self) -> dict:
        return {"batch": self.batch, "network_ms": self.network.median_ms,
                "network_p10_ms": self.network.p10_ms, "network_p90_ms": self.network.p90_ms,
                "network_calls": self.network.calls, "layers_sum_ms": self.layers_ms,
                "layers": [r.to_dict() for r in self.layers],
                "groups": {g: t.to_dict() for g, t in self.groups.items()},
                "verdict": self.verdict()}


def _bound_words(b: Bound) -> str:
    return f"{b.kind}-bound ({b.intensity:.1f} FLOP/B)" if b.intensity is not None else f"{b.kind}-bound"


def group_of(row) -> str:
    """``conv``, ``fc``, or ``other`` for any other group a custom kind may name."""
    return row.group if row.group in GROUPS else "other"


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


def overall_verdict(analyses: Sequence[BatchAnalysis]) -> list[str]:
    """The mission's answer across batch sizes, e.g.
    ``conv: 94.8% of MACs, 6.0% of params, 32% of time at batch 1; 51% at batch 8``,
    the same for fc, and why (the fc layers' weights against the ridge point)."""
    if not analyses:
        return ["no batch was measured"]
    analyses = sorted(analyses, key=lambda a: a.batch)
    lines = []
    for g in ("conv", "fc"):
        first = analyses[0].groups[g]
        times = [f"{a.groups[g].time_share:.0f}%{' of time' if i == 0 else ''} at batch {a.batch}"
                 for i, a in enumerate(analyses)]
        lines.append(f"{g}: {first.mac_share:.1f}% of MACs, {first.param_share:.1f}% of params, " + "; ".join(times))
    small, large = analyses[0], analyses[-1]
    fc, conv = small.groups["fc"], small.groups["conv"]
    ridge = small.peaks.ridge
    if fc.bound.kind:
        more = (f"; at batch {large.batch}, {_bound_words(large.groups['fc'].bound)}"
                if large is not small and large.groups["fc"].bound.kind else "")
        lines.append(f"why: the fc layers read all {bytes_text(fc.counts.weight_bytes, 2)} of their weights ({small.dtype}) "
                     f"on every pass, whatever the batch: at batch {small.batch} they are "
                     f"{_bound_words(fc.bound)} against a ridge point of {ridge:.1f} FLOP/B{more}")
    if conv.bound.kind:
        lines.append(f"why: conv weights ({bytes_text(conv.counts.weight_bytes, 2)}) are reused at every output position: "
                     f"at batch {small.batch} conv is {_bound_words(conv.bound)}")
    return lines


# -- rendering (from the JSON record, so saved runs render the same) --------------------------

def _num(v, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


LAYER_HEADERS = ("#", "layer", "type", "median ms", "p10 ms", "p90 ms", "time %", "MACs %", "params %",
                 "MB moved", "FLOP/B", "bound ms", "bound by", "x bound")
GROUP_HEADERS = ("group", "time ms", "time %", "MACs %", "params %", "MB moved", "FLOP/B", "bound ms",
                 "bound by", "x bound")
SUMMARY_HEADERS = ("batch", "network ms", "sum of layers ms", "conv time %", "fc time %", "other time %",
                   "conv MACs %", "conv params %")


def _roof_cells(d: dict) -> list[str]:
    return [f"{d['bytes_moved'] / 1e6:.2f}", _num(d["intensity"], ".2f"), _num(d["bound_ms"], ".4f"),
            d["bound"] or "", _num(d["bound_ratio"], ".1f")]


FLOOR_FACTOR = 2
"""A layer whose median is under this many launch floors is said to be at the floor."""


def below_bound(rows) -> list[str]:
    """Names of the records (layers or groups) measured faster than their roofline bound (``x bound`` < 1)."""
    return [r.get("name", r.get("group")) for r in rows if r["bound_ratio"] is not None and r["bound_ratio"] < 1]


def at_floor(layers, floor_ms: float | None) -> list[str]:
    """Names of the layers whose median is under `FLOOR_FACTOR` launch floors."""
    if not floor_ms:
        return []
    return [r["name"] for r in layers if r["median_ms"] < FLOOR_FACTOR * floor_ms]


def _timer_line(s: dict) -> str:
    line = f"timer: {s['timer']}"
    if "method" in s:
        line += f", method {s['method']} ({s['sampling']})"
    line += f", warm-up {s['warmup']}, repeats {s['repeats']}; {s['mode']}; inputs {s['inputs']}"
    floor = s.get("launch_floor")
    if floor:
        line += (f"\nlaunch floor: {floor['median_ms']:.4f} ms per call ({floor['op']}; "
                 f"{floor['calls']} call{'' if floor['calls'] == 1 else 's'} per sample)")
    return line


def render(record: dict, style: str = "simple", layers: bool = True) -> str:
    """An ``alexcost time`` record as text (``simple``) or Markdown (``pipe``); ``layers=False``
    leaves out the per-layer and per-group tables (the summary and verdict stay).

    Flags, per batch, layers measured faster than their roofline bound (the peaks are too
    low for them) and layers within `FLOOR_FACTOR` launch floors (their time is
    mostly launch overhead)."""
    md = style == "pipe"
    dev, p, s = record["device"], record["peaks"], record["settings"]
    versions = f"torch {dev['torch']}" + (f", CUDA {dev.get('cuda')}, cuDNN {dev.get('cudnn')}"
                                          if dev["type"] == "cuda" else "")
    head = [
        f"{record['model']} on {dev['type'].upper()}: {dev['name']}, {dev['threads']} thread"
        f"{'' if dev['threads'] == 1 else 's'}; {versions}",
        f"dtype {record['dtype']}: {record['math']}",
        f"peaks: {p['flops_per_s'] / 1e12:.3f} TFLOP/s ({p['flops_source']}); "
        f"{p['bytes_per_s'] / 1e9:.1f} GB/s ({p['bytes_source']}); ridge {p['ridge_flop_per_byte']:.1f} FLOP/B",
        *_timer_line(s).split("\n"),
    ]
    if not record.get("complete", True):
        head.append("INCOMPLETE: the run was interrupted; the batches below are all it measured")
    out = ["\n".join(f"- {h}" if md else h for h in head)]
    floor_ms = (s.get("launch_floor") or {}).get("median_ms")
    measured = []
    for b in record["batches"]:
        if "error" in b:
            out.append(f"{'#### ' if md else ''}batch {b['batch']}: {b['error']}"
                       + (f" ({b['detail']})" if b.get("detail") else ""))
            continue
        measured.append(b)
        if not layers:
            continue
        out.append(f"{'#### ' if md else ''}batch {b['batch']}: network {b['network_ms']:.3f} ms "
                   f"(p10 {b['network_p10_ms']:.3f}, p90 {b['network_p90_ms']:.3f}), "
                   f"sum of layers {b['layers_sum_ms']:.3f} ms")
        rows = [[str(i), r["name"], r["type"], f"{r['median_ms']:.3f}", f"{r['p10_ms']:.3f}", f"{r['p90_ms']:.3f}",
                 f"{r['time_share']:.1f}", f"{r['mac_share']:.1f}", f"{r['param_share']:.1f}", *_roof_cells(r)]
                for i, r in enumerate(b["layers"])]
        headers = LAYER_HEADERS
        if b["layers"] and "spec_bound_ms" in b["layers"][0]:  # the GPU's spec sheet beside the measured peaks
            headers = (*headers, "spec bound ms", "x spec")
            for row, r in zip(rows, b["layers"]):
                row += [_num(r["spec_bound_ms"], ".4f"), _num(r["spec_ratio"], ".1f")]
        out.append(render_table(headers, rows, ("right", "left", "left", *["right"] * (len(headers) - 3)), style))
        groups = [[g, f"{d['time_ms']:.3f}", f"{d['time_share']:.1f}", f"{d['mac_share']:.1f}",
                   f"{d['param_share']:.1f}", *_roof_cells(d)] for g, d in b["groups"].items()]
        out.append(render_table(GROUP_HEADERS, groups, ("left", *["right"] * 9), style))
        notes = []
        fast = below_bound(b["layers"]) + [f"group {g}" for g in below_bound({"group": g, **d}
                                                                               for g, d in b["groups"].items())]
        if fast:
            notes.append(f"faster than the roofline bound (x bound < 1): {', '.join(fast)}. The peaks are too low "
                         f"for them, so their bound is no lower bound (on a CPU, data that stays in cache moves "
                         f"faster than the measured memory bandwidth)")
        low = at_floor(b["layers"], floor_ms)
        if low:
            notes.append(f"at the launch floor (under {FLOOR_FACTOR}x its {floor_ms:.4f} ms): {', '.join(low)}; "
                         f"their times are mostly launch overhead, not work")
        out += [f"note: {n}" for n in notes]
        out.append(b["verdict"])
    if measured:
        rows = [[str(b["batch"]), f"{b['network_ms']:.3f}", f"{b['layers_sum_ms']:.3f}",
                 *(f"{b['groups'][g]['time_share']:.1f}" for g in GROUPS),
                 f"{b['groups']['conv']['mac_share']:.1f}", f"{b['groups']['conv']['param_share']:.1f}"]
                for b in measured]
        out.append(("#### " if md else "") + "where the time goes")
        out.append(render_table(SUMMARY_HEADERS, rows, ["right"] * len(SUMMARY_HEADERS), style))
    out.append("\n".join(f"- {v}" if md else f"verdict: {v}" for v in record["verdict"]))
    return "\n\n".join(out) + "\n"
