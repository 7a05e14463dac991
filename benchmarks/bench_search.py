"""Throughput for architecture search: random CNNs from a search space, costed per second.

Two search spaces, each candidate given as a spec dict, the way a search loop produces them:

* ``repetitive`` (round two's): 20-layer networks from a small space (convolutions of four
  widths and three kernels, batch norm, ReLU, pooling, residual blocks with an Add, two-branch
  blocks joined by a Cat). Candidates share most of their layer entries.
* ``diverse``: 40-layer networks of varied kinds, widths and depths: convolutions of any width
  from 8 to 256, kernels 1 to 7, strides 1 and 2, dilations, grouped and depthwise; batch norm
  or none; eight activations; max and average pools; dropout; residual Adds,
  squeeze-and-excitation gates (a Mul), two- and three-branch Cats, Chunk-and-Cat blocks; on inputs
  from 32x32 to 128x128. Few layer entries repeat, so most layers are checked and counted afresh.

alexcost costs every candidate with `alexcost.search.evaluate` (invalid ones are reported in their
row, not raised), then the same candidates again, every rule now known: the floor under the first
pass. torch's FlopCounterMode on meta tensors and fvcore cost a sample of the same candidates,
built as torch modules, on one torch thread; the counts are checked to agree. Targets
(issue 22): >= 20,000 networks/s on the repetitive space, >= 10,000 on the diverse one.

    python benchmarks/bench_search.py [--candidates 20000] [--space repetitive diverse] [--peer-sample 30]
        [--seed 0] [--smoke]
"""

from __future__ import annotations

import gc
import json
import random

import harness
from harness import fmt_ratio, fmt_time, table
from peers import quiet

from alexcost import forget_rules, network_from_dict
from alexcost.search import evaluate

TARGETS = {"repetitive": 20_000, "diverse": 10_000}
LAYERS = 20
DIVERSE_LAYERS = 40


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


ACTIVATIONS = ({"type": "ReLU"}, {"type": "ReLU", "inplace": True}, {"type": "ReLU6"}, {"type": "SiLU"},
               {"type": "GELU"}, {"type": "Hardswish"}, {"type": "LeakyReLU", "negative_slope": 0.1},
               {"type": "Tanh"})
WIDTHS = (8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 256)
BLOCKS = ("conv", "conv", "residual", "se", "branches", "chunk", "pool", "dropout")


