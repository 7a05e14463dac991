"""Graphs: ResNet-50 (and the other successors) analysed by alexcost against fvcore, and AlexNet before and after.

Three measurements, each with its ratio taken in the same run:

1. in-process, per graph preset, each path a user takes to the totals: ``preset(name).cost()``
   (the preset is built once and kept), ``Network(input_shape, layers).cost()`` on a freshly
   built Network (the layers held), the spec text ``alexcost export`` writes, read with the
   rules forgotten first (cold) and with every rule known (the floor under the cold path), and
   ``from_module`` on torchvision's own model (tracing included); beside them fvcore's
   ``FlopCountAnalysis`` and FlopCounterMode on meta tensors, on a 1x3x224x224 input, one torch
   thread; each peer's count is printed beside alexcost's prediction of it.
2. whole process: ``alexcost report --model NAME`` against ``alexcost report`` (the seed AlexNet),
   and, with ``--before-alexcost PATH`` (an install of the code before), the seed report of both.
3. with ``--before TREE`` (a checkout of the code before this change, e.g. main's HEAD: ``git
   archive main | tar -x -C /tmp/before``), the AlexNet presets timed by the same code in a fresh
   process on each tree, alternately: ``preset(name).cost().totals``, ``net.cost().totals`` on a
   held network, and a fresh ``Network(...)``; and ``python -c "import alexcost"``.

    python benchmarks/bench_graphs.py [--models resnet50 ...] [--alexcost PATH] [--before TREE] [--smoke]

Whole-process figures want a NON-editable install (an editable install's import hook adds
~8 ms to every run): see benchmarks/README.md. ``--clock cpu`` times CPU seconds (this
process's, and its finished children's) instead of wall seconds: on a shared machine whose
load average is well above its core count, wall time mostly measures the wait for a core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import harness
from harness import commas, fmt_ratio, fmt_time, table, time_call, time_process
from networks import spec_cold
from peers import by_name, quiet

from alexcost import Network, dumps_spec, forget_rules, network_from_dict, preset

TARGET_ANALYSE = 300e-6
TARGET_RATIO_FVCORE = 300
TARGET_PROCESS_RATIO = 1.5
ALEXNETS = ("seed", "paper", "torchvision")


# -- 1. in-process ---------------------------------------------------------------------------------------

def fvcore_prediction(net) -> int:
    """What fvcore should count, from each layer kind's own rule."""
    return sum(layer.fvcore_count(x, y) for layer, x, y in zip(net.layers, net.input_shapes, net.output_shapes))


def torchvision_model(name: str):
    import warnings

    import torchvision

    extra = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, **extra).eval()


PATHS = ("alexcost: preset(name).cost()", "alexcost: Network(...) fresh, then .cost()",
         "alexcost: spec text -> totals, cold", "alexcost: from_module(model), tracing included")
"""The paths a user takes, each to the network's totals: a preset (built once, then a cached
lookup), a network built afresh from layers already costed once (what a search pays), spec
text with the rules forgotten first (what `alexcost report --spec` pays for a network it has
never seen), and a torch module read through torch.fx (what most users have)."""
WARM = "alexcost: spec text -> totals, rules known"
"""The same spec text with every rule already worked out (the floor under the cold path: parsing,
each layer's checks, wiring and the sums)."""
META = "torch FlopCounterMode (meta)"
TARGET_SPEC_COLD = 100
"""Issue 22: spec text -> totals, cold, at least this many times faster than FlopCounterMode on meta tensors."""
TARGET_FROM_MODULE = 10
"""Issue 22: from_module, tracing included, at least this many times faster than the same (ResNet-50)."""


