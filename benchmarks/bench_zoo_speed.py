"""from_module on every torchvision classification model, against FlopCounterMode and the real-tensor peers.

Issue 22's per-model targets: ``from_module``, tracing included, at least 5x a forward pass under
FlopCounterMode on meta tensors (10x on ResNet-50), and at least 5x the fastest peer that runs real
tensors, on every classification model of torchvision. For each model, at 224x224, in one process
on one torch thread:

* ``from_module(model, (3, 224, 224))``, tracing included;
* a bare ``torch.fx`` trace of the model (``torch.fx.Tracer().trace``): what any reader built on
  torch.fx pays before it reads a node, so FlopCounterMode's time over it is the most such a reader
  could reach;
* one forward pass under FlopCounterMode on meta tensors (attention on torch's math backend, which
  it counts), whose FLOPs / 2 are checked to equal alexcost's MACs;
* one plain forward pass on real tensors (``torch.no_grad``). Every real-tensor peer runs at least
  that pass, so it is a floor under the fastest of them: where ``from_module`` is at least 5x the
  floor, it is at least 5x every such peer. Where it is not, each installed real-tensor peer is
  timed too, and the fastest is the figure.

A CSV row is written (atomically) after every model, so a run cut short keeps what it measured.

    python benchmarks/bench_zoo_speed.py [--models resnet50 ...] [--out zoo_speed.csv] [--clock cpu] [--smoke]
"""

from __future__ import annotations

import csv
import io
import warnings

import harness
from harness import fmt_ratio, fmt_time, table, time_call
from peers import PEERS, by_name, math_attention, quiet

TARGET = 5
"""from_module at least this many times faster than each peer, on every classification model."""
TARGET_RESNET50 = 10
"""... and than FlopCounterMode on meta tensors on ResNet-50."""
FIELDS = ("model", "layers", "from_module_s", "fx_trace_s", "meta_s", "meta_ratio", "meta_target", "fx_bound",
          "real_floor_s",
          "fastest_real_peer", "fastest_real_s", "real_ratio", "agree")
META = by_name(["torch FlopCounterMode (meta)"])[0]
REAL_PEERS = tuple(p for p in PEERS if p is not META)


