"""The training step against a real one in torch on the CPU: presets at several batch sizes,
bfloat16 where torch runs it, and random networks (chains and graphs) drawn by hypothesis.

Every expected value is torch's: FlopCounterMode's backward FLOPs, the bytes of the storages
``saved_tensors_hooks`` sees still held after the forward pass, the gradients' and the
optimizer state's bytes, and whether torch's own step (without hooks) fails.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

torch = pytest.importorskip("torch")

from alexcost import (BatchNorm2d, Conv2d, Dropout, Flatten, LayerNorm, Linear, MaxPool2d, Network, ReLU, SpecError,  # noqa: E402
                      preset)
from alexcost.torch_bridge import to_module  # noqa: E402
from alexcost.torch_run.verify_training import measure_training, reconcile_training, render, torch_counts_groups  # noqa: E402
from alexcost.training import training_cost  # noqa: E402
from strategies import training_networks  # noqa: E402


def step_fails_in_torch(network, batch, frozen=()):
    """Run a plain training step (no hooks): None, or torch's error."""
    module = to_module(network).train()
    for name in frozen:
        for p in module.get_submodule(name).parameters():
            p.requires_grad_(False)
    x = torch.randn(batch, *network.input_shape)
    try:
        out = module(x)
        outs = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(outs, [torch.randn_like(o) for o in outs])
    except (RuntimeError, ValueError) as err:  # batch norm's check is a ValueError
        return str(err)
    return None


def check_against_torch(network, batch, frozen=(), optimizer="momentum", dtype="float32"):
    static = training_cost(network, batch, dtype, device="cpu", frozen=frozen, optimizer=optimizer)
    measured = measure_training(network, device="cpu", batch=batch, dtype=dtype, frozen=frozen, optimizer=optimizer)
    rec = reconcile_training(static, measured)
    assert rec.ok, render(rec)
    # the same, said directly; and the totals (derived without per-layer records) are the layers' sums
    assert static.saved_bytes == measured.saved_total == sum(r.saved_bytes for r in static.layers)
    assert static.backward_macs == sum(r.backward_macs for r in static.layers)
    assert 2 * static.forward_macs == measured.forward_total
    assert [r.saved_bytes for r in static.layers] == list(measured.saved_bytes)
    assert static.grad_bytes == measured.grad_bytes and static.optimizer_bytes == measured.optimizer_bytes
    assert not measured.modified
    return static, measured


@pytest.mark.slow
@pytest.mark.parametrize("model, batch, optimizer, frozen", [
    ("seed", 1, "momentum", ()), ("seed", 2, "sgd", ()), ("paper", 1, "adam", ()), ("paper", 2, "momentum", ()),
    ("torchvision", 1, "adam", ("features_0", "features_3")), ("torchvision", 3, "momentum", ())])
def test_presets_match_torch(model, batch, optimizer, frozen):
    static, measured = check_against_torch(preset(model), batch, frozen, optimizer)
    # FlopCounterMode counts 2 per backward MAC, and (torch 2.14) a grouped convolution's weight
    # gradient once per group: the paper's conv2, conv4 and conv5 have two
    grouped = sum(r.grad_weight_macs for r in static.layers if r.name in ("conv2", "conv4", "conv5"))
    extra = 2 * grouped if model == "paper" and torch_counts_groups() else 0
    assert measured.backward_total == 2 * static.backward_macs + extra


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("model", ["zfnet", "vgg16", "googlenet", "resnet18", "resnet50", "mobilenet_v2"])
def test_successor_presets_match_torch(model, batch):
    """AlexNet's successors at their own 224x224 input: graphs, batch norm in training mode,
    in-place residual adds, ReLU6 and depthwise convolutions (whose weight gradient torch
    counts once per group, as for the paper's two groups above)."""
    network = preset(model)
    # VGG-16's 138 M parameters: momentum's buffer would add 553 MB to the suite's peak; its rule
    # (one buffer per parameter) is checked on the AlexNet presets above
    static, measured = check_against_torch(network, batch, optimizer="sgd" if model == "vgg16" else "momentum")
    extra = sum(2 * (layer.groups - 1) * r.grad_weight_macs for layer, r in zip(network.layers, static.layers)
                if isinstance(layer, Conv2d) and layer.groups > 1) if torch_counts_groups() else 0
    assert (model == "mobilenet_v2") == (extra > 0) or not torch_counts_groups()
    assert measured.backward_total == 2 * static.backward_macs + extra

