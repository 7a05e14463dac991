"""``alexcost verify`` and the comparison engine (alexcost/torch_run/verify.py).

Expected numbers are the seed document's own (1,135,906,176), hand arithmetic written
out here, or what torch and fvcore report; never alexcost's own output.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from dataclasses import replace
from math import prod
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

torch = pytest.importorskip("torch")

nn = torch.nn

from alexcost import (AdaptiveAvgPool2d, Conv2d, Flatten, LAYER_KINDS, Linear, MaxPool2d, Network, PRESETS, ReLU,  # noqa: E402
                      SpecError)
from alexcost.torch_bridge import to_module  # noqa: E402
from alexcost.torch_run.verify import (Measurement, check_fits, explain_forward, measure, memory_needed, reconcile,  # noqa: E402
                                       render, verify_module, verify_network)
from alexcost_cli.main import cli  # noqa: E402

from doc_pages import blocks  # noqa: E402
from printed_sums import assert_adds_up  # noqa: E402
from strategies import chain_networks  # noqa: E402

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


@pytest.mark.slow
@pytest.mark.parametrize("model", ["paper", "torchvision"])
def test_presets_verify_on_the_cpu(model):
    result = run("--model", model, "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[2].split() == ["#", "layer", "type", "output", "params", "MACs", "fvcore", "torch",
                                           "FLOPs", "difference", "verdict"]
    assert f"verify {model}: OK" in out.splitlines()[-1]
    assert "on cpu" in out


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# == regressions: printed sums, corrupted counts, dtypes and the device's name =====================
# Regression tests for the review of verify (issue 12, part B, findings 5 to 9) and its device name.
#
# Expected numbers are hand arithmetic written as formulas, or what torch and fvcore report.


ROOT = Path(__file__).resolve().parents[1]


# -- 5: every number verify prints adds up ---------------------------------------------------------

SAME = Network((3, 8, 8), [Conv2d(name="conv", out_channels=4, kernel_size=3, padding="same")], name="same")


def test_a_conv_fvcore_cannot_count_is_named_in_the_sum_and_the_difference():
    result = verify_network(SAME, device="cpu")
    assert result.ok, result.problems
    macs, bias = 4 * 8 * 8 * 3 * 3 * 3, 4 * 8 * 8
    assert (macs, bias) == (6_912, 256)
    line = explain_forward(result)
    assert line == (f"forward computation (MACs + bias adds) {macs + bias:,} - fvcore's total 0 = {macs + bias:,} "
                    f"= {bias} bias adds (conv: fvcore counts none) + {macs:,} MACs fvcore does not count (conv)")
    assert_adds_up(line)
    row = render(result).splitlines()[4]
    assert row.split()[:3] == ["0", "conv", "Conv2d"] and "fvcore -6,912  ok (fvcore cannot count it: 0)" in row


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_same_padding_in_another_mode_is_counted_by_fvcore(mode):
    """torch pads first (aten::pad), then runs aten::_convolution, which fvcore counts."""
    network = Network((3, 8, 8), [Conv2d(name="conv", out_channels=4, kernel_size=3, padding="same",
                                         padding_mode=mode)])
    result = verify_network(network, device="cpu")
    assert result.ok, result.problems
    assert result.layers[0].fvcore == 4 * 8 * 8 * 3 * 3 * 3 and result.layers[0].fvcore_unsupported == ("aten::pad",)


def test_an_adaptive_pool_and_an_uncounted_conv_add_up():
    network = Network((2, 6, 6), [Conv2d(name="conv", out_channels=3, kernel_size=3, padding="same"),
                                  AdaptiveAvgPool2d(name="pool", output_size=2), Flatten(name="flat"),
                                  Linear(name="fc", out_features=2)], name="mixed")
    result = verify_network(network, device="cpu", batch=2)
    assert result.ok, result.problems
    conv, bias, pool, fc = 2 * 3 * 6 * 6 * 2 * 9, 2 * 3 * 6 * 6 + 2 * 2, 2 * 3 * 6 * 6, 2 * 12 * 2
    assert result.fvcore_total == pool + fc  # the conv uncounted, the pool's input elements counted
    line = explain_forward(result)
    assert f"= {bias} bias adds (conv, fc: fvcore counts none) + {conv:,} MACs fvcore does not count (conv) " \
           f"- {pool} fvcore counts beyond the MACs (pool:" in line
    assert_adds_up(line)


def test_a_layer_nothing_reads_is_dropped_by_fvcores_trace():
    network = Network((2, 4, 4), [Conv2d(name="dead", out_channels=2, kernel_size=3, padding=1),
                                  Conv2d(name="live", out_channels=2, kernel_size=1, inputs=("input",))], name="dead")
    result = verify_network(network, device="cpu")
    assert result.ok, result.problems
    dead = result.layers[0]
    assert dead.fvcore == 0 and dead.torch == 2 * (2 * 4 * 4 * 2 * 9) and not dead.read
    assert "ok (nothing reads it: fvcore's trace drops it)" in render(result)
    assert_adds_up(explain_forward(result))


@pytest.mark.slow
@settings(max_examples=25)
@given(st.data())
def test_the_explanation_adds_up_on_random_chains(data):
    network = data.draw(chain_networks(max_spatial=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cost = network.cost(2)
        measured = measure(to_module(network).eval(), network.names, torch.randn(2, *network.input_shape))
    result = reconcile(cost, measured)
    assert result.ok, result.problems
    assert_adds_up(explain_forward(result))
    assert_adds_up(explain_forward(reconcile(cost, replace(measured, fvcore=None, fvcore_total=None))))
    for line in render(result).splitlines()[4:4 + len(result.layers)]:  # each row: the difference column
        cells = re.split(r"\s{2,}", line.strip())
        fv, torch_flops, macs, difference = cells[6], cells[7], cells[5], cells[8]
        for tool, value, base in (("fvcore", fv, macs), ("torch", torch_flops, macs)):
            shown = re.search(rf"{tool} ([+-][\d,]+)", difference)
            got = int(value.replace(",", "")) - (2 if tool == "torch" else 1) * int(base.replace(",", ""))
            assert (int(shown[1].replace(",", "")) if shown else 0) == got, line


# -- 6: bias adds and other ops are checked --------------------------------------------------------

@pytest.mark.slow
def test_a_corrupted_bias_add_count_fails(monkeypatch):
    honest = Conv2d.bias_adds
    monkeypatch.setattr(Conv2d, "bias_adds", lambda self, x, y: honest(self, x, y) + (self.name == "conv3"))
    result = run("--device", "cpu", "--no-fvcore")
    assert result.exit_code == 1, result.output
    conv3 = 384 * 13 * 13  # one add per output element
    assert (f"MISMATCH conv3: bias adds: alexcost {conv3 + 1:,}, torch {conv3:,} (one per output element of a "
            f"convolution or matrix product that reads a bias)") in result.stdout.splitlines()


def test_a_linear_without_a_bias_has_no_bias_adds(monkeypatch):
    network = Network((6,), [Linear(name="fc", out_features=4, bias=False)])
    assert verify_network(network, device="cpu", use_fvcore=False).layers[0].measured_bias_adds == 0
    monkeypatch.setattr(Linear, "bias_adds", lambda self, x, y: prod(y))  # as if it had a bias
    assert verify_network(network, device="cpu", use_fvcore=False).problems == (
        "fc: bias adds: alexcost 4, torch 0 (one per output element of a convolution or matrix product that "
        "reads a bias)",)


def test_a_corrupted_other_ops_count_fails(monkeypatch):
    """The static count is the kind's formula on alexcost's shapes; verify recomputes it on the shapes
    torch ran. A count that is not the formula's (here: corrupted while the cost was taken) fails."""
    network = Network((2, 6, 6), [MaxPool2d(name="pool", kernel_size=2), ReLU(name="relu")])
    module = to_module(network).eval()
    measured = measure(module, network.names, torch.randn(3, 2, 6, 6))
    honest = MaxPool2d.other_ops
    with monkeypatch.context() as m:
        m.setattr(MaxPool2d, "other_ops", lambda self, x, y: honest(self, x, y) + 1)
        corrupted = network.cost(3)
        corrupted.layers  # the rows are made on first use: here, under the patch
    result = reconcile(corrupted, measured)
    taps = 3 * 2 * 3 * 3 * (2 * 2 - 1)  # batch 3: per output element, 4 taps less one comparison
    assert result.problems == (f"pool: other ops: alexcost {taps + 3}, MaxPool2d's formula on the shapes torch ran "
                               f"(3 * 2 * 6 * 6 -> 3 * 2 * 3 * 3) {taps}",)
    assert reconcile(network.cost(3), measured).ok


