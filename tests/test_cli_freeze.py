"""``train --freeze`` takes names, prefixes and patterns, as torch users name parts of a model: matched
against layer names and, for a torch module, its module paths; ``NAME.weight`` / ``NAME.bias`` freeze
one parameter. Expected counts come from torch's own modules."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli

torchvision = pytest.importorskip("torchvision")


def train(*args) -> dict:
    result = CliRunner().invoke(cli, ["train", "--batch", "2", "--format", "json", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


RESNET18 = torchvision.models.resnet18()


@pytest.mark.parametrize("source", [("--model", "resnet18"), ("--torchvision", "resnet18")])
def test_a_prefix_freezes_every_layer_under_it(source):
    data = train(*source, "--freeze", "layer1")
    assert data["totals"]["trainable_params"] == numel(RESNET18) - numel(RESNET18.layer1)
    assert data["frozen"] and all(name.startswith("layer1_") for name in data["frozen"])


def test_a_pattern_and_a_list():
    data = train("--model", "resnet18", "--freeze", "layer[12]*,conv1")
    frozen = numel(RESNET18.layer1) + numel(RESNET18.layer2) + numel(RESNET18.conv1)
    assert data["totals"]["trainable_params"] == numel(RESNET18) - frozen


def test_module_paths_of_a_torch_module():
    data = train("--torchvision", "resnet18", "--freeze", "layer2.0")  # one block, not layer2.1
    assert data["totals"]["trainable_params"] == numel(RESNET18) - numel(RESNET18.layer2[0])
    alexnet = torchvision.models.alexnet()
    data = train("--torchvision", "alexnet", "--freeze", "features.*")
    assert data["totals"]["trainable_params"] == numel(alexnet) - numel(alexnet.features)


def test_one_parameter_of_the_layers_matched():
    data = train("--torchvision", "resnet18", "--freeze", "fc.bias")
    assert data["frozen"] == ["fc.bias"] and data["totals"]["trainable_params"] == numel(RESNET18) - 1000
    data = train("--model", "resnet18", "--freeze", "layer1*.bias")
    biases = sum(m.bias.numel() for m in RESNET18.layer1.modules() if getattr(m, "bias", None) is not None)
    assert data["totals"]["trainable_params"] == numel(RESNET18) - biases


@pytest.mark.parametrize("pattern, fragments", [
    ("layer9", ["frozen names 'layer9', which matches no layer of 'resnet18'", "layer names such as 'conv1'"]),
    ("relu", ["matches only layers without parameters"]),
    ("conv1.scale", ["a layer's parameters are 'weight' and 'bias'"]),
])
def test_a_pattern_that_freezes_nothing_is_one_line(pattern, fragments):
    result = CliRunner().invoke(cli, ["train", "--model", "resnet18", "--freeze", pattern])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_module_path_is_offered_for_a_torch_module():
    result = CliRunner().invoke(cli, ["train", "--torchvision", "resnet18", "--freeze", "layer9"])
    assert result.exit_code == 2 and "module paths such as 'conv1'" in result.stderr
