"""The engine: the rules cache (`alexcost.engine.rules`), the totals of the engine's fast paths
against sums made by hand, and the batch API for architecture search."""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, fields
from math import prod

import pytest
from _pytest.monkeypatch import MonkeyPatch

from alexcost import (AdaptiveAvgPool2d, Add, BatchNorm2d, Conv2d, Flatten, Layer, Linear, Mul, Network, Parameter,
                      ReLU, forget_rules, network_from_dict)
from alexcost.engine import rules
from alexcost.engine.storage import trace
from alexcost.errors import SpecError
from alexcost.layers import LeakyReLU
from alexcost.render.search import table as search_table
from alexcost.search import evaluate
from alexcost.training import training_cost

from strategies import random_graph_spec, search_candidates


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


# == totals against the rules summed by hand =======================================================
# The engine's fast paths (lean wiring of chain runs, per-layer vectors summed for the totals,
# memos shared by built-in layers of one kind and arguments, search's entry keys) against sums
# made here layer by layer from each kind's own rules and the stride trace.


def by_hand(net: Network, batch: int, itemsize: int, group: str | None = None) -> dict:
    """Totals (of one group's layers, if given) summed here: each kind's rules per layer, storage by
    the full stride trace."""
    traced = trace(net, 1 if batch == 1 else 2)
    sums = dict.fromkeys(("w", "b", "m", "a", "o", "n", "fixed", "e", "stored", "unbatched"), 0)
    for i, (layer, x, y) in enumerate(zip(net.layers, net.input_shapes, net.output_shapes)):
        if group is not None and layer.group != group:
            continue
        elements = sum(prod(s) for s in y) if type(layer).multi_output else prod(y)
        sums["w"] += layer.weight_params(x)
        sums["b"] += layer.bias_params(x)
        sums["m"] += layer.macs(x, y)
        sums["a"] += layer.bias_adds(x, y)
        sums["o"] += layer.other_ops(x, y)
        sums["n"] += layer.buffers(x)
        sums["fixed"] += layer.buffer_bytes(x, itemsize)
        if type(layer).arity == 0:
            sums["unbatched"] += elements
        else:
            sums["e"] += elements
            sums["stored"] += elements if traced[i][0][0] == i else 0
    return sums


def assert_totals(net: Network, batch: int, dtype: str, itemsize: int) -> None:
    cost = net.cost(batch=batch, dtype=dtype)
    for group, t in ((None, cost.totals), ("conv", cost.split["conv"]), ("fc", cost.split["fc"])):
        assert_sums(by_hand(net, batch, itemsize, group), t, batch)


def assert_sums(s: dict, t, batch: int) -> None:
    assert (t.weight_params, t.bias_params, t.buffers, t.buffer_bytes) == (s["w"], s["b"], s["n"], s["fixed"])
    assert (t.macs, t.bias_adds, t.other_ops) == (batch * s["m"], batch * s["a"], batch * s["o"])
    assert t.output_elements == batch * s["e"] + s["unbatched"]
    assert t.stored_elements == batch * s["stored"]


def valid_graphs(seed: int, draws: int):
    """``(spec, network)`` for each of ``draws`` random specs the engine accepts (some draws are
    refused, a pool on too small an input say: those are left out)."""
    rng = random.Random(seed)
    for _ in range(draws):
        spec = random_graph_spec(rng)
        try:
            yield spec, network_from_dict(spec)
        except SpecError:
            continue


@pytest.mark.parametrize("batch, dtype, itemsize", [(1, "float32", 4), (3, "float16", 2)])
def test_totals_of_random_graphs_equal_the_rules_summed_by_hand(batch, dtype, itemsize):
    for _, net in valid_graphs(seed=13, draws=60):
        assert_totals(net, batch, dtype, itemsize)
        fresh = Network(net.input_shape, net.layers)  # wired again from the same layer objects: memos hit
        assert_totals(fresh, batch, dtype, itemsize)
        assert fresh.sources == net.sources and fresh.input_shapes == net.input_shapes


