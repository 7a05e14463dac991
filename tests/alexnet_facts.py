"""AlexNet's numbers, computed by alexcost and by hand, and the scanner that finds numbers in prose.

The docs tests (test_alexnet_numbers.py, test_docs_numbers.py, test_successors.py) check every
number in a page's prose against these: a FACT is a value computed fresh by alexcost *and* written
out here as hand arithmetic, the two checked equal; a PERCENT fact likewise; a number of a preset's
architecture; or a number QUOTED from a source, listed with the source.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from decimal import Decimal
from math import prod
from pathlib import Path

from alexcost import Conv2d, Linear, Network, PRESETS, preset
from alexcost.engine.cost import percent
from alexcost.units import short


DOCS = Path(__file__).resolve().parents[1] / "docs"
RUN = ("python", "pycon", "console")

# -- hand arithmetic ----------------------------------------------------------------------------------
# Output sizes: conv1 (227 - 11)/4 + 1 = 55; 3x3/2 pools: (55 - 3)//2 + 1 = 27, (27 - 3)//2 + 1 = 13,
# (13 - 3)//2 + 1 = 6; the other convolutions keep their input size.
POSITIONS = {"conv1": 55 * 55, "conv2": 27 * 27, "conv3": 13 * 13, "conv4": 13 * 13, "conv5": 13 * 13}
FILTERS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256}
SEED_PER_FILTER = {"conv1": 11 * 11 * 3, "conv2": 5 * 5 * 96, "conv3": 3 * 3 * 256, "conv4": 3 * 3 * 384,
                   "conv5": 3 * 3 * 384}
PAPER_PER_FILTER = {**SEED_PER_FILTER, "conv2": 5 * 5 * 48, "conv4": 3 * 3 * 192, "conv5": 3 * 3 * 192}
FC_IN_OUT = {"fc6": (256 * 6 * 6, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000)}
FC_WEIGHTS = sum(i * o for i, o in FC_IN_OUT.values())
FC_BIASES = sum(o for _, o in FC_IN_OUT.values())


def conv_params(per_filter, bias=True):
    return sum((per_filter[c] + bias) * FILTERS[c] for c in FILTERS)


def conv_macs(per_filter):
    return sum(per_filter[c] * FILTERS[c] * POSITIONS[c] for c in FILTERS)


CONV_OUTPUTS = sum(FILTERS[c] * POSITIONS[c] for c in FILTERS)          # one bias add each
SEED_PARAMS = conv_params(SEED_PER_FILTER) + FC_WEIGHTS                  # the seed's FC rows: no bias
SEED_MACS = conv_macs(SEED_PER_FILTER) + FC_WEIGHTS
SEED_FORWARD = SEED_MACS + CONV_OUTPUTS
PAPER_PARAMS = conv_params(PAPER_PER_FILTER) + FC_WEIGHTS + FC_BIASES
PAPER_MACS = conv_macs(PAPER_PER_FILTER) + FC_WEIGHTS
PAPER_BIAS_ADDS = CONV_OUTPUTS + FC_BIASES
# The paper's other ops: ReLU 1 per element (conv outputs, fc6, fc7); LRN 9 (n + 4) per element on
# conv1's and conv2's outputs; 3x3 max-pools 8 comparisons per output; softmax 3 per class.
PAPER_RELU_OPS = CONV_OUTPUTS + 4096 + 4096
PAPER_LRN_OPS = 9 * (96 * 55 * 55 + 256 * 27 * 27)
PAPER_POOL_OPS = 8 * (96 * 27 * 27 + 256 * 13 * 13 + 256 * 6 * 6)
PAPER_OTHER_OPS = PAPER_RELU_OPS + PAPER_LRN_OPS + PAPER_POOL_OPS + 3 * 1000
# torchvision: 64-192-384-256-256, conv1 padded by 2 on 224 -> 55; AdaptiveAvgPool2d((6, 6)) on 6x6.
TV_PER_FILTER = {"c1": 11 * 11 * 3, "c2": 5 * 5 * 64, "c3": 3 * 3 * 192, "c4": 3 * 3 * 384, "c5": 3 * 3 * 256}
TV_FILTERS = {"c1": 64, "c2": 192, "c3": 384, "c4": 256, "c5": 256}
TV_POSITIONS = {"c1": 55 * 55, "c2": 27 * 27, "c3": 13 * 13, "c4": 13 * 13, "c5": 13 * 13}
TV_PARAMS = sum((TV_PER_FILTER[c] + 1) * TV_FILTERS[c] for c in TV_FILTERS) + FC_WEIGHTS + FC_BIASES
TV_MACS = sum(TV_PER_FILTER[c] * TV_FILTERS[c] * TV_POSITIONS[c] for c in TV_FILTERS) + FC_WEIGHTS
TV_OUTPUTS = sum(TV_FILTERS[c] * TV_POSITIONS[c] for c in TV_FILTERS)
TV_OTHER_OPS = (TV_OUTPUTS + 4096 + 4096                                  # ReLUs
                + 8 * (64 * 27 * 27 + 192 * 13 * 13 + 256 * 6 * 6)       # 3x3 max-pools
                + 256 * 6 * 6)                                            # the 1x1 windows of the adaptive pool
GROUPING_SAVES_PARAMS = sum((SEED_PER_FILTER[c] - PAPER_PER_FILTER[c]) * FILTERS[c] for c in FILTERS)
GROUPING_SAVES_MACS = conv_macs(SEED_PER_FILTER) - conv_macs(PAPER_PER_FILTER)


def costs():
    return {name: preset(name).cost() for name in PRESETS}


def ungrouped_paper():
    net = preset("paper")
    return Network(net.input_shape, [replace(layer, groups=1) if isinstance(layer, Conv2d) else layer
                                     for layer in net.layers]).cost()


def seed_at_224():
    return Network((3, 224, 224), preset("seed").layers)


# Receptive fields through the seed's and the paper's layers, by hand: r += (k - 1) * jump, jump *= s.
RECEPTIVE = {"conv1": (11, 4), "pool1": (11 + 2 * 4, 8), "conv2": (19 + 4 * 8, 8), "pool2": (51 + 2 * 8, 16),
             "conv3": (67 + 2 * 16, 16), "conv4": (99 + 2 * 16, 16), "conv5": (131 + 2 * 16, 16),
             "pool5": (163 + 2 * 16, 32)}
# fc6 on an NVIDIA V100 (SXM2) data sheet: 15.7 TFLOP/s FP32, 125 TFLOP/s tensor (FP16), 900 GB/s.
V100_FP32, V100_TENSOR, V100_BYTES = 15.7e12, 125e12, 900e9
FC6_IN, FC6_OUT = FC_IN_OUT["fc6"]


def first_compute_bound_batch(peak: float, itemsize: int) -> int:
    """Hand arithmetic: the least B with 2*B*in*out / (itemsize*(in*out + B*(in + out))) >= peak / bandwidth."""
    from fractions import Fraction
    from math import ceil

    ridge = Fraction(round(peak / 1e9), round(V100_BYTES / 1e9))
    io = FC6_IN * FC6_OUT
    return ceil(itemsize * ridge * io / (2 * io - itemsize * ridge * (FC6_IN + FC6_OUT)))


def alexcost_compute_bound_batch(peak: float, dtype: str) -> int:
    """The least batch at which alexcost's roofline puts the seed's fc6 at or above the ridge point."""
    from alexcost.hardware.roofline import Peaks, bytes_moved

    ridge = Peaks(peak, V100_BYTES, "V100 data sheet", "V100 data sheet").ridge
    batch = 1
    while True:
        fc6 = preset("seed").cost(batch=batch, dtype=dtype)["fc6"]
        if 2 * fc6.macs + fc6.bias_adds + fc6.other_ops >= ridge * bytes_moved(fc6):
            return batch
        batch += 1


def receptive_fields(network) -> dict[str, tuple[int, int]]:
    r, jump, out = 1, 1, {}
    for layer in network.layers:
        k = getattr(layer, "kernel_size", (1, 1))[0]
        r, jump = r + getattr(layer, "dilation", (1, 1))[0] * (k - 1) * jump, jump * getattr(layer, "stride", (1, 1))[0]
        out[layer.name] = (r, jump)
    return out


def rounded(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def facts() -> dict[str, tuple[object, object]]:
    """``label: (alexcost's value, hand arithmetic)`` for every exact number quoted in the prose."""
    c = costs()
    seed, paper, tv = c["seed"], c["paper"], c["torchvision"]
    at_224 = seed_at_224()
    at_224_shapes = dict(zip(at_224.names, at_224.shapes[1:]))
    ungrouped = ungrouped_paper()
    fields = receptive_fields(preset("paper"))
    seed_fields = receptive_fields(preset("seed"))
    assert all(fields[name] == seed_fields[name] for name in RECEPTIVE)
    tv_net = preset("torchvision")
    conv4 = [layer for layer in tv_net.layers if isinstance(layer, Conv2d)][3]
    linear_rows = Network((7, 20), [Linear(out_features=10)]).cost()
    weird_trick = Network(tv_net.input_shape, [replace(layer, out_channels=384) if layer is conv4 else layer
                                               for layer in tv_net.layers]).cost()
    return {
        # totals
        "seed params": (seed.totals.params, SEED_PARAMS),
        "seed MACs": (seed.totals.macs, SEED_MACS),
        "seed forward": (seed.totals.forward, SEED_FORWARD),
        "seed FLOPs": (seed.totals.flops, 2 * SEED_MACS + CONV_OUTPUTS + seed.totals.other_ops),
        "torch's count, 2 x seed MACs": (2 * seed.totals.macs, 2 * SEED_MACS),
        "seed params with FC biases": (seed.totals.params + sum(r.output_shape[0] for r in seed.layers
                                                                if r.type == "Linear"),
                                       SEED_PARAMS + FC_BIASES),
        "seed's missing FC biases": (sum(r.output_shape[0] for r in seed.layers if r.type == "Linear"),
                                     4096 + 4096 + 1000),
        "paper params": (paper.totals.params, PAPER_PARAMS),
        "paper MACs": (paper.totals.macs, PAPER_MACS),
        "paper bias adds = neurons": (paper.totals.bias_adds, PAPER_BIAS_ADDS),
        "paper other ops": (paper.totals.other_ops, PAPER_OTHER_OPS),
        "torchvision params": (tv.totals.params, TV_PARAMS),
        "torchvision MACs": (tv.totals.macs, TV_MACS),
        "torchvision other ops": (tv.totals.other_ops, TV_OTHER_OPS),
        # layers
        "conv2 sees 48 channels per group": (paper["conv2"].input_shape[0] // paper["conv2"].layer.groups, 96 // 2),
        "conv4 sees 192 channels per group": (paper["conv4"].input_shape[0] // paper["conv4"].layer.groups, 384 // 2),
        "conv1 params": (paper["conv1"].params, (11 * 11 * 3 + 1) * 96),
        "conv1 MACs": (paper["conv1"].macs, 11 * 11 * 3 * 96 * 55 * 55),
        "conv1 bias adds": (paper["conv1"].bias_adds, 96 * 55 * 55),
        "conv1 forward": (paper["conv1"].forward, (11 * 11 * 3 + 1) * 96 * 55 * 55),
        "paper conv2 params": (paper["conv2"].params, (5 * 5 * 48 + 1) * 256),
        "paper conv2 MACs": (paper["conv2"].macs, 5 * 5 * 48 * 256 * 27 * 27),
        "conv3 params": (paper["conv3"].params, (3 * 3 * 256 + 1) * 384),
        "paper conv4 params": (paper["conv4"].params, (3 * 3 * 192 + 1) * 384),
        "paper conv5 params": (paper["conv5"].params, (3 * 3 * 192 + 1) * 256),
        "seed fc6 params": (seed["fc6"].params, 256 * 6 * 6 * 4096),
        "paper fc6 params": (paper["fc6"].params, (256 * 6 * 6 + 1) * 4096),
        "conv2 output (Figure 2)": (paper["conv2"].output_elements, 256 * 27 * 27),
        "conv3 output (Figure 2)": (paper["conv3"].output_elements, 384 * 13 * 13),
        "conv5 output (Figure 2)": (paper["conv5"].output_elements, 256 * 13 * 13),
        "conv1 output": (paper["conv1"].output_elements, 96 * 55 * 55),
        "LRN ops, both layers": (sum(r.other_ops for r in paper.layers if r.type == "LocalResponseNorm"),
                                 PAPER_LRN_OPS),
        "grouping saves params": (ungrouped.totals.params - paper.totals.params, GROUPING_SAVES_PARAMS),
        "grouping saves MACs": (ungrouped.totals.macs - paper.totals.macs, GROUPING_SAVES_MACS),
        "the caption's 253,440 is 48*55*96": (48 * 55 * 96, 253_440),
        # the ensemble that won ILSVRC-2012: seven networks, ten patches each
        "seven networks' MACs": (7 * paper.totals.macs, 7 * PAPER_MACS),
        "seven networks, ten patches each": (7 * 10 * paper.totals.macs, 70 * PAPER_MACS),
        "forward passes for seven networks x ten patches": (7 * 10, 70),
        # 224 against 227
        "(224 - 11)/4": (Decimal(224 - 11) / 4, Decimal("53.25")),
        "conv1 at 224, last position": (at_224_shapes["conv1"][1] - 1, (224 - 11) // 4),
        "conv1 at 224 reaches": ((at_224_shapes["conv1"][1] - 1) * 4 + 11, 53 * 4 + 11),
        "pool1 at 224": (at_224_shapes["pool1"][1], (54 - 3) // 2 + 1),
        "fc6 input at 224": (at_224.cost()["fc6"].input_shape[0], 256 * 5 * 5),
        "(224 - 11)/4 + 1": (Decimal(224 - 11) / 4 + 1, Decimal("54.25")),
        "torch floors it": (at_224_shapes["conv1"][1], (224 - 11) // 4 + 1),
        "torchvision's (224 + 4 - 11)/4 + 1": (Decimal(224 + 2 * 2 - 11) / 4 + 1, Decimal("55.25")),
        # receptive fields and jumps (the paper's and the seed's layers agree)
        **{f"receptive field after {name}": (fields[name][0], RECEPTIVE[name][0]) for name in RECEPTIVE},
        "jump after pool5": (fields["pool5"][1], 4 * 2 * 2 * 2),
        "pool5 positions": (prod(paper["pool5"].output_shape[1:]), 6 * 6),
        # fc6 and the roofline of a V100
        "first batch at which fc6 is compute-bound, FP32": (alexcost_compute_bound_batch(V100_FP32, "float32"),
                                                            first_compute_bound_batch(V100_FP32, 4)),
        "last batch at which fc6 is memory-bound, FP32": (alexcost_compute_bound_batch(V100_FP32, "float32") - 1,
                                                          first_compute_bound_batch(V100_FP32, 4) - 1),
        "first batch at which fc6 is compute-bound, FP16 tensor cores": (
            alexcost_compute_bound_batch(V100_TENSOR, "float16"), first_compute_bound_batch(V100_TENSOR, 2)),
        # one weird trick, on torchvision's network
        "torchvision conv params": (tv.split["conv"].params, TV_PARAMS - FC_WEIGHTS - FC_BIASES),
        "torchvision FC params": (tv.split["fc"].params, FC_WEIGHTS + FC_BIASES),
        "pool5 values at batch 128": (128 * prod([r for r in tv.layers if r.type == "MaxPool2d"][-1].output_shape),
                                      128 * 256 * 6 * 6),
        # torchinfo against alexcost on a Linear(20, 10) over (7, 20) rows (conventions.md)
        "a Linear(20, 10)'s in_features": (linear_rows.layers[0].input_shape[-1], 20),
        "torchinfo: weights and biases once per sample": (linear_rows.totals.params, 20 * 10 + 10),
        "alexcost's forward over 7 rows": (linear_rows.totals.forward, 7 * (20 * 10 + 10)),
        "the 2014 paper's conv4 adds": (weird_trick.totals.params - tv.totals.params,
                                        (3 * 3 * 384 + 1) * 128 + 3 * 3 * 128 * 256),
    }


def rounded_facts() -> dict[str, tuple[Decimal, Decimal]]:
    """Rounded forms quoted in the prose ("62.4 million"): alexcost's rounding and the hand one."""
    from alexcost.hardware.roofline import Peaks, bytes_moved

    c = costs()
    seed, paper, tv = c["seed"], c["paper"], c["torchvision"]
    fc6 = seed["fc6"]

    def mantissa(text):          # "62.4 million" -> 62.4, as alexcost.render.report.short writes it
        return Decimal(text.split()[0])
    return {
        "seed params in millions": (mantissa(short(seed.totals.params)), rounded(SEED_PARAMS / 1e6, 1)),
        "seed forward in billions, 2 places": (mantissa(short(seed.totals.forward)), rounded(SEED_FORWARD / 1e9, 2)),
        "seed forward in billions, 1 place": (rounded(seed.totals.forward / 1e9, 1), rounded(SEED_FORWARD / 1e9, 1)),
        "paper params in millions": (mantissa(short(paper.totals.params)), rounded(PAPER_PARAMS / 1e6, 1)),
        "paper FC params in millions": (mantissa(short(paper.split["fc"].params)),
                                        rounded((FC_WEIGHTS + FC_BIASES) / 1e6, 1)),
        "paper FC weights in MiB": (rounded(paper.split["fc"].weight_bytes / 2**20, 1),
                                    rounded(4 * (FC_WEIGHTS + FC_BIASES) / 2**20, 1)),
        "conv1 output in MB": (rounded(paper["conv1"].output_bytes / 1e6, 1), rounded(4 * 96 * 55 * 55 / 1e6, 1)),
        "seed conv forward in billions": (mantissa(short(seed.split["conv"].forward)),
                                          rounded((SEED_FORWARD - FC_WEIGHTS) / 1e9, 2)),
        "V100 ridge point, FP32": (rounded(Peaks(V100_FP32, V100_BYTES, "", "").ridge, 1),
                                   rounded(15.7e12 / 900e9, 1)),
        "V100 ridge point, FP16 tensor cores": (rounded(Peaks(V100_TENSOR, V100_BYTES, "", "").ridge, 1),
                                                rounded(125e12 / 900e9, 1)),
        "fc6's intensity at batch 1": (rounded((2 * fc6.macs + fc6.bias_adds) / bytes_moved(fc6), 1),
                                       rounded(2 * FC6_IN * FC6_OUT / (4 * (FC6_IN * FC6_OUT + FC6_IN + FC6_OUT)), 1)),
        "fc6 weights in MB": (rounded(fc6.weight_bytes / 1e6, 1), rounded(4 * FC6_IN * FC6_OUT / 1e6, 1)),
        "us to read fc6's weights at 900 GB/s": (rounded(fc6.weight_bytes / V100_BYTES * 1e6, 1),
                                                 rounded(4 * FC6_IN * FC6_OUT / 900e9 * 1e6, 1)),
        "us of fc6 arithmetic at 15.7 TFLOP/s": (rounded(2 * fc6.macs / V100_FP32 * 1e6, 1),
                                                 rounded(2 * FC6_IN * FC6_OUT / 15.7e12 * 1e6, 1)),
    }


def percent_facts() -> dict[str, tuple[Decimal, Decimal]]:
    """Percentages quoted in the prose: alexcost's shares (cost.percent), and the hand ones."""
    c = costs()
    seed, paper, tv = c["seed"], c["paper"], c["torchvision"]
    ungrouped = ungrouped_paper()

    def share(part, whole, places):
        return rounded(percent(part, whole), places)
    seed_conv_params = conv_params(SEED_PER_FILTER)
    paper_conv_params = conv_params(PAPER_PER_FILTER)
    tv_conv_params = TV_PARAMS - FC_WEIGHTS - FC_BIASES
    return {
        "seed conv params share": (share(seed.split["conv"].params, seed.totals.params, 1),
                                   rounded(100 * seed_conv_params / SEED_PARAMS, 1)),
        "seed conv params share, seed's rounding": (share(seed.split["conv"].params, seed.totals.params, 0),
                                                    rounded(100 * seed_conv_params / SEED_PARAMS, 0)),
        "seed conv MAC share": (share(seed.split["conv"].macs, seed.totals.macs, 1),
                                rounded(100 * conv_macs(SEED_PER_FILTER) / SEED_MACS, 1)),
        "seed conv forward share": (share(seed.split["conv"].forward, seed.totals.forward, 1),
                                    rounded(100 * (conv_macs(SEED_PER_FILTER) + CONV_OUTPUTS) / SEED_FORWARD, 1)),
        "seed conv forward share, seed's rounding": (share(seed.split["conv"].forward, seed.totals.forward, 0),
                                                     rounded(100 * (SEED_FORWARD - FC_WEIGHTS) / SEED_FORWARD, 0)),
        "paper conv params share": (share(paper.split["conv"].params, paper.totals.params, 1),
                                    rounded(100 * paper_conv_params / PAPER_PARAMS, 1)),
        "paper conv MAC share": (share(paper.split["conv"].macs, paper.totals.macs, 1),
                                 rounded(100 * conv_macs(PAPER_PER_FILTER) / PAPER_MACS, 1)),
        "paper FC params share": (share(paper.split["fc"].params, paper.totals.params, 0),
                                  rounded(100 * (FC_WEIGHTS + FC_BIASES) / PAPER_PARAMS, 0)),
        "paper FC MAC share": (share(paper.split["fc"].macs, paper.totals.macs, 0),
                               rounded(100 * FC_WEIGHTS / PAPER_MACS, 0)),
        "paper conv2 MAC share": (share(paper["conv2"].macs, paper.totals.macs, 0),
                                  rounded(100 * 5 * 5 * 48 * 256 * 27 * 27 / PAPER_MACS, 0)),
        "torchvision conv params share": (share(tv.split["conv"].params, tv.totals.params, 1),
                                          rounded(100 * tv_conv_params / TV_PARAMS, 1)),
        "torchvision conv MAC share": (share(tv.split["conv"].macs, tv.totals.macs, 1),
                                       rounded(100 * (TV_MACS - FC_WEIGHTS) / TV_MACS, 1)),
        "grouping saves this share of the ungrouped MACs": (
            share(ungrouped.totals.macs - paper.totals.macs, ungrouped.totals.macs, 0),
            rounded(100 * GROUPING_SAVES_MACS / SEED_MACS, 0)),
        "every preset's conv MAC share is over 90": (
            Decimal(90) if min(percent(x.split["conv"].macs, x.totals.macs) for x in c.values()) > 90 else None,
            Decimal(90) if min(conv_macs(SEED_PER_FILTER) / SEED_MACS, conv_macs(PAPER_PER_FILTER) / PAPER_MACS,
                               (TV_MACS - FC_WEIGHTS) / TV_MACS) > 0.9 else None),
    }


QUOTED = {
    # Krizhevsky, Sutskever & Hinton, NIPS 2012 (the abstract, figures 1 and 2, sections 3 and 4)
    "2012": "the paper's year; ILSVRC-2012",
    "31": "bicubic interpolation's ops per output element: 2 * 16 taps - 1 (conventions)",
    "2010": "ILSVRC-2010, the test set of the paper's main results",
    "37.5": "top-1 test error on ILSVRC-2010 (abstract)",
    "17.0": "top-5 test error on ILSVRC-2010 (abstract)",
    "15.3": "top-5 test error of the ILSVRC-2012 entry (abstract)",
    "26.2": "top-5 test error of the second-best ILSVRC-2012 entry (abstract)",
    "60": "60 million parameters (abstract)",
    "650,000": "650,000 neurons (abstract)",
    "253,440": "figure 2's neurons of the first layer (checked as 48*55*96 in FACTS)",
    "25": "figure 1: 25% training error on CIFAR-10",
    "1.4": "section 3.3: LRN lowers top-1 error by 1.4%",
    "1.2": "sections 3.2 and 3.3: top-5 error lower by 1.2%",
    "0.4": "section 3.4: overlapping pooling lowers top-1 error by 0.4%",
    "0.3": "section 3.4: overlapping pooling lowers top-5 error by 0.3%",
    "1.7": "section 3.2: the two-GPU scheme lowers top-1 error by 1.7%",
    "2048": "section 4.1: the augmentation's factor (32 * 32 * 2)",
    "580": "section 3.2: GTX 580 GPUs",
    "1.5": "NVIDIA's GeForce GTX 580 specifications: 1536 MB of standard memory (the paper's boards had 3 GB)",
    # BVLC Caffe model zoo, bvlc_alexnet's readme
    "57.1": "bvlc_alexnet's top-1 accuracy",
    "80.2": "bvlc_alexnet's top-5 accuracy",
    # The seed's own (wrong) rounding, quoted to be corrected
    "62.3": "the seed's '62.3 million'",
    # the paper, again: sections cited, the ILSVRC-2012 table, the batch size
    "3.5": "section 3.5, 'Overall Architecture' (ReLU after every layer; fc8 feeds the softmax)",
    "18.2": "table 2: one CNN, top-5 error on the ILSVRC-2012 validation set",
    "16.4": "table 2: five CNNs averaged, top-5 error",
    "16.6": "table 2: one CNN with a sixth conv layer, pre-trained on ImageNet Fall 2011, top-5 error",
    "2011": "the Fall 2011 release of ImageNet",
    "128": "section 5: a batch size of 128 examples",
    # NVIDIA Tesla V100 data sheet (SXM2)
    "15.7": "single-precision TFLOPS",
    "125": "tensor performance, TFLOPS",
    "900": "memory bandwidth, GB/s",
    # later work: years, arXiv numbers, sections, pull requests
    "2014": "Krizhevsky's 'One weird trick' (arXiv:1404.5997) and VGG (arXiv:1409.1556)",
    "2015": "batch normalisation (ICML 2015) and VGG (ICLR 2015)",
    "1404.5997": "arXiv number of 'One weird trick'",
    "1409.1556": "arXiv number of VGG",
    "1502.03167": "arXiv number of batch normalisation",
    "2.1": "VGG's section 2.1, where it drops LRN",
    "463": "pytorch/vision pull request 463 (conv4's 256 kernels)",
    "704": "pytorch/vision pull request 704 (the same question)",
}
QUOTED_PERCENTS = {"37.5", "17.0", "15.3", "26.2", "25", "1.4", "1.2", "0.4", "0.3", "1.7", "1", "57.1", "80.2",
                   "18.2", "16.4", "16.6"}


def architecture_numbers() -> set[Decimal]:
    """Every argument and shape of the three presets: the network as given, not a count."""
    found = set()
    for name in PRESETS:
        net = preset(name)
        for shape in net.shapes:
            found.update(shape)
            found.add(prod(shape))
        for layer in net.layers:
            for f in fields(layer):
                value = getattr(layer, f.name)
                for v in value if isinstance(value, tuple) else (value,):
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        found.add(Decimal(str(v)))
    return {Decimal(v) for v in found}


# -- the scanner -------------------------------------------------------------------------------------

NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w]|,\d{3})(\s*%)?")


def prose(path: Path) -> str:
    """The page without its executed code blocks, link targets, URLs and HTML comments."""
    from doc_pages import OUTPUT, blocks

    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    for block in blocks(text, path.name):
        if block.lang in RUN:
            n = block.code.count("\n")
            for i in range(block.line - 1, block.line - 1 + n):
                lines[i] = ""
    text = "\n".join(lines)
    text = OUTPUT.sub(" ", text)                       # output regions: checked by running them
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)          # [label](target)
    text = re.sub(r"<https?://[^>]*>", " ", text)      # <https://...>
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"\b\d+\.\d+\.\d+\b", " ", text)   # versions such as 0.7.5
    return text


def numbers(path: Path):
    """``(text, value, is_percent)`` for every number in the page's prose."""
    for m in NUMBER.finditer(prose(path)):
        text = m[1] + (m[2] or "")
        yield text, Decimal(text.replace(",", "")), bool(m[3])
