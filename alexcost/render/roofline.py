"""Rendering `alexcost time` records and their verdicts: tables of measured times beside the roofline."""

from __future__ import annotations

from typing import Sequence

from ..hardware.roofline import GROUPS, BatchAnalysis, bound_words
from ..units import bytes_text
from .table import render_table


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
        more = (f"; at batch {large.batch}, {bound_words(large.groups['fc'].bound)}"
                if large is not small and large.groups["fc"].bound.kind else "")
        lines.append(f"why: the fc layers read all {bytes_text(fc.counts.weight_bytes, 2)} of their weights ({small.dtype}) "
                     f"on every pass, whatever the batch: at batch {small.batch} they are "
                     f"{bound_words(fc.bound)} against a ridge point of {ridge:.1f} FLOP/B{more}")
    if conv.bound.kind:
        lines.append(f"why: conv weights ({bytes_text(conv.counts.weight_bytes, 2)}) are reused at every output position: "
                     f"at batch {small.batch} conv is {bound_words(conv.bound)}")
    return lines


# Rendering reads the JSON record, so a saved run renders as it did when measured.

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


def _spread(stats: dict) -> str:
    return f"{stats['p10_ms']:.3f}-{stats['p90_ms']:.3f}"


def render_training(record: dict, style: str = "simple") -> str:
    """An ``alexcost time --training`` record as text (``simple``) or Markdown (``pipe``)."""
    md = style == "pipe"
    dev, p, s = record["device"], record["peaks"], record["settings"]
    head = [f"{record['model']} on {dev['type'].upper()}: {dev['name']}; torch {dev['torch']}",
            f"dtype {record['dtype']}: {record['math']}",
            f"peaks: {p['flops_per_s'] / 1e12:.3f} TFLOP/s, {p['bytes_per_s'] / 1e9:.1f} GB/s (measured or given)",
            f"timer: {s['timer']}, method {s['method']}, warm-up {s['warmup']}, repeats {s['repeats']}; {s['mode']}"]
    if "spec_sheet" in s:
        head.append(f"spec sheet: {s['spec_sheet']['name']}, {s['spec_sheet']['flops_per_s'] / 1e12:.1f} TFLOP/s, "
                    f"{s['spec_sheet']['bytes_per_s'] / 1e9:.0f} GB/s")
    out = ["\n".join(f"- {h}" if md else h for h in head)]
    for b in record["batches"]:
        if "error" in b:
            out.append(f"{'#### ' if md else ''}batch {b['batch']}: {b['error']}"
                       + (f" ({b['detail']})" if b.get("detail") else ""))
            continue
        out.append(f"{'#### ' if md else ''}batch {b['batch']}: network forward {b['network_forward_ms']:.3f} ms, "
                   f"backward {b['network_backward_ms']:.3f} ms (p10-p90 {_spread(b['network_backward'])}), "
                   f"forward + backward {b['network_step_ms']:.3f} ms; layers: forward {b['layers_forward_ms']:.3f}, "
                   f"backward {b['layers_backward_ms']:.3f} ms")
        sheet = bool(b["layers"]) and "spec_forward_bound_ms" in b["layers"][0]
        headers = ("#", "layer", "type", "fwd ms", "fwd+bwd ms", "bwd ms", "bwd p10-p90 ms", "fwd bound ms",
                   "bwd bound ms", "bwd bound", *(("spec fwd bound ms", "spec bwd bound ms") if sheet else ()), "")
        rows = [[str(i), r["name"], r["type"], f"{r['forward_ms']:.3f}",
                 "-" if r["forward_backward"] is None else f"{r['forward_backward']['median_ms']:.3f}",
                 "-" if r["backward"] is None else f"{r['backward_ms']:.3f}",
                 "-" if r["backward"] is None else _spread(r["backward"]),
                 f"{r['forward_bound_ms']:.4f}", f"{r['backward_bound_ms']:.4f}", r["backward_bound"] or "",
                 *((f"{r['spec_forward_bound_ms']:.4f}", f"{r['spec_backward_bound_ms']:.4f}") if sheet else ()),
                 "noisy" if r["noisy"] else ""] for i, r in enumerate(b["layers"])]
        align = ("right", "left", "left", *["right"] * 6, "left", *(["right"] * 2 if sheet else []), "left")
        out.append(render_table(headers, rows, align, style))
    out.append("\n".join(f"- {v}" if md else f"verdict: {v}" for v in record["verdict"]))
    return "\n\n".join(out) + "\n"
