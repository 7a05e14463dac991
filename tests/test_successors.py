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
from decimal import Decimal
from pathlib import Path
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


@pytest.mark.slow
@pytest.mark.parametrize("name", SUCCESSORS)
def test_parameters_and_macs_equal_torchvisions(name, reference):
    ref = reference(name)
    totals = preset(name).cost().totals
    assert totals.params == ref["params"]
    assert 2 * totals.macs == ref["flops"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUCCESSORS)
def test_layer_for_layer_against_torchvisions_modules(name, reference):
    """Same leaf-module calls in the same order, same kinds and arguments, same shapes in and out;
    every other layer is one of the function calls torchvision's forward makes."""
    from alexcost.torch_bridge.modules import torch_module

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
        assert square(repr(torch_module(layer, x))) == square(repr(modules[path])), path
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


@pytest.mark.slow
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
    assert out_size(110, 3, 2, 1) == 55 and out_size(26, 3, 2, 1) == 13     # padding pool1 and pool2 would do too
    net = preset("zfnet")
    sizes = {n: y[-1] for n, y in zip(net.names, net.output_shapes) if n in ZF_SIZES}
    assert sizes == ZF_SIZES
    assert net.input_shape == (3, 224, 224)


def test_zfnet_counts_by_hand():
    totals = preset("zfnet").cost().totals
    assert (totals.params, totals.macs) == (ZF_PARAMS, ZF_MACS)


@pytest.mark.slow
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


# -- docs/successors.md: every number on the page, computed here by torch or by hand ----------------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "successors.md"


def pct(part, whole, digits=1) -> str:
    return f"{100 * part / whole:.{digits}f}%"


def times(a, b) -> str:
    return f"{a / b:.2f} times"


def group_sums(model, flops_by_module, prefix: str = ""):
    """Parameters by module kind, and MACs by torch op (convolution, addmm), of the modules under
    ``prefix``: what torch itself counts."""
    params = {}
    for path, m in model.named_modules():
        if path.startswith(prefix) and not next(m.children(), None):
            params[type(m).__name__] = params.get(type(m).__name__, 0) + sum(p.numel() for p in m.parameters())
    return params


def macs_of(ref, path: str = "") -> int:
    """MACs FlopCounterMode counted inside the module at ``path`` ("" for the whole model), halved."""
    key = type(ref["model"]).__name__ + (f".{path}" if path else "")
    return sum(ref["by_module"][key].values()) // 2


def conv_macs(ref) -> int:
    return sum(v for op, v in ref["by_module"]["Global"].items() if "convolution" in str(op)) // 2


