"""AlexNet's successors as presets, against torchvision's own modules (and ZFNet against its paper).

Every expected value comes from torch: parameters from ``numel``, MACs from
``FlopCounterMode`` on a real forward pass at 224x224 and batch 1 (divided by 2), shapes and
call order from forward hooks on torchvision's modules, and the wiring from running the
preset as torch modules with torchvision's weights and comparing the outputs. ZFNet, which
torchvision lacks, is checked against the paper's map sizes and hand arithmetic.
"""

from __future__ import annotations

import re
import warnings
import pytest

from alexcost import PRESETS, preset
from alexcost.layers import INPUT

SUCCESSORS = ("vgg16", "googlenet", "resnet18", "resnet50", "mobilenet_v2")
"""The presets torchvision defines, under torchvision's own model names."""

FUNCTIONAL = {
    "vgg16": {"flatten": "Flatten"},
    "resnet18": {"flatten": "Flatten", "_add": "Add"},
    "resnet50": {"flatten": "Flatten", "_add": "Add"},
    "googlenet": {"flatten": "Flatten", "_relu": "ReLU", "_cat": "Cat"},
    "mobilenet_v2": {"flatten": "Flatten", "_add": "Add", "adaptive_avg_pool2d": "AdaptiveAvgPool2d"},
}
"""Layers that stand for a function call in torchvision's forward (not a module), by name ending."""


