"""The training step without torch: backward MACs, kept bytes, model state, schedule, hardware;
its records kept per set of options; and the one walk behind it.

Expected values are published figures (torchtnt's backward count, OpenAI's formula, the
paper's setup, spec sheets) or hand arithmetic written out here; never alexcost's output.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from alexcost import (Add, BatchNorm2d, Chunk, Conv2d, Dropout, Flatten, LayerNorm, Linear, MaxPool2d, Network,
                      Permute, ReLU, Sigmoid, SpecError, Tanh, forget_rules, preset)
from alexcost.engine.storage import contiguous_plan, trace
from alexcost.hardware import CATALOG, predict
from alexcost.layers import strides
from alexcost.training import OPTIMIZERS, PFS_DAY, training_cost
from alexcost_cli.main import cli

from static_path import heavy_imports_of
from strategies import contiguous_networks

# The paper preset's forward MACs, layer by layer (227x227, conv2/4/5 in two groups).
PAPER_CONV1 = 96 * 55 * 55 * 3 * 11 * 11
PAPER_MACS = (PAPER_CONV1 + 256 * 27 * 27 * 48 * 5 * 5 + 384 * 13 * 13 * 256 * 3 * 3 + 384 * 13 * 13 * 192 * 3 * 3
              + 256 * 13 * 13 * 192 * 3 * 3 + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)
TORCHTNT_BACKWARD = 1_358_100_160
"""torchtnt's module-summary tests: torchvision AlexNet's backward pass at 224x224."""


def test_torchvision_backward_is_torchtnts_figure():
    t = training_cost(preset("torchvision"))
    conv1_input_grad = 64 * 55 * 55 * 3 * 11 * 11
    assert t.backward_macs == TORCHTNT_BACKWARD
    assert t.backward_macs == 2 * t.forward_macs - conv1_input_grad
    assert t["features_0"].grad_input_macs == 0 and t["features_0"].grad_weight_macs == conv1_input_grad


@pytest.mark.parametrize("batch", [1, 3, 128])
def test_paper_backward_is_twice_forward_less_conv1_input_gradient(batch):
    t = training_cost(preset("paper"), batch)
    assert t.forward_macs == batch * PAPER_MACS
    assert t.backward_macs == batch * (2 * PAPER_MACS - PAPER_CONV1)
    assert t.train_flops == 2 * batch * (3 * PAPER_MACS - PAPER_CONV1)


def test_torch_counts_grouped_weight_gradients_groups_times():
    """torch 2.14's FlopCounterMode does not divide a grouped convolution's weight gradient by its
    groups: the paper's conv2, conv4 and conv5 (two groups) count one weight gradient extra."""
    t = training_cost(preset("paper"))
    grouped = 256 * 27 * 27 * 48 * 25 + 384 * 13 * 13 * 192 * 9 + 256 * 13 * 13 * 192 * 9
    assert t.torch_backward_flops == 2 * (2 * PAPER_MACS - PAPER_CONV1) + 2 * grouped


