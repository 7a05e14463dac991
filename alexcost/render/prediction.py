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
from ..units import commas
from .compare import Column
from .compare import render as compare
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
    p = e.coefficients.provenance or {}
    if p.get("rows"):
        lines.append(f"time model: fitted on {p['rows']} published timings ({p.get('data', '')}, {p.get('date', '')}): "
                     f"median error {100 * p['in_sample']['median_error']:.0f}%, "
                     f"{100 * p['leave_one_gpu_out']['median_error']:.0f}% for a GPU left out of the fit")
    lines.append(f"it cannot know {CANNOT_KNOW}")
    return lines


def dominant(e: Estimate) -> str:
    """The group that takes the most time, and the slowest layer: ``most time: conv 61.2% (94.8% of the
    MACs); conv2 18.0%, limited by compute``."""
    g = max(groups(e).items(), key=lambda kv: kv[1]["expected_ms"])
    out = f"most time: {g[0]} {g[1]['time_share']:.1f}% ({g[1]['mac_share']:.1f}% of the MACs)"
    if e.layers and e.expected_ms:
        slow = max(e.layers, key=lambda r: r.expected_ms)
        out += f"; slowest layer {slow.name} {percent(slow.expected_ms, e.expected_ms):.1f}%" + (
            f", limited by {slow.limited_by}" if slow.limited_by else "")
    return out


def summary(e: Estimate) -> str:
    """A few lines: what runs where, the expected time beside its bound, and where the time goes."""
    ratio = f" (expected / bound {e.expected_ms / e.bound_ms:.2f})" if e.bound_ms else ""
    return "\n".join([headline(e), f"expected: {e.expected_ms:.2f} ms (time model); bound {e.bound_ms:.2f} ms{ratio}",
                      dominant(e)]) + "\n"


def render(e: Estimate, style: str = "simple") -> str:
    """The prediction as text: the answer first (`summary`), then per layer (``style="pipe"``: a Markdown
    table) and how the time adds up."""
    table = render_table(HEADERS, rows(e), ALIGN, style)
    return "\n".join([summary(e), table, "", *footer(e)]) + "\n"


COMPARE = (
    Column("model", "model", lambda e: e.model, align="left"),
    Column("GPU", "gpu", lambda e: f"{e.gpus} x {e.gpu.name}" if e.gpus > 1 else e.gpu.name, align="left"),
    Column("batch", "batch", lambda e: e.batch, commas),
    Column("dtype", "dtype", lambda e: e.dtype, align="left"),
    Column("phase", "phase", lambda e: e.phase, align="left"),
    Column("expected ms", "expected_ms", lambda e: e.expected_ms, lambda ms: f"{ms:.3f}"),
    Column("bound ms", "bound_ms", lambda e: e.bound_ms, lambda ms: f"{ms:.3f}"),
    Column("ms per sample", "ms_per_sample", lambda e: e.expected_ms / e.batch, lambda ms: f"{ms:.4f}"),
    Column("where the time goes", "most_time", lambda e: dominant(e).removeprefix("most time: "), align="left"),
)
"""The columns of several predictions side by side."""


def html_page(estimates, costs, summary_only: bool = False) -> str:
    """One page: the table (one prediction: its summary, layers and footer; several: side by side) and
    each prediction's time share against MAC share per layer (``costs``: each network's forward cost)."""
    from . import html
    from .plot import Timings, BatchTiming, time_share_figure

    figures = []
    for e, cost in zip(estimates, costs):
        timings = Timings(e.model, e.gpu.name, e.dtype, (BatchTiming(e.batch, tuple((r.name, r.expected_ms)
                                                                                    for r in e.layers)),),
                          source="predicted")
        figures.append(html.figure(time_share_figure(cost, timings),
                                   f"{e.model} on {e.gpu.name}, batch {e.batch}: predicted time share against MAC "
                                   f"share, per layer"))
    title = "alexcost predict: " + ", ".join(dict.fromkeys(e.model for e in estimates))
    if len(estimates) > 1:
        return compare(COMPARE, estimates, "html", (), title, figures)
    e = estimates[0]
    parts = [html.lines(summary(e))]
    if not summary_only:
        parts += [html.table(HEADERS, rows(e), ALIGN), html.lines(footer(e))]
    return html.page(title, parts + figures)