# -- 7: a module called twice -----------------------------------------------------------------------

def test_fvcore_files_every_call_of_a_reused_module_under_its_first_name(monkeypatch):
    conv = nn.Conv2d(2, 2, 3, padding=1)
    module = nn.Sequential(conv, nn.ReLU(), conv)
    result = verify_module(module, (2, 4, 4))
    assert result.ok, result.problems
    one_call = 2 * 4 * 4 * 2 * 3 * 3
    assert result.layers[0].fvcore == 2 * one_call and result.layers[0].group_macs == 2 * one_call
    text = render(result)
    assert "ok (fvcore: all 2 calls of its module)" in text and "ok (fvcore counts this call under 0)" in text
    assert "fvcore files every call under the first layer that runs it" in text
    honest = Conv2d.fvcore_count
    monkeypatch.setattr(Conv2d, "fvcore_count", lambda self, x, y: honest(self, x, y) + 1)
    bad = verify_module(module, (2, 4, 4))
    assert f"0: fvcore: alexcost {2 * one_call + 2:,} (the sum over the 2 calls of its module), fvcore " \
           f"{2 * one_call:,}" in bad.problems


def test_the_docs_say_fvcore_counts_every_call():
    text = (ROOT / "docs" / "verify.md").read_text()
    assert "counts a reused module once" not in text and "fvcore counts it once" not in text
    assert "counts both calls" in text


