"""What the timing tests share: a tiny network (as a Network and as a spec), given peaks, the CLI runner."""

import json

import pytest
from click.testing import CliRunner

from alexcost import Conv2d, Flatten, Linear, MaxPool2d, Network, ReLU

TINY = Network((3, 16, 16), [Conv2d(name="conv", out_channels=4, kernel_size=3, padding=1), ReLU(name="relu"),
                             MaxPool2d(name="pool", kernel_size=2), Flatten(name="flat"),
                             Linear(name="fc", out_features=10)], name="tiny")
TINY_SPEC = {"name": "tiny", "input_shape": [3, 16, 16], "layers": [
    {"type": "Conv2d", "name": "conv", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "ReLU", "name": "relu"}, {"type": "MaxPool2d", "name": "pool", "kernel_size": 2},
    {"type": "Flatten", "name": "flat"}, {"type": "Linear", "name": "fc", "out_features": 10}]}
GIVEN_PEAKS = ("--peak-tflops", "0.1", "--bandwidth-gbs", "10")


@pytest.fixture
def spec(tmp_path):
    """TINY_SPEC written to a file; its path."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_SPEC))
    return str(path)


def invoke(*args):
    """``alexcost ARGS`` through click's runner."""
    from alexcost_cli.main import cli

    return CliRunner().invoke(cli, list(args), prog_name="alexcost")
