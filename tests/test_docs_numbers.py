"""Every number in the prose of the landing, training and timing pages is known.

The same rule as tests/test_alexnet_numbers.py (whose scanner, in alexnet_facts.py, this file uses): numbers inside
examples that run are checked by running them; every other number in these pages must be

* a FACT: computed fresh by alexcost, from the committed CPU run or from the GPU catalog, and,
  where the arithmetic is short, worked out by hand here as well (the two checked equal);
* a number of a preset's architecture, a small integer (at most 16), or
* QUOTED from a source, listed with the source.

A number that is none of these fails the test, which names it. (AlexNet's successors have their
own such test, in tests/test_successors.py.)
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from math import ceil
from pathlib import Path

import pytest
from alexnet_facts import PAPER_MACS, PAPER_PARAMS, architecture_numbers, numbers, percent_facts

from alexcost import PRESETS, Network, preset
from alexcost.hardware import CATALOG, predict
from alexcost.hardware.roofline import bytes_moved
from alexcost.training import training_cost

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ("index.md", "training.md", "timing.md")
GiB, MiB = 2**30, 2**20
CONV1_MACS = 96 * 55 * 55 * 3 * 11 * 11          # the paper's conv1, per image
FC6_IN, FC6_OUT = 256 * 6 * 6, 4096


def d(value, places: int | None = None) -> Decimal:
    return Decimal(str(value)) if places is None else Decimal(f"{value:.{places}f}")


def run(n: int) -> dict:
    return json.loads((DOCS / "results" / "cpu-2core" / f"seed-run{n}.json").read_text())


def fc6_intensity(batch: int) -> Fraction:
    """The paper's fc6 at ``batch``, by hand: (2·B·in·out + B·out) FLOPs over 4·(in·out + out + B·(in + out)) bytes."""
    return Fraction(2 * batch * FC6_IN * FC6_OUT + batch * FC6_OUT,
                    4 * (FC6_IN * FC6_OUT + FC6_OUT + batch * (FC6_IN + FC6_OUT)))


def first_batch_over(ridge: Fraction) -> int:
    batch = 1
    while fc6_intensity(batch) < ridge:
        batch += 1
    return batch


def test_fc6_becomes_compute_bound_on_a_gtx_580_from_batch_17():
    """The timing page's claim, as arithmetic on the catalog's GTX 580 (512 cores at 1544 MHz: 1.581 TFLOP/s;
    192.4 GB/s) and fc6's shape, and as alexcost's roofline counts it."""
    gtx = CATALOG["gtx580"]
    assert (gtx.fp32, gtx.bandwidth) == (512 * 1544e6 * 2, 192.4e9)
    ridge = Fraction(512 * 1544 * 10**6 * 2, 1924 * 10**8)            # 1.581056e12 / 192.4e9 FLOP/B
    assert ridge == Fraction(gtx.fp32) / Fraction(gtx.bandwidth)
    # in closed form: B >= ridge·4·in·out·(1 + 1/in) / (2·in·out + out − 4·ridge·(in + out)) ...
    closed = ceil(4 * ridge * (FC6_IN * FC6_OUT + FC6_OUT)
                  / (2 * FC6_IN * FC6_OUT + FC6_OUT - 4 * ridge * (FC6_IN + FC6_OUT)))
    assert first_batch_over(ridge) == closed == 17
    for batch in (16, 17):
        row = preset("paper").cost(batch=batch)["fc6"]
        assert Fraction(row.flops, bytes_moved(row)) == fc6_intensity(batch)
    text = " ".join((DOCS / "timing.md").read_text().split())
    assert "passes the GTX 580's ridge from batch 17 (8.4 FLOP/B; at batch 16 it is 8.0)" in text


