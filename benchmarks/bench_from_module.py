"""Reading a torchvision model: alexcost's from_module (torch.fx tracing included) vs fvcore and torch.

For each model, in one process: ``from_module(model, (3, S, S))`` (tracing, mapping and
building the network), the same with ``.cost().totals``, a bare ``torch.fx`` trace (the floor
alexcost's reading stands on), the network exported to a spec dict and rebuilt with the rules
forgotten (``forget_rules(); network_from_dict(spec).cost().totals``), one fvcore ``FlopCountAnalysis(...).total()`` (a TorchScript
trace and its count) and one forward pass under torch's ``FlopCounterMode`` (attention on torch's math backend, which it
counts; it counts no fused CPU attention kernel). The MACs are
checked to be equal (FlopCounterMode's FLOPs / 2), so speed and agreement come from one run.
Needs torchvision (no weights are downloaded).

    python benchmarks/bench_from_module.py [--models resnet50 ...] [--size 224] [--smoke]
"""

from __future__ import annotations

import warnings

import harness
from harness import commas, fmt_ratio, fmt_time, table, time_call
from peers import math_attention

TARGET_SECONDS = 0.050
"""from_module(resnet50) at 224x224, tracing included."""
TARGET_VIT_RATIO = 5
"""fvcore / from_module on vit_b_16 at 224x224."""
TARGET_VIT_SPEC = 0.001
"""The forward analysis of vit_b_16 rebuilt from its spec dict, rules forgotten, in-process."""


def measure(name: str, size: int, repeats: int, min_sample: float, warmup: int) -> dict:
    import torch
    import torch.fx
    import torchvision
    with warnings.catch_warnings():  # fvcore's import runs torch.jit.script, which torch deprecates
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost import forget_rules, network_from_dict, network_to_dict
    from alexcost.torch_bridge import from_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None).eval()
    shape = (3, size, size)
    x = torch.randn(1, *shape)
    imported = from_module(model, shape)
    totals = imported.cost().totals

    def fvcore_total():
        analysis = FlopCountAnalysis(model, (x,))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return analysis.total()

    def torch_forward():
        with math_attention(), FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops()

    spec = network_to_dict(imported.network)

    def from_spec():
        forget_rules()
        return network_from_dict(spec).cost().totals

    flops = torch_forward()
    heavy = max(1, repeats // 3)  # the peers take ~100x longer: fewer samples, same method
    rows = [
        time_call("alexcost: from_module (trace + read)", lambda: from_module(model, shape), repeats, min_sample,
                  warmup),
        time_call("alexcost: from_module + cost().totals", lambda: from_module(model, shape).cost().totals,
                  repeats, min_sample, warmup),
        time_call("torch.fx: trace only (no reading)", lambda: torch.fx.Tracer().trace(model), repeats, min_sample,
                  warmup),
        time_call("alexcost: its spec dict rebuilt, rules forgotten, + cost().totals", from_spec, repeats, min_sample,
                  warmup),
        time_call("fvcore: FlopCountAnalysis(...).total()", fvcore_total, heavy, min_sample, min(warmup, 1)),
        time_call("torch: forward under FlopCounterMode", torch_forward, heavy, min_sample, min(warmup, 1)),
    ]
    return {"model": name, "size": size, "layers": len(imported.network), "params": totals.params,
            "macs": totals.macs, "torch_flops": flops, "agree": 2 * totals.macs == flops, "timings": rows}


def show(result: dict) -> list[str]:
    rows = result["timings"]
    base = rows[0].median
    print(f"## {result['model']} at {result['size']}x{result['size']}: {result['layers']} layers, params "
          f"{commas(result['params'])}, MACs {commas(result['macs'])} (torch FLOPs / 2: "
          f"{commas(result['torch_flops'] // 2)}, {'equal' if result['agree'] else 'DIFFERENT'})")
    print(table(("what", "median", "q1 - q3", "samples", "vs from_module"),
                [[t.label, fmt_time(t.median), t.spread(), f"{t.samples}x{t.number}", fmt_ratio(t.median / base)]
                 for t in rows], ("left", "right", "right", "right", "right")))
    print()
    fvcore = next(t for t in rows if t.label.startswith("fvcore")).median
    lines = [f"fvcore / from_module on {result['model']}: {fmt_ratio(fvcore / base)} (target > 1x): "
             f"{'met' if fvcore > base else 'MISSED'}"]
    if result["model"] == "resnet50" and result["size"] == 224:
        lines.insert(0, f"from_module(resnet50) at 224x224: {fmt_time(base)} (target <= {fmt_time(TARGET_SECONDS)}): "
                        f"{'met' if base <= TARGET_SECONDS else 'MISSED'}")
    if result["model"] == "vit_b_16" and result["size"] == 224:
        spec = next(t for t in rows if "spec dict" in t.label).median
        lines.insert(0, f"fvcore / from_module on vit_b_16 at 224x224: {fmt_ratio(fvcore / base)} (target >= "
                        f"{TARGET_VIT_RATIO}x): {'met' if fvcore >= TARGET_VIT_RATIO * base else 'MISSED'}")
        lines.insert(1, f"vit_b_16 from its spec, rules forgotten, forward totals: {fmt_time(spec)} (target < "
                        f"{fmt_time(TARGET_VIT_SPEC)}): {'met' if spec < TARGET_VIT_SPEC else 'MISSED'}")
    if not result["agree"]:
        lines.append(f"MACs of {result['model']} differ from torch's FLOPs / 2")
    return lines


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="torchvision model names (default: resnet50 densenet121 efficientnet_b0 convnext_tiny)")
    p.add_argument("--size", type=int, default=None, help="input height and width (default 224; 64 with --smoke)")
    args = p.parse_args(argv)
    models = args.models or (["squeezenet1_1"] if args.smoke else ["resnet50", "densenet121", "efficientnet_b0",
                                                              "convnext_tiny"])
    size = args.size or (64 if args.smoke else 224)
    repeats = args.repeats or (1 if args.smoke else 15)
    min_sample, warmup = (0.0, 1) if args.smoke else (0.05, 3)
    harness.header("alexcost from_module vs fvcore and torch, reading a built torchvision model")
    results = [measure(m, size, repeats, min_sample, warmup) for m in models]
    lines = [line for r in results for line in show(r)]
    print("\n".join(lines))
    harness.save(args.json, {"benchmark": "from_module", "results": results})
    return 0 if all(r["agree"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