def render_many(estimates, fmt: str = "table", summary_only: bool = False, costs=()) -> str:
    """One prediction as `render_format` gives it (or its `summary`); several side by side (JSON: a list);
    ``html`` needs each network's forward cost (``costs``) for its figure."""
    if fmt == "html":
        return html_page(estimates, costs, summary_only)
    if fmt == "json" and len(estimates) > 1:
        from .report import dumps_json

        return dumps_json([to_dict(e) for e in estimates])
    if len(estimates) > 1:
        return compare(COMPARE, estimates, fmt, ("expected: the time model's; bound: the spec sheet at best",))
    if summary_only:
        return summary(estimates[0])
    return render_format(estimates[0], fmt)


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
    every = [groups(e) for e in estimates]
    for g in GROUPS:
        out.append([f"all {g}", f"{every[0][g]['mac_share']:.1f}"] + [f"{x[g]['time_share']:.1f}" for x in every])
    return render_table(headers, out, ["left"] + ["right"] * (len(headers) - 1), style)


def fit_figure(points, title: str = ""):
    """Predicted against measured published times, log-log, one colour per GPU, with the 1:1 line and
    25% either side: ``points`` are ``(gpu, measured_ms, predicted_ms)``. A matplotlib figure."""
    from .plot import _matplotlib

    matplotlib, Figure = _matplotlib()
    gpus = sorted({p[0] for p in points})
    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab20"]
    for i, g in enumerate(gpus):
        mine = [(m, p) for k, m, p in points if k == g]
        ax.scatter([m for m, _ in mine], [p for _, p in mine], s=28, color=cmap(i % 20), label=g,
                   edgecolors="black", linewidths=0.3, zorder=3)
    low = min(min(m, p) for _, m, p in points) / 1.5
    high = max(max(m, p) for _, m, p in points) * 1.5
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = measured")
    for f in (1.25, 1 / 1.25):
        ax.plot([low, high], [low * f, high * f], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("measured ms per batch (published)")
    ax.set_ylabel("expected ms per batch (alexcost predict)")
    ax.set_title(title or "Predicted against measured; dotted: 25% either side")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
    fig.tight_layout()
    return fig


# -- the docs' figure and tables, made at build time from the shipped coefficients ----------------------

def published_estimates() -> list[tuple[list, Estimate]]:
    """The published timings the shipped coefficients were fitted on (stored with them), each beside
    the time model's estimate: ``(row, estimate)``, a row being network, GPU, GPUs, batch, dtype, phase,
    measured ms."""
    from ..hardware.timemodel import shipped
    from ..prediction import named_network, predict

    table = (shipped().provenance or {}).get("published", {})
    nets: dict = {}
    out = []
    for row in table.get("rows", []):
        name, gpu, gpus, batch, dtype, phase, _ = row
        net = nets.get(name) or nets.setdefault(name, named_network(name, table.get("specs")))
        out.append((row, predict(net, gpu, batch=batch, dtype=dtype, phase=phase, gpus=gpus)))
    return out


def published_fit_figure():
    """The fit's figure: every published timing the shipped coefficients were fitted on, expected against
    measured."""
    points = [(f"{r[2]}x{r[1]}" if r[2] > 1 else r[1], r[6], e.expected_ms) for r, e in published_estimates()]
    return fit_figure(points)


def _median(values) -> float:
    import statistics

    return statistics.median(values)


def errors_markdown() -> str:
    """The error table: median error overall, per phase and per GPU, and the rows within 10% and 25%."""
    from ..hardware.catalog import CATALOG

    rows = [(r, abs(e.expected_ms / r[6] - 1), e.expected_ms / r[6]) for r, e in published_estimates()]
    prov = shipped_provenance()
    lines = ["| published timings | rows | median error | within 10% | within 25% | median predicted / measured |",
             "|:--|--:|--:|--:|--:|--:|"]

    def line(label, mine):
        errs = [x for _, x, _ in mine]
        lines.append(f"| {label} | {len(mine)} | {100 * _median(errs):.0f}% | {sum(x <= 0.1 for x in errs)} | "
                     f"{sum(x <= 0.25 for x in errs)} | {_median([q for _, _, q in mine]):.2f} |")
    line("all", rows)
    for phase in ("forward", "train_step", "train_iteration"):
        line(f"`--phase {phase}`", [t for t in rows if t[0][5] == phase])
    for gpu in [k for k in CATALOG if any(t[0][1] == k for t in rows)]:
        line(f"`{gpu}`", [t for t in rows if t[0][1] == gpu])
    logo = prov.get("leave_one_gpu_out", {})
    loso = prov.get("leave_one_source_out", {})
    lines += ["", f"Each GPU predicted by a fit that never saw it (leave one GPU out): median error "
                  f"{100 * logo.get('median_error', 0):.0f}%, {logo.get('within_25', 0)} of {logo.get('rows', 0)} "
                  f"rows within 25%. Each source predicted by a fit without it: "
                  f"{100 * loso.get('median_error', 0):.0f}%."]
    return "\n".join(lines)


def shares_markdown() -> str:
    """AlexNet (the seed's) at batch 128: each layer's time share on a GTX 580, a V100 and an H100 beside
    its MAC share."""
    from ..models import preset
    from ..prediction import predict

    net = preset("seed")
    return share_table([predict(net, g, batch=128) for g in ("gtx580", "v100", "h100")])


def shipped_provenance() -> dict:
    from ..hardware.timemodel import shipped

    return shipped().provenance or {}


COEFFICIENT_WORDS = {
    "conv": "fraction of the FP32 peak a convolution or matrix product reaches on the CUDA cores",
    "winograd": "speed-up of a stride-1 3x3 convolution in FP32 (cuDNN's Winograd kernels)",
    "tensor_side": "a tensor-core kernel also takes FLOPs / (this x the FP32 rate): the SM's work around the "
                   "tensor cores",
    "bandwidth": "fraction of the memory bandwidth a memory-bound kernel reaches",
    "backward": "efficiency of a backward kernel relative to the forward one",
    "eager_kernel_us": "microseconds each kernel costs in eager mode beyond its own work (dispatch and launch)",
    "fermi": "CUDA-core efficiency factor of Fermi (GTX 580)",
    "kepler": "CUDA-core efficiency factor of Kepler (K40, K80)",
}


def coefficients_markdown() -> str:
    """The shipped coefficients, what each means, and where they come from."""
    from ..hardware.timemodel import GRAPH_KERNEL_US, shipped

    c = shipped()
    prov = c.provenance or {}
    lines = ["| coefficient | value | meaning |", "|:--|--:|:--|"]
    lines += [f"| `{name}` | {value:.3g} | {COEFFICIENT_WORDS[name]} |" for name, value in c.values().items()]
    lines.append(f"| graph-mode kernel cost | {GRAPH_KERNEL_US:g} µs | set, not fitted: no published timing "
                 f"here says it ran from a CUDA graph |")
    anchoring = prov.get("anchoring", {})
    halves = anchoring.get("half_splits", {})
    if prov.get("rows"):
        lines += ["", f"Fitted on {prov['rows']} published timings on {prov.get('date')} (the file's SHA-256 "
                      f"begins {prov.get('sha256', '')[:12]}). Anchoring, scaling a prediction to a published time "
                      f"of the same network, was measured and left out: it made the leave-one-GPU-out median "
                      f"error {100 * anchoring.get('leave_one_gpu_out_median_error', 0):.1f}% instead of "
                      f"{100 * prov['leave_one_gpu_out']['median_error']:.1f}%, and, fitted on half the published "
                      f"groups (a source's network on one GPU) and tested on the other half, "
                      f"{100 * halves.get('median_error_anchored', 0):.1f}% instead of "
                      f"{100 * halves.get('median_error', 0):.1f}% (median of {halves.get('splits', 0)} splits)."]
    return "\n".join(lines)


def gpus_markdown() -> str:
    """The catalog: each GPU's key, units, clocks and peaks."""
    from ..hardware.catalog import CATALOG

    lines = ["| `--gpu` | GPU | architecture | SMs | boost MHz | FP32 TFLOP/s | TF32 | FP16 tensor | GB/s |",
             "|:--|:--|:--|--:|--:|--:|--:|--:|--:|"]
    for key, g in CATALOG.items():
        tera = [f"{v / 1e12:.1f}" if v else "-" for v in (g.fp32, g.tf32, g.fp16)]
        lines.append(f"| `{key}` | {g.name} | {g.arch} | {g.sms} | {g.boost_mhz} | {' | '.join(tera)} | "
                     f"{g.bandwidth / 1e9:,.0f} |")
    return "\n".join(lines)


def docs_markdown() -> str:
    """The docs' numbers of the time model, made from the shipped coefficients: the coefficients, the
    errors on the published timings, AlexNet's time shares on three GPUs, and the GPUs."""
    return "\n\n".join([
        "### The coefficients", coefficients_markdown(),
        "### Against the published timings", errors_markdown(),
        "### AlexNet on a GTX 580, a V100 and an H100",
        "The seed's AlexNet, one forward pass of 128 images in FP32: each layer's share of the expected time "
        "beside its share of the MACs.", shares_markdown(),
        "### The GPUs", gpus_markdown()])
