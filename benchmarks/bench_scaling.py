"""Scaling: generated sequential networks of 100 to 100,000 layers; time per layer must stay flat.

alexcost is timed three ways: wiring and analysing a network from its built layers, a spec
file -> totals in-process (``load_spec``, with the garbage collector running as in any program),
and the whole ``alexcost report --spec FILE`` process (the command pauses the collector). fvcore
and torch's FlopCounterMode (meta tensors) run beside it on the same networks up to the size each manages within
``--peer-budget`` seconds per measurement (a size is skipped when the last one's growth
predicts more). Each peer's count is checked against alexcost's prediction of it.

    python benchmarks/bench_scaling.py [--sizes 100 1000 10000 100000] [--peer-budget 120] [--smoke]
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import harness
from bench_process import default_alexcost
from harness import fmt_time, table, time_call, time_process
from networks import chain_spec
from peers import by_name, quiet

from alexcost import Network, load_spec, network_from_dict

TARGET_10K = 1.0
TARGET_100K = 1.5
"""Issue 13: ``alexcost report --spec`` on 100,000 layers, whole process, in seconds."""
SCALING_PEERS = ("fvcore", "torch FlopCounterMode (meta)")


def per_layer(seconds: float, layers: int) -> str:
    return fmt_time(seconds / layers)


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--peer-budget", type=float, default=120.0,
                   help="seconds one peer measurement may take (predicted from the previous size)")
    p.add_argument("--alexcost", default=None, help="the alexcost command to time (default: beside this Python)")
    args = p.parse_args(argv)
    sizes = args.sizes or ([10, 100] if args.smoke else [100, 1000, 10000, 100000])
    repeats = args.repeats or (1 if args.smoke else 7)
    min_sample, warmup = (0.0, 0) if args.smoke else (0.05, 1)
    command = args.alexcost or default_alexcost()
    peers = [peer for peer in by_name(SCALING_PEERS) if peer.available() is None]

    harness.header("scaling with depth: generated sequential networks")
    print(f"alexcost command: {command}")
    print("network: cycles Conv2d, ReLU, MaxPool2d, LRN, grouped Conv2d, Tanh, AvgPool2d, Dropout "
          "on 8x16x16, then Flatten, Linear")
    print()
    rows, results = [], []
    last = {peer.name: None for peer in peers}  # (layers, seconds) of the last size each peer ran
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            spec = chain_spec(n)
            text = json.dumps(spec)
            path = Path(tmp) / f"chain{n}.json"
            path.write_text(text)
            net = network_from_dict(spec)
            cost = net.cost()
            reps = max(1, repeats if n < 10000 else min(repeats, 5 if n < 100000 else 3))
            shape, layers = net.input_shape, net.layers
            got = {  # analyse: wire the built layers afresh (a held network keeps its sums: constant time)
                "analyse": time_call("analyse", lambda: Network(shape, layers).cost().totals, reps, min_sample, warmup),
                "spec": time_call("spec", lambda: load_spec(path).cost().totals, reps, min_sample, warmup),
                "process": time_process("process", [command, "report", "--spec", str(path)], reps, warmup,
                                        expect="Overall") if command else None,
            }
            module = None
            for peer in peers:
                prev = last[peer.name]
                if prev and prev[1] * (n / prev[0]) ** 1.5 > args.peer_budget:
                    got[peer.name] = "skipped"
                    continue
                if module is None:
                    from alexcost.torch_bridge import to_module
                    module = to_module(net)
                with quiet():
                    prepared = peer.prepare(module, net.input_shape)
                    start = time.perf_counter()
                    count = peer.run(prepared)
                    first = time.perf_counter() - start
                    if first > 2:  # slow enough: the one run is the measurement
                        t = harness.Timing(peer.name, first, first, first, 1, 1)
                    else:
                        t = time_call(peer.name, lambda: peer.run(prepared), min(reps, 5), 0.0, 0)
                if count.total != peer.expected(cost):
                    raise SystemExit(f"{peer.name} counted {count.total} on chain{n}, "
                                     f"alexcost predicts {peer.expected(cost)}")
                got[peer.name] = t
                last[peer.name] = (n, t.median)
            results.append({"layers": n, **{k: v for k, v in got.items()}})
            row = [f"{n:,}"]
            for key in ("analyse", "spec", "process"):
                t = got[key]
                row += ["-", "-"] if t is None else [fmt_time(t.median), per_layer(t.median, n)]
            for peer in peers:
                t = got[peer.name]
                row += [t, "-"] if isinstance(t, str) else [fmt_time(t.median), per_layer(t.median, n)]
            rows.append(row)
    headers = ["layers", "analyse", "/layer", "spec->totals", "/layer", "report process", "/layer"]
    for peer in peers:
        headers += [peer.name, "/layer"]
    print(table(headers, rows))
    print()
    big = results[-1]
    if len(results) >= 2:
        small = results[0]
        for key, label in (("analyse", "analyse"), ("spec", "spec text -> totals"), ("process", "report process")):
            if small[key] is None or big[key] is None:
                continue
            a = small[key].median / small["layers"]
            b = big[key].median / big["layers"]
            print(f"{label}: per-layer time at {big['layers']:,} / at {small['layers']:,} layers = {b / a:.2f} "
                  f"(1.00 is linear; the process figure includes start-up, which small sizes spread thinner)")
        for peer in peers:
            done = [r for r in results if not isinstance(r[peer.name], str)]
            if len(done) >= 2:
                (n0, t0), (n1, t1) = [(r["layers"], r[peer.name].median) for r in done[-2:]]
                print(f"{peer.name}: time grows as layers^{math.log(t1 / t0) / math.log(n1 / n0):.2f} "
                      f"between {n0:,} and {n1:,} layers")
    for r in results:
        target = {10000: TARGET_10K, 100000: TARGET_100K}.get(r["layers"])
        for key, label in (("spec", "spec text -> totals (in-process)"), ("process", "alexcost report --spec")):
            t = r[key]
            if target and t is not None:
                print(f"{r['layers']:,} layers, {label}: {fmt_time(t.median)} (target < {fmt_time(target)}): "
                      f"{'met' if t.median < target else 'MISSED'}")
    harness.save(args.json, {"benchmark": "scaling", "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