def test_padding_modes():
    """Each padding mode's copy, and reflect/replicate's own kept input, on contiguous inputs."""
    net = Network((3, 6, 6), [Conv2d(out_channels=4, kernel_size=3, padding=1, padding_mode="reflect"),
                              Conv2d(out_channels=4, kernel_size=2, padding="same"),
                              Conv2d(out_channels=4, kernel_size=(3, 2), padding="same", padding_mode="circular"),
                              Conv2d(out_channels=4, kernel_size=3, padding=1, padding_mode="replicate", groups=2),
                              Flatten(), Linear(out_features=2)], name="pads")
    static, _ = check_against_torch(net, 2)
    n = 2
    assert [r.saved_bytes for r in static.layers[:4]] == [
        4 * n * 3 * 8 * 8,                # conv0: the reflect-padded copy (its input, the network's, needs no gradient)
        4 * n * 4 * 7 * 7,                # conv1: 'same' with an even kernel pads one more row and column, a copy
        4 * n * 4 * 8 * 7,                # conv2: the circular-padded copy, (1, 1) rows and (0, 1) columns
        4 * (n * 4 * 6 * 6 + n * 4 * 8 * 8)]  # conv3: replicate keeps its input too, and the padded copy


@pytest.mark.parametrize("frozen", [["c2.bias"], ["c1", "c2.weight"], ["fc.weight"], ["bn.bias", "ln.weight"],
                                    ["c1.weight", "bn"]])
def test_one_parameter_frozen_as_torch_freezes_it(frozen):
    """``"layer.weight"`` / ``"layer.bias"`` against torch with that tensor's ``requires_grad=False``:
    FlopCounterMode's backward FLOPs, the bytes of the storages autograd keeps (parameters and
    buffers aside), and the gradients torch makes."""
    from torch.utils.flop_counter import FlopCounterMode

    net = Network((3, 8, 8), [Conv2d(name="c1", out_channels=4, kernel_size=3), BatchNorm2d(name="bn"),
                              ReLU(name="r"), Conv2d(name="c2", out_channels=4, kernel_size=3), Flatten(name="flat"),
                              Linear(name="fc", out_features=6), LayerNorm(name="ln", normalized_shape=6)], name="parts")
    static = training_cost(net, 2, device="cpu", frozen=frozen)
    torch.manual_seed(0)
    module = to_module(net).train()
    for entry in frozen:
        layer, _, which = entry.partition(".")
        for name, p in module.get_submodule(layer).named_parameters():
            if which in ("", name):
                p.requires_grad_(False)
    resident = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    kept = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in resident:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(torch.randn(2, 3, 8, 8))
    with FlopCounterMode(display=False) as counter:
        out.backward(torch.randn_like(out))
    assert 2 * static.backward_macs == counter.get_total_flops()
    assert static.saved_bytes == sum(kept.values())
    assert static.grad_bytes == sum(4 * p.numel() for p in module.parameters() if p.grad is not None)
    assert static.trainable_params == sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.slow
def test_bfloat16_where_torch_runs_it():
    check_against_torch(preset("torchvision"), 2, dtype="bfloat16", optimizer="sgd")
    with pytest.raises(SpecError, match="torch cannot run this network's training step in bfloat16 on cpu"):
        measure_training(preset("paper"), device="cpu", batch=1, dtype="bfloat16")  # LRN's avg_pool3d


# -- random networks ------------------------------------------------------------------------


REFUSALS_TORCH_MAKES = ("modifies in place a tensor", "a view returned by a Chunk or Split",
                        "Expected more than 1 value per channel", "does not require grad",
                        "view size is not compatible")
"""What alexcost refuses because torch's training step would fail."""