def test_a_stride_trace_goes_on_from_a_trace_of_the_first_layers():
    """The trace of a network's first k layers, continued (as `from_module` does while it reads a module
    layer by layer), is the trace of the whole network, for every k; each layer's storage is checked by
    hand: a new output allocates its own, an in-place or view output keeps its first input's."""
    for _, net in valid_graphs(seed=21, draws=30):
        for batch in (1, 2):
            whole = trace(net, batch)
            assert len(whole) == len(net.layers)
            for k in range(len(net.layers) + 1):
                assert trace(net, batch, whole[:k]) == whole
            for i, (layer, refs) in enumerate(zip(net.layers, net.sources)):
                storage, declared = whole[i][0][0], type(layer).storage
                if not refs:  # a Parameter: its weight
                    assert storage == ("parameter", i)
                    continue
                j, out = refs[0]
                first = -1 if j == -1 else whole[j][out or 0][0]
                if declared == "new" or (declared == "inplace-if-flag" and not layer.inplace):
                    assert storage == i, (i, layer)
                elif declared == "same" or declared == "inplace-if-flag":
                    assert storage == first, (i, layer)
                else:  # a view where torch can make one
                    assert storage in (i, first), (i, layer)


def test_wiring_reads_what_each_layer_names():
    """Sources and input shapes, resolved here from the names, for every path the wiring takes."""
    for spec, net in valid_graphs(seed=5, draws=40):
        position = {"input": -1, **{name: i for i, name in enumerate(net.names)}}
        for i, entry in enumerate(spec["layers"]):
            refs = entry.get("inputs") or ([net.names[i - 1]] if i else ["input"])
            expected = []
            for ref in refs:
                base, _, k = ref.partition(".")
                expected.append((position[base], int(k) if k else None))
            assert net.sources[i] == tuple(expected), (i, entry)
            shapes = tuple(tuple(spec["input_shape"]) if j == -1 else net.output_shapes[j] if k is None
                           else net.output_shapes[j][k] for j, k in expected)
            assert net.input_shapes[i] == (shapes[0] if len(shapes) == 1 else shapes)
        chain = all(s == ((i - 1, None),) for i, s in enumerate(net.sources)) and \
            all(not type(layer).multi_output for layer in net.layers)
        assert net.is_chain == chain


def test_a_layer_object_held_twice_is_counted_at_both_places():
    relu = ReLU(inplace=False)
    net = Network((4, 5, 5), [Conv2d(out_channels=2, kernel_size=1), relu, Conv2d(out_channels=2, kernel_size=1,
                                                                                    name="c2"), relu])
    assert net.cost().totals.other_ops == 2 * (2 * 5 * 5)
    assert net.cost().totals.stored_elements == 4 * (2 * 5 * 5)


def test_layers_sharing_a_memo_differ_only_in_name_and_inputs():
    """Built-in layers of one kind and arguments share what the rules cache remembers, whatever
    their names; other arguments, or floats of another sign (0.0 and -0.0, equal in Python), do not."""
    forget_rules()
    first, second = BatchNorm2d(name="a"), BatchNorm2d(name="b")
    Network((4, 3, 3), [first])
    Network((4, 3, 3), [second])
    assert rules.of(first).table is rules.of(second).table and (4, 3, 3) in rules.of(second).table
    one, one_float = BatchNorm2d(eps=1), BatchNorm2d(eps=1.0, name="f")  # eps is stored as a float: one value
    Network((4, 3, 3), [one])
    Network((4, 3, 3), [one_float])
    assert type(one.eps) is type(one_float.eps) is float and rules.of(one).table is rules.of(one_float).table
    inplace, copy = ReLU(inplace=True), ReLU(inplace=False)  # storage differs: so does the memo
    Network((4, 3, 3), [inplace])
    Network((4, 3, 3), [copy])
    assert rules.of(inplace).table is not rules.of(copy).table
    zero, negative_zero = LeakyReLU(negative_slope=0.0), LeakyReLU(negative_slope=-0.0)
    Network((4, 3, 3), [zero])
    Network((4, 3, 3), [negative_zero])
    assert rules.of(zero).table is not rules.of(negative_zero).table
    assert Network((4, 3, 3), [negative_zero]).cost().totals.other_ops == 4 * 3 * 3 * zero.ops_per_element


def test_errors_name_the_first_bad_layer_on_every_path():
    with pytest.raises(SpecError, match=r"layers\[2\] \(ReLU\): duplicate name 'a', already used by layers\[0\]"):
        Network((3, 4, 4), [ReLU(name="a"), ReLU(name="b"), ReLU(name="a"), Conv2d(out_channels=1, kernel_size=9)])
    with pytest.raises(SpecError, match=r"layers\[3\] \(ReLU\): duplicate name 'input'"):
        Network((3, 4, 4), [ReLU(name="a"), ReLU(name="b", inputs=("a",)), ReLU(), ReLU(name="input")])
    with pytest.raises(SpecError, match=r"layers\[1\] 'b' \(Conv2d\) on input \[3, 4, 4\]"):
        Network((3, 4, 4), [ReLU(name="a"), Conv2d(name="b", out_channels=1, kernel_size=9, inputs=("a",))])
    with pytest.raises(SpecError, match=r"layers\[1\] must be an alexcost Layer, got int"):
        Network((3, 4, 4), [ReLU(name="a"), 7])


