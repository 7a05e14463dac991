"""Rendering a time prediction (``alexcost predict``): where the time goes, as a table, CSV and JSON,
and the time model's fit as a figure (predicted against measured published timings).

A layer's time share is its expected time over the whole expected time (the optimizer's update
and the GPUs' communication are rows of their own); its MAC and parameter shares are over the
network's totals.
"""

from __future__ import annotations

from ..engine.cost import percent
from ..hardware.model import Estimate
from ..hardware.roofline import GROUPS
from .table import render_table

HEADERS = ("layer", "type", "expected ms", "time %", "MACs %", "params %", "bound ms", "limited by")
ALIGN = ("left", "left", "right", "right", "right", "right", "right", "left")
CANNOT_KNOW = ("the framework and its version, the cuDNN and cuBLAS versions and the kernels they pick, and the "
               "clocks a card holds under its power and temperature limits")


def to_dict(e: Estimate) -> dict:
    """``alexcost predict --format json``: `Estimate.to_dict` with each layer's shares."""
    out = e.to_dict()
    total, macs, params = e.expected_ms, sum(r.macs for r in e.layers), sum(r.params for r in e.layers)
    for layer, r in zip(out["layers"], e.layers):
        layer.update(time_share=percent(r.expected_ms, total), mac_share=percent(r.macs, macs),
                     param_share=percent(r.params, params))
    out["groups"] = groups(e)
    return out


def groups(e: Estimate) -> dict:
    """Per group (conv, fc, other): expected time, and shares of time, MACs and parameters."""
    total, macs, params = e.expected_ms, sum(r.macs for r in e.layers), sum(r.params for r in e.layers)
    out = {}
    for g in GROUPS:
        mine = [r for r in e.layers if r.group == g]
        ms = sum(r.expected_ms for r in mine)
        out[g] = {"expected_ms": ms, "time_share": percent(ms, total),
                  "mac_share": percent(sum(r.macs for r in mine), macs),
                  "param_share": percent(sum(r.params for r in mine), params)}
    return out


def _extra_rows(e: Estimate) -> list[tuple[str, str, float, float]]:
    """The optimizer's update and the communication, as (name, what, expected ms, bound ms)."""
    out = []
    if e.phase == "train_iteration":
        out.append(("update", "optimizer", e.update_ms, e.update_bound_ms))
    if e.communication_ms:
        how = "all-reduce" if e.split == "data" else "activations"
        out.append(("communication", f"{how} over {e.gpu.link_name.split(',')[0]}", e.communication_ms,
                    e.communication_ms))
    return out


def rows(e: Estimate) -> list[list[str]]:
    d = to_dict(e)
    out = [[r["name"], r["type"], f"{r['expected_ms']:.3f}", f"{r['time_share']:.1f}", f"{r['mac_share']:.1f}",
            f"{r['param_share']:.1f}", f"{r['bound_ms']:.3f}", r["limited_by"] or "-"] for r in d["layers"]]
    for name, what, ms, bound in _extra_rows(e):
        out.append([name, what, f"{ms:.3f}", f"{percent(ms, e.expected_ms):.1f}", "", "", f"{bound:.3f}", "-"])
    return out


def headline(e: Estimate) -> str:
    where = f"{e.gpus} x {e.gpu.name}" if e.gpus > 1 else e.gpu.name
    split = {"single": "", "data": f", data parallel ({e.batch // e.gpus} samples per GPU)",
             "model": ", split as the paper split AlexNet"}[e.split]
    return (f"{e.model} on {where}{split}: {e.phase}, batch {e.batch}, {e.dtype} ({e.gpu.unit(e.dtype)} math), "
            f"{e.mode} mode")


