"""Graph networks: wiring, the new layer kinds and the storage plan, each against torch.

Random graphs are drawn constructively (a trunk with residual branches, squeeze-and-excitation,
concatenations, chunk/transpose shuffles, a layer-scale Parameter); torch then runs the same
network (`to_module`) and its own numbers are the reference: every layer's output shape,
parameter and buffer counts, FlopCounterMode's total, and which outputs share storage.
"""

from __future__ import annotations

import json
from math import prod

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alexcost import (GELU, Add, AdaptiveMaxPool2d, BatchNorm2d, Cat, Chunk, Contiguous, Conv2d, Dropout2d, Flatten,
                      Hardsigmoid, Hardswish, Identity, LayerNorm, LeakyReLU, Linear, MaxPool2d, Mean, Mul, Network,
                      Parameter, Permute, ReLU, ReLU6, SiLU, Sigmoid, Split, SpecError, StochasticDepth, Transpose,
                      View, ZeroPad2d, network_from_dict, network_to_dict)
from alexcost.render.report import render
from alexcost.engine.storage import contiguous_plan, trace

torch = pytest.importorskip("torch")
from alexcost.torch_bridge import to_module  # noqa: E402
from strategies import trunk_graphs  # noqa: E402


# -- wiring ---------------------------------------------------------------------------------------

def residual_block(c=8):
    return [Conv2d(name="conv1", out_channels=c, kernel_size=3, padding=1), BatchNorm2d(name="bn1"),
            ReLU(name="relu1", inplace=True), Conv2d(name="conv2", out_channels=c, kernel_size=3, padding=1),
            BatchNorm2d(name="bn2"), Add(name="add", inputs=("bn2", "input")), ReLU(name="out")]


def test_a_residual_block_is_a_graph_with_named_inputs():
    net = Network((8, 6, 6), residual_block())
    assert not net.is_chain and net.inputs_of(5) == ("bn2", "input") and net.inputs_of(6) == ("add",)
    assert net.input_shapes[5] == ((8, 6, 6), (8, 6, 6)) and net.output_shape == (8, 6, 6)
    cost = net.cost(batch=2)
    assert cost.graph and cost["add"].other_ops == 2 * 8 * 6 * 6 and cost["add"].inputs == ("bn2", "input")
    assert cost["bn1"].params == 2 * 8 and cost["bn1"].buffers == 2 * 8 + 1
    assert cost["bn1"].buffer_bytes == 2 * 8 * 4 + 8  # running mean and var in float32, an int64 counter


@pytest.mark.parametrize("layers, message", [
    ([ReLU(), Add(inputs=("relu0", "nope"))], r"inputs names 'nope', which is not the network input or a layer"),
    ([Add(inputs=("input", "relu1")), ReLU()], r"'relu1', which is not the network input or a layer listed before"),
    ([ReLU(), Add()], r"Add merges several tensors; name them in 'inputs'"),
    ([ReLU(), Add(inputs=("relu0",))], r"merges two or more tensors, but inputs names 1"),
    ([ReLU(inputs=("input", "input"))], r"reads one input, but inputs names 2"),
    ([Chunk(chunks=2, dim=1), ReLU()], r"the layer before it has 2 outputs; name the one it reads in 'inputs', "
                                       r"e.g. 'chunk0.0'"),
    ([Chunk(chunks=2, dim=1), ReLU(inputs=("chunk0",))], r"which has 2 outputs; name one, e.g. 'chunk0.0'"),
    ([Chunk(chunks=2, dim=1), ReLU(inputs=("chunk0.2",))], r"'chunk0' has 2 outputs \(chunk0.0 to chunk0.1\)"),
    ([ReLU(), Sigmoid(inputs=("relu0.0",))], r"but 'relu0' has a single output; write 'relu0'"),
    ([Parameter(shape=(4, 1, 1)), ReLU()], r"relu1.*the network's output reads parameters alone, not the input"),
    ([ReLU(name="input")], r"duplicate name 'input', the network input's name"),
    ([ReLU(), Mul(inputs=("relu0", "input"), inplace=True), Cat(dim=0, inputs=("relu0", "input"))],
     r"dim=0 is the batch dimension"),
])
def test_wiring_mistakes_are_one_clear_error(layers, message):
    with pytest.raises(SpecError, match=message):
        Network((4, 6, 6), layers)


