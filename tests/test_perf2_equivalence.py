"""The engine's fast paths (lean wiring of chain runs, per-layer vectors summed for the totals,
memos shared by built-in layers of one kind and arguments, search's entry keys) against sums
made here layer by layer from each kind's own rules and the stride trace."""

from __future__ import annotations

import random
from math import prod

import pytest

from alexcost import Network, network_from_dict
from alexcost.errors import SpecError
from alexcost.layers import BatchNorm2d, Conv2d, LeakyReLU, ReLU
from alexcost.engine import rules
from alexcost.engine.network import forget_rules
from alexcost.search import evaluate
from alexcost.engine.storage import trace


def graph_spec(rng: random.Random, layers: int = 16) -> dict:
    """A random CNN on 3x16x16: chain runs, one-input branches, Add and Cat merges, views, splits."""
    c = rng.choice((4, 8))
    out = [{"type": "Conv2d", "name": "stem", "out_channels": c, "kernel_size": 3, "padding": 1}]
    last = "stem"
    while len(out) < layers:
        n = len(out)
        block = rng.choice(["conv", "residual", "branches", "pool", "split", "unnamed"])
        if block == "conv":
            c = rng.choice((4, 8))
            out += [{"type": "Conv2d", "name": f"c{n}", "out_channels": c, "kernel_size": 3, "padding": 1},
                    {"type": "BatchNorm2d", "name": f"b{n}"}, {"type": "ReLU", "name": f"r{n}", "inplace": True}]
            last = f"r{n}"
        elif block == "residual":
            out += [{"type": "Conv2d", "name": f"c{n}", "out_channels": c, "kernel_size": 1, "bias": False},
                    {"type": "Add", "name": f"a{n}", "inputs": [f"c{n}", last]}, {"type": "ReLU", "name": f"r{n}"}]
            last = f"r{n}"
        elif block == "branches":
            out += [{"type": "Conv2d", "name": f"p{n}", "out_channels": 4, "kernel_size": 1, "inputs": [last]},
                    {"type": "Conv2d", "name": f"q{n}", "out_channels": 4, "kernel_size": 3, "padding": 1,
                     "inputs": [last]},
                    {"type": "Cat", "name": f"j{n}", "dim": 1, "inputs": [f"p{n}", f"q{n}"]}]
            c, last = 8, f"j{n}"
        elif block == "pool":
            out.append({"type": "MaxPool2d", "name": f"m{n}", "kernel_size": 2, "stride": 1})
            last = f"m{n}"
        elif block == "split":  # a multi-output layer and a view: the stride trace decides storage
            out += [{"type": "Chunk", "name": f"k{n}", "chunks": 2, "dim": 1, "inputs": [last]},
                    {"type": "Cat", "name": f"u{n}", "dim": 1, "inputs": [f"k{n}.1", f"k{n}.0"]}]
            last = f"u{n}"
        else:  # unnamed layers reading the one before: default names, one layer object reused
            out += [{"type": "ReLU", "inputs": [last]}, {"type": "ReLU"}]
            last = f"relu{n + 1}"
    out += [{"type": "AdaptiveAvgPool2d", "name": "gap", "output_size": 1}, {"type": "Flatten", "name": "flat"},
            {"type": "Linear", "name": "head", "out_features": 10}]
    return {"input_shape": [3, 16, 16], "layers": out}


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
        spec = graph_spec(rng)
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
