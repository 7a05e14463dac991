"""Spec files: JSON and TOML load to the same network, dump and load back, match the schema;
repeated entries are exactly what their kind makes of them."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from alexcost import (Dropout, LAYER_KINDS, LeakyReLU, Network, PRESETS, SpecError, dumps_spec, load_spec,
                      network_from_dict, network_to_dict, preset)
from alexcost.layers import BUILTIN_KINDS
from alexcost.specs.schema import spec_schema
from alexcost.specs.specfile import arguments_key, layer_from_dict

from strategies import SPECIAL_STRINGS, layer_entries

ROOT = Path(__file__).resolve().parents[1]

DESIGN_EXAMPLE = {"name": "tiny", "input_shape": [3, 32, 32], "layers": [
    {"type": "Conv2d", "name": "conv1", "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "LocalResponseNorm", "size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2.0},
    {"type": "Flatten"},
    {"type": "Dropout", "p": 0.5},
    {"type": "Linear", "out_features": 10}]}

TOML_EXAMPLE = '''
name = "tiny"
input_shape = [3, 32, 32]

[[layers]]
type = "Conv2d"
name = "conv1"
out_channels = 16
kernel_size = 3
padding = 1

[[layers]]
type = "ReLU"

[[layers]]
type = "MaxPool2d"
kernel_size = 2

[[layers]]
type = "LocalResponseNorm"
size = 5
alpha = 0.0001
beta = 0.75
k = 2.0

[[layers]]
type = "Flatten"

[[layers]]
type = "Dropout"
p = 0.5

[[layers]]
type = "Linear"
out_features = 10
'''


def test_design_example_json_and_toml_agree(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(DESIGN_EXAMPLE))
    (tmp_path / "tiny.toml").write_text(TOML_EXAMPLE)
    a, b = load_spec(tmp_path / "tiny.json"), load_spec(tmp_path / "tiny.toml")
    assert a == b and a.names == b.names
    # 16 filters of 3*3*3 (+ bias); Linear sees 16*16*16 features after the 2x2 pool
    assert a.cost().totals.params == (3 * 3 * 3 + 1) * 16 + (16 * 16 * 16 + 1) * 10
    assert a.names == ("conv1", "relu1", "maxpool2d2", "localresponsenorm3", "flatten4", "dropout5", "linear6")


def test_format_sniffed_without_suffix(tmp_path):
    (tmp_path / "spec").write_text(TOML_EXAMPLE)
    (tmp_path / "spec2").write_text(json.dumps(DESIGN_EXAMPLE))
    assert load_spec(tmp_path / "spec") == load_spec(tmp_path / "spec2")


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_presets_round_trip(tmp_path, name, fmt):
    net = preset(name)
    path = tmp_path / f"{name}.{fmt}"
    path.write_text(dumps_spec(net, fmt))
    back = load_spec(path)
    assert back.layers == net.layers and back.input_shape == net.input_shape and back.names == net.names
    assert back.cost() == net.cost()


def test_dump_leaves_out_defaults():
    data = network_to_dict(preset("seed"))
    conv1 = data["layers"][0]
    assert conv1 == {"type": "Conv2d", "name": "conv1", "out_channels": 96, "kernel_size": 11, "stride": 4}


def test_toml_has_no_null():
    net = network_from_dict({"input_shape": [3, 8, 8], "layers": [{"type": "AdaptiveAvgPool2d",
                                                                   "output_size": [2, None]}]})
    assert json.loads(dumps_spec(net))["layers"][0]["output_size"] == [2, None]
    with pytest.raises(SpecError, match="TOML has no null"):
        dumps_spec(net, "toml")


def test_published_schema_is_generated():
    assert json.loads((ROOT / "docs" / "spec.schema.json").read_text()) == spec_schema()


@pytest.mark.slow
def test_schema_accepts_valid_and_rejects_structural_errors():
    schema = spec_schema()
    jsonschema.validate(DESIGN_EXAMPLE, schema)
    for name in PRESETS:
        jsonschema.validate(network_to_dict(preset(name)), schema)
    bad = json.loads(json.dumps(DESIGN_EXAMPLE))
    bad["layers"][0]["kernal_size"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"input_shape": [3], "layers": [{"type": "Conv3d"}]}, schema)


def test_schema_covers_every_argument_of_every_kind():
    defs = spec_schema()["$defs"]
    assert set(defs) == {name for name, kind in LAYER_KINDS.items() if kind in BUILTIN_KINDS}
    assert {"Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "LocalResponseNorm", "ReLU",
            "Tanh", "Sigmoid", "Dropout", "Flatten", "Softmax"} <= set(defs)
    for kind, schema in defs.items():
        for arg, prop in schema["properties"].items():
            assert prop, f"{kind}.{arg} has no schema"


def test_nothing_in_a_spec_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    spec = {"input_shape": [3, 8, 8], "layers": [
        {"type": "__import__('os').system('touch %s')" % marker},
    ]}
    with pytest.raises(SpecError, match="unknown layer type"):
        network_from_dict(spec)
    spec = {"input_shape": [3, 8, 8], "layers": [{"type": "ReLU", "__class__": "x"}]}
    with pytest.raises(SpecError, match="unknown argument '__class__'"):
        network_from_dict(spec)
    assert not marker.exists()


def test_in_features_given_and_checked():
    spec = {"input_shape": [3, 4, 4], "layers": [{"type": "Flatten"},
                                                 {"type": "Linear", "in_features": 48, "out_features": 2}]}
    assert network_from_dict(spec).cost().totals.params == 48 * 2 + 2


def test_network_equality_ignores_nothing_that_matters():
    a = network_from_dict(DESIGN_EXAMPLE)
    b = Network(a.input_shape, a.layers, name="tiny")
    assert a == b


def test_empty_network_and_empty_name_are_refused(tmp_path):
    """A network of no layers, or with an empty name, is a mistake: refused, in Python and in files."""
    with pytest.raises(SpecError, match="a network needs at least one layer"):
        Network((1, 2, 3), [])
    path = tmp_path / "empty.toml"
    path.write_text('name = "empty"\ninput_shape = [1, 2, 3]\nlayers = []\n')
    with pytest.raises(SpecError, match="empty.toml: a network needs at least one layer"):
        load_spec(path)
    for name in ("", "   "):
        with pytest.raises(SpecError, match="name must not be empty"):
            network_from_dict({"name": name, "input_shape": [3], "layers": [{"type": "ReLU"}]})


def test_duplicate_keys_in_json_are_refused(tmp_path):
    """json.loads keeps the last of two equal keys silently; a spec refuses them, at any depth."""
    path = tmp_path / "dup.json"
    path.write_text('{"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 4, '
                    '"kernel_size": 3, "out_channels": 8}]}')
    with pytest.raises(SpecError, match="duplicate key 'out_channels' in one object"):
        load_spec(path)
    path.write_text('{"input_shape": [3], "input_shape": [4], "layers": [{"type": "ReLU"}]}')
    with pytest.raises(SpecError, match="duplicate key 'input_shape'"):
        load_spec(path)


# == repeated entries ==============================================================================
# A spec's repeated entries: an entry whose arguments equal an earlier one's is built from that
# layer (its own name and inputs checked), and must be exactly what its kind makes of it.
#
# The expectation is always the kind's own constructor (``layer_from_dict`` without the memory of
# earlier entries), or torch; never the spec reader's output.

def outcome(make):
    """What a layer construction gives: its type, every field with its value's type, repr and hash; or its error."""
    try:
        layer = make()
    except SpecError as err:
        return ("error", str(err))
    values = tuple((f.name, type(getattr(layer, f.name)), repr(getattr(layer, f.name))) for f in fields(layer))
    try:
        hashed = hash(layer)
    except TypeError:  # an argument checked only when the layer sees its input (View's shape)
        hashed = None
    return ("layer", type(layer), values, repr(layer), hashed)