@pytest.mark.slow
@settings(max_examples=max(10, settings.default.max_examples // 2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(training_networks())
def test_random_networks_match_torch(drawn):
    network, batch, frozen, optimizer = drawn
    try:
        training_cost(network, batch, device="cpu", frozen=frozen, optimizer=optimizer)
    except SpecError as err:
        assert any(why in str(err) for why in REFUSALS_TORCH_MAKES), str(err)
        assert step_fails_in_torch(network, batch, frozen) is not None, f"alexcost refused what torch runs: {err}"
        return
    assert step_fails_in_torch(network, batch, frozen) is None
    check_against_torch(network, batch, frozen, optimizer)


# -- the library behind `verify --training` and `time --training` ------------------------------

TINY = Network((3, 8, 8), [Conv2d(name="conv", out_channels=4, kernel_size=3), ReLU(name="relu", inplace=True),
                           MaxPool2d(name="pool", kernel_size=2), Flatten(name="flat"), Dropout(name="drop"),
                           Linear(name="fc", out_features=5)], name="tiny")


def test_verify_training_renders_table_and_json():
    import json

    from alexcost.torch_run.verify_training import render, verify_training

    rec = verify_training(TINY, device="cpu", batch=2, optimizer="adam")
    assert rec.ok
    text = render(rec)
    assert text.splitlines()[-1].startswith("verify --training tiny: OK")
    data = json.loads(render(rec, "json"))
    conv = data["layers"][0]
    # conv1's backward: its weight gradient only (the network input needs none): 2*4*6*6*27 MACs, 2 FLOPs each
    assert conv["torch_backward_flops"] == conv["torch_backward_flops_expected"] == 2 * (2 * 4 * 6 * 6 * 27)
    assert data["totals"]["measured_saved_bytes"] == data["totals"]["saved_bytes"]
    assert data["totals"]["measured_optimizer_bytes"] == 2 * data["totals"]["measured_grad_bytes"] + 4 * 4


def test_verify_training_reports_a_mismatch():
    from dataclasses import replace

    from alexcost.torch_run.verify_training import reconcile_training

    static = training_cost(TINY, 1, device="cpu")
    measured = measure_training(TINY, device="cpu", batch=1)
    wrong = replace(measured, saved_bytes=(measured.saved_bytes[0] + 4, *measured.saved_bytes[1:]),
                    saved_total=measured.saved_total + 4)
    rec = reconcile_training(static, wrong)
    assert not rec.ok and rec.problems[0].startswith("conv: kept bytes: alexcost")
    assert "MISMATCH" in render(rec).splitlines()[-1]


@pytest.mark.slow
def test_time_training_times_forward_and_backward_per_layer():
    from alexcost.render.roofline import render_training
    from alexcost.torch_run.timing import time_network

    run = time_network(TINY, (2,), device="cpu", warmup=0, repeats=2, peak_flops=1e11, peak_bandwidth=1e13,
                       training=True)
    record = run.to_dict()
    assert record["training"] is True and record["complete"]
    batch = record["batches"][0]
    assert [r["name"] for r in batch["layers"]] == list(TINY.names)
    conv = batch["layers"][0]
    assert conv["forward_backward"]["median_ms"] > 0 and conv["backward_bound"] == "compute"
    # the bound: the conv's weight gradient, 2 FLOPs per MAC, plus its bias gradient, at 1e11 FLOP/s
    flops = 2 * (2 * 4 * 6 * 6 * 27) + 2 * 4 * 6 * 6
    assert conv["backward_bound_ms"] == pytest.approx(flops / 1e11 * 1e3)
    assert batch["layers"][3]["forward_backward"] is not None  # flatten: its input needs a gradient
    text = render_training(record)
    assert "fwd+bwd ms" in text and text.rstrip().splitlines()[-1].startswith("verdict: batch 2")
    with pytest.raises(SpecError, match="--method graph cannot time a backward pass"):
        time_network(TINY, (1,), device="cpu", method="graph", training=True)


@pytest.mark.slow
def test_verify_and_time_training_on_the_cuda_stand_in():
    """The CUDA branches (torch's CUDA rules, peak memory, CUDA events) run under tests/cuda_standin.py,
    whose "cuda" tensors live on the CPU: a network whose kept tensors are the same on both backends."""
    from cuda_standin import standin

    from alexcost.torch_run.timing import time_network
    from alexcost.torch_run.verify_training import verify_training

    net = Network((3, 8, 8), [Conv2d(name="conv", out_channels=4, kernel_size=3), ReLU(name="relu", inplace=True),
                              MaxPool2d(name="pool", kernel_size=2), Flatten(name="flat"),
                              Linear(name="fc", out_features=5)], name="tiny")
    with standin() as s:
        rec = verify_training(net, device="cuda", batch=2)
        run = time_network(net, (2,), device="cuda", warmup=0, repeats=2, peak_flops=1e11, peak_bandwidth=1e12,
                           training=True).to_dict()
    assert rec.ok and rec.device.startswith("cuda (") and s.count["placed on cuda"] >= 2
    assert run["training"] and run["settings"]["method"] == "loop" and run["settings"]["timer"] == "cuda events"
    assert run["batches"][0]["layers"][0]["forward_backward"]["median_ms"] > 0


@pytest.mark.slow
def test_time_training_command():
    from pathlib import Path

    from click.testing import CliRunner

    from alexcost_cli.main import cli

    tiny = str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "tiny.json")
    args = ["time", "--spec", tiny, "--device", "cpu", "--batch", "2", "--training", "--warmup", "0", "--repeats", "1",
            "--peak-tflops", "1", "--bandwidth-gbs", "10"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "fwd+bwd ms" in result.stdout and "training: train() with autograd" in result.stdout
    result = CliRunner().invoke(cli, [*args[:-6], "--method", "graph"])
    assert result.exit_code == 2 and "--method graph cannot time a backward pass" in result.stderr


@pytest.mark.slow
def test_measuring_a_step_keeps_nothing_alive():
    """The saved-tensor holders autograd keeps would form a cycle through C++ with their graph;
    after a measurement no tensor of the step may be left alive (each call would leak the model)."""
    import gc

    def live_tensors():
        gc.collect()
        return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())

    before = live_tensors()
    measure_training(TINY, device="cpu", batch=2, optimizer="adam")
    assert live_tensors() == before