def test_search_keys_tell_apart_values_python_calls_equal():
    """``1``, ``true`` and ``1.0`` are equal in Python but not to a spec: each entry is parsed on its own."""
    base = {"type": "Conv2d", "out_channels": 2, "kernel_size": 1}
    specs = [{"input_shape": [3, 4, 4], "layers": [{**base, "bias": flag}]} for flag in (True, 1, 1.0, False, 0)]
    rows = evaluate(specs).rows
    assert [r.params for r in rows[:1]] == [3 * 2 + 2] and rows[3].params == 3 * 2
    assert all(r.error and "bias" in r.error for r in (rows[1], rows[2], rows[4]))
    kernels = [{"input_shape": [3, 4, 4], "layers": [{**base, "kernel_size": k}]} for k in (3, 3.0, [3, 3], (3, 3))]
    rows = evaluate(kernels).rows
    assert rows[0].macs == rows[2].macs == rows[3].macs == 2 * 2 * 2 * 3 * 9 and rows[1].error


# == search ========================================================================================
# The batch API for architecture search, and what layers remember between networks.


@pytest.mark.parametrize("batch, dtype", [(1, "float32"), (4, "bfloat16")])
def test_every_row_equals_the_network_built_on_its_own(batch, dtype):
    specs = search_candidates(300) + ["not a spec", {"input_shape": [3, 8, 8]}, {"input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": [1, [2]]}]}]
    results = evaluate(specs, batch=batch, dtype=dtype)
    assert len(results.rows) == len(specs) and results.valid and results.invalid
    for spec, row in zip(specs, results.rows):
        try:
            network = network_from_dict(spec if isinstance(spec, dict) else {})
        except Exception as err:  # noqa: BLE001 - the error evaluate reports must be this one
            assert not row.ok and row.error.endswith(str(err).split(": ", 1)[-1])
            continue
        totals = network.cost(batch=batch, dtype=dtype).totals
        assert row.ok, row.error
        assert (row.params, row.macs, row.flops, row.activation_bytes) == (
            totals.params, totals.macs, totals.flops, totals.stored_bytes)
        assert row.output_shape == network.output_shape == (10,)
    assert "Output size is too small" in " ".join(r.error for r in results.invalid)
    table = search_table(results, 2)
    assert table.splitlines()[0].split()[:3] == ["#", "name", "params"] and len(table.splitlines()) == 4
    assert str(results) == (f"{len(specs)} candidates, {len(results.valid)} valid, {len(results.invalid)} invalid "
                            f"(batch {batch}, {dtype})")


def test_built_networks_are_accepted_too():
    net = Network((3, 8, 8), [Conv2d(out_channels=4, kernel_size=3), ReLU()], name="mine")
    (row,) = evaluate([net], batch=2).rows
    assert row.name == "mine" and row.macs == 2 * 4 * 6 * 6 * 3 * 3 * 3 and row.params == 4 * 27 + 4


def test_layers_remember_rules_per_input_and_forget_on_request(monkeypatch):
    """A layer object reused by many networks is checked and counted once per input shape; what it
    remembers changes nothing about it as a value, and forget_rules() drops it."""
    conv = Conv2d(out_channels=4, kernel_size=3)
    first = Network((3, 8, 8), [conv]).cost().totals.macs
    assert conv == Conv2d(out_channels=4, kernel_size=3) and hash(conv) == hash(Conv2d(out_channels=4, kernel_size=3))
    assert Network((3, 10, 10), [conv]).cost().totals.macs == 4 * 8 * 8 * 27  # another input: computed anew
    honest = Conv2d.macs
    patched = type(monkeypatch).__mro__[1]()  # pytest's own MonkeyPatch: it does not call forget_rules
    patched.setattr(Conv2d, "macs", lambda self, x, y: honest(self, x, y) + 1)
    try:
        assert Network((3, 8, 8), [conv]).cost().totals.macs == first  # remembered
        forget_rules()
        assert Network((3, 8, 8), [conv]).cost().totals.macs == first + 1  # recomputed under the patch
    finally:
        patched.undo()
        forget_rules()
    assert Network((3, 8, 8), [conv]).cost().totals.macs == first