names = st.one_of(st.sampled_from(["a", "b", "conv1", "relu", "x" * 201, "a.b", "", " "] + SPECIAL_STRINGS),
                  st.text(max_size=8), st.none(), st.integers())
inputs = st.one_of(st.none(), st.lists(st.sampled_from(["input", "a", "b.0", "b.01", "", "c"]), max_size=3),
                   st.sampled_from(["input", 3, [], ["input", 1]]))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(layer_entries(), names, inputs)
def test_a_repeated_entry_is_what_its_kind_makes(entry, name, refs):
    """The second of two entries with the same arguments, named and wired its own way, is the
    layer (or the error) its kind's constructor gives for it, field by field."""
    second = entry
    if isinstance(entry, dict):
        second = {**entry, "name": name} if name is not None else {k: v for k, v in entry.items() if k != "name"}
        if refs is not None:
            second["inputs"] = refs
    made: dict = {}
    first = outcome(lambda: layer_from_dict(entry, 0, made))
    assert first == outcome(lambda: layer_from_dict(entry, 0))
    assert outcome(lambda: layer_from_dict(second, 1, made)) == outcome(lambda: layer_from_dict(second, 1))


@pytest.mark.parametrize("kind, arg, values", [
    (Dropout, "p", (0.0, -0.0, 0)),
    (LeakyReLU, "negative_slope", (0.0, -0.0, 1, 1.0, True)),
])
def test_arguments_equal_in_python_but_not_in_a_spec_stay_apart(kind, arg, values):
    """``0.0`` and ``-0.0``, ``1``, ``1.0`` and ``true``: each entry keeps the value it was given, or
    is refused as the kind refuses it."""
    made: dict = {}
    for i, value in enumerate(values):
        entry = {"type": kind.__name__, "name": f"n{i}", arg: value}
        got = outcome(lambda: layer_from_dict(entry, i, made))
        assert got == outcome(lambda: layer_from_dict(entry, i))
        if got[0] == "layer":
            kept = getattr(layer_from_dict(entry, i, made), arg)
            assert type(kept) is float and math.copysign(1, kept) == math.copysign(1, value)
    assert len({arguments_key({"type": "Dropout", "p": v}) for v in (0.0, -0.0, 0, False)}) == 4
    assert len({arguments_key({"type": "Conv2d", "padding": [1, v]}) for v in (0.0, -0.0, 0, False, 1)}) == 5
    assert arguments_key({"type": "Conv2d", "padding": [1, 1]}) != arguments_key({"type": "Conv2d", "padding": 1})
    assert arguments_key({"type": "Conv2d", "padding": [1, (1,)]}) is None  # not a spec's value: never shared


