"""``alexcost verify`` and the comparison engine (alexcost/torch_run/verify.py).

Expected numbers are the seed document's own (1,135,906,176), hand arithmetic written
out here, or what torch and fvcore report; never alexcost's own output.
"""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from alexcost import Conv2d, Linear, Network, PRESETS, ReLU, SpecError  # noqa: E402
from alexcost.torch_run.verify import (Measurement, check_fits, memory_needed, reconcile, render,  # noqa: E402
                                 verify_module, verify_network)
from alexcost_cli.main import cli  # noqa: E402

CUDA = torch.cuda.is_available()
SEED_FORWARD = 1_135_906_176  # the seed table's "Forward Computation" total
# The seed's conv layers have biases: one add per output element, C_out*H_out*W_out.
SEED_BIAS_ADDS = 96 * 55 * 55 + 256 * 27 * 27 + 384 * 13 * 13 + 384 * 13 * 13 + 256 * 13 * 13


def run(*args):
    return CliRunner().invoke(cli, ["verify", *args])


@pytest.fixture(scope="module")
def seed_json():
    result = run("--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("model", ["paper", "torchvision"])
def test_presets_verify_on_the_cpu(model):
    result = run("--model", model, "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[2].split() == ["#", "layer", "type", "output", "params", "MACs", "fvcore", "torch",
                                           "FLOPs", "difference", "verdict"]
    assert f"verify {model}: OK" in out.splitlines()[-1]
    assert "on cpu" in out


def test_seed_verifies_and_explains_the_forward_computation(seed_json):
    data = seed_json
    assert data["ok"] is True and data["device"] == "cpu"
    assert len(data["layers"]) == 23
    # fvcore's total is the seed's forward computation without the bias adds, to the digit
    assert SEED_BIAS_ADDS == 650_080
    assert data["totals"]["fvcore"] == SEED_FORWARD - SEED_BIAS_ADDS
    assert data["totals"]["torch_flops"] == 2 * (SEED_FORWARD - SEED_BIAS_ADDS)
    line = data["explanation"]
    assert f"{SEED_FORWARD:,}" in line and f"{SEED_FORWARD - SEED_BIAS_ADDS:,}" in line
    assert f"= {SEED_BIAS_ADDS:,}: the bias adds of conv1, conv2, conv3, conv4, conv5" in line


def test_seed_table_has_the_explanation_and_lists_ops_fvcore_skips():
    result = run("--device", "cpu")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert sum("1,135,906,176" in line and "650,080" in line for line in out.splitlines()) == 1
    assert "pool1  aten::max_pool2d" in out
    assert "aten::avg_pool3d" in out  # LRN's pieces
    assert out.splitlines()[-1].startswith("verify seed: OK")


def test_seed_layers_match_hand_arithmetic(seed_json):
    layers = {row["name"]: row for row in seed_json["layers"]}
    # conv1: 96 filters of 11*11*3 over 55*55 positions; fc6: 9216*4096 (no bias in the seed)
    assert layers["conv1"]["fvcore"] == 96 * 55 * 55 * 11 * 11 * 3
    assert layers["conv1"]["torch_flops"] == 2 * 96 * 55 * 55 * 11 * 11 * 3
    assert layers["conv1"]["measured_params"] == (11 * 11 * 3 + 1) * 96
    assert layers["fc6"]["fvcore"] == 256 * 6 * 6 * 4096
    assert layers["pool1"]["measured_shape"] == [96, 27, 27]
    assert layers["pool1"]["fvcore_unsupported"] == ["aten::max_pool2d"]


def test_a_corrupted_mac_count_fails_naming_the_layer(monkeypatch):
    honest = Conv2d.macs
    monkeypatch.setattr(Conv2d, "macs", lambda self, x, y: honest(self, x, y) + (self.name == "conv3"))
    result = run("--device", "cpu")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "MISMATCH conv3: MACs: alexcost 149,520,385, fvcore 149,520,384" in lines
    assert any(line.startswith("MISMATCH conv3: FLOPs") for line in lines)
    assert lines[-1].startswith("verify seed: MISMATCH") and "conv3" in lines[-1]
    assert "conv1" not in lines[-1]


def test_a_corrupted_param_count_or_shape_fails(monkeypatch):
    honest = Linear.weight_params
    monkeypatch.setattr(Linear, "weight_params", lambda self, x: honest(self, x) * (2 if self.name == "fc7" else 1))
    result = run("--device", "cpu", "--format", "json", "--no-fvcore")
    assert result.exit_code == 1
    bad = [row for row in json.loads(result.stdout)["layers"] if not row["ok"]]
    assert [row["name"] for row in bad] == ["fc7"] and bad[0]["problems"][0].startswith("params")


def test_fvcore_missing_skips_it_and_torch_still_checks(monkeypatch):
    monkeypatch.setitem(sys.modules, "fvcore", None)
    monkeypatch.setitem(sys.modules, "fvcore.nn", None)
    result = run("--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "fvcore skipped: not installed" in result.stdout.splitlines()[-1]
    data = json.loads(run("--device", "cpu", "--format", "json").stdout)
    assert data["fvcore"] == {"ran": False, "note": "fvcore skipped: not installed"}
    assert data["totals"]["torch_flops"] == 2 * (SEED_FORWARD - SEED_BIAS_ADDS)
    assert f"{SEED_BIAS_ADDS:,} bias adds" in data["explanation"]


def test_fvcore_broken_skips_it(monkeypatch):
    import fvcore.nn

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("unsupported torch version")
    monkeypatch.setattr(fvcore.nn, "FlopCountAnalysis", Broken)
    network = Network((3, 8, 8), [Conv2d(out_channels=4, kernel_size=3), ReLU()])
    result = verify_network(network, device="cpu")
    assert result.ok
    assert result.fvcore_note == "fvcore skipped: it failed on this module: RuntimeError: unsupported torch version"
    assert result.layers[0].torch == 2 * (4 * 6 * 6 * 3 * 3 * 3)


@pytest.mark.skipif(CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line_exit_2():
    result = run("--device", "cuda")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --device cuda: CUDA is not available") and result.stderr.count("\n") == 1
    auto = run("--device", "auto", "--format", "json")
    assert json.loads(auto.stdout)["device"] == "cpu"


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_verify_on_cuda():
    for model in PRESETS:
        result = run("--model", model, "--device", "cuda", "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["device"].startswith("cuda")


def test_a_network_too_big_for_memory_is_refused_before_allocating(tmp_path):
    spec = tmp_path / "huge.json"
    spec.write_text(json.dumps({"input_shape": [3, 64, 64], "layers": [
        {"type": "Conv2d", "out_channels": 10**6, "kernel_size": 3},
        {"type": "Conv2d", "out_channels": 10**6, "kernel_size": 3}]}))
    out = tmp_path / "report.json"
    result = run("--spec", str(spec), "--out", str(out))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: a forward pass of 'huge' at batch 1 needs at least")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_memory_estimate_is_weights_plus_twice_the_widest_layer():
    network = Network((3, 10, 10), [Conv2d(out_channels=8, kernel_size=3), ReLU()])
    cost = network.cost(batch=4)
    weights = (8 * 3 * 3 * 3 + 8) * 4
    conv_io = 4 * (3 * 10 * 10 + 8 * 8 * 8) * 4  # input + output, float32, batch 4
    widest = 4 * (8 * 8 * 8 + 8 * 8 * 8) * 4  # the ReLU's are wider
    assert widest > conv_io
    assert memory_needed(cost) == weights + 2 * widest
    check_fits(cost, "cpu", free=10 * (weights + 2 * widest))
    with pytest.raises(SpecError, match="needs at least"):
        check_fits(cost, "cpu", free=weights + 2 * widest)


def test_out_writes_the_json(tmp_path):
    out = tmp_path / "verify.json"
    result = run("--device", "cpu", "--spec", str(_tiny_spec(tmp_path)), "--format", "json", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    data = json.loads(out.read_text())
    assert data["ok"] and [row["name"] for row in data["layers"]] == ["conv", "relu", "flat", "fc"]


def _tiny_spec(tmp_path):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"input_shape": [3, 6, 6], "layers": [
        {"type": "Conv2d", "name": "conv", "out_channels": 4, "kernel_size": 3, "padding": "same"},
        {"type": "ReLU", "name": "relu"}, {"type": "Flatten", "name": "flat"},
        {"type": "Linear", "name": "fc", "out_features": 2}]}))
    return spec


def test_same_padding_conv_is_checked_by_torch_when_fvcore_cannot_count_it(tmp_path):
    data = json.loads(run("--device", "cpu", "--spec", str(_tiny_spec(tmp_path)), "--format", "json").stdout)
    conv = data["layers"][0]
    assert data["ok"]
    assert conv["fvcore"] == 0 and conv["fvcore_unsupported"] == ["aten::_convolution_mode"]
    assert conv["fvcore_expected"] == 0 and conv["fvcore_declared"] is None  # Conv2d declares fvcore cannot count it
    assert conv["fvcore_check"] == "layer"
    assert conv["torch_flops"] == 2 * (4 * 6 * 6 * 3 * 3 * 3)


def test_bad_spec_is_one_line_exit_2(tmp_path):
    spec = tmp_path / "bad.json"
    spec.write_text('{"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 9}]}')
    result = run("--spec", str(spec))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: layers[0]") and result.stderr.count("\n") == 1


def test_reconcile_reports_a_wrong_shape_by_layer():
    network = Network((2, 4, 4), [Conv2d(name="c", out_channels=3, kernel_size=3), ReLU(name="r")])
    cost = network.cost(batch=2)
    measured = Measurement("cpu", "test", ((2, 3, 2, 2), (2, 3, 3, 3)), (3 * 2 * 9 + 3, 0),
                           (2 * 2 * 3 * 2 * 2 * 2 * 9, 0), 2 * 2 * 3 * 2 * 2 * 2 * 9, None, ((), ()), None,
                           "fvcore skipped: test")
    result = reconcile(cost, measured)
    assert not result.ok
    assert result.problems == ("r: output shape: alexcost 3 * 2 * 2, torch 3 * 3 * 3",)
    text = render(result)
    assert "MISMATCH r: output shape" in text and "3 * 2 * 2 (torch 3 * 3 * 3)" in text
    assert json.loads(render(result, "json"))["layers"][1]["measured_shape"] == [3, 3, 3]


def test_verify_module_with_a_reused_module():
    conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    module = torch.nn.Sequential(conv, torch.nn.ReLU(), conv)
    result = verify_module(module, (2, 5, 5), batch=3)
    assert result.ok, result.problems
    first, _, again = result.layers
    assert again.repeat_of == first.name
    one_call = 3 * 2 * 5 * 5 * 2 * 3 * 3  # batch 3: C_out*H*W*C_in*kH*kW MACs
    assert first.torch == again.torch == 2 * one_call  # torch's counter: each call on its own layer
    assert first.fvcore == 2 * one_call and again.fvcore is None  # fvcore: both calls under the first name
    assert first.fvcore_check == "calls" and again.fvcore_check == "repeat"
    assert first.params == 2 * 2 * 3 * 3 + 2 and again.params == 0