# -- 8: kinds declare what fvcore and torch count --------------------------------------------------

@pytest.fixture
def docs_prelu():
    """The PReLU kind exactly as docs/custom-layers.md defines it."""
    page = [b for b in blocks((ROOT / "docs" / "custom-layers.md").read_text()) if b.lang == "python"]
    upto = next(i for i, b in enumerate(page) if "class PReLU" in b.code)
    before = dict(LAYER_KINDS)
    namespace = {}
    try:
        for block in page[:upto + 1]:  # the page's blocks share one namespace, as tests/test_docs.py runs them
            exec(compile(block.code, "docs/custom-layers.md", "exec"), namespace)  # noqa: S102 - the docs' example
        yield namespace["PReLU"]
    finally:
        LAYER_KINDS.clear()
        LAYER_KINDS.update(before)


def test_the_docs_custom_kind_verifies(docs_prelu):
    network = Network((4, 5, 5), [Conv2d(name="conv", out_channels=6, kernel_size=3, padding=1),
                                  docs_prelu(name="prelu", num_parameters=6), ReLU(name="relu")])
    result = verify_network(network, device="cpu", batch=2)
    assert result.ok, result.problems
    prelu = result.layers[1]
    assert prelu.fvcore == 0  # fvcore has no rule for prelu: nothing, as the kind's default (its MACs) says
    assert prelu.torch == 0 and prelu.measured_other_ops == 2 * 2 * 6 * 5 * 5  # a comparison and a multiply
    assert_adds_up(explain_forward(result))


def test_a_wrong_declaration_fails(docs_prelu, monkeypatch):
    network = Network((4, 5, 5), [docs_prelu(name="prelu", num_parameters=4)])
    monkeypatch.setattr(docs_prelu, "fvcore_count", lambda self, x, y: 4 * prod(x))
    result = verify_network(network, device="cpu")
    assert result.problems == ("prelu: fvcore: alexcost 400 (PReLU declares fvcore_count), fvcore 0",
                               "total: alexcost expects fvcore 400, fvcore 0")
    assert_adds_up(explain_forward(result))
    monkeypatch.setattr(docs_prelu, "fvcore_count", lambda self, x, y: 0)
    monkeypatch.setattr(docs_prelu, "torch_flops", lambda self, x, y: prod(x))
    result = verify_network(network, device="cpu")
    assert result.problems == ("prelu: FLOPs: alexcost 100 (PReLU declares torch_flops), torch's counter 0",
                               "total: alexcost expects torch's counter 100, torch's counter 0")
    assert_adds_up(explain_forward(replace(result, fvcore_total=None)))


# -- 9: the module's own dtype and device ----------------------------------------------------------

def _small():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 2 * 2, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_module_runs_in_its_own_dtype(dtype):
    module = _small().to(dtype)
    result = verify_module(module, (3, 6, 6), batch=2)
    assert result.ok, result.problems
    conv, fc = 2 * 4 * 4 * 4 * 3 * 3 * 3, 2 * 16 * 5
    assert [c.fvcore for c in result.layers] == [conv, 0, 0, 0, fc]
    assert result.torch_total == 2 * (conv + fc)
    assert next(module.parameters()).dtype == dtype


def test_a_meta_module_is_refused_in_one_line():
    with torch.device("meta"):
        module = _small()
    with pytest.raises(SpecError) as err:
        verify_module(module, (3, 6, 6))
    assert str(err.value).startswith("module Sequential is on the meta device: its parameters hold no data")
    assert "\n" not in str(err.value)


def test_mixed_dtypes_are_refused():
    module = _small()
    module[4].double()
    with pytest.raises(SpecError, match=r"module Sequential has parameters of several dtypes \(float32, float64\)"):
        verify_module(module, (3, 6, 6))


# -- the device, named through alexcost.torch_run.device --------------------------------------------------------

def test_the_device_is_named_through_alexcost_device(tmp_path):
    from cuda_standin import standin

    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"input_shape": [2, 4, 4], "layers": [{"type": "Conv2d", "out_channels": 2,
                                                                       "kernel_size": 3}]}))
    with standin() as s:
        result = run("--spec", str(spec), "--device", "cuda", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["device"] == f"cuda ({s.name})"
    assert json.loads(run("--spec", str(spec), "--device", "cpu", "--format", "json").stdout)["device"] == "cpu"