def measure_in_process(name: str, repeats: int, min_sample: float, warmup: int) -> dict:
    net = preset(name)
    shape, layers = net.input_shape, net.layers
    text = dumps_spec(net)  # what `alexcost export --model NAME` writes
    assert Network(shape, layers, name=name).cost().totals == net.cost().totals == spec_cold(text)
    rows = [
        time_call(PATHS[0], lambda: preset(name).cost().totals, repeats, min_sample, warmup),
        time_call(PATHS[1], lambda: Network(shape, layers, name=name).cost().totals, repeats, min_sample, warmup),
        time_call(PATHS[2], lambda: spec_cold(text), repeats, min_sample, warmup),
        time_call(WARM, lambda: network_from_dict(json.loads(text)).cost().totals, repeats, min_sample, warmup),
    ]
    forget_rules()
    fvcore = meta = None
    try:
        import torch
        from fvcore.nn import FlopCountAnalysis
    except ImportError as err:
        missing = f"fvcore or torch not importable ({err})"
    else:
        from alexcost.torch_bridge import from_module

        missing = None
        model = torchvision_model(name)
        x = torch.randn(1, 3, 224, 224)
        imported = from_module(model, (3, 224, 224))
        assert imported.cost().totals.macs == net.cost().totals.macs
        rows.append(time_call(PATHS[3], lambda: from_module(model, (3, 224, 224)).cost().totals, repeats,
                              min_sample, warmup))

        def run():
            return FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()
        heavy = max(3, repeats // 3)  # the peers take ~100x longer: fewer samples, same method
        with quiet(), torch.no_grad():
            fvcore = (int(run()), fvcore_prediction(net))
            rows.append(time_call("fvcore (torchvision's model)", run, heavy, min_sample, min(warmup, 1)))
            peer = by_name([META])[0]
            prepared = peer.prepare(model, (3, 224, 224))
            meta = (peer.run(prepared).total, peer.expected(net.cost()))
            rows.append(time_call(META, lambda: peer.run(prepared), heavy, min_sample, min(warmup, 1)))
    return {"model": name, "layers": len(net), "timings": rows, "fvcore": fvcore, "meta": meta, "missing": missing}


def show_in_process(result: dict) -> list[str]:
    rows = result["timings"]
    base = rows[0].median
    out = [[t.label, fmt_time(t.median), t.spread(), f"{t.samples}x{t.number}", fmt_ratio(t.median / base)]
           for t in rows]
    print(f"## {result['model']} ({result['layers']} layers), in-process")
    print(table(("what", "median", "q1 - q3", "samples", "vs preset(name).cost()"), out,
                ("left", "right", "right", "right", "right")))
    for peer, counted in (("fvcore", result["fvcore"]), (META, result["meta"])):
        if counted:
            got, want = counted
            print(f"{peer}'s count {commas(got)}, alexcost predicts {commas(want)}: "
                  f"{'equal' if got == want else 'DIFFER'}")
    if result["missing"]:
        print(f"unavailable: fvcore ({result['missing']})")
    print()
    by_label = {t.label: t.median for t in rows}
    lines = []
    for label in PATHS[:2]:
        t = by_label[label]
        lines.append(f"{result['model']} {label}: {fmt_time(t)} (target <= {fmt_time(TARGET_ANALYSE)}): "
                     f"{'met' if t <= TARGET_ANALYSE else 'MISSED'}")
        if "fvcore (torchvision's model)" in by_label:
            ratio = by_label["fvcore (torchvision's model)"] / t
            lines.append(f"  fvcore / that: {fmt_ratio(ratio)} (target >= {TARGET_RATIO_FVCORE}x): "
                         f"{'met' if ratio >= TARGET_RATIO_FVCORE else 'MISSED'}")
    meta = by_label.get(META)
    for label, target in ((PATHS[2], TARGET_SPEC_COLD), (PATHS[3], TARGET_FROM_MODULE)):
        if meta and label in by_label:
            ratio = meta / by_label[label]
            lines.append(f"{result['model']}: FlopCounterMode (meta) / {label[10:]}: {fmt_ratio(ratio)} "
                         f"(target >= {target}x): {'met' if ratio >= target else 'MISSED'}")
            if label == PATHS[2]:
                lines.append(f"  the same, every rule known: {fmt_ratio(meta / by_label[WARM])} (the most the cold "
                             f"path can reach)")
    return lines


def breakdown(name: str, repeats: int, min_sample: float, warmup: int) -> list:
    """Where ``Network(...).cost().totals`` spends its time, step by step (each step timed alone):
    the engine's own functions (network.py, rules.py, cost.py, storage.py)."""
    net = preset(name)
    shape, layers = net.input_shape, net.layers
    steps = [
        ("Network.__init__: wiring, shapes, checks", lambda: Network(shape, layers, name=name)),
        ("Network.__init__, then .storage(1) (storage.plan)", lambda: Network(shape, layers, name=name).storage(1)),
        ("Network.counts: every kind's count rules, per layer", lambda: net.counts()),
        ("Network.shares: each layer's share of the totals", lambda: net.shares(1, 4)),
        ("Network.cost: the record (rows are made on first use)", lambda: net.cost()),
        ("NetworkCost.layers: the rows, for a report", lambda: net.cost().layers),
        ("  of which Network.inputs_of, every layer", lambda: [net.inputs_of(i) for i in range(len(layers))]),
    ]
    return [time_call(label, fn, repeats, min_sample, warmup) for label, fn in steps]


def show_breakdown(name: str, timed: list) -> None:
    build, build_and_trace = timed[0].median, timed[1].median
    print(f"## where {name}'s Network(...).cost().totals goes (each step timed on its own)")
    out = [[t.label, fmt_time(t.median), t.spread()] for t in timed]
    out.insert(2, ["  so the trace alone (the two above, subtracted)", fmt_time(build_and_trace - build), ""])
    print(table(("step", "median", "q1 - q3"), out, ("left", "right", "right")))
    print()


# -- 2. whole process ------------------------------------------------------------------------------------

def default_alexcost() -> str | None:
    import shutil

    beside = Path(sys.executable).parent / "alexcost"
    return str(beside) if beside.exists() else shutil.which("alexcost")


def measure_processes(command: str, models, repeats: int, warmup: int, before: str | None = None) -> list:
    """Each process in turn, round after round, so a change in the machine's load hits all alike."""
    import statistics

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    runs = [("alexcost report (seed AlexNet)", [command, "report"], "seed")]
    if before:
        runs.append(("alexcost report (seed AlexNet), before", [before, "report"], "seed"))
    runs += [(f"alexcost report --model {name}", [command, "report", "--model", name], name) for name in models]
    samples: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    for _ in range(repeats):
        for label, argv, name in runs:
            once = time_process(label, argv, 1, warmup, env, expect=commas(preset(name).cost().totals.forward))
            samples[label].append(once.median)
        warmup = 0
    rows = []
    for label, values in samples.items():
        q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
        rows.append(harness.Timing(label, med, q1, q3, len(values), 1))
    return rows


def show_processes(rows) -> list[str]:
    base = rows[0].median
    print("## whole process")
    print(table(("process", "median", "q1 - q3", "runs", "vs seed report"),
                [[t.label, fmt_time(t.median), t.spread(), str(t.samples), fmt_ratio(t.median / base)] for t in rows],
                ("left", "right", "right", "right", "right")))
    print()
    lines = []
    for t in rows[1:]:
        if t.label.endswith(", before"):
            lines.append(f"alexcost report (seed AlexNet): {fmt_time(base)} after, {fmt_time(t.median)} before "
                         f"({fmt_ratio(base / t.median)}; target: no slower, 5% noise allowed): "
                         f"{'met' if base <= 1.05 * t.median else 'MISSED'}")
        else:
            lines.append(f"{t.label}: {t.median / base:.2f}x the seed report (target <= {TARGET_PROCESS_RATIO}x): "
                         f"{'met' if t.median / base <= TARGET_PROCESS_RATIO else 'MISSED'}")
    return lines


# -- 3. AlexNet, before and after ------------------------------------------------------------------------

SNIPPET = """\
import json, sys
from alexcost import Network, preset        # the tree in the current folder, imported first
sys.path.append(sys.argv[1])
import harness                               # then the benchmarks' timing (alexcost is already loaded)
from harness import time_call
repeats, min_sample, clock = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
if clock == "cpu":
    harness.use_clock("cpu")
out = {}
for name in sys.argv[5:]:
    net = preset(name)
    shape, layers = net.input_shape, net.layers
    cases = {"preset(name).cost().totals": lambda: preset(name).cost().totals,
             "net.cost().totals, net held": lambda: net.cost().totals,
             "Network(...).cost().totals": lambda: Network(shape, layers, name=name).cost().totals}
    out[name] = {what: time_call(what, fn, repeats, min_sample).median for what, fn in cases.items()}
    out[name] |= {"params": net.cost().totals.params, "macs": net.cost().totals.macs}
print(json.dumps(out))
"""
"""Times the AlexNet presets of the tree in the current folder with harness.time_call."""


def run_snippet(tree: Path, repeats: int, min_sample: float, clock: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    bench = str(Path(__file__).resolve().parent)
    done = subprocess.run([sys.executable, "-c", SNIPPET, bench, str(repeats), str(min_sample), clock, *ALEXNETS],
                          cwd=tree,
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def import_time(tree: Path, repeats: int) -> float:
    """Median seconds of ``python -c "import alexcost"`` in ``tree`` (on the chosen clock)."""
    import statistics

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    samples = []
    for _ in range(repeats):
        start = harness.now()
        subprocess.run([sys.executable, "-c", "import alexcost"], cwd=tree, env=env, check=True)
        samples.append(harness.now() - start)
    return statistics.median(samples)


def measure_before_after(before: Path, rounds: int, repeats: int, min_sample: float, clock: str) -> dict:
    """Alternate the two trees ``rounds`` times; keep each figure's best round (the least disturbed)."""
    after = harness.ROOT
    best: dict = {"before": {}, "after": {}}
    for _ in range(rounds):
        for label, tree in (("before", before), ("after", after)):
            got = run_snippet(tree, repeats, min_sample, clock)
            got["import alexcost"] = {"process": import_time(tree, repeats)}
            for name, figures in got.items():
                for what, value in figures.items():
                    if what in ("params", "macs"):
                        best[label].setdefault(name, {})[what] = value
                        continue
                    slot = best[label].setdefault(name, {})
                    slot[what] = min(value, slot.get(what, value))
    return best


def show_before_after(best: dict) -> list[str]:
    print("## AlexNet presets, before and after (the same code times both trees, in fresh processes)")
    rows, lines = [], []
    for name, figures in best["after"].items():
        for what, value in figures.items():
            if what in ("params", "macs"):
                continue
            was = best["before"][name][what]
            rows.append([name, what, fmt_time(was), fmt_time(value), fmt_ratio(value / was)])
            if what != "preset(name).cost().totals":  # before, that rebuilt the preset on every call
                verdict = "met" if value <= was * 1.05 else "MISSED"
                lines.append(f"{name} {what}: {fmt_time(value)} after, {fmt_time(was)} before "
                             f"({fmt_ratio(value / was)}; target: no slower, 5% noise allowed): {verdict}")
        if name in ALEXNETS:
            same = all(best["before"][name][k] == figures[k] for k in ("params", "macs"))
            lines.append(f"{name}: params and MACs {'unchanged' if same else 'CHANGED'}")
    print(table(("model", "what", "before", "after", "after / before"), rows,
                ("left", "left", "right", "right", "right")))
    print()
    return lines


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50"], help="graph presets to measure (default: resnet50)")
    p.add_argument("--alexcost", default=None, help="the alexcost command to time (default: beside this Python)")
    p.add_argument("--before", metavar="TREE", default=None, help="a checkout of the code before, for AlexNet")
    p.add_argument("--before-alexcost", metavar="PATH", default=None,
                   help="the alexcost command of an install of the code before: its seed report is timed too")
    p.add_argument("--rounds", type=int, default=None, help="before/after rounds, alternating (default 3)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 15)
    min_sample, warmup = (0.0, 1) if args.smoke else (0.05, 3)
    harness.header("graphs: alexcost on the successors vs fvcore; AlexNet before and after")
    verdicts: list[str] = []
    results = [measure_in_process(m, repeats, min_sample, warmup) for m in args.models]
    for r in results:
        verdicts += show_in_process(r)
    if not args.smoke:
        for m in args.models:
            show_breakdown(m, breakdown(m, repeats, min_sample, warmup))
    command = args.alexcost or default_alexcost()
    processes = []
    if command:
        print(f"alexcost command: {command}")
        processes = measure_processes(command, args.models, 3 if args.smoke else 30, 0 if args.smoke else 2,
                                      args.before_alexcost)
        verdicts += show_processes(processes)
    else:
        print("no alexcost command found; pass --alexcost PATH for the whole-process figures\n")
    best = None
    if args.before:
        best = measure_before_after(Path(args.before), args.rounds or (1 if args.smoke else 3), repeats, min_sample,
                                    args.clock)
        verdicts += show_before_after(best)
    print("\n".join(verdicts))
    harness.save(args.json, {"benchmark": "graphs", "clock": args.clock, "in_process": results, "processes": processes,
                             "before_after": best, "verdicts": verdicts})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