def test_a_repeated_entry_with_a_bad_name_is_refused_as_the_first_would_be():
    entry = {"type": "Conv2d", "out_channels": 8, "kernel_size": 3}
    spec = {"input_shape": [3, 8, 8], "layers": [dict(entry, name="c"), dict(entry, name="c.1")]}
    with pytest.raises(SpecError) as repeated:
        network_from_dict(spec)
    with pytest.raises(SpecError) as alone:
        network_from_dict({"input_shape": [3, 8, 8], "layers": [dict(entry, name="c.1")]})
    assert str(repeated.value) == str(alone.value).replace("layers[0]", "layers[1]")
    assert "layers[1] 'c.1' (Conv2d)" in str(repeated.value) and "may not contain '.'" in str(repeated.value)


def test_repeats_are_not_shared_beyond_their_name():
    """Entries that differ in any argument give layers that differ in it."""
    spec = {"input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "name": "a", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "Conv2d", "name": "b", "out_channels": 4, "kernel_size": 3, "padding": [1, 1]},
        {"type": "Conv2d", "name": "c", "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "Conv2d", "name": "d", "out_channels": 4, "kernel_size": 3, "padding": 1, "inputs": ["c"]}]}
    net = network_from_dict(spec)
    assert [layer.bias for layer in net.layers] == [True, True, False, True]
    assert [layer.padding for layer in net.layers] == [(1, 1)] * 4
    assert net.layers[3].inputs == ("c",) and [layer.name for layer in net.layers] == ["a", "b", "c", "d"]
    # parameters by hand, a chain of 3x3 convolutions: 3 -> 4 with a bias, then 4 -> 4 with, without, with
    assert net.cost().totals.params == (3 * 3 * 3 * 4 + 4) + (3 * 3 * 4 * 4 + 4) + 3 * 3 * 4 * 4 + (3 * 3 * 4 * 4 + 4)


@pytest.mark.slow
def test_resnet50_read_from_its_spec_counts_as_torch_does():
    """ResNet-50's spec (most of its entries repeat an earlier one's arguments), read cold, counts
    torchvision's parameters and FlopCounterMode's MACs."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost import forget_rules

    forget_rules()
    net = network_from_dict(json.loads(dumps_spec(preset("resnet50"))))
    model = torchvision.models.resnet50(weights=None).eval()
    with torch.device("meta"):
        meta = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 3, 224, 224, device="meta"))
    totals = net.cost().totals
    assert totals.params == sum(p.numel() for p in model.parameters())
    assert 2 * totals.macs == counter.get_total_flops()


def test_layers_share_rules_only_for_the_same_values_of_the_same_types():
    """The rules cache gives two built-in layers one table when their arguments but name and inputs
    are the same values of the same types: ``0.0`` and ``-0.0`` differ; the repeats of a spec share."""
    from alexcost import BatchNorm2d
    from alexcost.engine import rules

    zero, negative = LeakyReLU(negative_slope=0.0), LeakyReLU(negative_slope=-0.0)
    assert rules.of(zero).table is not rules.of(negative).table
    assert rules.of(LeakyReLU(name="x", negative_slope=0.0)).table is rules.of(zero).table
    assert rules.of(BatchNorm2d(eps=1e-5)).table is rules.of(BatchNorm2d(name="b", eps=1e-05)).table
    assert rules.of(BatchNorm2d(eps=1e-5)).table is not rules.of(BatchNorm2d(eps=2e-5)).table
    net = network_from_dict({"input_shape": [3, 4, 4], "layers": [
        {"type": "LeakyReLU", "name": "a", "negative_slope": 0.0}, {"type": "LeakyReLU", "name": "b",
                                                                   "negative_slope": -0.0},
        {"type": "LeakyReLU", "name": "c", "negative_slope": 0.0}]})
    tables = [rules.of(layer).table for layer in net.layers]
    assert tables[0] is tables[2] is not tables[1]
    assert [math.copysign(1, layer.negative_slope) for layer in net.layers] == [1, -1, 1]