def test_every_successor_is_listed():
    assert set(SUCCESSORS) | {"zfnet"} <= set(PRESETS)
    assert list(PRESETS)[:3] == ["seed", "paper", "torchvision"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_built_once(name):
    assert preset(name) is preset(name)
    fresh = PRESETS[name].build()
    assert fresh is not preset(name) and fresh == preset(name)


def test_unknown_preset_is_one_clear_error():
    from alexcost import SpecError

    with pytest.raises(SpecError, match="unknown model 'resnet51'; choose from seed, paper, torchvision, zfnet"):
        preset("resnet51")


def test_families_load_only_when_asked():
    import subprocess
    import sys

    code = ("import sys; from alexcost import preset; preset('seed'); "
            "print(sorted(m for m in sys.modules if m.startswith('alexcost.models.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "['alexcost.models.alexnet']\n"


@pytest.mark.parametrize("name", list(PRESETS))
def test_inputs_are_named_only_where_a_layer_does_not_read_the_one_before(name):
    net = preset(name)
    for i, layer in enumerate(net.layers):
        previous = INPUT if i == 0 else net.names[i - 1]
        assert (layer.inputs is None) == (net.inputs_of(i) == (previous,)), net.names[i]


# -- against torchvision -------------------------------------------------------------------------------

def tv_model(name):
    """torchvision's model, untrained, in eval mode (GoogLeNet without auxiliary heads)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    extra = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, **extra).eval()


def leaves(model) -> dict:
    return {path: m for path, m in model.named_modules() if path and not next(m.children(), None)}


def module_calls(model, x):
    """Every call of every module, in order: (path, input shapes, output shape), per sample."""
    import torch

    calls = []
    hooks = [m.register_forward_hook(
        lambda m, i, o, p=path: calls.append((p, tuple(tuple(t.shape[1:]) for t in i), tuple(o.shape[1:]))))
        for path, m in model.named_modules() if path]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return calls, out


@pytest.fixture(scope="module")
def reference():
    """Per successor: torchvision's model, its calls and output on one input, params and MACs."""
    cache = {}

    def get(name):
        if name not in cache:
            model = tv_model(name)
            import torch
            from torch.utils.flop_counter import FlopCounterMode

            x = torch.randn(1, 3, 224, 224)
            calls, out = module_calls(model, x)
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(x)
            cache[name] = {"model": model, "x": x, "calls": calls, "out": out,
                           "params": sum(p.numel() for p in model.parameters()),
                           "flops": counter.get_total_flops(), "by_module": counter.get_flop_counts()}
        return cache[name]
    return get


def module_of(name: str, paths: dict) -> tuple[str, int] | None:
    """The torchvision module path a layer stands for, and which call of it (0: the first)."""
    if name in paths:
        return paths[name], 0
    base, _, k = name.rpartition("_")
    if k.isdigit() and base in paths and int(k) >= 2:
        return paths[base], int(k) - 1
    return None


@pytest.mark.parametrize("name", SUCCESSORS)
def test_parameters_and_macs_equal_torchvisions(name, reference):
    ref = reference(name)
    totals = preset(name).cost().totals
    assert totals.params == ref["params"]
    assert 2 * totals.macs == ref["flops"]


@pytest.mark.parametrize("name", SUCCESSORS)
def test_layer_for_layer_against_torchvisions_modules(name, reference):
    """Same leaf-module calls in the same order, same kinds and arguments, same shapes in and out;
    every other layer is one of the function calls torchvision's forward makes."""
    ref = reference(name)
    net = preset(name)
    paths = {p.replace(".", "_"): p for p in leaves(ref["model"])}
    leaf_calls = [c for c in ref["calls"] if c[0] in paths.values()]
    modules = dict(ref["model"].named_modules())
    ours, functional = [], []
    for i, (layer_name, layer) in enumerate(zip(net.names, net.layers)):
        found = module_of(layer_name, paths)
        if found is None:
            functional.append(i)
            continue
        path, k = found
        ours.append((path, k, i))
    seen: dict[str, int] = {}
    order = []
    for path, _, _ in leaf_calls:
        order.append((path, seen.get(path, 0)))
        seen[path] = seen.get(path, 0) + 1
    assert [(p, k) for p, k, _ in ours] == order
    for (path, _, i), (_, ins, out) in zip(ours, leaf_calls):
        layer, x = net.layers[i], net.input_shapes[i]
        assert type(layer).__name__ == type(modules[path]).__name__, path
        assert (x,) == ins and net.output_shapes[i] == out, path
        square = lambda text: re.sub(r"\((\d+), \1\)", r"\1", text)  # noqa: E731  MaxPool2d keeps ints
        assert square(repr(layer.torch_module(x))) == square(repr(modules[path])), path
    for i in functional:
        layer_name, kind = net.names[i], type(net.layers[i]).__name__
        assert [k for end, k in FUNCTIONAL[name].items() if layer_name.endswith(end)] == [kind], layer_name
    assert net.output_shape == tuple(ref["out"].shape[1:])


def test_functional_calls_have_their_blocks_shapes(reference):
    """A function call inside a block (GoogLeNet's F.relu and torch.cat, the residual adds) has the
    shape of that block's output."""
    for name in ("resnet50", "googlenet", "mobilenet_v2"):
        ref = reference(name)
        net = preset(name)
        outputs = {path.replace(".", "_"): out for path, _, out in ref["calls"]}
        paths = {p.replace(".", "_"): p for p in leaves(ref["model"])}
        checked = 0
        for layer_name, y in zip(net.names, net.output_shapes):
            block = layer_name.rpartition("_")[0]
            if module_of(layer_name, paths) is None and block in outputs:
                assert y == outputs[block], layer_name
                checked += 1
        assert checked >= 10, name


@pytest.mark.parametrize("name", SUCCESSORS)
def test_wired_as_torchvision_runs_it(name, reference):
    """The preset run as torch modules with torchvision's weights gives torchvision's output:
    every branch reads what torchvision's forward feeds it."""
    ref = reference(name)
    import torch

    from alexcost.torch_bridge import to_module

    ours = to_module(preset(name)).eval()
    mine = dict(ours.named_children())
    state = {}
    for path, module in leaves(ref["model"]).items():
        for key, value in module.state_dict().items():
            state[f"{path.replace('.', '_')}.{key}"] = value
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state)
    assert set(mine) >= {p.replace(".", "_") for p in leaves(ref["model"])}
    with torch.no_grad():
        out = ours(ref["x"])
    assert torch.allclose(out, ref["out"], rtol=1e-4, atol=1e-4)


# -- ZFNet, from the paper -------------------------------------------------------------------------------

def out_size(n, k, s, p=0, ceil=False):
    """The output size of a convolution or pool, torch's formula."""
    top = n + 2 * p - k
    return (-(-top // s) if ceil else top // s) + 1


ZF_SIZES = {"conv1": 110, "pool1": 55, "conv2": 26, "pool2": 13, "conv3": 13, "conv4": 13, "conv5": 13, "pool5": 6}
"""Figure 3 of Zeiler & Fergus (2013): the map sizes of the layers."""
ZF_CONVS = (("conv1", 3, 96, 7), ("conv2", 96, 256, 5), ("conv3", 256, 384, 3), ("conv4", 384, 384, 3),
            ("conv5", 384, 256, 3))
ZF_FCS = (("fc6", 256 * 6 * 6, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000))
ZF_PARAMS = sum((k * k * cin + 1) * cout for _, cin, cout, k in ZF_CONVS) + sum((i + 1) * o for _, i, o in ZF_FCS)
ZF_MACS = sum(k * k * cin * cout * ZF_SIZES[n] ** 2 for n, cin, cout, k in ZF_CONVS) + sum(i * o for _, i, o in ZF_FCS)


def test_zfnet_paddings_give_the_papers_map_sizes():
    assert out_size(224, 7, 2, 1) == 110 and out_size(224, 7, 2) == 109     # conv1 needs 1 pixel of padding
    assert out_size(110, 3, 2, ceil=True) == 55 and out_size(110, 3, 2) == 54
    assert out_size(55, 5, 2) == 26
    assert out_size(26, 3, 2, ceil=True) == 13 and out_size(26, 3, 2) == 12
    assert out_size(13, 3, 1, 1) == 13 and out_size(13, 3, 2, ceil=True) == 6
    net = preset("zfnet")
    sizes = {n: y[-1] for n, y in zip(net.names, net.output_shapes) if n in ZF_SIZES}
    assert sizes == ZF_SIZES
    assert net.input_shape == (3, 224, 224)


def test_zfnet_counts_by_hand():
    totals = preset("zfnet").cost().totals
    assert (totals.params, totals.macs) == (ZF_PARAMS, ZF_MACS)


def test_zfnet_against_torch_written_from_the_paper():
    torch = pytest.importorskip("torch")
    from collections import OrderedDict

    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # noqa: E731
    module = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 96, 7, stride=2, padding=1)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)), ("norm1", lrn()),
        ("conv2", nn.Conv2d(96, 256, 5, stride=2)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)), ("norm2", lrn()),
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2, ceil_mode=True)), ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(9216, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout(0.5)),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(0.5)),
        ("fc8", nn.Linear(4096, 1000)), ("prob", nn.Softmax(dim=1))])).eval()
    calls, _ = module_calls(module, torch.randn(1, 3, 224, 224))
    net = preset("zfnet")
    assert [(n, y) for n, _, y in calls] == list(zip(net.names, net.output_shapes))
    assert sum(p.numel() for p in module.parameters()) == ZF_PARAMS
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(1, 3, 224, 224))
    assert counter.get_total_flops() == 2 * ZF_MACS


# -- the listing -------------------------------------------------------------------------------------------

def test_models_lists_every_preset_on_one_line():
    from click.testing import CliRunner

    from alexcost_cli.main import cli

    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in PRESETS:
        assert sum(line.split()[0] == name for line in lines if line.strip()) == 1, name
    assert len([line for line in lines if line.strip()]) == len(PRESETS) + 2   # header and rule


@pytest.mark.parametrize("name", SUCCESSORS)
def test_parameters_equal_torchvisions_published_count(name):
    """torchvision's weights record their parameter count (meta["num_params"]): the same network."""
    torchvision = pytest.importorskip("torchvision")
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    assert preset(name).cost().totals.params == weights.meta["num_params"]