def classification_models() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def measure(name: str, size: int, repeats: int) -> dict:
    import torch
    import torch.fx
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost.torch_bridge import from_module

    shape = (3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None).eval()
    meta, x_meta = META.prepare(model, shape)
    x = torch.randn(1, *shape)
    imported = from_module(model, shape)
    macs = imported.cost().totals.macs

    def counted():
        with math_attention(), FlopCounterMode(display=False) as counter:
            meta(x_meta)
        return counter.get_total_flops()

    def forward():
        with torch.no_grad():
            model(x)

    ours = time_call("from_module", lambda: from_module(model, shape), repeats, 0.05, 1).median
    row = {"model": name, "layers": len(imported.network), "from_module_s": ours,
           "fx_trace_s": time_call("torch.fx", lambda: torch.fx.Tracer().trace(model), repeats, 0.05, 1).median,
           "meta_s": time_call("FlopCounterMode (meta)", counted, max(1, repeats // 2), 0.0, 1).median,
           "agree": 2 * macs == counted()}
    row["meta_target"] = TARGET_RESNET50 if name == "resnet50" else TARGET
    row["meta_ratio"], row["fx_bound"] = row["meta_s"] / ours, row["meta_s"] / row["fx_trace_s"]
    floor = time_call("forward", forward, 1, 0.0, 1).median
    if floor < 1.0:  # a second sample where one is cheap
        floor = min(floor, time_call("forward", forward, max(1, repeats // 2), 0.0, 0).median)
    row["real_floor_s"], row["fastest_real_peer"], row["fastest_real_s"] = floor, "(floor: a plain forward)", floor
    if floor < TARGET * ours:  # the floor does not settle it: time the peers themselves
        timed = []
        for peer in REAL_PEERS:
            if peer.available() is None:
                prepared = peer.prepare(model, shape)
                with quiet():
                    timed.append((time_call(peer.name, lambda: peer.run(prepared), max(1, repeats // 2), 0.0, 1).median,
                                  peer.name))
        row["fastest_real_s"], row["fastest_real_peer"] = min(timed)
    row["real_ratio"] = row["fastest_real_s"] / ours
    return row


def _write(path: str, rows: list[dict]) -> None:
    from alexcost.atomic import write_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def show(rows: list[dict]) -> list[str]:
    print(table(("model", "layers", "from_module", "torch.fx trace", "FlopCounterMode (meta)", "ratio",
                 "meta / fx trace", "fastest real-tensor peer", "its time", "ratio", "MACs = FLOPs / 2"),
                [[r["model"], r["layers"], fmt_time(r["from_module_s"]), fmt_time(r["fx_trace_s"]),
                  fmt_time(r["meta_s"]), fmt_ratio(r["meta_ratio"]), fmt_ratio(r["fx_bound"]), r["fastest_real_peer"],
                  fmt_time(r["fastest_real_s"]), fmt_ratio(r["real_ratio"]), "yes" if r["agree"] else "NO"]
                 for r in rows],
                ("left", "right", "right", "right", "right", "right", "right", "left", "right", "right", "left")))
    print()
    meta_met = [r for r in rows if r["meta_ratio"] >= r["meta_target"]]
    real_met = [r for r in rows if r["real_ratio"] >= TARGET]
    fx_met = [r for r in rows if r["fx_bound"] >= r["meta_target"]]
    lines = [f"from_module >= {TARGET}x FlopCounterMode (meta) ({TARGET_RESNET50}x on resnet50): {len(meta_met)} of "
             f"{len(rows)} models: {'met' if len(meta_met) == len(rows) else 'MISSED'}",
             f"  a bare torch.fx trace alone is that fast on {len(fx_met)} of {len(rows)} models",
             f"from_module >= {TARGET}x the fastest real-tensor peer: {len(real_met)} of {len(rows)} models: "
             f"{'met' if len(real_met) == len(rows) else 'MISSED'}"]
    for label, key, target in (("FlopCounterMode (meta)", "meta_ratio", None), ("the real-tensor peers", "real_ratio",
                                                                                 TARGET)):
        missed = sorted((r for r in rows if r[key] < (target or r["meta_target"])), key=lambda r: r[key])
        if missed:
            lines.append(f"  missed against {label}: " + ", ".join(f"{r['model']} {fmt_ratio(r[key])}" for r in missed))
    lines += [f"MACs of {r['model']} differ from FlopCounterMode's FLOPs / 2" for r in rows if not r["agree"]]
    return lines


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None, help="torchvision model names (default: every "
                   "classification model; squeezenet1_1 with --smoke)")
    p.add_argument("--size", type=int, default=None, help="input height and width (default 224; 64 with --smoke)")
    p.add_argument("--out", default=None, help="write a CSV row per model as it goes (atomically)")
    args = p.parse_args(argv)
    models = args.models or (["squeezenet1_1"] if args.smoke else classification_models())
    size = args.size or (64 if args.smoke else 224)
    repeats = args.repeats or (1 if args.smoke else 5)
    harness.header("from_module on every torchvision classification model vs FlopCounterMode and the real-tensor peers")
    rows = []
    for i, name in enumerate(models, 1):
        rows.append(measure(name, size, repeats))
        r = rows[-1]
        print(f"[{i}/{len(models)}] {name}: from_module {fmt_time(r['from_module_s'])}, {fmt_ratio(r['meta_ratio'])} "
              f"FlopCounterMode (meta), {fmt_ratio(r['real_ratio'])} {r['fastest_real_peer']}", flush=True)
        if args.out:
            _write(args.out, rows)
    print()
    lines = show(rows)
    print("\n".join(lines))
    harness.save(args.json, {"benchmark": "zoo_speed", "size": size, "results": rows, "verdicts": lines})
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