class _Diverse:
    """One diverse candidate as it grows: its layer entries, channels, side and last layer's name."""

    def __init__(self, rng: random.Random):
        self.rng, self.layers = rng, []
        self.side = rng.choice((32, 48, 64, 96, 128))
        self.shape = [3, self.side, self.side]
        self.c, self.last = 3, "input"

    def add(self, entry: dict, reads=None) -> str:
        name = f"l{len(self.layers)}"
        self.layers.append({**entry, "name": name} if reads is None else {**entry, "name": name, "inputs": reads})
        return name

    def conv(self, c_out: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1, reads=None) -> str:
        entry = {"type": "Conv2d", "out_channels": c_out, "kernel_size": k, "padding": dilation * (k // 2)}
        for arg, value, default in (("stride", stride, 1), ("groups", groups, 1), ("dilation", dilation, 1)):
            if value != default:
                entry[arg] = value
        if self.rng.random() < 0.5:
            entry["bias"] = False
        return self.add(entry, reads)

    def activation(self, reads=None) -> str:
        return self.add(dict(self.rng.choice(ACTIVATIONS)), reads)

    def block(self, kind: str) -> None:
        rng, c, last = self.rng, self.c, self.last
        if kind == "conv":
            width, k, groups = rng.choice(WIDTHS), rng.choice((1, 3, 5, 7)), rng.choice((1, 1, 1, 2, 4))
            groups = groups if c % groups == 0 and width % groups == 0 else 1
            stride = 2 if self.side >= 8 and rng.random() < 0.25 else 1
            self.conv(width, k, stride, groups, rng.choice((1, 1, 1, 2)) if k == 3 else 1)
            self.side = (self.side + 1) // 2 if stride == 2 else self.side
            if rng.random() < 0.7:
                self.add({"type": "BatchNorm2d"})
            self.c, self.last = width, self.activation()
        elif kind == "residual":
            branch = self.conv(c, rng.choice((1, 3)), groups=c if rng.random() < 0.3 else 1)
            self.last = self.activation([self.add({"type": "Add"}, [branch, last])])
        elif kind == "se":  # squeeze and excitation: a gate per channel
            self.add({"type": "AdaptiveAvgPool2d", "output_size": 1}, [last])
            self.conv(max(1, c // rng.choice((4, 8, 16))), 1)
            self.add(dict(rng.choice(ACTIVATIONS[:3])))
            self.conv(c, 1)
            gate = self.add({"type": rng.choice(("Sigmoid", "Hardsigmoid"))})
            self.last = self.add({"type": "Mul"}, [last, gate])
        elif kind == "chunk" and c % 2 == 0:  # half the channels each way, then joined
            parts = self.add({"type": "Chunk", "chunks": 2, "dim": 1}, [last])
            a = self.conv(c // 2, rng.choice((1, 3)), reads=[f"{parts}.0"])
            b = self.conv(c // 2, rng.choice((3, 5)), reads=[f"{parts}.1"])
            self.last = self.add({"type": "Cat", "dim": 1}, [a, b])
        elif kind in ("branches", "chunk"):
            widths = [rng.choice(WIDTHS[:10]) for _ in range(rng.choice((2, 3)))]
            self.last = self.add({"type": "Cat", "dim": 1},
                                 [self.conv(w, rng.choice((1, 3, 5)), reads=[last]) for w in widths])
            self.c = sum(widths)
        elif kind == "pool" and self.side >= 4:
            k = rng.choice((2, 3))
            self.last = self.add({"type": rng.choice(("MaxPool2d", "AvgPool2d")), "kernel_size": k, "stride": 2,
                                  **({"padding": 1} if k == 3 else {})})
            self.side = (self.side + 2 * (k == 3) - k) // 2 + 1
        else:
            self.last = self.add({"type": rng.choice(("Dropout", "Dropout2d")), "p": rng.choice((0.1, 0.2, 0.5))})


def diverse_candidate(rng: random.Random) -> dict:
    """Exactly 40 layers on a random input (3 channels, 32x32 to 128x128): a stem convolution, blocks
    of varied kinds, widths and depths (a block that would overrun the 36 is drawn again), then a head."""
    net = _Diverse(rng)
    net.block("conv")
    while len(net.layers) < DIVERSE_LAYERS - 4:
        saved = (len(net.layers), net.c, net.last, net.side)
        net.block(rng.choice(BLOCKS))
        if len(net.layers) > DIVERSE_LAYERS - 4:  # too long: undo it (nothing reads it yet)
            del net.layers[saved[0]:]
            net.c, net.last, net.side = saved[1:]
    net.add({"type": rng.choice(("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")), "output_size": 1})
    net.add({"type": "Flatten"})
    net.add({"type": "Dropout", "p": 0.2})
    net.add({"type": "Linear", "out_features": rng.choice((10, 100, 1000))})
    return {"input_shape": net.shape, "layers": net.layers}


SPACES = {"repetitive": candidate, "diverse": diverse_candidate}


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def distinct_entries(specs) -> int:
    """Layer entries that differ in something but their name and inputs, over all candidates."""
    return len({json.dumps({k: v for k, v in entry.items() if k not in ("name", "inputs")}, sort_keys=True)
                for spec in specs for entry in spec["layers"]})


def measure(space: str, n: int, sample: int, seed: int) -> dict:
    """Cost ``n`` candidates of ``space`` with alexcost (every rule forgotten first), then a sample
    with each peer; the counts compared."""
    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost.torch_bridge import to_module

    rng = random.Random(seed)
    specs = [SPACES[space](rng) for _ in range(n)]
    layers = sum(len(spec["layers"]) for spec in specs)
    forget_rules()
    gc.collect()
    start = harness.now()
    results = evaluate(specs)
    alexcost_s = harness.now() - start
    start = harness.now()
    evaluate(specs)  # the same candidates again: every rule known, the floor under the first pass
    again_s = harness.now() - start
    valid = results.valid
    picked = [specs[r.index] for r in valid[:sample]]
    expected = [r.macs for r in valid[:sample]]
    ours = rate(n, alexcost_s)
    rows, agree = [["alexcost evaluate (every candidate)", f"{ours:,.0f}", "1.0x"],
                   ["alexcost evaluate, the same candidates again (every rule known)", f"{rate(n, again_s):,.0f}",
                    fmt_ratio(ours / rate(n, again_s))]], True

    def peer(label, run):
        nonlocal agree
        with quiet():
            run(network_from_dict(picked[0]))  # warm up: torch's first call sets itself up
        start = harness.now()
        for spec, macs in zip(picked, expected):
            with quiet():
                got = run(network_from_dict(spec))
            agree = agree and got == macs
        seconds = harness.now() - start
        rows.append([label, f"{rate(len(picked), seconds):,.0f}", fmt_ratio(ours / rate(len(picked), seconds))])

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
    return {"space": space, "candidates": n, "layers": layers, "distinct_entries": distinct_entries(specs),
            "valid": len(valid), "invalid": len(results.invalid),
            "example_error": results.invalid[0].error if results.invalid else None, "seconds": alexcost_s,
            "alexcost_per_s": ours, "again_per_s": rate(n, again_s), "rows": rows, "agree": agree,
            "sampled": len(picked)}


def show(result: dict) -> str:
    n, layers = result["candidates"], result["layers"]
    print(f"## {result['space']}: {n:,} candidates, {layers / n:.0f} layers each, {result['distinct_entries']:,} "
          f"distinct layer entries (but names); valid {result['valid']:,}, invalid {result['invalid']:,}"
          + (f" (e.g. {result['example_error'][:90]}...)" if result["example_error"] else ""))
    print(table(("tool", "networks / s", "alexcost is"), result["rows"], ("left", "right", "right")))
    print(f"alexcost: {fmt_time(result['seconds'] / layers)} per layer; peers' MACs equal alexcost's on the "
          f"{result['sampled']} sampled candidates: {'yes' if result['agree'] else 'NO'}")
    print()
    target = TARGETS[result["space"]]
    ours = result["alexcost_per_s"]
    return (f"{result['space']}: alexcost {ours:,.0f} networks/s (target >= {target:,}): "
            f"{'met' if ours >= target else 'MISSED'}")


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--candidates", type=int, default=None, help="per space (default 20,000; 200 with --smoke)")
    p.add_argument("--space", nargs="+", choices=tuple(SPACES), default=list(SPACES))
    p.add_argument("--peer-sample", type=int, default=None, help="candidates each peer costs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n = args.candidates or (200 if args.smoke else 20_000)
    sample = args.peer_sample or (2 if args.smoke else 30)
    harness.header("architecture search: random CNNs (graphs) costed per second")
    results = [measure(space, n, sample, args.seed) for space in args.space]
    lines = [show(r) for r in results]
    print("\n".join(lines))
    agree = all(r["agree"] for r in results)
    harness.save(args.json, {"benchmark": "search", "results": results, "agree": agree})
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
