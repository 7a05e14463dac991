"""Agreement: every peer's count next to alexcost's, and the convention that reconciles them.

For each network, each available peer runs on the same module; its headline number is
printed beside the number alexcost predicts for that peer from its own per-layer counts
(peers.py states each rule). With ``--per-layer`` (the default) every layer is also run
through every peer on its own, so a rule that only balances out over a network is caught.
Exit status 1 if any count differs from its prediction.

    python benchmarks/bench_agreement.py [--models seed paper torchvision chain100] [--smoke]
"""

from __future__ import annotations

import harness
from harness import commas, table
from networks import network
from peers import by_name, quiet

from alexcost import Network


def network_rows(net, peers, module) -> tuple[list[list[str]], int]:
    cost = net.cost()
    rows, bad = [], 0
    for peer in peers:
        with quiet():
            got = peer.count(module, net.input_shape)
        want = peer.expected(cost)
        same = got.total == want
        bad += not same
        params = "-" if got.params is None else ("same" if got.params == cost.totals.params else commas(got.params))
        rows.append([peer.name, peer.unit, commas(got.total) + ("" if got.complete else " (partial)"),
                     commas(want), "yes" if same else "NO", params])
    return rows, bad


def layer_mismatches(net, peers) -> list[str]:
    """Each layer alone through each peer: the layers whose count breaks the peer's rule."""
    from alexcost.torch_bridge import to_module

    found = []
    for i, (name, layer) in enumerate(zip(net.names, net.layers)):
        alone = Network(net.shapes[i], [layer], name=name)
        module, row_cost = to_module(alone), alone.cost()
        for peer in peers:
            with quiet():
                try:
                    got = peer.count(module, alone.input_shape).total
                except Exception as err:  # a peer that cannot run one layer kind
                    found.append(f"{net.name}/{name} ({type(layer).__name__}) {peer.name}: "
                                 f"{type(err).__name__}: {err}"[:160])
                    continue
            want = peer.expected(row_cost)
            if got != want:
                found.append(f"{net.name}/{name} ({type(layer).__name__}) {peer.name}: "
                             f"counted {commas(got)}, rule says {commas(want)}")
    return found


def quirks(peers) -> tuple[list[str], int]:
    """Two peer behaviours the rules encode, shown on one small layer each (and re-checked)."""
    import torch.nn as nn

    found, bad, by = [], 0, {p.name: p for p in peers}
    shape, outputs = (8, 13, 13), 8 * 6 * 6  # a 3x3/2 max-pool on 8x13x13 gives 8x6x6
    if "torchscan" in by:
        with quiet():
            as_int = by["torchscan"].count(nn.Sequential(nn.MaxPool2d(3, 2)), shape).total
            as_pair = by["torchscan"].count(nn.Sequential(nn.MaxPool2d((3, 3), 2)), shape).total
        ok = (as_int, as_pair) == (outputs * 2, outputs * 8)
        bad += not ok
        found.append(f"torchscan, one 3x3 max-pool on 8x13x13 ({outputs} outputs): MaxPool2d(3) -> {as_int}, "
                     f"MaxPool2d((3, 3)) -> {as_pair}: an int kernel counts 3 - 1 per output, a pair 9 - 1"
                     + ("" if ok else "  UNEXPECTED"))
    if "ptflops (pytorch)" in by:
        with quiet():
            relu = by["ptflops (pytorch)"].count(nn.Sequential(nn.ReLU()), shape).total
        ok = relu == 2 * 8 * 13 * 13
        bad += not ok
        found.append(f"ptflops (pytorch), one ReLU on 8x13x13 ({8 * 13 * 13} elements): {relu}: its module hook "
                     f"and its F.relu patch both count" + ("" if ok else "  UNEXPECTED"))
    return found, bad


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--peers", nargs="+", default=None, help="peer names (default: all)")
    p.add_argument("--no-per-layer", action="store_true", help="skip the layer-by-layer check")
    args = p.parse_args(argv)
    models = args.models or (["seed"] if args.smoke else ["seed", "paper", "torchvision", "chain100"])
    peers, missing = [], {}
    for peer in by_name(args.peers):
        why = peer.available()
        if why:
            missing[peer.name] = why
        else:
            peers.append(peer)

    from alexcost.torch_bridge import to_module

    harness.header("agreement: each peer's count vs alexcost's prediction of it")
    bad, per_layer, results = 0, [], []
    for name in models:
        net = network(name)
        t = net.cost().totals
        print(f"## {name} ({len(net)} layers): alexcost params {commas(t.params)}, MACs {commas(t.macs)}, "
              f"bias adds {commas(t.bias_adds)}, other ops {commas(t.other_ops)}, FLOPs {commas(t.flops)}")
        rows, wrong = network_rows(net, peers, to_module(net))
        bad += wrong
        print(table(("peer", "unit", "peer's count", "alexcost predicts", "equal", "params"), rows,
                    ("left", "left", "right", "right", "left", "right")))
        print()
        results.append({"model": name, "rows": rows})
        if not args.no_per_layer:
            per_layer += layer_mismatches(net, peers)
    print("## conventions (what each peer's headline number counts, in alexcost's terms)")
    print(table(("peer", "call", "counts"), [[p.name, p.call, p.convention] for p in peers],
                ("left", "left", "left")))
    print("alexcost: macs = Conv2d/Linear multiply-accumulates (bias excluded); bias_adds one per output of a "
          "layer with bias; other_ops per layers.py; FLOPs = 2*macs + bias_adds + other_ops.")
    for name, why in missing.items():
        print(f"unavailable: {name} ({why})")
    print()
    if not args.no_per_layer:
        print(f"layer by layer: {len(per_layer)} mismatches" + "".join(f"\n  {m}" for m in per_layer))
    bad += len(per_layer)
    found, odd = quirks(peers)
    bad += odd
    if found:
        print("## peer quirks the rules encode")
        print("\n".join(found))
    print(f"agreement: {'every count matches its prediction' if not bad else f'{bad} MISMATCHES'}")
    harness.save(args.json, {"benchmark": "agreement", "results": results, "per_layer_mismatches": per_layer,
                             "missing": missing})
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