def footer(e: Estimate) -> list[str]:
    g = groups(e)
    parts = [f"forward {e.forward_ms:.2f}"] + ([f"backward {e.backward_ms:.2f}"] if e.phase != "forward" else []) \
        + ([f"update {e.update_ms:.2f}"] if e.phase == "train_iteration" else []) \
        + ([f"communication {e.communication_ms:.2f}"] if e.communication_ms else [])
    lines = [f"expected: {e.expected_ms:.2f} ms = " + " + ".join(parts),
             f"bound: {e.bound_ms:.2f} ms (the spec sheet at best: boost clocks, Winograd, fused layers, no launch "
             f"cost); expected / bound = {e.expected_ms / e.bound_ms:.2f}" if e.bound_ms else "bound: 0 ms"]
    lines.append("where the time goes: " + "; ".join(
        f"{k} {v['time_share']:.1f}% of time, {v['mac_share']:.1f}% of MACs, {v['param_share']:.1f}% of params"
        for k, v in g.items() if k != "other" or v["expected_ms"]))
    p = e.provenance
    if p.get("rows"):
        lines.append(f"time model: fitted on {p['rows']} published timings ({p.get('data', '')}, {p.get('date', '')}): "
                     f"median error {100 * p['in_sample']['median_error']:.0f}%, "
                     f"{100 * p['leave_one_gpu_out']['median_error']:.0f}% for a GPU left out of the fit")
    lines.append(f"it cannot know {CANNOT_KNOW}")
    return lines


def render(e: Estimate, style: str = "simple") -> str:
    """The prediction as text (``style="pipe"``: a Markdown table)."""
    table = render_table(HEADERS, rows(e), ALIGN, style)
    return "\n".join([headline(e), "", table, "", *footer(e)]) + "\n"


def to_csv(e: Estimate) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "type", "expected_ms", "time_share", "mac_share", "param_share", "bound_ms", "limited_by",
                "forward_ms", "backward_ms", "kernels", "macs", "params"])
    for r in to_dict(e)["layers"]:
        w.writerow([r["name"], r["type"], r["expected_ms"], r["time_share"], r["mac_share"], r["param_share"],
                    r["bound_ms"], r["limited_by"] or "", r["forward_ms"], r["backward_ms"], r["kernels"], r["macs"],
                    r["params"]])
    for name, what, ms, bound in _extra_rows(e):
        w.writerow([name, what, ms, percent(ms, e.expected_ms), "", "", bound, "", "", "", "", "", ""])
    return buf.getvalue()


def render_format(e: Estimate, fmt: str) -> str:
    """``e`` in one of table, markdown, csv, json."""
    if fmt == "json":
        from .report import dumps_json

        return dumps_json(to_dict(e))
    if fmt == "csv":
        return to_csv(e)
    return render(e, "pipe" if fmt == "markdown" else "simple")


def share_table(estimates, style: str = "pipe") -> str:
    """Per layer that does work, its time share on each of ``estimates`` (one network on several GPUs)
    beside its MAC share."""
    first = estimates[0]
    macs = sum(r.macs for r in first.layers)
    shares = [to_dict(e)["layers"] for e in estimates]
    headers = ["layer", "MACs %"] + [f"time % on {e.gpu.name}" for e in estimates]
    out = []
    for i, r in enumerate(first.layers):
        if not r.kernels:
            continue
        out.append([r.name, f"{percent(r.macs, macs):.1f}"] + [f"{s[i]['time_share']:.1f}" for s in shares])
    return render_table(headers, out, ["left"] + ["right"] * (len(headers) - 1), style)


def figure(points, path: str, title: str = "") -> None:
    """Predicted against measured published times, log-log, one colour per GPU, with the 1:1 line and
    +-25%: ``points`` are ``(gpu, measured_ms, predicted_ms)``. Written to ``path`` (PNG or SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gpus = sorted({p[0] for p in points})
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    cmap = plt.get_cmap("tab20")
    for i, g in enumerate(gpus):
        xs = [m for k, m, _ in points if k == g]
        ys = [p for k, _, p in points if k == g]
        ax.scatter(xs, ys, s=28, color=cmap(i % 20), label=g, edgecolors="black", linewidths=0.3)
    low = min(min(m, p) for _, m, p in points) / 1.5
    high = max(max(m, p) for _, m, p in points) * 1.5
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = measured")
    for f, style in ((1.25, ":"), (1 / 1.25, ":")):
        ax.plot([low, high], [low * f, high * f], color="grey", linewidth=0.8, linestyle=style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("measured ms (published)")
    ax.set_ylabel("predicted ms (alexcost predict)")
    ax.set_title(title or "Predicted against measured, dotted: 25% off")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

