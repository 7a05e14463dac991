"""Several networks, or batch sizes, side by side: ``--model``, ``--spec``, ``--module``, ``--torchvision``
and ``--timm`` repeat, ``--batch 1,8,32`` sweeps, on ``report``, ``train`` and ``predict``; one row each,
a JSON list, and one network keeps its single object. ``train --max-batch``. Expected values: the
seed table's published totals, torch's parameters, and arithmetic here."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli

SEED_PARAMS, SEED_MACS = 62_369_152, 1_135_256_096  # the seed table's totals (its MACs without the bias adds)
PAPER_PARAMS = 60_965_224                           # Krizhevsky et al.'s two-GPU network, biases included


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def table_rows(text: str) -> list[list[str]]:
    """The data rows of a simple table (after the dashed rule, up to the blank line)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line) <= {"-", " "} and line) + 1
    end = lines.index("", start)
    return [line.split() for line in lines[start:end]]


def test_two_presets_one_row_each_in_the_order_given():
    rows = table_rows(run("report", "--model", "seed", "--model", "paper"))
    assert [r[0] for r in rows] == ["seed", "paper"]
    assert [r[4] for r in rows] == [f"{SEED_PARAMS:,}", f"{PAPER_PARAMS:,}"]
    assert rows[0][5] == f"{SEED_MACS:,}"


def test_order_across_options_is_the_command_lines(tmp_path):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"name": "tiny", "input_shape": [3, 8, 8],
                                "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": 3}]}))
    data = json.loads(run("report", "--model", "paper", "--spec", spec, "--model", "seed", "--format", "json"))
    assert [d["model"] for d in data] == ["paper", "tiny", "seed"]
    assert data[1]["totals"]["params"] == (3 * 3 * 3 + 1) * 2


def test_json_is_a_list_of_the_single_objects():
    both = json.loads(run("report", "--model", "seed", "--model", "paper", "--format", "json"))
    assert isinstance(both, list) and len(both) == 2
    assert both[0] == json.loads(run("report", "--model", "seed", "--format", "json"))
    assert both[1] == json.loads(run("report", "--model", "paper", "--format", "json"))
    single = json.loads(run("report", "--format", "json"))
    assert isinstance(single, dict) and single["totals"]["params"] == SEED_PARAMS


def test_a_batch_sweep_scales_every_count_but_parameters():
    data = json.loads(run("report", "--batch", "1,8,32", "--format", "json"))
    assert [d["batch"] for d in data] == [1, 8, 32]
    assert [d["totals"]["macs"] for d in data] == [SEED_MACS, 8 * SEED_MACS, 32 * SEED_MACS]
    assert {d["totals"]["params"] for d in data} == {SEED_PARAMS}
    rows = table_rows(run("report", "--batch", "1,8", "--model", "seed", "--model", "paper"))
    assert [(r[0], r[2]) for r in rows] == [("seed", "1"), ("seed", "8"), ("paper", "1"), ("paper", "8")]


def test_csv_side_by_side_holds_exact_numbers():
    rows = list(csv.DictReader(io.StringIO(run("report", "--model", "seed", "--model", "paper", "--format", "csv"))))
    assert [(r["model"], int(r["params"]), int(r["weight_bytes"])) for r in rows] == [
        ("seed", SEED_PARAMS, 4 * SEED_PARAMS), ("paper", PAPER_PARAMS, 4 * PAPER_PARAMS)]
    assert int(rows[0]["macs"]) == SEED_MACS


def test_a_torch_module_beside_a_preset():
    torchvision = pytest.importorskip("torchvision")
    data = json.loads(run("report", "--model", "torchvision", "--torchvision", "alexnet", "--format", "json"))
    torch_params = sum(p.numel() for p in torchvision.models.alexnet().parameters())
    assert [d["model"] for d in data] == ["torchvision", "alexnet"]
    assert data[0]["totals"]["params"] == data[1]["totals"]["params"] == torch_params


def test_train_side_by_side_and_its_json_list():
    data = json.loads(run("train", "--model", "seed", "--model", "resnet18", "--batch", "32", "--format", "json"))
    assert [(d["model"], d["batch"]) for d in data] == [("seed", 32), ("resnet18", 32)]
    # a training step: forward MACs, then backward ones; the seed's forward MACs for 32 samples by the table
    assert data[0]["totals"]["forward_macs"] == 32 * SEED_MACS
    rows = table_rows(run("train", "--model", "seed", "--batch", "32,64", "--gpu", "h100"))
    assert [(r[0], r[1]) for r in rows] == [("seed", "32"), ("seed", "64")]
    assert all("yes" in r for r in rows)  # fits: a column of its own with --gpu
    single = json.loads(run("train", "--format", "json"))
    assert isinstance(single, dict) and single["batch"] == 128


def test_predict_side_by_side():
    data = json.loads(run("predict", "--gpu", "v100", "--model", "seed", "--model", "resnet50", "--batch", "1,64",
                          "--format", "json"))
    assert [(d["model"], d["batch"]) for d in data] == [("seed", 1), ("seed", 64), ("resnet50", 1), ("resnet50", 64)]
    rows = table_rows(run("predict", "--gpu", "v100", "--model", "seed", "--model", "resnet50"))
    assert [r[0] for r in rows] == ["seed", "resnet50"]
    single = json.loads(run("predict", "--gpu", "v100", "--format", "json"))
    assert isinstance(single, dict) and single["model"] == "seed"


def test_max_batch_is_the_largest_that_fits():
    """The seed on an 80 GiB H100: the memory model's peak grows with the batch; the batch found fits
    and one more sample does not."""
    result = CliRunner().invoke(cli, ["train", "--gpu", "h100", "--max-batch", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    best = data["batch"]
    assert f"largest batch that fits on 1 x h100: {best:,}" in result.stderr
    assert data["hardware"]["fits"] and data["hardware"]["memory_per_gpu"] <= 80 * 2**30
    over = json.loads(run("train", "--gpu", "h100", "--batch", best + 1, "--format", "json"))
    assert not over["hardware"]["fits"] and over["hardware"]["memory_per_gpu"] > 80 * 2**30


def test_max_batch_on_several_gpus_is_a_multiple_of_them():
    data = json.loads(run("train", "--model", "resnet18", "--gpu", "v100", "--gpus", "4", "--split", "data",
                          "--max-batch", "--format", "json"))
    assert data["batch"] % 4 == 0 and data["hardware"]["fits"]
    over = json.loads(run("train", "--model", "resnet18", "--gpu", "v100", "--gpus", "4", "--split", "data",
                          "--batch", data["batch"] + 4, "--format", "json"))
    assert not over["hardware"]["fits"]


@pytest.mark.parametrize("args, message", [
    (["train", "--max-batch"], "--max-batch needs --gpu"),
    (["train", "--max-batch", "--gpu", "h100", "--batch", "8"], "give --batch or --max-batch, not both"),
    (["report", "--batch", "1,0"], "--batch"),
    (["report", "--batch", "1,,2"], "--batch"),
])
def test_bad_sweeps_are_one_line(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