def test_schedule_and_openai_formula():
    t = training_cost(preset("paper"), 128)
    s = t.schedule()
    images, epochs = 1_200_000, 90
    assert (s.images, s.epochs) == (images, epochs)
    assert s.steps == -(-images // 128) * epochs == 843_750
    assert s.train_flops == 2 * (3 * PAPER_MACS - PAPER_CONV1) * images * epochs
    assert s.pfs_days == s.train_flops / (1e15 * 86_400) and PFS_DAY == 8.64e19
    openai = s.to_dict()["openai"]
    assert openai["published_pfs_days"] == 0.0054
    assert openai["formula_flops"] == images * epochs * 750_000_000 * 2 * 3  # their rule on their 0.75 G
    assert openai["rule_on_exact_forward_flops"] == images * epochs * PAPER_MACS * 2 * 3
    assert round(s.pfs_days, 5) == 0.00517 and round(s.rule_pfs_days, 4) == 0.0054


def test_kept_bytes_of_a_small_chain_by_hand():
    net = Network((3, 8, 8), [Conv2d(name="conv", out_channels=4, kernel_size=3), ReLU(name="relu", inplace=True),
                              MaxPool2d(name="pool", kernel_size=2), Flatten(name="flat"), Dropout(name="drop"),
                              Linear(name="fc", out_features=5)])
    n = 2
    conv_out = n * 4 * 6 * 6
    pooled = n * 4 * 3 * 3
    for device, mask in (("cuda", pooled * 1), ("cpu", pooled * 4)):
        t = training_cost(net, n, device=device)
        assert t["conv"].saved_bytes == n * 3 * 8 * 8 * 4        # its input, the network's
        assert t["relu"].saved_bytes == conv_out * 4              # its output, in place: the conv's storage
        assert t["pool"].saved_bytes == pooled * 8                # int64 indices; its input is relu's
        assert t["drop"].saved_bytes == mask                       # bool on CUDA, float32 on the CPU
        assert t["fc"].saved_bytes == pooled * 4                  # dropout's new output
        assert t.saved_bytes == n * 3 * 8 * 8 * 4 + conv_out * 4 + pooled * 8 + mask + pooled * 4


def test_frozen_layers_skip_their_weight_gradients_and_the_input_gradients_before_them():
    net = preset("torchvision")
    t = training_cost(net, frozen=("features_0", "features_3", "features_6"))
    macs = {r.name: r.forward_macs for r in t.layers}
    convs_after = ("features_8", "features_10", "classifier_1", "classifier_4", "classifier_6")
    # features_6's input comes only from frozen layers: no input gradient; its weight is frozen too
    assert t["features_6"].backward_macs == 0 and t["features_3"].backward_macs == 0
    assert t["features_8"].grad_input_macs == 0  # everything before it is frozen
    assert t.backward_macs == sum(2 * macs[n] for n in convs_after) - macs["features_8"]
    frozen_params = (64 * 3 * 121 + 64) + (192 * 64 * 25 + 192) + (384 * 192 * 9 + 384)
    assert t.grad_bytes == 4 * (61_100_840 - frozen_params)
    assert t.frozen == ("features_0", "features_3", "features_6")


def test_one_parameter_of_a_layer_may_be_frozen():
    """``"layer.weight"`` / ``"layer.bias"`` freezes one of them: a frozen bias alone still lets the
    weight's gradient (and the input's, for the layers before) be computed; a frozen weight alone
    keeps the bias's gradient, which needs neither the weight nor the input."""
    net = Network((3, 8, 8), [Conv2d(name="c1", out_channels=4, kernel_size=3), ReLU(name="r"),
                              Conv2d(name="c2", out_channels=5, kernel_size=3), Flatten(name="flat"),
                              Linear(name="fc", out_features=2)])
    n, c1, c2, fc = 2, 4 * 6 * 6 * 27, 5 * 4 * 4 * 36, 80 * 2
    c1_params, c2_params, fc_params = 4 * 27 + 4, 5 * 36 + 5, 80 * 2 + 2
    everything = training_cost(net, n, optimizer="adam")
    assert everything.backward_macs == n * (c1 + 2 * c2 + 2 * fc)

    bias = training_cost(net, n, optimizer="adam", frozen=["c2.bias"])
    assert bias.frozen == ("c2.bias",)
    assert bias.backward_macs == everything.backward_macs  # the weight's gradient, and the input's, as before
    assert bias.trainable_params == c1_params + (c2_params - 5) + fc_params
    assert bias.grad_bytes == 4 * bias.trainable_params
    assert bias.optimizer_bytes == 2 * bias.grad_bytes + 4 * 5  # five tensors with gradients, not six
    assert bias["c2"].backward_other_ops == 0 and everything["c2"].backward_other_ops == n * 5 * 4 * 4
    assert bias["c2"].grads.weight and not bias["c2"].grads.bias

    weight = training_cost(net, n, frozen=["c1", "c2.weight"])
    assert weight.frozen == ("c1", "c2.weight")
    # c2's input comes only from frozen parameters: no input gradient; its frozen weight: none either;
    # its bias's gradient sums the output's gradient (one add per output element), no MACs
    assert weight["c2"].backward_macs == 0 and weight["c2"].backward_other_ops == n * 5 * 4 * 4
    assert weight["c2"].grads.inputs == (False,) and weight["c2"].grads.bias
    assert weight["c2"].saved_bytes == n * 4 * 6 * 6 * 4  # convolution keeps its input whatever it needs
    assert weight.backward_macs == n * 2 * fc
    assert weight.trainable_params == 5 + fc_params
    assert training_cost(net, n, frozen=["c1.weight", "c1.bias"]).frozen == ("c1",)  # both: the layer


@pytest.mark.parametrize("frozen, message", [
    (["c2.scale"], "frozen names 'c2.scale': a layer's parameters are 'weight' and 'bias'"),
    (["c3.bias"], "frozen names 'c3.bias', which is not a layer"),
    (["nobias.bias"], "frozen names 'nobias.bias', but 'nobias' \\(Conv2d\\) has no bias"),
    (["r.weight"], "frozen names 'r.weight', but 'r' \\(ReLU\\) has no weight"),
    (["r"], "frozen names 'r' \\(ReLU\\), which has no parameters to freeze"),
    ([3], "frozen lists 3; name a layer"),
])
def test_freezing_what_a_layer_does_not_have_is_refused(frozen, message):
    net = Network((3, 8, 8), [Conv2d(name="c2", out_channels=4, kernel_size=3), ReLU(name="r"),
                              Conv2d(name="nobias", out_channels=2, kernel_size=1, bias=False)])
    with pytest.raises(SpecError, match=message):
        training_cost(net, frozen=frozen)


@pytest.mark.parametrize("optimizer, per_param, per_tensor", [("sgd", 0, 0), ("momentum", 4, 0), ("adam", 8, 4)])
def test_optimizer_state(optimizer, per_param, per_tensor):
    t = training_cost(preset("paper"), optimizer=optimizer)
    assert t.weight_bytes == t.grad_bytes == 4 * 60_965_224
    assert t.optimizer_bytes == per_param * 60_965_224 + per_tensor * 16  # 8 layers, weight and bias each


@pytest.mark.parametrize("net, message", [
    (Network((3, 6, 6), [Conv2d(out_channels=2, kernel_size=3), Sigmoid(name="s"), ReLU(name="r", inplace=True)]),
     "'r' (ReLU) modifies in place a tensor that 's' (Sigmoid) keeps"),
    (Network((3, 6, 6), [Conv2d(name="c", out_channels=4, kernel_size=3), Chunk(name="ch", chunks=2, dim=1),
                         ReLU(name="r", inputs=("ch.0",), inplace=True)]), "a view returned by a Chunk or Split"),
    (Network((3, 6, 6), [Conv2d(out_channels=2, kernel_size=3), Tanh(name="t"), Dropout(name="d", inplace=True)]),
     "'d' (Dropout) modifies in place a tensor that 't' (Tanh) keeps"),
])
def test_what_torchs_backward_would_refuse_is_refused(net, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        training_cost(net)


def test_batch_norm_needs_two_values_per_channel():
    net = Network((3, 1, 1), [BatchNorm2d(name="bn")])
    with pytest.raises(SpecError, match=r"Expected more than 1 value per channel when training"):
        training_cost(net, 1)
    assert training_cost(net, 2).saved_bytes == 2 * 3 * 4 + 2 * 3 * 4  # input, mean and inverse std


def test_residual_gradients_are_summed_once_per_extra_reader():
    net = Network((4, 5, 5), [Conv2d(name="c", out_channels=4, kernel_size=3, padding=1),
                              Conv2d(name="d", out_channels=4, kernel_size=3, padding=1),
                              Add(name="add", inputs=("c", "d"))])
    t = training_cost(net, 2)
    bias_grad = 2 * 4 * 5 * 5
    assert t["c"].backward_other_ops == bias_grad + 2 * 4 * 5 * 5  # its output feeds d and add


def test_memory_model_adds_up():
    t = training_cost(preset("paper"), 128)
    m = t.memory
    assert m.saved == t.saved_bytes
    assert m.input == 128 * 3 * 227 * 227 * 4
    assert m.update_peak == t.weight_bytes + t.grad_bytes + t.optimizer_bytes + m.input
    assert m.peak >= m.resident + m.saved + m.input  # everything kept is live when the backward pass starts
    assert m.peak == max(m.resident + m.forward_peak, m.resident + m.backward_peak, m.update_peak)


def test_the_papers_two_gpu_split():
    t = training_cost(preset("paper"), 128)
    p = predict(t, "gtx580", 2)
    assert p.split == "model" and p.fits
    crossed = {c.name: (c.forward_bytes, c.backward_bytes) for c in p.crossings}
    assert crossed == {"conv3": (128 * 256 * 13 * 13 * 4,) * 2, "fc6": (128 * 9216 * 4,) * 2,
                       "fc7": (128 * 4096 * 4,) * 2, "fc8": (128 * 4096 * 4,) * 2, "prob": (128 * 1000 * 4,) * 2}
    assert p.params_per_gpu == 60_965_224 // 2
    steps = 1_200_000 * 90 / 128
    assert p.days(t.schedule()) == pytest.approx(steps * p.step_ms / 1e3 / 86_400)
    assert p.bound_days(t.schedule()) == pytest.approx(steps * p.bound_ms / 1e3 / 86_400)
    # each GPU receives its share of what crosses, over its PCIe 2.0 link (8 GB/s)
    moved = sum(f + b for f, b in crossed.values())
    assert p.communication_ms == pytest.approx(moved / 2 / 8e9 * 1e3)
    assert p.bound_ms < p.step_ms


def test_the_bound_of_one_layer_by_hand():
    """alexcost time --training sets each layer beside its plain roofline: max(FLOPs / peak, bytes / bandwidth)."""
    from alexcost.hardware.model import backward_bound, forward_bound

    net = Network((3, 8, 8), [Conv2d(name="conv", out_channels=4, kernel_size=3)])
    t = training_cost(net, 2)
    card = CATALOG["v100"]
    macs = 2 * 4 * 6 * 6 * 27
    flops = 2 * macs + 2 * 4 * 6 * 6
    nbytes = 4 * (2 * 3 * 64 + 4 * 27 + 4 + 2 * 4 * 36)
    f = forward_bound(t.forward.layers[0], t.layers[0], card.peaks("float32"))
    assert f.ms == pytest.approx(max(flops / (2 * 80 * 64 * 1530e6), nbytes / 900e9) * 1e3)
    b = backward_bound(t.forward.layers[0], t.layers[0], card.peaks("float32"))
    assert b.flops == 2 * macs + 2 * 4 * 6 * 6  # the weights' gradient and the bias's; no input gradient


def test_data_parallel_splits_the_batch_and_all_reduces_gradients():
    net = preset("torchvision")
    t = training_cost(net, 128)
    p = predict(t, "a100", 4, "data", net, training_cost(net, 32))
    assert p.split == "data" and p.macs_per_gpu == 714_188_480 * 32
    assert p.communication_ms == pytest.approx(2 * 3 / 4 * t.grad_bytes / CATALOG["a100"].link * 1e3)
    with pytest.raises(SpecError, match="not a multiple of 3 GPUs"):
        predict(t, "a100", 3, "data", net)
    with pytest.raises(SpecError, match="needs the training cost of 32 samples"):
        predict(t, "a100", 4, "data", net)
    with pytest.raises(SpecError, match="model split needs a chain"):
        predict(t, "a100", 2, "model", net)


def run(*args):
    return CliRunner().invoke(cli, ["train", *args])


def test_cli_json_contract():
    result = run("--model", "torchvision", "--batch", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "torchvision" and data["batch"] == 1
    for layer in data["layers"]:
        assert {"name", "forward_macs", "backward_macs", "saved_bytes"} <= set(layer)
    assert {"forward_macs", "backward_macs", "saved_bytes", "weight_bytes", "grad_bytes", "optimizer_bytes",
            "train_flops"} <= set(data["totals"])
    assert {"images", "epochs", "train_flops", "pfs_days"} <= set(data["schedule"])
    assert data["totals"]["backward_macs"] == TORCHTNT_BACKWARD
    assert data["totals"]["train_flops"] == 2 * (714_188_480 + TORCHTNT_BACKWARD)
    assert sum(r["saved_bytes"] for r in data["layers"]) == data["totals"]["saved_bytes"]


def test_cli_freezes_layers_and_single_parameters():
    result = run("--model", "paper", "--batch", "1", "--freeze", "conv1,fc8.bias", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    conv1, fc8_bias = 96 * 3 * 11 * 11 + 96, 1000
    assert data["frozen"] == ["conv1", "fc8.bias"]
    assert data["totals"]["trainable_params"] == 60_965_224 - conv1 - fc8_bias
    result = run("--model", "paper", "--freeze", "fc8.scale")
    assert result.exit_code == 2 and "a layer's parameters are 'weight' and 'bias'" in result.stderr


def test_cli_hardware_and_errors(tmp_path):
    result = run("--model", "paper", "--gpu", "gtx580", "--gpus", "2")
    assert result.exit_code == 0, result.output
    crossing = 128 * 256 * 13 * 13 * 4 / 2**20  # conv3 reads 256 maps of 13 x 13 for 128 samples, in MiB
    assert f"crosses between the GPUs at conv3: {crossing:.1f} MiB forward, {crossing:.1f} MiB backward" in result.stdout
    assert "published: 5 to 6 days" in result.stdout
    out = tmp_path / "t.csv"
    result = run("--model", "seed", "--out", str(out))
    assert result.exit_code == 0 and out.read_text().splitlines()[0].startswith("name,type,forward_macs")
    for args, message in ((("--gpus", "2"), "--gpus needs --gpu"),
                          (("--freeze", "nope"), "frozen names 'nope'"),
                          (("--gpu", "k40", "--dtype", "tf32"), "no TF32 tensor cores")):
        result = run(*args)
        assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_train_never_imports_torch():
    heavy, out = heavy_imports_of("train", "--model", "paper", "--gpu", "gtx580", "--gpus", "2", "--format", "json")
    assert heavy == [], heavy
    assert json.loads(out)["hardware"]["split"] == "model"


# == records and memory kept per set of options ====================================================
# The training step's records and memory model are kept on the network, as its totals are: each
# set of options gets its own, worked out by hand here, and forgetting the rules works them out again.

def tiny() -> Network:
    """fc1: 4 -> 3 with a bias (15 parameters), ReLU, fc2: 3 -> 2 without (6)."""
    return Network((4,), [Linear(name="fc1", out_features=3), ReLU(name="relu"),
                          Linear(name="fc2", out_features=2, bias=False)])


@pytest.mark.parametrize("batch, dtype, itemsize", [(1, "float32", 4), (3, "float32", 4), (5, "float16", 2)])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_memory_is_kept_per_set_of_options(batch, dtype, itemsize, optimizer):
    net = tiny()
    step = training_cost(net, batch, dtype, optimizer=optimizer)
    memory = step.memory
    assert training_cost(net, batch, dtype, optimizer=optimizer).memory is memory  # kept on the network
    params = 15 + 6
    state = {"sgd": 0, "momentum": params * itemsize, "adam": 2 * params * itemsize + 4 * 3}[optimizer]
    assert (memory.weights, memory.grads, memory.optimizer) == (params * itemsize, params * itemsize, state)
    assert memory.input == batch * 4 * itemsize
    assert memory.update_peak == params * itemsize * 2 + state + batch * 4 * itemsize
    assert [name for phase, name, _ in memory.timeline] == ["fc1", "relu", "fc2", "fc2", "relu", "fc1"]


def test_frozen_parameters_get_their_own_memory():
    net = tiny()
    whole = training_cost(net, 2).memory
    frozen = training_cost(net, 2, frozen=["fc1.bias"]).memory
    assert whole.grads == (15 + 6) * 4 and frozen.grads == (12 + 6) * 4
    assert frozen.optimizer == frozen.grads  # momentum: one buffer per trainable parameter
    assert training_cost(net, 2, frozen=["fc1.bias"]).memory is frozen
    assert training_cost(net, 2).memory is whole


def test_records_are_kept_and_forgetting_the_rules_works_them_out_again():
    net = tiny()
    step = training_cost(net, 2)
    rows, memory = step.layers, step.memory
    again = training_cost(net, 2)
    assert again.layers is rows and again.memory is memory
    forget_rules()
    fresh = training_cost(net, 2)
    assert fresh.memory is not memory and fresh.memory == memory and fresh.layers == rows
    # fc2's backward MACs by hand: its weight's gradient (2 x 3 per sample) and its input's (3 x 2)
    assert fresh["fc2"].grad_weight_macs == 2 * 6 and fresh["fc2"].grad_input_macs == 2 * 6


# == one walk, whatever the layout =================================================================
# The training analysis is one walk: its totals are its records' sums, and where the storages
# come from does not change it.
#
# A network whose tensors all stay contiguous (no Permute, Transpose, Chunk or Split) is laid out
# from its contiguous storage plan, without tracing strides: each layer's rules then see its
# inputs' contiguous strides. Every other network is laid out from the full stride trace. The
# walk itself is checked against torch in test_training_torch.py; here random networks drawn by
# hypothesis must get identical totals, records, memory and refusals from either layout, under
# every option, the totals must be the records' sums, and the fact the contiguous layout rests on
# (every traced stride is contiguous) is checked on each of them.


OPTIONS = st.tuples(st.integers(1, 3), st.sampled_from(["float32", "float16", "bfloat16", "float64"]),
                    st.sampled_from(["cuda", "cpu"]), st.sampled_from(list(OPTIMIZERS)))


def traced(monkeypatch):
    """Make every network lay its storages out from the full stride trace."""
    monkeypatch.setattr(Network, "contiguous_plan", lambda self: None)


def outcome(input_shape, layers, batch, dtype, device, optimizer, frozen):
    """The step's totals on a network built afresh, or the refusal's message."""
    try:
        t = training_cost(Network(input_shape, layers, name="drawn"), batch, dtype, device=device,
                          optimizer=optimizer, frozen=frozen)
    except SpecError as err:
        return str(err)
    return t


FEW = settings(max_examples=settings.default.max_examples, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FEW
@given(contiguous_networks(), st.lists(OPTIONS, min_size=1, max_size=4), st.booleans())
def test_totals_do_not_depend_on_the_layout_and_are_the_records_sums(monkeypatch, drawn, options, use_frozen):
    input_shape, layers, frozen = drawn
    frozen = frozen if use_frozen else ()
    assert contiguous_plan(Network(input_shape, layers)) is not None
    plain = [outcome(input_shape, layers, *o, frozen) for o in options]
    again = [outcome(input_shape, layers, *o, frozen) for o in reversed(options)]  # what the rules cache holds
    with monkeypatch.context() as m:
        traced(m)
        slow = [outcome(input_shape, layers, *o, frozen) for o in options]
    assert plain == slow
    assert again == slow[::-1]
    for t in plain:
        if not isinstance(t, str):
            assert t.backward_macs == sum(r.backward_macs for r in t.layers)
            assert t.saved_bytes == sum(r.saved_bytes for r in t.layers)
            assert t.trainable_params == sum(r.trainable_params for r in t.layers)
            assert t.forward_macs == sum(r.forward_macs for r in t.layers)
            assert t.params == sum(r.params for r in t.layers)


@FEW
@given(contiguous_networks(), st.integers(1, 3))
def test_every_traced_stride_is_contiguous(drawn, batch):
    """What the contiguous layout rests on: in a network `contiguous_plan` plans, the strides
    torch's rules give (`trace`) are all C-order, so each layer's rules may see its inputs'
    contiguous strides, and its storage is the plan's."""
    input_shape, layers, _ = drawn
    network = Network(input_shape, layers)
    plan = contiguous_plan(network)
    assert plan == tuple(out[0][0] == i for i, out in enumerate(trace(network, batch)))
    for i, outputs in enumerate(trace(network, batch)):
        for storage, got in outputs:
            y = network.output_shapes[i]
            full = y if isinstance(storage, tuple) else (batch, *y)  # a Parameter has no batch dimension
            assert got == strides.contiguous(full), (network.names[i], got)


@FEW
@given(contiguous_networks(), OPTIONS)
def test_records_and_memory_do_not_depend_on_the_layout(monkeypatch, drawn, options):
    input_shape, layers, frozen = drawn
    fast = outcome(input_shape, layers, *options, frozen)
    with monkeypatch.context() as m:
        traced(m)
        slow = outcome(input_shape, layers, *options, frozen)
    assert fast == slow
    if not isinstance(fast, str):
        assert (fast.layers, fast.memory, fast.notes) == (slow.layers, slow.memory, slow.notes)


def test_a_network_with_a_permute_is_laid_out_from_the_trace():
    layers = (Conv2d(name="conv", out_channels=4, kernel_size=3), Permute(name="nhwc", dims=(0, 2, 3, 1)),
              LayerNorm(name="norm", normalized_shape=4), Linear(name="mix", out_features=4),
              Flatten(name="flat"), Linear(name="fc", out_features=3))
    network = Network((3, 6, 6), layers)
    assert network.contiguous_plan() is None
    t = training_cost(network, 2)
    # by hand: conv (3*3*3 weights per output, 4 x 4 x 4 outputs) and two Linears; each computes both gradients,
    # except conv, whose input (the network's) needs none
    conv, mix, fc = 27 * 4 * 16, 4 * 4 * 16, 64 * 3
    assert t.forward_macs == 2 * (conv + mix + fc)
    assert t.backward_macs == 2 * (conv + 2 * mix + 2 * fc)


def test_presets_are_laid_out_without_the_trace_and_agree_with_it(monkeypatch):
    for name in ("seed", "paper", "resnet18", "mobilenet_v2"):
        held = preset(name)
        network = Network(held.input_shape, held.layers, name=name)
        assert contiguous_plan(network) is not None
        fast = training_cost(network, 4, frozen=held.names[:1])
        with monkeypatch.context() as m:
            traced(m)
            slow = training_cost(Network(held.input_shape, held.layers, name=name), 4, frozen=held.names[:1])
        assert fast == slow and fast.memory == slow.memory


def test_forget_rules_reaches_what_the_rules_cache_remembers(monkeypatch):
    """A kind's rule changed at run time: after `forget_rules`, a network of the same layer
    objects, and a network held from before, count with the new rule."""
    layers = (Conv2d(name="conv", out_channels=4, kernel_size=3), ReLU(name="relu"), Flatten(name="flat"),
              Linear(name="fc", out_features=3))
    held = Network((2, 5, 5), layers)
    before = training_cost(Network((2, 5, 5), layers), 2)
    assert before.backward_macs == training_cost(held, 2).backward_macs == 2 * (2 * 9 * 4 * 9 + 2 * 36 * 3)  # conv:
    monkeypatch.setattr(Linear, "backward_macs", lambda self, x, y, grads: 0)  # the weight's gradient only
    forget_rules()
    after = training_cost(Network((2, 5, 5), layers), 2)
    assert after.backward_macs == training_cost(held, 2).backward_macs == 2 * (2 * 9 * 4 * 9)
    monkeypatch.undo()
    forget_rules()
    assert training_cost(Network((2, 5, 5), layers), 2).backward_macs == before.backward_macs


@pytest.mark.parametrize("inplace", [False, True])
def test_a_kept_tensor_modified_in_place_is_refused(inplace):
    """A step torch would fail is refused with the general walk's message: here a Sigmoid keeps
    its output, which a ReLU then modifies in place."""
    layers = (Conv2d(name="conv", out_channels=2, kernel_size=1), Sigmoid(name="gate"),
              ReLU(name="relu", inplace=inplace), Flatten(name="flat"), Linear(name="fc", out_features=2))
    network = Network((1, 3, 3), layers)
    if not inplace:
        # conv keeps the input (9 elements), the Sigmoid and the ReLU their outputs (18 each); the head's
        # input is a view of the ReLU's output, kept once
        assert training_cost(network, 1).saved_bytes == 4 * (9 + 18 + 18)
        return
    with pytest.raises(SpecError, match="modifies in place a tensor that 'gate'"):
        training_cost(network, 1)