def test_broadcasting_and_concatenation_rules():
    with pytest.raises(SpecError, match="must match the size of tensor b at non-singleton dimension 1"):
        Network((4, 6, 6), [Conv2d(out_channels=3, kernel_size=1), Add(inputs=("conv2d0", "input"))])
    with pytest.raises(SpecError, match="Sizes of tensors must match except in dimension 1"):
        Network((4, 6, 6), [MaxPool2d(kernel_size=2), Cat(dim=1, inputs=("maxpool2d0", "input"))])
    with pytest.raises(SpecError, match="would broadcast against the batch dimension"):
        Network((4, 6, 6), [Parameter(shape=(2, 4, 1, 1)), Mul(inputs=("input", "parameter0"))])
    net = Network((4, 6, 6), [Parameter(shape=(1, 4, 1, 1)), Mul(inputs=("input", "parameter0"))])
    assert net.output_shape == (4, 6, 6) and net.cost().totals.params == 4


def test_graph_specs_round_trip_and_report_inputs():
    net = Network((8, 6, 6), residual_block(), name="block")
    data = network_to_dict(net)
    assert data["layers"][5]["inputs"] == ["bn2", "input"] and "inputs" not in data["layers"][4]
    back = network_from_dict(json.loads(json.dumps(data)))
    assert back == net and back.sources == net.sources
    table = render(net.cost(), "table")
    assert table.splitlines()[0].split()[:5] == ["Size", "/", "Operation", "Input", "Filter"]
    assert any(line.startswith("add: Add") and "bn2, input" in line for line in table.splitlines())
    rows = json.loads(render(net.cost(), "json"))["layers"]
    assert rows[5]["inputs"] == ["bn2", "input"] and rows[5]["input_shape"] == [[8, 6, 6], [8, 6, 6]]
    assert render(net.cost(), "csv").splitlines()[0].startswith("index,name,type,group,inputs,")


# -- random graphs against torch ------------------------------------------------------------------


