"""The time model and ``alexcost predict``: kernels and times worked out by hand from the model's
formula and the shipped coefficients, the bound on every published timing, the JSON contract,
the formats and errors, and ``train --gpu`` giving the same step.

Counts are hand arithmetic written out here; rates are the spec sheets' units and clocks; the
coefficients are read from the shipped data file, never from alexcost's output.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alexcost import BatchNorm2d, Conv2d, Flatten, Linear, Network, ReLU, SpecError, preset
from alexcost.hardware.model import expected_ms, timed
from alexcost.hardware.timemodel import GRAPH_KERNEL_US, TILE
from alexcost.prediction import plan_for, predict
from alexcost_cli.main import cli
from static_path import heavy_imports_of

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = json.loads((ROOT / "alexcost" / "hardware" / "time_model.json").read_text())
C = SHIPPED["coefficients"]
V100_FP32 = 80 * 64 * 2 * 1530e6
A100_FP32, A100_TF32 = 108 * 64 * 2 * 1410e6, 108 * 1024 * 1410e6


def conv_net():
    return Network((3, 32, 32), [Conv2d(name="conv", out_channels=16, kernel_size=3, padding=1)])


def waves(elements: int, sms: int) -> float:
    tiles = math.ceil(elements / 4096)
    return tiles / (math.ceil(tiles / sms) * sms)


def test_one_convolution_by_hand_on_cuda_cores():
    """max(FLOPs / (FP32 rate x conv x Winograd x waves), bytes / (bandwidth x efficiency)) + the eager kernel cost."""
    batch = 8
    macs = batch * 16 * 32 * 32 * 3 * 3 * 3
    flops = 2 * macs + batch * 16 * 32 * 32
    nbytes = 4 * (batch * 3 * 32 * 32 + 16 * 27 + 16 + batch * 16 * 32 * 32)
    q = waves(batch * 16 * 32 * 32, 80)
    assert q == 32 / 80
    compute = flops / (V100_FP32 * C["conv"] * C["winograd"] * q)
    memory = nbytes / (900e9 * C["bandwidth"])
    e = predict(conv_net(), "v100", batch=batch)
    expect = (max(compute, memory) + C["eager_kernel_us"] * 1e-6) * 1e3
    assert e.expected_ms == pytest.approx(expect, rel=1e-9)
    assert e.layers[0].expected_ms == pytest.approx(expect, rel=1e-9)
    # the bound: Winograd's F(2x2, 3x3) does 16 multiplies where a direct convolution does 36, full bandwidth
    assert e.bound_ms == pytest.approx(max(flops / 2.25 / V100_FP32, nbytes / 900e9) * 1e3, rel=1e-9)
    assert e.layers[0].limited_by == ("launch" if C["eager_kernel_us"] * 1e-6 > max(compute, memory) else
                                      "compute" if compute >= memory else "memory")


def test_tensor_cores_and_the_sm_around_them():
    """TF32: FLOPs / tensor rate + FLOPs / (tensor_side x FP32 rate), both at the kernel's waves; no Winograd."""
    batch = 64
    flops = 2 * batch * 16 * 32 * 32 * 27 + batch * 16 * 32 * 32
    nbytes = 4 * (batch * 3 * 1024 + 16 * 28 + batch * 16 * 1024)
    q = waves(batch * 16 * 1024, 108)
    compute = flops / (A100_TF32 * q) + flops / (A100_FP32 * C["tensor_side"] * q)
    memory = nbytes / (1555e9 * C["bandwidth"])
    e = predict(conv_net(), "a100-40gb", batch=batch, dtype="tf32", mode="graph")
    assert e.expected_ms == pytest.approx((max(compute, memory) + GRAPH_KERNEL_US * 1e-6) * 1e3, rel=1e-9)
    assert e.bound_ms == pytest.approx(max(flops / 2.25 / A100_TF32, nbytes / 1555e9) * 1e3, rel=1e-9)


def test_boost_headroom_raises_a_geforce_cards_rates():
    batch = 8
    flops = 2 * batch * 16 * 1024 * 27 + batch * 16 * 1024
    nbytes = 4 * (batch * 3 * 1024 + 16 * 28 + batch * 16 * 1024)
    rate = 20 * 128 * 2 * 1733e6 * 1.15  # GTX 1080, rated boost clock, GPU Boost headroom
    e = predict(conv_net(), "gtx1080", batch=batch)
    assert e.bound_ms == pytest.approx(max(flops / 2.25 / rate, nbytes / 320e9) * 1e3, rel=1e-9)