def facts() -> dict[str, tuple[object, object]]:
    """``label: (alexcost's value, hand arithmetic or None)``: None where only alexcost's model gives it
    (the memory of a training step, the roofline of a whole step)."""
    paper = preset("paper").cost()
    step = training_cost(preset("paper"), batch=128)
    big = training_cost(preset("paper"), batch=256)
    schedule = step.schedule().to_dict()
    openai = schedule["openai"]
    two = predict(step, "gtx580", gpus=2)
    gtx, h200 = CATALOG["gtx580"], CATALOG["h200"]
    pfs_day = 10**15 * 86_400
    images, epochs = 1_200_000, 90
    backward = 2 * PAPER_MACS - CONV1_MACS
    first, second = run(1), run(2)
    b1, b8 = first["batches"]
    conv_layers = [r for r in b1["layers"] if r["group"] == "conv"]
    conv_layers8 = [r for r in b8["layers"] if r["group"] == "conv"]
    fc6 = next(r for r in b1["layers"] if r["name"] == "fc6")
    others = [r for b in first["batches"] for r in b["layers"] if r["group"] == "other" and r["bound_ratio"]]
    slowest = max(r2["median_ms"] / r1["median_ms"] for x, y in zip(first["batches"], second["batches"])
                  for r1, r2 in zip(x["layers"], y["layers"]))
    many = [abs(r2["median_ms"] / r1["median_ms"] - 1) for x, y in zip(first["batches"], second["batches"])
            for r1, r2 in zip(x["layers"], y["layers"]) if r1["calls"] == 100]
    seed = preset("seed").cost()
    fc_weights = seed.split["fc"].weight_bytes
    crossed = sum(c.forward_bytes + c.backward_bytes for c in two.crossings)
    return {
        # index.md: the model card and the exercises
        "paper parameters": (paper.totals.params, PAPER_PARAMS),
        "paper MACs": (paper.totals.macs, PAPER_MACS),
        "paper FLOPs": (paper.totals.flops, None),
        "conv1's positions across 224": (Network((3, 224, 224), preset("seed").layers).shapes[1][1], (224 - 11) // 4 + 1),
        "weights, MiB": (d(paper.totals.weight_bytes / MiB, 1), d(4 * 60_965_224 / MiB, 1)),
        "activations, MiB": (d(paper.totals.stored_bytes / MiB, 1), None),
        "step at 128, GiB": (d(step.memory.peak / GiB, 2), None),
        "left of 3 GiB": (d(3 - step.memory.peak / GiB, 2), None),
        "step at 256, GiB": (d(big.memory.peak / GiB, 2), None),
        "pfs-days, exact": (d(schedule["pfs_days"], 5),
                            d(images * epochs * 2 * (PAPER_MACS + backward) / pfs_day, 5)),
        "days predicted": (d(two.days(step.schedule()), 2), None),
        "days at the bound": (d(two.bound_days(step.schedule()), 2), None),
        # training.md
        "saved, GiB": (d(step.saved_bytes / GiB, 2), None),
        "pool1's indices, MiB": (d(next(t.bytes for t in step["pool1"].saved if t.what == "indices") / MiB, 1),
                                 d(128 * 96 * 27 * 27 * 8 / MiB, 1)),
        "LRN keeps, MiB": (d((step["norm1"].saved_bytes + step["norm2"].saved_bytes) / MiB, 1), None),
        "forward MACs, millions": (PAPER_MACS // 10**6, 724),
        "backward MACs, millions": (round(step.backward_macs / 128 / 10**6), round(backward / 10**6)),
        "backward / forward": (d(step.backward_macs / step.forward_macs, 2), d(backward / PAPER_MACS, 2)),
        "conv1's input gradient, millions": (round(step.forward["conv1"].macs / 128 / 10**6), round(CONV1_MACS / 10**6)),
        "torchvision's backward": (training_cost(preset("torchvision")).backward_macs, 1_358_100_160),
        "the rule on the exact forward": (d(openai["rule_on_exact_forward_pfs_days"], 5),
                                          d(images * epochs * PAPER_MACS * 6 / pfs_day, 5)),
        "the formula on 0.75 billion": (d(openai["formula_pfs_days"], 4), d(images * epochs * 0.75e9 * 6 / pfs_day, 4)),
        "the formula's operations, 1e17": (d(openai["formula_flops"] / 1e17, 2), d(images * epochs * 0.75e9 * 6 / 1e17, 2)),
        "the published figure's operations, 1e17": (d(openai["published_pfs_days"] * pfs_day / 1e17, 2),
                                                     d(0.0054 * 8.64e19 / 1e17, 2)),
        "the published figure's multiply-adds, billions": (
            d(openai["published_pfs_days"] * pfs_day / (images * epochs * 6) / 1e9, 2), d(0.0054 * 8.64e19 / 6.48e8 / 1e9, 2)),
        "exact FLOPs, 1e17": (d(schedule["train_flops"] / 1e17, 2), d(images * epochs * 2 * (PAPER_MACS + backward) / 1e17, 2)),
        "a petaflop/s-day, 1e19": (d(pfs_day / 1e19, 2), Decimal("8.64")),
        "steps": (schedule["steps"], images * epochs // 128),
        "GTX 580 TFLOP/s": (d(gtx.fp32 / 1e12, 2), Decimal("1.58")),
        "GTX 580 GB/s": (round(gtx.bandwidth / 1e9), 192),
        "two GPUs: step ms": (round(two.step_ms), None),
        # forward and backward, the whole input of conv3, fc6, fc7, fc8 and the softmax for 128 images
        "two GPUs: MiB crossing a step": (round(crossed / MiB), round(2 * 128 * 4 * (256 * 13 * 13 + 256 * 6 * 6 + 4096
                                                                                     + 4096 + 1000) / MiB)),
        "two GPUs: ms on the link": (round(two.communication_ms), round(crossed / 2 / 8e9 * 1e3)),
        # timing.md: the catalog
        "GTX 580 TFLOP/s, three places": (d(gtx.fp32 / 1e12, 3), Decimal("1.581")),
        "GTX 580 GB/s, one place": (d(gtx.bandwidth / 1e9, 1), Decimal("192.4")),
        "GTX 580 ridge": (d(gtx.fp32 / gtx.bandwidth, 1), d(512 * 1544e6 * 2 / 192.4e9, 1)),
        "fc6 at batch 17": (d(float(fc6_intensity(17)), 1), None),
        "fc6 at batch 16": (d(float(fc6_intensity(16)), 1), None),
        "first batch over the GTX 580's ridge": (first_batch_over(Fraction(gtx.fp32) / Fraction(gtx.bandwidth)), 17),
        "H200 float32 TFLOP/s": (round(h200.fp32 / 1e12), 67),
        "H200 TB/s": (d(h200.bandwidth / 1e12, 1), Decimal("4.8")),
        "H200 TF32 TFLOP/s": (int(h200.tf32 / 1e12), 494),
        "H200 bfloat16 TFLOP/s": (int(h200.bf16 / 1e12), 989),
        # timing.md: the committed CPU run
        "run 1 TFLOP/s": (d(first["peaks"]["flops_per_s"] / 1e12, 3), None),
        "run 1 GB/s": (d(first["peaks"]["bytes_per_s"] / 1e9, 1), None),
        "run 1 ridge": (d(first["peaks"]["ridge_flop_per_byte"], 1), None),
        "run 1 floor": (d(first["settings"]["launch_floor"]["median_ms"], 4), None),
        "run 2 TFLOP/s": (d(second["peaks"]["flops_per_s"] / 1e12, 3), None),
        "run 2 GB/s": (d(second["peaks"]["bytes_per_s"] / 1e9, 1), None),
        "slowest layer, run 2 over run 1": (d(slowest, 1), None),
        "layers of 100 calls stay within": (Decimal(ceil(100 * max(many))), None),
        "conv x bound at batch 1": ((d(min(r["bound_ratio"] for r in conv_layers), 1),
                                     d(max(r["bound_ratio"] for r in conv_layers), 1)), None),
        "conv x bound at batch 8": ((d(min(r["bound_ratio"] for r in conv_layers8), 1),
                                     d(max(r["bound_ratio"] for r in conv_layers8), 1)), None),
        "other layers over their bound": ((round(min(1 / r["bound_ratio"] for r in others), -1),
                                           round(max(1 / r["bound_ratio"] for r in others), -1)), None),
        "fc6 MB moved": (round(fc6["bytes_moved"] / 1e6), round(4 * (FC6_IN * FC6_OUT + FC6_IN + FC6_OUT) / 1e6)),
        "fc6 time share": (round(fc6["time_share"]), None),
        "fc6 x bound": (d(fc6["bound_ratio"], 1), None),
        "network ms at 8": (round(b8["network_ms"]), None),
        "layers ms at 8": (round(b8["layers_sum_ms"]), None),
        "fc weights, MB": (round(fc_weights / 1e6), round(4 * (FC6_IN * FC6_OUT + 4096 * 4096 + 4096 * 1000) / 1e6)),
        "fc weights, MB, two places": (d(fc_weights / 1e6, 2), None),
        "conv weights, MB": (d(seed.split["conv"].weight_bytes / 1e6, 2), None),
        "conv2 reuses each weight": (seed["conv2"].output_shape[1] * seed["conv2"].output_shape[2], 27 * 27),
    }


QUOTED = {
    # the paper (Krizhevsky, Sutskever & Hinton, NIPS 2012) and its reception
    "2012": "the paper's year", "2010": "ILSVRC-2010", "37.5%": "top-1 test error, ILSVRC-2010",
    "17.0%": "top-5 test error, ILSVRC-2010", "15.3%": "top-5 test error of the ILSVRC-2012 entry",
    "1.2": "1.2 million training images (section 2); and LRN's 1.2 points of top-5 error (section 3.3)",
    "1.4": "LRN's 1.4 points of top-1 error (section 3.3)", "90": "roughly 90 cycles through the training set",
    "128": "section 5: a batch size of 128 examples", "580": "GTX 580", "224": "the paper's 224 × 224 input",
    "1.5": "NVIDIA's GeForce GTX 580 specifications: 1536 MB on the reference card",
    "1,281,167": "ILSVRC-2012's training images",
    # OpenAI, "AI and Compute" (2018), its appendix
    "2018": "the year of OpenAI's 'AI and Compute'", "0.0054": "OpenAI's petaflop/s-days for AlexNet",
    "0.75": "the forward multiply-adds OpenAI's appendix quotes (billions)",
    # units: a petaflop/s-day is 10^15 FLOP/s for a day; MiB and GiB are 2^20 and 2^30 bytes
    "17": "10^17 operations (and fc6's batch, a FACT too)", "19": "8.64 × 10^19", "15": "10^15",
    "20": "2^20 bytes in a MiB", "30": "2^30 bytes in a GiB (and 30 µs of Python, below)",
    # torch and its pull request (training.md); PCIe's version (its 8 GB/s each way is a FACT of the catalog)
    "2.14": "torch 2.14's FlopCounterMode", "183405": "pytorch/pytorch#183405", "2.0": "PCIe 2.0",
    "8": "PCIe 2.0 x16: 8 GB/s each way (catalog)",
    # the models ResNet-18 and ResNet-50 (index.md)
    "18": "ResNet-18", "50": "ResNet-50 (and 50 µs, and 50 repeats on CUDA, below)",
    # timing.md: the design's figures, from alexcost.torch_run.timing and scripts/gpu-check
    "10": "10 µs of dispatch; 10 warm-up calls on CUDA; 10 repeats on the CPU", "100": "at most 100 calls on the CPU",
    "200": "at most 200 calls on CUDA", "2": "2 ms samples on the CPU; 2 warm-up calls", "1": "1 ms samples on CUDA",
    "330": "gpu-check's default budget in seconds", "130": "the exit code after Ctrl-C (128 + SIGINT)", "256": "gpu-check's largest batch; fc6's 256 × 6 × 6 inputs",
    "32": "gpu-check's batch 32", "5": "warm-up 5 in gpu-check",
    "2%": "the goal: medians that repeat within 2%", "10%": "the goal: the layers' sum within 10% of the network",
    # the H200's dense TF32 and bfloat16 ridges, from the spec sheet (checked in test_docs_claims.py)
    "103": "494.5 / 4.8", "206": "989.5 / 4.8", "14": "67 / 4.8 (a small integer too)",
    # conv intensities the page's example asserts (float32, bfloat16)
    "75": "conv3's FLOP/B", "77": "conv4's FLOP/B", "151": "conv3, bfloat16", "154": "conv4, bfloat16",
    "220": "conv1, bfloat16", "112.3": "conv's FLOP/B at batch 1 in the run's verdict",
    "355.2": "conv's FLOP/B at batch 8 in the run's verdict",
}
"""Numbers from sources, each with where it comes from."""


def run_numbers() -> set[Decimal]:
    """Every number the committed runs' tables and verdicts hold, as the pages round them: the run is the
    source (tests/test_docs_claims.py checks the page's table against it row by row)."""
    found = set()
    for n in (1, 2):
        record = run(n)
        texts = [*record["verdict"], *(b["verdict"] for b in record["batches"])]
        for b in record["batches"]:
            found |= {d(b["network_ms"], 3), d(b["layers_sum_ms"], 3), d(b["batch"])}
            for g in b["groups"].values():
                found |= {d(g["time_share"], 1), d(g["mac_share"], 1), d(g["param_share"], 1),
                          Decimal(round(g["time_share"]))}
            for r in b["layers"]:
                found.add(d(r["median_ms"], 1))
        for text in texts:
            found |= {Decimal(t.replace(",", "")) for t, _, _ in numbers_in(text)}
    return found


def numbers_in(text: str):
    from alexnet_facts import NUMBER

    for m in NUMBER.finditer(text):
        yield m[1] + (m[2] or ""), None, bool(m[3])


def known() -> tuple[set[Decimal], set[Decimal]]:
    exact, percents = set(architecture_numbers()) | set(map(Decimal, range(17))), set()
    for value, hand in facts().values():
        assert hand is None or value == hand, (value, hand)
        for v in value if isinstance(value, tuple) else (value,):
            exact.add(Decimal(str(v)))
    exact |= run_numbers()
    for q in QUOTED:
        (percents if q.endswith("%") else exact).add(Decimal(q.rstrip("%").replace(",", "")))
    percents |= {v for v, _ in percent_facts().values()} | run_numbers()
    return exact, percents


def page_percents() -> set[Decimal]:
    """Shares these pages state: of the parameters and MACs (alexcost's), of the saved bytes and of the
    roofline (worked out here)."""
    paper = preset("paper").cost()
    step = training_cost(preset("paper"), batch=128)
    schedule = step.schedule()
    two = predict(step, "gtx580", gpus=2)
    share = {g: sum(r.expected_ms for r in two.layers if r.group == g) / two.step_ms for g in ("conv", "fc")}
    lrn = step["norm1"].saved_bytes + step["norm2"].saved_bytes
    to_dict = schedule.to_dict()
    fc6 = next(r for r in run(1)["batches"][0]["layers"] if r["name"] == "fc6")
    return {Decimal(round(fc6["time_share"])),
            Decimal(round(100 * paper.split["fc"].params / paper.totals.params)),
            Decimal(round(100 * paper.split["conv"].macs / paper.totals.macs)),
            Decimal(round(100 * lrn / step.saved_bytes)),
            Decimal(round(100 * share["conv"])), Decimal(round(100 * share["fc"])),
            Decimal(round(100 * (1 - to_dict["pfs_days"] / to_dict["openai"]["rule_on_exact_forward_pfs_days"])))}


def test_facts_agree_with_hand_arithmetic():
    for label, (ours, hand) in facts().items():
        assert hand is None or ours == hand, f"{label}: alexcost says {ours}, hand arithmetic {hand}"


@pytest.mark.parametrize("page", PAGES)
def test_every_number_in_the_prose_is_known(page):
    exact, percents = known()
    percents |= page_percents()
    unknown = [text + ("%" if is_percent else "") for text, value, is_percent in numbers(DOCS / page)
               if (value not in percents if is_percent else value not in exact)]
    assert unknown == [], (f"docs/{page}: numbers no test knows: {unknown}. Add each to "
                           f"tests/test_docs_numbers.py with where it comes from.")


def test_the_model_card_states_alexcosts_numbers():
    """The landing page's table, row by row, against alexcost and the paper."""
    paper = preset("paper").cost()
    step = training_cost(preset("paper"), batch=128)
    text = " ".join((DOCS / "index.md").read_text().split())
    f = facts()
    rows = {
        "parameters": f"{paper.totals.params:,} (96% of them in the three fully connected layers)",
        "MACs per image": f"{paper.totals.macs:,} (92% of them in the five convolutions)",
        "FLOPs per image": f"{paper.totals.flops:,} (2 × MACs + bias adds + other operations)",
        "memory per image, at inference": f"weights {f['weights, MiB'][0]} MiB, activations "
                                          f"{f['activations, MiB'][0]} MiB (float32)",
        "memory of a training step at batch 128": f"{step.memory.peak / GiB:.2f} GiB (by alexcost's model of torch)",
        "training compute": f"{f['pfs-days, exact'][0]} petaflop/s-days for 90 epochs of 1.2 million images "
                            f"(OpenAI's estimate: 0.0054)",
        "training time": f"five to six days on two GTX 580s (the paper); {f['days predicted'][0]} days predicted by "
                         f"alexcost's time model, {f['days at the bound'][0]} at best (its bound)",
    }
    for label, cell in rows.items():
        assert f"| {label} | {cell} |" in text, label
    assert round(100 * paper.split["fc"].params / paper.totals.params) == 96
    assert round(100 * paper.split["conv"].macs / paper.totals.macs) == 92
    assert "PRESETS" and "paper" in PRESETS


def test_the_exercises_answers_are_alexcosts():
    """Each answer states what its one command prints."""
    from click.testing import CliRunner

    from alexcost_cli.main import cli

    text = " ".join((DOCS / "index.md").read_text().split())
    report = CliRunner().invoke(cli, ["report", "--model", "paper"]).output
    assert "FC: 58.6 million (96%)" in report and "Conv: 666.4 million (92%)" in report
    assert "the fully connected layers hold 96% of the parameters, and the convolutions do 92% of the MACs" in text
    at_224 = CliRunner().invoke(cli, ["report", "--model", "seed", "--input-shape", "3,224,224"]).output
    assert "96 * 54 * 54" in at_224 and "256 * 5 * 5" in at_224 and "256*5*5*4096" in at_224
    assert "fit 54 times across 224 pixels" in text and "fc6 has 256·5·5·4096 weights" in text
    train = CliRunner().invoke(cli, ["train", "--model", "paper", "--batch", "128", "--gpu", "gtx580"]).output
    peak = training_cost(preset("paper"), batch=128).memory.peak / GiB
    assert f"memory per GPU (model): {peak:.2f} GiB of 3 GiB: fits" in train
    assert f"yes: {peak:.2f} GiB, which leaves {3 - peak:.2f} GiB" in text
