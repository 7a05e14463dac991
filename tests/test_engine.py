"""The rules cache (`alexcost.engine.rules`): what a layer's rules give is remembered beside the
layer, never in it; built-in layers of one configuration share it; `forget_rules` drops it, and
networks held from before work their results out again. Every count here is written out by hand."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, fields

import pytest
from _pytest.monkeypatch import MonkeyPatch

from alexcost import (Add, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Layer, Linear, Mul, Network, Parameter,
                      ReLU, forget_rules)
from alexcost.engine import rules
from alexcost.search import evaluate
from alexcost.training import training_cost


@dataclass(frozen=True, kw_only=True)
class Scale(Layer):
    """A user's kind: one multiply per element."""

    factor: float = 2.0

    def output_shape(self, x):
        return x

    def other_ops(self, x, y):
        return y[0] * y[1] * y[2]

    def saved_tensors(self, x, y, grads, ctx):
        return ()


def used(layers: list, input_shape=(4, 6, 6)) -> None:
    """Every analysis alexcost has, on a network of ``layers``."""
    net = Network(input_shape, layers)
    net.cost(3, "float16").layers
    training_cost(net, 2, device="cpu").memory
    evaluate([net], batch=2)


def test_a_layer_pickles_to_the_same_bytes_before_and_after_use():
    conv, bn, relu = Conv2d(out_channels=4, kernel_size=3, padding=1), BatchNorm2d(), ReLU(inplace=True)
    add, scale, param = Add(inputs=("conv2d0", "scale4")), Scale(), Parameter(shape=(4, 1, 1), name="p")
    mul = Mul(inputs=("add5", "p"))
    layers = [conv, bn, relu, Conv2d(out_channels=4, kernel_size=1), scale, add, param, mul, Flatten(),
              Linear(out_features=3)]
    before = [pickle.dumps(layer) for layer in layers]
    used(layers)
    used(layers)
    assert [pickle.dumps(layer) for layer in layers] == before
    for layer in layers:  # a layer holds its fields, nothing else
        assert sorted(vars(layer)) == sorted(f.name for f in fields(layer))


def test_the_cache_keeps_no_layer_alive():
    """What the rules gave for a layer object is dropped when the layer goes; its configuration's
    table stays, for the next layer of the same kind and arguments."""
    import gc
    import weakref

    layers = [Conv2d(out_channels=3, kernel_size=1, name="kept"), Scale()]
    net = Network((2, 4, 4), layers)
    training_cost(net, 2).memory
    refs, ids = [weakref.ref(layer) for layer in layers], [id(layer) for layer in layers]
    table = rules.of(layers[0]).table
    assert all(i in rules._BY_LAYER for i in ids)
    del layers, net
    gc.collect()
    assert [r() for r in refs] == [None, None] and not any(i in rules._BY_LAYER for i in ids)
    assert rules.of(Conv2d(out_channels=3, kernel_size=1)).table is table


def test_built_in_layers_of_one_configuration_share_one_table():
    forget_rules()
    a, b = Conv2d(name="a", out_channels=4, kernel_size=3), Conv2d(name="b", out_channels=4, kernel_size=3)
    net = Network((3, 8, 8), [a])
    assert rules.of(a) is rules.of(a) and rules.of(a).name == "a" and rules.of(b).name == "b"
    assert rules.of(a).table is rules.of(b).table
    entry = rules.of(b).table[(3, 8, 8)]
    assert net.layer_rules() == [entry] and entry.output == (4, 6, 6)
    assert rules.counts(b, entry, (3, 8, 8)).macs == 4 * 6 * 6 * 3 * 3 * 3
    assert rules.of(Conv2d(out_channels=4, kernel_size=3, bias=False)).table is not rules.of(a).table


def test_a_users_kind_is_remembered_per_layer_object():
    one, two = Scale(), Scale()
    assert one == two
    Network((2, 3, 3), [one])
    assert rules.of(one).table is not rules.of(two).table and (2, 3, 3) in rules.of(one).table
    assert Network((2, 3, 3), [two]).cost().totals.other_ops == 2 * 3 * 3


def test_forget_makes_a_held_network_work_its_results_out_again():
    conv = Conv2d(out_channels=4, kernel_size=3)
    net = Network((3, 8, 8), [conv, Flatten(), Linear(out_features=2)])
    macs = 4 * 6 * 6 * 27 + 4 * 6 * 6 * 2
    assert net.cost().totals.macs == macs
    backward = training_cost(net, 2).backward_macs
    patched = MonkeyPatch()  # pytest's own: it does not forget by itself
    honest = Conv2d.macs
    patched.setattr(Conv2d, "macs", lambda self, x, y: honest(self, x, y) + 1)
    try:
        assert net.cost().totals.macs == macs  # remembered
        forget_rules()
        assert net.cost().totals.macs == macs + 1
        assert Network((3, 8, 8), [conv]).cost().totals.macs == 4 * 6 * 6 * 27 + 1
    finally:
        patched.undo()
        forget_rules()
    assert net.cost().totals.macs == macs and training_cost(net, 2).backward_macs == backward


def test_a_merge_reading_a_parameter_is_remembered_apart_from_one_reading_an_activation():
    """One Mul object reads a (4, 1, 1) Parameter in one network and a (4, 1, 1) activation in the
    other: the same numbers, but a parameter has no batch dimension. Its backward pass multiplies
    the output's gradient by the other input (one op per output element for each input needing a
    gradient) and sums it back to each input's own elements."""
    mul = Mul(name="m", inputs=("c", "p"))
    batch, out = 2, 2 * 4 * 3 * 3

    def step(second):
        net = Network((4, 3, 3), [Conv2d(name="c", out_channels=4, kernel_size=1), second, mul])
        return training_cost(net, batch, device="cpu")["m"].backward_other_ops

    for _ in range(2):  # either order
        weighted = step(Parameter(name="p", shape=(4, 1, 1)))
        pooled = step(AdaptiveAvgPool2d(name="p", output_size=1, inputs=("c",)))
        assert weighted == (out + out - out) + (out + out - 4)  # the parameter's gradient: 4 elements, once
        assert pooled == (out + out - out) + (out + out - batch * 4)


def test_a_layer_seen_on_more_inputs_than_a_table_holds_is_counted_anew():
    conv = Conv2d(out_channels=2, kernel_size=3)
    for size in range(3, 3 + rules.SHAPES_PER_LAYER + 5):
        assert Network((1, size, size), [conv]).cost().totals.macs == 2 * (size - 2) ** 2 * 9
    assert len(rules.of(conv).table) <= rules.SHAPES_PER_LAYER


def test_storage_is_declared_by_each_kind():
    """A kind says where its output lives; a user's kind that computes a view's strides must say so."""
    @dataclass(frozen=True, kw_only=True)
    class Viewing(Layer):
        def output_shape(self, x):
            return x

        def view_strides(self, x, y, strides, batch):
            return strides

    with pytest.raises(Exception, match="defines view_strides\\(\\) but declares storage 'new'"):
        Network((2, 3), [Viewing()])

    @dataclass(frozen=True, kw_only=True)
    class Same(Layer):
        storage = "same"

        def output_shape(self, x):
            return x

    net = Network((2, 3), [Same()])
    assert net.storage(1) == (False,) and net.cost(4).totals.stored_elements == 0