def test_wave_quantization_of_a_small_layer():
    from alexcost.hardware.timemodel import waves as model_waves

    assert TILE == 64 * 64
    assert model_waves(4096 * 80, 80) == 1 and model_waves(4096 * 81, 80) == 81 / 160
    assert model_waves(1, 108) == 1 / 108 and model_waves(0, 108) == 1


def block():
    return Network((8, 16, 16), [Conv2d(name="conv", out_channels=8, kernel_size=3, padding=1, bias=False),
                                 BatchNorm2d(name="bn"), ReLU(name="relu"), Flatten(name="flat"),
                                 Linear(name="fc", out_features=10)])


def test_fusion_at_inference_in_graph_mode_only():
    """Eager: conv, batch norm, ReLU and fc each launch; graph: the batch norm folds into the convolution
    and the ReLU runs in its epilogue; Flatten is a view either way."""
    eager = {r.name: r.kernels for r in predict(block(), "a100", batch=4).layers}
    graph = {r.name: r.kernels for r in predict(block(), "a100", batch=4, mode="graph").layers}
    assert eager == {"conv": 1, "bn": 1, "relu": 1, "flat": 0, "fc": 1}
    assert graph == {"conv": 1, "bn": 0, "relu": 0, "flat": 0, "fc": 1}
    # training: two kernels for the convolution's backward (only the weights' gradient: its input is the
    # network's) and two for fc's, one for each of the others
    step = {r.name: r.kernels for r in predict(block(), "a100", batch=4, phase="train_step").layers}
    assert step == {"conv": 2, "bn": 2, "relu": 2, "flat": 0, "fc": 3}


def test_mixed_precision_casts_the_weights_and_keeps_fp32_masters():
    net = block()
    p = plan_for(net, "a100", batch=4, dtype="amp", phase="train_iteration")
    casts = [k for k in p.kernels if k.stage == "cast"]
    assert [(k.layer, k.bytes) for k in casts] == [(0, 6 * 8 * 8 * 9), (4, 6 * (8 * 16 * 16 * 10 + 10))]
    # the update: conv weight, bn weight and bias, fc weight and bias; momentum reads and writes 5 FP32 elements
    assert sorted(k.bytes for k in p.update) == sorted(5 * 4 * n for n in (8 * 8 * 9, 8, 8, 2048 * 10, 10))
    half = [k for k in p.kernels if k.stage == "forward" and k.layer == 1][0]
    # batch norm in training, FP16 activations: its input read twice (statistics, then normalising), its output,
    # weight and bias (2 x 8), the running mean and variance (FP32) and the step count (int64), the batch mean
    # and inverse standard deviation it keeps (2 x 8)
    elements = 4 * 8 * 16 * 16
    assert half.bytes == 2 * (2 * elements + elements + 2 * 8) + (4 * 2 * 8 + 8) + 2 * 2 * 8


def test_the_update_and_the_iteration():
    net = block()
    step = predict(net, "v100", batch=4, phase="train_step")
    it = predict(net, "v100", batch=4, phase="train_iteration")
    assert it.expected_ms == pytest.approx(step.expected_ms + it.update_ms)
    moved = 5 * 4 * (8 * 8 * 9 + 8 + 8 + 2048 * 10 + 10)
    assert it.update_bound_ms == pytest.approx(moved / 900e9 * 1e3)
    assert it.update_ms == pytest.approx((moved / (900e9 * C["bandwidth"]) + 5 * C["eager_kernel_us"] * 1e-6) * 1e3,
                                         rel=1e-3)


def test_data_parallel_all_reduce_and_the_papers_split():
    e = predict(preset("resnet18"), "a100", batch=128, gpus=4, phase="train_iteration")
    assert e.split == "data" and e.communication_ms == pytest.approx(2 * 3 / 4 * 11_689_512 * 4 / 300e9 * 1e3)
    one = predict(preset("resnet18"), "a100", batch=32, phase="train_iteration")
    assert e.expected_ms == pytest.approx(one.expected_ms + e.communication_ms)
    paper = predict(preset("paper"), "gtx580", batch=128, gpus=2, phase="train_iteration")
    crossed = 2 * 128 * 4 * (256 * 13 * 13 + 9216 + 4096 + 4096 + 1000)  # conv3, fc6, fc7, fc8, prob; both ways
    assert paper.split == "model" and paper.communication_ms == pytest.approx(crossed / 2 / 8e9 * 1e3)
    with pytest.raises(SpecError, match="batch 10 is not a multiple of 4 GPUs"):
        predict(preset("resnet18"), "a100", batch=10, gpus=4)


