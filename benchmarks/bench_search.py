"""Throughput for architecture search: random CNNs from a search space, costed per second.

Each candidate is a 20-layer network drawn from a small search space (convolutions of
several widths and kernels, batch norm, ReLU, pooling, residual blocks with an Add,
two-branch blocks joined by a Cat), as a spec dict, the way a search loop produces
them. alexcost costs every candidate with `alexcost.search.evaluate` (invalid ones are
reported in their row, not raised); torch's FlopCounterMode on meta tensors and fvcore
cost a sample of the same candidates, built as torch modules; the counts are checked to
agree. torch runs on one thread, as alexcost does. Target (issue 13): >= 20,000 networks/s.

    python benchmarks/bench_search.py [--candidates 20000] [--peer-sample 30] [--seed 0] [--smoke]
"""

from __future__ import annotations

import random
import time

import harness
from harness import fmt_ratio, table
from peers import quiet

from alexcost import network_from_dict
from alexcost.search import evaluate

TARGET = 20_000
LAYERS = 20


def candidate(rng: random.Random) -> dict:
    """About 20 layers on 3x64x64: stem conv, then blocks, then a head."""
    widths = (16, 32, 48, 64)
    c = rng.choice(widths)
    layers = [{"type": "Conv2d", "name": "stem", "out_channels": c, "kernel_size": 3, "padding": 1}]
    last = "stem"
    while len(layers) < LAYERS - 3:
        n = len(layers)
        block = rng.choice(["conv", "residual", "branches", "pool"])
        if block == "conv":
            c, k = rng.choice(widths), rng.choice([1, 3, 5])
            layers += [{"type": "Conv2d", "name": f"c{n}", "out_channels": c, "kernel_size": k, "padding": k // 2,
                        "bias": False},
                       {"type": "BatchNorm2d", "name": f"b{n}"}, {"type": "ReLU", "name": f"r{n}", "inplace": True}]
            last = f"r{n}"
        elif block == "residual":
            layers += [{"type": "Conv2d", "name": f"c{n}", "out_channels": c, "kernel_size": 3, "padding": 1,
                        "bias": False},
                       {"type": "BatchNorm2d", "name": f"b{n}"},
                       {"type": "Add", "name": f"a{n}", "inputs": [f"b{n}", last]},
                       {"type": "ReLU", "name": f"r{n}"}]
            last = f"r{n}"
        elif block == "branches":
            half = rng.choice(widths) // 2
            layers += [{"type": "Conv2d", "name": f"p{n}", "out_channels": half, "kernel_size": 1, "inputs": [last]},
                       {"type": "Conv2d", "name": f"q{n}", "out_channels": half, "kernel_size": 3, "padding": 1,
                        "inputs": [last]},
                       {"type": "Cat", "name": f"j{n}", "dim": 1, "inputs": [f"p{n}", f"q{n}"]}]
            c, last = 2 * half, f"j{n}"
        else:
            layers.append({"type": rng.choice(["MaxPool2d", "AvgPool2d"]), "name": f"m{n}",
                           "kernel_size": rng.choice([2, 3]), "stride": 2})
            last = f"m{n}"
    layers += [{"type": "AdaptiveAvgPool2d", "name": "gap", "output_size": 1}, {"type": "Flatten", "name": "flat"},
               {"type": "Linear", "name": "head", "out_features": 10}]
    return {"input_shape": [3, 64, 64], "layers": layers}


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--candidates", type=int, default=None)
    p.add_argument("--peer-sample", type=int, default=None, help="candidates each peer costs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n = args.candidates or (200 if args.smoke else 20_000)
    sample = args.peer_sample or (2 if args.smoke else 30)
    rng = random.Random(args.seed)
    specs = [candidate(rng) for _ in range(n)]

    harness.header("architecture search: random 20-layer CNNs (graphs) costed per second")
    start = time.perf_counter()
    results = evaluate(specs)
    alexcost_s = time.perf_counter() - start
    valid = results.valid
    print(f"candidates: {n}, valid {len(valid)}, invalid {len(results.invalid)} "
          f"(e.g. {results.invalid[0].error[:90] + '...' if results.invalid else 'none'})")

    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost.torch_bridge import to_module

    picked = [specs[r.index] for r in valid[:sample]]
    expected = [r.macs for r in valid[:sample]]
    rows, agree = [["alexcost evaluate (every candidate)", f"{rate(n, alexcost_s):,.0f}", "1.0x"]], True

    def peer(label, run):
        nonlocal agree
        start = time.perf_counter()
        for spec, macs in zip(picked, expected):
            with quiet():
                got = run(network_from_dict(spec))
            agree = agree and got == macs
        seconds = time.perf_counter() - start
        rows.append([label, f"{rate(len(picked), seconds):,.0f}", fmt_ratio(rate(n, alexcost_s) / rate(len(picked),
                                                                                                       seconds))])

    def meta(network):
        with torch.device("meta"):
            module = to_module(network).eval()
        with FlopCounterMode(display=False) as counter:
            module(torch.empty(1, *network.input_shape, device="meta"))
        return counter.get_total_flops() // 2

    def fvcore(network):  # its convolution and matrix-product counts: one per MAC
        module = to_module(network).eval()
        analysis = FlopCountAnalysis(module, (torch.randn(1, *network.input_shape),))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return sum(v for k, v in analysis.by_operator().items() if k in ("conv", "linear", "addmm", "matmul"))

    peer(f"torch FlopCounterMode, meta tensors ({len(picked)} candidates)", meta)
    peer(f"fvcore, CPU forward ({len(picked)} candidates)", fvcore)
    print(table(("tool", "networks / s", "alexcost is"), rows, ("left", "right", "right")))
    print()
    ours = rate(n, alexcost_s)
    print(f"peers' MACs equal alexcost's on the {len(picked)} sampled candidates: {'yes' if agree else 'NO'}")
    print(f"alexcost: {ours:,.0f} networks/s (target >= {TARGET:,}): {'met' if ours >= TARGET else 'MISSED'}")
    harness.save(args.json, {"benchmark": "search", "candidates": n, "valid": len(valid),
                             "alexcost_per_s": ours, "rows": rows, "agree": agree})
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
