"""The training analysis is one walk: its totals are its records' sums, and where the storages
come from does not change it.

A network whose tensors all stay contiguous (no Permute, Transpose, Chunk or Split) is laid out
from its contiguous storage plan, without tracing strides: each layer's rules then see its
inputs' contiguous strides. Every other network is laid out from the full stride trace. The
walk itself is checked against torch in test_training_torch.py; here random networks drawn by
hypothesis must get identical totals, records, memory and refusals from either layout, under
every option, the totals must be the records' sums, and the fact the contiguous layout rests on
(every traced stride is contiguous) is checked on each of them.
"""

from __future__ import annotations

from math import prod

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from alexcost import (AdaptiveAvgPool2d, Add, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Dropout2d, Flatten, GELU,
                      Hardswish, Identity, LayerNorm, LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, Mean, Mul,
                      Network, Parameter, Permute, ReLU, ReLU6, Reshape, SiLU, Sigmoid, Softmax, SpecError, Tanh,
                      preset)
from alexcost.engine.network import forget_rules
from alexcost.engine.storage import contiguous_plan, trace
from alexcost.layers import strides
from alexcost.layers.shape import Clone
from alexcost.training import OPTIMIZERS, training_cost

ACTIVATIONS = (
    lambda d: ReLU(inplace=d(st.booleans())), lambda d: ReLU6(inplace=d(st.booleans())),
    lambda d: LeakyReLU(inplace=d(st.booleans())), lambda d: SiLU(inplace=d(st.booleans())),
    lambda d: Hardswish(inplace=d(st.booleans())), lambda d: GELU(), lambda d: Tanh(), lambda d: Sigmoid(),
    lambda d: Softmax(dim=1), lambda d: Identity(), lambda d: Dropout(p=0.5, inplace=d(st.booleans())),
    lambda d: Dropout2d(p=0.5),
)

BLOCKS = ("conv", "act", "act", "pool", "norm", "residual", "se", "scale", "tokens", "dead", "fan", "clone")


@st.composite
def contiguous_networks(draw):
    """A small network on a (C, H, W) input whose tensors stay contiguous: convolutions,
    activations (some in place), pooling, normalisation, residual Adds, squeeze-and-excitation
    Muls, layer-scale Parameters, Linear over the last dim of a 3-D tensor and a Reshape back,
    a branch that never reaches the output, a tensor read twice, a copy; then a Linear head.
    Returns the input shape, the layers, and the names a step may freeze."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    input_shape, layers = shape, []

    def add(layer, inputs):
        name = f"l{len(layers)}"
        layers.append(type(layer)(**{**layer.args(), "name": name, "inputs": tuple(inputs) or None}))
        return name

    last = "input"
    for _ in range(draw(st.integers(1, 5))):
        c, h, w = shape
        block = draw(st.sampled_from(BLOCKS))
        if block == "conv":
            conv = Conv2d(out_channels=draw(st.integers(1, 4)), kernel_size=draw(st.sampled_from([1, 2, 3])),
                          padding="same", bias=draw(st.booleans()))
            shape = (conv.out_channels, h, w)
            last = add(conv, (last,))
        elif block == "act":
            last = add(draw(st.sampled_from(ACTIVATIONS))(draw), (last,))
        elif block == "pool":
            pools = [AdaptiveAvgPool2d(output_size=1)]
            if min(h, w) >= 2:
                pools += [MaxPool2d(kernel_size=2, stride=1), AvgPool2d(kernel_size=2, stride=1)]
            pool = draw(st.sampled_from(pools))
            shape = Network(shape, [pool]).output_shape
            last = add(pool, (last,))
        elif block == "norm":
            last = add(draw(st.sampled_from([BatchNorm2d(), BatchNorm2d(affine=False),
                                             LocalResponseNorm(size=draw(st.integers(1, 3)))])), (last,))
        elif block == "residual":
            conv = add(Conv2d(out_channels=c, kernel_size=3, padding="same"), (last,))
            bn = add(BatchNorm2d(), (conv,))
            last = add(Add(inplace=draw(st.booleans())), (bn, last) if draw(st.booleans()) else (last, bn))
            last = add(ReLU(inplace=draw(st.booleans())), (last,))
        elif block == "se":
            pooled = add(Mean(dim=(2, 3), keepdim=True), (last,))
            excite = add(Sigmoid(), (add(Conv2d(out_channels=c, kernel_size=1), (pooled,)),))
            last = add(Mul(inplace=draw(st.booleans())), (last, excite))
        elif block == "scale":
            scale = add(Parameter(shape=(c, 1, 1)), ())
            if draw(st.booleans()):  # in place writes into the first input: the activation
                last = add(Mul(inplace=draw(st.booleans())), (last, scale))
            else:  # never in place: alexcost refuses an in-place merge into a weight
                last = add(Mul(), (scale, last))
        elif block == "tokens":  # (C, H*W): Linear over the last dim, then back to (C, H, W)
            tokens = add(Flatten(start_dim=2), (last,))
            mixed = add(Linear(out_features=h * w, bias=draw(st.booleans())), (tokens,))
            if draw(st.booleans()):
                mixed = add(LayerNorm(normalized_shape=h * w), (mixed,))
            last = add(Reshape(shape=(c, h, w)), (mixed,))
        elif block == "dead":  # read, but never read by anything that reaches the output
            add(draw(st.sampled_from([Conv2d(out_channels=2, kernel_size=1), Sigmoid(), BatchNorm2d()])), (last,))
        elif block == "fan":  # one tensor read by two layers, then by the same layer twice
            other = add(draw(st.sampled_from(ACTIVATIONS))(draw), (last,))
            last = add(Add(), (last, other))
            if draw(st.booleans()):
                last = add(Mul(), (last, last))
        elif block == "clone":
            last = add(Clone(), (last,))
    flat = add(Flatten(), (last,))
    if draw(st.booleans()):
        flat = add(Dropout(p=0.5, inplace=draw(st.booleans())), (flat,))
    add(Linear(out_features=draw(st.integers(1, 3))), (flat,))
    network = Network(input_shape, layers, name="drawn")
    trainable = [n for n, layer, x in zip(network.names, network.layers, network.input_shapes)
                 if layer.weight_params(x) + layer.bias_params(x)]
    frozen = tuple(n for n in trainable if draw(st.integers(0, 3)) == 0)
    return input_shape, tuple(layers), frozen


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