def numel(modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.fixture(scope="module")
def doc_facts(reference):
    """label -> the text docs/successors.md must show, each from torch or hand arithmetic."""
    from alexnet_facts import FC_BIASES, FC_WEIGHTS, PAPER_MACS, PAPER_PARAMS, TV_MACS, TV_PARAMS

    nn = pytest.importorskip("torch").nn
    facts = {"alexnet params": f"{TV_PARAMS:,}", "alexnet macs": f"{TV_MACS:,}",
             "alexnet fc": pct(FC_WEIGHTS + FC_BIASES, TV_PARAMS), "alexnet conv": pct(TV_MACS - FC_WEIGHTS, TV_MACS),
             "paper params": f"{PAPER_PARAMS:,}"}
    # ZFNet, by hand (see ZF_CONVS above); AlexNet's conv1 and the paper's grouped conv2 beside it.
    zf_conv1, zf_conv2 = 96 * 7 * 7 * 3 * 110 * 110, 256 * 5 * 5 * 96 * 26 * 26
    zf_fc = sum((i + 1) * o for _, i, o in ZF_FCS)
    facts |= {"zf params": f"{ZF_PARAMS:,}", "zf macs": f"{ZF_MACS:,}", "zf vs params": times(ZF_PARAMS, PAPER_PARAMS),
              "zf vs macs": times(ZF_MACS, PAPER_MACS), "zf fc": pct(zf_fc, ZF_PARAMS),
              "zf conv": pct(ZF_MACS - sum(i * o for _, i, o in ZF_FCS), ZF_MACS),
              "zf conv1": f"{zf_conv1:,}", "alexnet conv1": f"{96 * 11 * 11 * 3 * 55 * 55:,}",
              "zf conv2": f"{zf_conv2:,}", "zf conv2 share": pct(zf_conv2, ZF_MACS),
              "paper conv2": f"{256 * 5 * 5 * 48 * 27 * 27:,}",
              "unpadded sizes": (out_size(224, 7, 2), out_size(110, 3, 2), out_size(26, 3, 2), out_size(13, 3, 1),
                                 out_size(11, 3, 1), out_size(9, 3, 1))}
    for name, label in (("vgg16", "vgg"), ("googlenet", "googlenet"), ("resnet18", "r18"), ("resnet50", "r50"),
                        ("mobilenet_v2", "mobile")):
        ref = reference(name)
        params, macs = ref["params"], ref["flops"] // 2
        fc = numel(m for m in ref["model"].modules() if isinstance(m, nn.Linear))
        facts |= {f"{label} params": f"{params:,}", f"{label} macs": f"{macs:,}",
                  f"{label} vs params": times(params, TV_PARAMS), f"{label} vs macs": times(macs, TV_MACS),
                  f"{label} fc": pct(fc, params), f"{label} conv": pct(conv_macs(ref), macs, 2 if "r" in label[:1]
                                                                      else 1)}
        ref["facts"] = (params, macs, fc)
    vgg = reference("vgg16")
    first_fc = vgg["model"].classifier[0]
    each = {path: macs_of(vgg, path) for path, m in vgg["model"].named_modules() if isinstance(m, nn.Conv2d)}
    even = sorted(int(p.split(".")[1]) for p, v in each.items() if v == 3 * 3 * 64 * 64 * 224 * 224)
    facts |= {"vgg fc6": f"{numel([first_fc]):,}", "vgg fc6 share": pct(numel([first_fc]), vgg["params"]),
              "vgg fc6 inputs": f"{first_fc.in_features:,}", "vgg even": even,
              "vgg even macs": f"{3 * 3 * 64 * 64 * 224 * 224:,}",
              "vgg even share": pct(3 * 3 * 64 * 64 * 224 * 224, vgg["flops"] // 2)}
    g = reference("googlenet")
    g_model, (g_params, g_macs, g_fc) = g["model"], g["facts"]
    inception = [m for n, m in g_model.named_children() if n.startswith("inception")]
    facts |= {"googlenet fc params": f"{g_fc:,}", "googlenet ninth": f"{g_params / TV_PARAMS:.2f}",
              "googlenet bn": f"{numel(m for m in g_model.modules() if isinstance(m, nn.BatchNorm2d)):,}",
              "googlenet inception params": pct(numel(inception), g_params),
              "googlenet inception macs": pct(sum(macs_of(g, n) for n, _ in g_model.named_children()
                                                  if n.startswith("inception")), g_macs),
              "googlenet conv3": f"{macs_of(g, 'conv3.conv'):,}", "googlenet conv3 share": pct(macs_of(g, 'conv3.conv'),
                                                                                                g_macs)}
    for name, label in (("resnet18", "r18"), ("resnet50", "r50")):
        r = reference(name)
        params, macs, fc = r["facts"]
        facts |= {f"{label} fc params": f"{fc:,}", f"{label} fc share": pct(fc, params),
                  f"{label} layer4 params": pct(numel([r["model"].layer4]), params),
                  f"{label} layer4 macs": pct(macs_of(r, "layer4"), macs)}
    r50 = reference("resnet50")
    ones = [p for p, m in r50["model"].named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    facts |= {"r50 1x1": pct(sum(macs_of(r50, p) for p in ones), r50["facts"][1]),
              "r50 bn": f"{numel(m for m in r50['model'].modules() if isinstance(m, nn.BatchNorm2d)):,}"}
    mb = reference("mobilenet_v2")
    m_params, m_macs, m_fc = mb["facts"]
    convs = {p: m for p, m in mb["model"].named_modules() if isinstance(m, nn.Conv2d)}
    depthwise = [p for p, m in convs.items() if m.groups > 1]
    pointwise = [p for p, m in convs.items() if m.kernel_size == (1, 1)]
    facts |= {"mobile share params": pct(m_params, TV_PARAMS), "mobile share macs": pct(m_macs, TV_MACS),
              "mobile fc params": f"{m_fc:,}", "mobile dw params": f"{numel(convs[p] for p in depthwise):,}",
              "mobile dw macs": f"{sum(macs_of(mb, p) for p in depthwise):,}",
              "mobile dw share": pct(sum(macs_of(mb, p) for p in depthwise), m_macs),
              "mobile 1x1 share": pct(sum(macs_of(mb, p) for p in pointwise), m_macs)}
    return facts


def test_the_page_shows_every_fact(doc_facts):
    text = DOC.read_text()
    missing = [label for label, shown in doc_facts.items() if isinstance(shown, str) and shown not in text]
    assert missing == []
    assert doc_facts["vgg even"] == [2, 7, 12, 14, 19, 21]
    assert "`features_2`, `_7`, `_12`, `_14`, `_19` and `_21`" in text
    assert doc_facts["unpadded sizes"] == (109, 54, 12, 11, 9, 7)
    assert "| 109 |" in text and "| 54 |" in text and "| 12 |" in text and "| 11, 9, 7 |" in text
    assert "a ninth of AlexNet's parameters" in text and doc_facts["googlenet ninth"] == "0.11"


def test_every_number_on_the_page_is_known(doc_facts):
    """Each number in the prose (examples that run are checked by tests/test_docs.py) is a fact
    above, a number of the networks themselves (an argument or a shape), or quoted."""
    from alexnet_facts import architecture_numbers, numbers

    from alexcost.render.plot import MAX_ROWS
    from alexcost.render.report import INPUTS_WIDTH

    known = architecture_numbers() | {Decimal(v) for v in range(17)}
    for shown in doc_facts.values():
        for v in (shown if isinstance(shown, (list, tuple)) else re.findall(r"[\d,]*\d(?:\.\d+)?", shown)):
            known.add(Decimal(str(v).replace(",", "")))
    # years, torchvision's issue, the paper's LRN alpha, the row limit of plots, the width of a report's
    # Input cell, "ResNet-18" and "ResNet-50"
    quoted = {"2012", "2013", "906", "0.0001", str(MAX_ROWS), str(INPUTS_WIDTH), "18", "50"}
    known |= {Decimal(q) for q in quoted}
    unknown = [text for text, value, _ in numbers(DOC) if value not in known]
    assert unknown == []


# -- the report of a graph --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet50", "googlenet", "mobilenet_v2"])
def test_graph_table_parameters_column_adds_up_to_torchvisions_count(name):
    """Every row that has parameters shows them (BatchNorm2d: its count), so the column sums to the
    total torchvision publishes for the network."""
    torchvision = pytest.importorskip("torchvision")
    from alexcost.render.report import seed_rows

    rows = seed_rows(preset(name).cost())
    cells = [row[6] for row in rows[:-2] if row[6]]
    total = sum(int(cell.rpartition("= ")[2].replace(",", "")) for cell in cells)
    assert total == torchvision.models.get_model_weights(name).IMAGENET1K_V1.meta["num_params"]
    label, channels = {"resnet50": ("layer1_0_bn1", 64), "googlenet": ("conv1_bn", 64),
                       "mobilenet_v2": ("features_0_1", 32)}[name]
    bn = next(row for row in rows if row[0] == f"{label}: BatchNorm")
    assert bn[6] == f"{2 * channels}"   # a scale and a shift per channel


def test_graph_table_lists_a_merges_inputs_one_per_line():
    """GoogLeNet's inception3a ends in torch.cat of its four branches (torchvision's Inception.forward):
    too long for one line; ResNet-50's first block adds bn3 and the shortcut's batch norm: one line."""
    from alexcost.render.report import render, seed_rows

    rows = seed_rows(preset("googlenet").cost())
    at = next(i for i, row in enumerate(rows) if row[0] == "inception3a_cat: Cat")
    assert [row[1] for row in rows[at:at + 4]] == ["inception3a_branch1_relu,", "inception3a_branch2_1_relu,",
                                                    "inception3a_branch3_1_relu,", "inception3a_branch4_1_relu"]
    assert all(row[0] == "" and set(row[2:]) == {""} for row in rows[at + 1:at + 4])
    assert rows[at + 4][0] == "256 * 28 * 28"             # 64 + 128 + 32 + 32 channels
    assert all(", " not in row[1] for row in rows)
    text = render(preset("resnet50").cost())
    assert "layer1_0_add: Add                  layer1_0_bn3, layer1_0_downsample_1\n" in text   # fits in 40
    detail = render(preset("googlenet").cost(), "detail").splitlines()
    at = next(i for i, line in enumerate(detail) if " inception3a_cat " in line)
    assert detail[at + 3].strip() == "inception3a_branch4_1_relu"


@pytest.mark.parametrize("name", SUCCESSORS)
def test_from_module_reads_torchvisions_model_as_the_preset(name, reference):
    """torch.fx's reading of torchvision's own model names and wires every layer as the preset does,
    with the same counts and the same memory (ResNet's ``out += identity`` in place in both); and it
    writes out as a spec that loads back to the same counts."""
    import json

    from alexcost import dumps_spec, network_from_dict
    from alexcost.torch_bridge import from_module

    ref = reference(name)
    imported = from_module(ref["model"], (3, 224, 224), name=name)
    net = preset(name)
    assert imported.network.names == net.names and imported.network.sources == net.sources
    counted = ("type", "params", "macs", "bias_adds", "other_ops", "output_shape")
    ours = [tuple(getattr(r, c) for c in counted) for r in net.cost().layers]
    assert [tuple(getattr(r, c) for c in counted) for r in imported.cost().layers] == ours
    assert imported.cost().totals.stored_bytes == net.cost().totals.stored_bytes
    assert [r.layer.inplace for r in imported.cost().layers if r.type == "Add"] == \
        [r.layer.inplace for r in net.cost().layers if r.type == "Add"]
    back = network_from_dict(json.loads(dumps_spec(imported)))
    assert (back.cost().totals.params, back.cost().totals.macs) == (ref["params"], ref["flops"] // 2)
