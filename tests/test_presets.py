"""The presets: the paper and torchvision presets against torch modules written out here, layer
for layer, and every number of the seed's AlexNet table from hand arithmetic.

Shapes come from a real forward pass, parameters from ``numel``, MACs from fvcore's
per-module count: none of them from alexcost.
"""

import json
import warnings
from collections import OrderedDict

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

nn = torch.nn

from alexcost import preset  # noqa: E402
from alexcost.render.report import render  # noqa: E402
from alexcost_cli.main import cli  # noqa: E402


def lrn():
    return nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)  # the paper's alpha, times n


def paper_module():
    """Krizhevsky et al. 2012, two-GPU groups as in the paper's figure 2."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU()), ("norm1", lrn()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2)), ("relu2", nn.ReLU()), ("norm2", lrn()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)), ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(9216, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, 1000)), ("prob", nn.Softmax(dim=1)),
    ]))


def torchvision_module():
    """torchvision.models.alexnet (torchvision/models/alexnet.py), flattened into one Sequential."""
    features = [nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)]
    classifier = [nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
                  nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000)]
    children = [(f"features_{i}", m) for i, m in enumerate(features)]
    children += [("avgpool", nn.AdaptiveAvgPool2d((6, 6))), ("flatten", nn.Flatten())]
    children += [(f"classifier_{i}", m) for i, m in enumerate(classifier)]
    return nn.Sequential(OrderedDict(children))


def observed(module, input_shape):
    """Per child: (name, output shape per sample, params) from a real forward pass."""
    module.eval()
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n, m in module.named_children()]
    with torch.no_grad():
        module(torch.randn(2, *input_shape))
    for h in hooks:
        h.remove()
    return [(n, shapes[n], sum(p.numel() for p in m.parameters())) for n, m in module.named_children()]


def fvcore_macs(module, input_shape):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(module.eval(), torch.randn(1, *input_shape))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.by_module(), analysis.by_module_and_operator()


@pytest.mark.slow
@pytest.mark.parametrize("name,build", [("paper", paper_module), ("torchvision", torchvision_module)])
def test_preset_matches_torch_layer_for_layer(name, build):
    network = preset(name)
    module = build()
    cost = network.cost()
    truth = observed(module, network.input_shape)
    assert [r.name for r in cost.layers] == [n for n, _, _ in truth]
    for row, (n, shape, params) in zip(cost.layers, truth):
        assert row.output_shape == shape, n
        assert row.params == params, n
    by_module, by_op = fvcore_macs(module, network.input_shape)
    for row in cost.layers:
        if row.type in ("Conv2d", "Linear"):
            assert row.macs == by_module[row.name], row.name
    conv_linear = sum(c.get("conv", 0) + c.get("linear", 0) for n, c in by_op.items() if n)
    assert cost.totals.macs == conv_linear


def test_seed_matches_torch_with_bias_free_fc():
    network = preset("seed")
    module = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 11, stride=4)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3, 2)),
        ("norm1", lrn()), ("conv2", nn.Conv2d(96, 256, 5, padding=2)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)), ("norm2", lrn()),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)), ("flatten", nn.Flatten()), ("drop6", nn.Dropout(0.5)),
        ("fc6", nn.Linear(9216, 4096, bias=False)), ("relu6", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096, bias=False)), ("relu7", nn.ReLU()),
        ("fc8", nn.Linear(4096, 1000, bias=False)),
    ]))
    cost = network.cost()
    assert [(r.name, r.output_shape, r.params) for r in cost.layers] == observed(module, network.input_shape)
    by_module, _ = fvcore_macs(module, network.input_shape)
    assert cost.totals.macs == by_module[""]


def test_paper_params_total_by_hand():
    """60,965,224: conv2/4/5 see half the channels per group; every layer has a bias."""
    convs = (11 * 11 * 3 + 1) * 96 + (5 * 5 * 48 + 1) * 256 + (3 * 3 * 256 + 1) * 384 \
        + (3 * 3 * 192 + 1) * 384 + (3 * 3 * 192 + 1) * 256
    fcs = (9216 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert preset("paper").cost().totals.params == convs + fcs


# == the seed's table ==============================================================================
# Every number of the seed's AlexNet table, from hand arithmetic written out here.
#
# The seed (shared/seeds/000_238bd69275551072.txt) counts a layer's parameters as
# (kernel volume + 1 bias) * filters and its "Forward Computation" as parameters times
# output positions; its FC rows count no bias. Each expected value below is that
# arithmetic, not a number read off alexcost.
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
