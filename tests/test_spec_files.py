"""Spec files: JSON and TOML load to the same network, dump and load back, match the schema."""

import json
from pathlib import Path

import jsonschema
import pytest

from alexcost import (LAYER_KINDS, PRESETS, Network, SpecError, dumps_spec, load_spec, network_from_dict,
                      network_to_dict, preset)
from alexcost.layers import BUILTIN_KINDS
from alexcost.specs.schema import spec_schema

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
