"""Every number of the seed's AlexNet table, from hand arithmetic written out here.

The seed (shared/seeds/000_238bd69275551072.txt) counts a layer's parameters as
(kernel volume + 1 bias) * filters and its "Forward Computation" as parameters times
output positions; its FC rows count no bias. Each expected value below is that
arithmetic, not a number read off alexcost.
"""

import json

import pytest
from click.testing import CliRunner

from alexcost import preset
from alexcost.render.report import render
from alexcost_cli.main import cli

# (layer, kernel, in channels, filters, output side) as the seed's rows give them.
CONVS = [
    ("conv1", 11, 3, 96, 55),
    ("conv2", 5, 96, 256, 27),
    ("conv3", 3, 256, 384, 13),
    ("conv4", 3, 384, 384, 13),
    ("conv5", 3, 384, 256, 13),
]
FCS = [("fc6", 256 * 6 * 6, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]

SEED_PARAMS = {"conv1": 34944, "conv2": 614656, "conv3": 885120, "conv4": 1327488, "conv5": 884992,
               "fc6": 37748736, "fc7": 16777216, "fc8": 4096000}
SEED_FORWARD = {"conv1": 105705600, "conv2": 448084224, "conv3": 149585280, "conv4": 224345472,
                "conv5": 149563648, "fc6": 37748736, "fc7": 16777216, "fc8": 4096000}


@pytest.fixture(scope="module")
def cost():
    return preset("seed").cost()


def test_the_arithmetic_here_is_the_seeds_arithmetic():
    """The formulas in this file reproduce the seed's printed figures (guards the test itself)."""
    for name, k, c, f, side in CONVS:
        assert (k * k * c + 1) * f == SEED_PARAMS[name]
        assert (k * k * c + 1) * f * side * side == SEED_FORWARD[name]
    for name, n_in, n_out in FCS:
        assert n_in * n_out == SEED_PARAMS[name] == SEED_FORWARD[name]
    assert sum(SEED_PARAMS.values()) == 62369152
    assert sum(SEED_FORWARD.values()) == 1135906176


@pytest.mark.parametrize("name,k,c,f,side", CONVS)
def test_conv_rows(cost, name, k, c, f, side):
    row = cost[name]
    assert row.output_shape == (f, side, side)
    assert row.params == (k * k * c + 1) * f
    assert row.weight_params == k * k * c * f and row.bias_params == f
    assert row.macs == k * k * c * f * side * side
    assert row.bias_adds == f * side * side
    assert row.forward == (k * k * c + 1) * f * side * side


@pytest.mark.parametrize("name,n_in,n_out", FCS)
def test_fc_rows_have_no_bias(cost, name, n_in, n_out):
    row = cost[name]
    assert row.input_shape == (n_in,) and row.output_shape == (n_out,)
    assert row.params == row.macs == row.forward == n_in * n_out
    assert row.bias_params == row.bias_adds == 0


@pytest.mark.parametrize("name,shape", [
    ("pool1", (96, 27, 27)), ("norm1", (96, 27, 27)), ("pool2", (256, 13, 13)),
    ("norm2", (256, 13, 13)), ("pool5", (256, 6, 6)), ("flatten", (256 * 6 * 6,)),
])
def test_size_rows(cost, name, shape):
    # 3x3/2 max-pooling: floor((n - 3)/2) + 1, e.g. 55 -> 27 -> ... as the seed's size rows
    assert cost[name].output_shape == shape


def test_pool_sizes_follow_the_window_formula(cost):
    for name, n in (("pool1", 55), ("pool2", 27), ("pool5", 13)):
        assert cost[name].output_shape[1:] == ((n - 3) // 2 + 1,) * 2


def test_totals(cost):
    t = cost.totals
    assert t.params == sum((k * k * c + 1) * f for _, k, c, f, _ in CONVS) + sum(i * o for _, i, o in FCS)
    assert t.params == 62369152
    assert t.forward == t.macs + t.bias_adds == 1135906176
    assert t.bias_adds == sum(f * s * s for _, _, _, f, s in CONVS) == 650080


def test_conv_vs_fc(cost):
    conv, fc, t = cost.split["conv"], cost.split["fc"], cost.totals
    conv_params = sum((k * k * c + 1) * f for _, k, c, f, _ in CONVS)
    fc_params = sum(i * o for _, i, o in FCS)
    assert (conv.params, fc.params) == (conv_params, fc_params)
    assert (conv.forward, fc.forward) == (sum(SEED_FORWARD[n] for n, *_ in CONVS), fc_params)
    # The seed's summary: 3.7 million (6%) vs 58.6 million (94%); 1.08 billion (95%) vs 58.6 million (5%).
    assert round(conv.params / 1e6, 1) == 3.7 and round(100 * conv.params / t.params) == 6
    assert round(fc.params / 1e6, 1) == 58.6 and round(100 * fc.params / t.params) == 94
    assert round(conv.forward / 1e9, 2) == 1.08 and round(100 * conv.forward / t.forward) == 95
    assert round(fc.forward / 1e6, 1) == 58.6 and round(100 * fc.forward / t.forward) == 5


def test_table_prints_every_seed_figure(cost):
    text = render(cost, "table")
    for name, k, c, f, side in CONVS:
        assert f"({k}*{k}*{c} + 1)*{f} = {(k * k * c + 1) * f:,}" in text
        assert f"({k}*{k}*{c} + 1)*{f}*{side}*{side} = {(k * k * c + 1) * f * side * side:,}" in text
    assert f"256*6*6*4096 = {256 * 6 * 6 * 4096:,}" in text
    assert f"4096*4096 = {4096 * 4096:,}" in text and f"4096*1000 = {4096 * 1000:,}" in text
    assert "62,369,152" in text and "1,135,906,176" in text
    assert "Conv: 3.7 million (6%), FC: 58.6 million (94%)" in text
    assert "Conv: 1.08 billion (95%), FC: 58.6 million (5%)" in text
    for size in ("3 * 227 * 227", "96 * 55 * 55", "96 * 27 * 27", "256 * 27 * 27", "256 * 13 * 13",
                 "384 * 13 * 13", "256 * 6 * 6", "4096", "1000"):
        assert f"\n{size}\n" in text


def test_fc8_has_no_relu(cost):
    names = [r.name for r in cost.layers]
    assert names[-1] == "fc8" and cost.layers[-1].type == "Linear"
    assert "fc8 + ReLU" not in render(cost, "table")


def test_json_contract_totals():
    """DESIGN.md section 5 through the CLI: params and macs + bias_adds are the seed's totals."""
    result = CliRunner().invoke(cli, ["report", "--model", "seed", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["model"] == "seed" and data["input_shape"] == [3, 227, 227] and data["batch"] == 1
    assert data["totals"]["params"] == 62369152
    assert data["totals"]["macs"] == 1135906176 - 650080 and data["totals"]["bias_adds"] == 650080
    conv1 = data["layers"][0]
    assert conv1["name"] == "conv1" and conv1["type"] == "Conv2d"
    assert conv1["input_shape"] == [3, 227, 227] and conv1["output_shape"] == [96, 55, 55]
    assert conv1["params"] == (11 * 11 * 3 + 1) * 96 and conv1["macs"] == 11 * 11 * 3 * 96 * 55 * 55
    assert conv1["bias_adds"] == 96 * 55 * 55