def observe(net, batch, dtype=torch.float32):
    """torch's own numbers for ``net``: per layer, output shapes and storages, and FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    module = to_module(net).eval().to(dtype)
    seen, alive = {}, []  # alive: every output stays allocated, so no storage is reused within the pass

    def hook(m, args, out, name=None):
        outs = out if isinstance(out, tuple) else (out,)
        alive.append(outs)
        seen[name] = ([tuple(o.shape[1:]) for o in outs], [o.untyped_storage().data_ptr() for o in outs],
                      [a.untyped_storage().data_ptr() for a in args])
    handles = [m.register_forward_hook(lambda m, a, o, n=n: hook(m, a, o, n)) for n, m in module.named_children()]
    x = torch.randn(batch, *net.input_shape, dtype=dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    for h in handles:
        h.remove()
    return module, x, seen, counter.get_total_flops()


@pytest.mark.slow
@given(trunk_graphs(), st.sampled_from([1, 2, 3]))
def test_random_graphs_match_torch(net, batch):
    module, x, seen, flops = observe(net, batch)
    cost = net.cost(batch=batch)
    assert 2 * cost.totals.macs == flops
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    assert cost.totals.params == params and cost.totals.buffers == buffers
    new = net.storage(batch)
    storages = {x.untyped_storage().data_ptr()}
    for i, (row, name) in enumerate(zip(cost.layers, net.names)):
        shapes, outs, ins = seen[name]
        expected = list(row.output_shapes)
        if type(row.layer).arity == 0:  # a Parameter: its full shape, no batch dimension to drop
            expected = [row.output_shape[1:]]
        assert shapes == [tuple(s) for s in expected], name
        is_new = outs[0] not in storages and type(row.layer).arity != 0
        assert new[i] == is_new, (name, "alexcost says new storage" if new[i] else "alexcost says shared")
        storages.update(outs)


@given(trunk_graphs(), st.sampled_from([1, 2]))
def test_the_contiguous_plan_agrees_with_the_stride_trace(net, batch):
    fast = contiguous_plan(net)
    if fast is not None:
        assert fast == tuple(out[0][0] == i for i, out in enumerate(trace(net, batch)))


def test_activation_memory_counts_each_storage_once():
    """Views, in-place layers and identities add nothing: the activation total is the bytes of the
    distinct storages torch allocates for the outputs."""
    net = Network((3, 8, 8), [Conv2d(out_channels=4, kernel_size=3, padding=1), ReLU(inplace=True),
                              Dropout2d(p=0.5), Flatten(), Identity(), Linear(out_features=5), ReLU()])
    cost = net.cost(batch=3)
    assert [r.new_storage for r in cost.layers] == [True, False, False, False, False, True, True]
    assert cost.totals.stored_bytes == 3 * 4 * (4 * 8 * 8 + 5 + 5)
    _, _, seen, _ = observe(net, 3)
    distinct = {}
    for name in net.names:
        shapes, outs, _ = seen[name]
        distinct[outs[0]] = 3 * prod(shapes[0]) * 4
    inputs = {seen[net.names[0]][2][0]}
    assert sum(v for k, v in distinct.items() if k not in inputs) == cost.totals.stored_bytes


def test_contiguous_copies_a_transposed_tensor_but_not_a_contiguous_one():
    net = Network((4, 3, 3), [Transpose(dim0=2, dim1=3), Contiguous(), Contiguous(),
                              Chunk(chunks=2, dim=1), Contiguous(inputs=("chunk3.1",))])
    assert net.storage(2) == (False, True, False, False, True)  # a channel half of 2 samples is not contiguous
    assert net.storage(1) == (False, True, False, False, False)  # of one sample, it is
    _, _, seen, _ = observe(net, 1)
    assert seen["contiguous4"][1][0] == seen["chunk3"][1][1]  # torch returned the same storage


def test_view_refuses_what_torch_cannot_view():
    with pytest.raises(SpecError, match="view size is not compatible with input tensor's size and stride"):
        Network((4, 3, 3), [Transpose(dim0=2, dim1=3), View(shape=(36,))]).storage(2)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        torch.randn(2, 4, 3, 3).transpose(2, 3).view(2, 36)


@pytest.mark.parametrize("layer, x, ops", [
    (ReLU6(), (2, 3, 4), 2 * 24), (LeakyReLU(), (2, 3, 4), 2 * 24), (SiLU(), (5,), 2 * 5),
    (GELU(), (5,), 5 * 5), (GELU(approximate="tanh"), (5,), 9 * 5), (Hardswish(), (3, 2), 5 * 6),
    (Hardsigmoid(), (3, 2), 4 * 6), (BatchNorm2d(), (3, 4, 5), 2 * 60),
    (LayerNorm(normalized_shape=5), (3, 5), 7 * 15), (LayerNorm(normalized_shape=(3, 5), bias=False), (3, 5), 6 * 15),
    (LayerNorm(normalized_shape=5, elementwise_affine=False), (3, 5), 5 * 15),
    (Mean(dim=(2, 3)), (4, 3, 5), 60), (AdaptiveMaxPool2d(output_size=2), (3, 4, 4), 3 * (16 - 4)),
    (ZeroPad2d(padding=2), (3, 4, 4), 0), (StochasticDepth(p=0.5, mode="batch"), (7,), 0), (Identity(), (7,), 0),
])
def test_other_ops_per_element_as_documented(layer, x, ops):
    assert Network(x, [layer]).cost().totals.other_ops == ops


def test_new_kinds_refuse_what_torch_refuses():
    with pytest.raises(SpecError, match="expected num_features=3, got 4 channels"):
        Network((4, 5, 5), [BatchNorm2d(num_features=3)])
    with pytest.raises(SpecError, match="Given normalized_shape=\\[4\\]"):
        Network((3, 5), [LayerNorm(normalized_shape=4)])
    with pytest.raises(SpecError, match="permute\\(\\): duplicate dims are not allowed"):
        Network((3, 5), [Permute(dims=(0, 1, 1))])
    with pytest.raises(SpecError, match="split_with_sizes expects split_sizes to sum exactly to 3"):
        Network((3, 5), [Split(split_size_or_sections=(1, 1), dim=1)])
    with pytest.raises(SpecError, match="track_running_stats=False normalises over the batch"):
        BatchNorm2d(track_running_stats=False)
    for bad in (lambda: torch.nn.BatchNorm2d(3)(torch.randn(2, 4, 5, 5)),
                lambda: torch.nn.LayerNorm(4)(torch.randn(2, 3, 5)),
                lambda: torch.randn(2, 3, 5).permute(0, 1, 1),
                lambda: torch.randn(2, 3, 5).split([1, 1], dim=1)):
        with pytest.raises(RuntimeError):
            bad()