def test_the_whole_plan_equals_its_layers():
    p = plan_for(preset("googlenet"), "v100", batch=32, dtype="amp", phase="train_iteration")
    e = timed(p)
    assert expected_ms(p) == pytest.approx(e.expected_ms, rel=1e-12)
    assert e.expected_ms == pytest.approx(sum(r.expected_ms for r in e.layers) + e.update_ms + e.communication_ms)
    assert e.bound_ms < e.expected_ms


def test_where_the_time_goes_at_batch_one():
    """The seed's claim on a V100: conv holds 95% of the MACs; at batch 1 the fc layers read all their
    weights (234 MB) and take much of the time."""
    e = predict(preset("seed"), "v100", batch=1)
    fc = [r for r in e.layers if r.type == "Linear"]
    assert all(r.limited_by in ("memory", "launch") for r in fc)
    fc_weights = 4 * (9216 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert sum(r.bound_ms for r in fc) >= fc_weights / 900e9 * 1e3
    big = predict(preset("seed"), "v100", batch=256)
    assert {r.name: r.limited_by for r in big.layers}["conv2"] == "compute"


def published():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import published as module

    return module


def test_no_published_timing_is_faster_than_the_bound():
    """The bound holds: every published measurement takes at least 95% of bound_ms."""
    data = published()
    rows = data.rows()
    for row, p in zip(rows, data.plans(rows)):
        assert timed(p).bound_ms <= 1.05 * row.measured_ms, row


def test_the_shipped_coefficients_come_from_the_published_file():
    data = published()
    prov = SHIPPED["provenance"]
    assert prov["sha256"] == data.sha256() and prov["rows"] == len(data.rows())
    assert prov["command"] == "scripts/fit-time-model" and prov["anchoring"]["kept"] is False
    assert {"median_error", "median_ratio", "within_10", "within_25"} <= set(prov["leave_one_gpu_out"])


@pytest.mark.slow
def test_the_fit_is_deterministic():
    """Refitting from scratch gives the shipped coefficients."""
    published()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit-time-model"), "--quick"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("coefficients: "))
    refit = dict(part.split(" ") for part in line[len("coefficients: "):].split(", "))
    assert {k: float(v) for k, v in refit.items()} == pytest.approx(C, rel=1e-5)


# -- the command ---------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, ["predict", *args])


def test_json_contract():
    result = run("--model", "torchvision", "--gpu", "h100", "--batch", "32", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"model", "gpu", "gpus", "batch", "dtype", "phase", "expected_ms", "bound_ms", "layers"} <= set(data)
    assert (data["model"], data["gpu"], data["gpus"], data["batch"], data["dtype"], data["phase"]) == \
        ("torchvision", "h100", 1, 32, "float32", "forward")
    assert [r["name"] for r in data["layers"]] == list(preset("torchvision").names)
    for r in data["layers"]:
        assert {"name", "expected_ms", "bound_ms", "limited_by"} <= set(r)
        assert r["limited_by"] in ("compute", "memory", "launch", None)
    assert data["expected_ms"] == pytest.approx(sum(r["expected_ms"] for r in data["layers"]))
    assert sum(r["mac_share"] for r in data["layers"]) == pytest.approx(100)
    assert data["anchored"] is False


def test_formats_and_out(tmp_path):
    table = run("--model", "seed", "--gpu", "gtx580")
    assert table.exit_code == 0
    assert "time %" in table.stdout and "MACs %" in table.stdout and "params %" in table.stdout
    assert "expected:" in table.stdout and "bound:" in table.stdout
    markdown = run("--model", "seed", "--gpu", "gtx580", "--format", "markdown")
    assert "| layer" in markdown.stdout and "|:--" in markdown.stdout
    out = tmp_path / "p.csv"
    written = run("--model", "seed", "--gpu", "gtx580", "--phase", "train_iteration", "--out", str(out))
    assert written.exit_code == 0 and "wrote" in written.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("name,type,expected_ms,time_share,mac_share,param_share,bound_ms,limited_by")
    assert lines[-1].startswith("update,optimizer,")


@pytest.mark.parametrize("args, message", [
    (("--model", "seed"), "Missing option '--gpu'"),
    (("--model", "seed", "--gpu", "rtx2080"), "'rtx2080' is not one of"),
    (("--model", "seed", "--gpu", "v100", "--dtype", "tf32"), "has no TF32 tensor cores"),
    (("--model", "resnet18", "--gpu", "a100", "--gpus", "3", "--batch", "8"), "batch 8 is not a multiple of 3 GPUs"),
    (("--model", "resnet18", "--gpu", "a100", "--gpus", "2", "--split", "model"), "model split needs a chain"),
    (("--model", "seed", "--gpu", "a100", "--phase", "backward"), "'backward' is not one of"),
    (("--model", "seed", "--gpu", "a100", "--batch", "0"), "0 is out of range"),
    (("--model", "paper", "--gpu", "2xgtx580", "--gpus", "4"), "--gpu 2xgtx580 means 2 GPUs, but --gpus says 4"),
    (("--model", "paper", "--gpu", "2xgtx590"), "'2xgtx590' is not one of"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    out = tmp_path / "never.json"
    done = subprocess.run([sys.executable, "-m", "alexcost", "predict", *args, "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and message in done.stderr
    assert not out.exists()


def test_predict_equals_train_gpu_for_the_same_step():
    for extra in ((), ("--gpus", "2")):
        for model, gpu in (("torchvision", "v100"), ("paper", "gtx580")):
            train = json.loads(CliRunner().invoke(cli, ["train", "--model", model, "--batch", "64", "--gpu", gpu, *extra,
                                                        "--format", "json"]).stdout)["hardware"]
            pred = json.loads(run("--model", model, "--batch", "64", "--gpu", gpu, *extra, "--phase", "train_iteration",
                                  "--format", "json").stdout)
            assert train["step_ms"] == pytest.approx(pred["expected_ms"], rel=1e-12)
            assert train["bound_ms"] == pytest.approx(pred["bound_ms"], rel=1e-12)
            assert train["split"] == pred["split"]


def test_a_published_multi_gpu_key_is_the_key_on_that_many_gpus():
    """``--gpu 2xgtx580``, as published timings name the paper's two cards, is ``--gpu gtx580 --gpus 2``."""
    short = json.loads(run("--model", "paper", "--gpu", "2xgtx580", "--batch", "128", "--format", "json").stdout)
    long = json.loads(run("--model", "paper", "--gpu", "gtx580", "--gpus", "2", "--batch", "128", "--format",
                          "json").stdout)
    assert short == long and (short["gpu"], short["gpus"], short["split"]) == ("gtx580", 2, "model")


def test_python_api_matches_the_command():
    import alexcost

    e = alexcost.predict(preset("resnet50"), "a100", batch=256, dtype="amp", phase="train_iteration")
    data = json.loads(run("--model", "resnet50", "--gpu", "a100", "--batch", "256", "--dtype", "amp", "--phase",
                          "train_iteration", "--format", "json").stdout)
    assert e.expected_ms == pytest.approx(data["expected_ms"], rel=1e-12)


def test_predict_never_imports_torch():
    heavy, out = heavy_imports_of("predict", "--model", "resnet50", "--gpu", "a100", "--format", "json")
    assert heavy == [], heavy
    assert json.loads(out)["gpu"] == "a100"


def test_spec_files_and_input_shapes(tmp_path):
    spec = ROOT / "benchmarks" / "data" / "tf_alexnet.json"
    by_spec = json.loads(run("--spec", str(spec), "--gpu", "p100", "--format", "json").stdout)
    assert by_spec["model"] == "tf_alexnet" and by_spec["layers"][0]["macs"] == 64 * 55 * 55 * 3 * 11 * 11
    wide = json.loads(run("--model", "paper", "--input-shape", "3,224,224", "--gpu", "p100", "--format", "json").stdout)
    assert wide["layers"][0]["macs"] == 96 * 54 * 54 * 3 * 11 * 11
    assert os.path.exists(spec)


def test_the_coefficients_ship_with_the_package():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["alexcost"]
    assert "hardware/time_model.json" in data


def test_hardware_takes_the_training_cost_from_its_caller():
    """alexcost.hardware never imports alexcost.training (nor torch): it is given the counts."""
    code = ("import sys; import alexcost.hardware, alexcost.hardware.timemodel, alexcost.hardware.kernels; "
            "print(sorted(m for m in sys.modules if m.startswith('alexcost.training') or m == 'torch'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    import ast

    for path in (ROOT / "alexcost" / "hardware").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any("training" in n for n in names), (path, names)
