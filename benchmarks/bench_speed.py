"""In-process speed: alexcost analysing AlexNet vs every peer analysing the same built module.

"Analysing" is, for alexcost, ``network.cost(batch=1).totals`` on a built Network (the
analogue of a peer's analysis of a built ``nn.Module``); build+analyse and spec text ->
totals (cold: the rules forgotten first, as for a network alexcost has never seen) are shown
too, and bare arithmetic as the floor. Each peer's count is printed
beside alexcost's prediction of it (see peers.py), so speed and agreement come from one run.

    python benchmarks/bench_speed.py [--models seed paper torchvision] [--peers NAME ...] [--smoke]
"""

from __future__ import annotations

import json

import harness
from harness import commas, fmt_ratio, fmt_time, table, time_call
from networks import bare_alexnet, network, spec_cold
from peers import by_name, quiet

from alexcost import Network, network_to_dict, preset

TARGET_ANALYSE = 40e-6
TARGET_RATIO_FVCORE = 1000
TARGET_RATIO_META = 300
"""Issue 13: the documented calls at least this many times faster than FlopCounterMode on meta tensors."""
DOCUMENTED = ("alexcost: preset(name).cost().totals", "alexcost: build + analyse")


def measure_model(name: str, peers, repeats: int, min_sample: float, warmup: int) -> dict:
    net = network(name)
    cost = net.cost(batch=1)
    shape, layers = net.input_shape, net.layers
    spec_text = json.dumps(network_to_dict(net))
    rows = [
        time_call("alexcost: analyse (cost().totals)", lambda: net.cost(batch=1).totals, repeats, min_sample, warmup),
        time_call(DOCUMENTED[0], lambda: preset(name).cost().totals, repeats, min_sample, warmup),
        time_call("alexcost: build + analyse", lambda: Network(shape, layers).cost().totals, repeats, min_sample,
                  warmup),
        time_call("alexcost: spec text -> totals, cold", lambda: spec_cold(spec_text), repeats, min_sample, warmup),
    ]
    if name == "seed":
        assert bare_alexnet() == (cost.totals.params, cost.totals.macs)
        rows.append(time_call("bare arithmetic (floor)", bare_alexnet, repeats, min_sample, warmup))
    counts, missing = {}, {}
    module = None
    for peer in peers:
        why = peer.available()
        if why:
            missing[peer.name] = why
            continue
        if module is None:
            from alexcost.torch_bridge import to_module
            module = to_module(net)
        with quiet():
            prepared = peer.prepare(module, shape)
            got = peer.run(prepared)
            rows.append(time_call(peer.name, lambda: peer.run(prepared), repeats, min_sample, warmup))
        counts[peer.name] = (got, peer.expected(cost))
    return {"model": name, "layers": len(net), "timings": rows, "counts": counts, "missing": missing,
            "alexcost": cost.totals}


def show(result: dict) -> None:
    rows, counts = result["timings"], result["counts"]
    base = rows[0].median
    out = []
    for t in rows:
        got, want = counts.get(t.label, (None, None))
        agree = ""
        if got is not None:
            agree = commas(got.total) + (" = rule" if got.total == want else f" != rule {commas(want)}")
            agree += "" if got.complete else " (peer: partial)"
        out.append([t.label, fmt_time(t.median), t.spread(), f"{t.samples}x{t.number}",
                    fmt_ratio(t.median / base), agree])
    totals = result["alexcost"]
    print(f"## {result['model']} ({result['layers']} layers): alexcost params {commas(totals.params)}, "
          f"MACs {commas(totals.macs)}, bias adds {commas(totals.bias_adds)}")
    print(table(("what", "median", "q1 - q3", "samples", "vs analyse", "its count (peers)"), out,
                ("left", "right", "right", "right", "right", "left")))
    for name, why in result["missing"].items():
        print(f"unavailable: {name} ({why})")
    print()


def verdicts(result: dict) -> list[str]:
    rows = {t.label: t for t in result["timings"]}
    analyse = rows["alexcost: analyse (cost().totals)"].median
    lines = [f"analyse {result['model']}: {fmt_time(analyse)} (target <= {fmt_time(TARGET_ANALYSE)}): "
             f"{'met' if analyse <= TARGET_ANALYSE else 'MISSED'}"]
    if "fvcore" in rows:
        ratio = rows["fvcore"].median / analyse
        lines.append(f"fvcore / alexcost on {result['model']}: {fmt_ratio(ratio)} "
                     f"(target >= {TARGET_RATIO_FVCORE}x): {'met' if ratio >= TARGET_RATIO_FVCORE else 'MISSED'}")
    meta = rows.get("torch FlopCounterMode (meta)")
    for label in DOCUMENTED if meta else ():
        ratio = meta.median / rows[label].median
        lines.append(f"FlopCounterMode (meta) / {label[10:]} on {result['model']}: {fmt_ratio(ratio)} "
                     f"(target >= {TARGET_RATIO_META}x): {'met' if ratio >= TARGET_RATIO_META else 'MISSED'}")
    return lines


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["seed", "paper", "torchvision"])
    p.add_argument("--peers", nargs="+", default=None, help="peer names (default: all)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 15)
    min_sample, warmup = (0.0, 1) if args.smoke else (0.05, 3)
    harness.header("alexcost vs peers, in-process analysis of a built network")
    results = [measure_model(m, by_name(args.peers), repeats, min_sample, warmup) for m in args.models]
    for r in results:
        show(r)
    lines = [line for r in results for line in verdicts(r)]
    print("\n".join(lines))
    harness.save(args.json, {"benchmark": "speed", "results": [
        {**r, "counts": {k: {"peer": g.total, "rule": w} for k, (g, w) in r["counts"].items()}}
        for r in results]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
