"""The paper and torchvision presets against torch modules written out here, layer for layer.

Shapes come from a real forward pass, parameters from ``numel``, MACs from fvcore's
per-module count: none of them from alexcost.
"""

import warnings
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import preset  # noqa: E402


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
