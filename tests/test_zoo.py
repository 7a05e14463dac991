"""torchvision's classification CNNs, read by from_module, against torch and fvcore.

For each model: parameters equal ``sum(p.numel())``; MACs equal FlopCounterMode's FLOPs / 2
on a real forward pass; the output shape is torch's; every conv and linear layer's MACs equal
fvcore's count for its module; the parameters reported unused are those of the modules the
forward pass never ran (found with a hook). By default one model per family, at the
smallest input each takes; ``ALEXCOST_ZOO=all`` runs all 68, ``ALEXCOST_ZOO_SIZE=224`` at
224x224. No weights are downloaded.
"""

from __future__ import annotations

import os
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402

from zoo_cases import FAMILIES, cnn_names, family, input_size  # noqa: E402

MODELS = cnn_names() if os.environ.get("ALEXCOST_ZOO") == "all" else [rep for _, rep in FAMILIES.values()]


def _measured(model, x):
    """What torch and fvcore say about one forward pass: FLOPs, the output, fvcore by module,
    and the parameters of modules that never ran (by path, their own parameters)."""
    from fvcore.nn import FlopCountAnalysis
    from torch.nn.modules import module as torch_module
    from torch.utils.flop_counter import FlopCounterMode

    ran = set()
    handle = torch_module.register_module_forward_hook(lambda m, args, out: ran.add(id(m)))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
    finally:
        handle.remove()
    idle = {}
    for path, m in model.named_modules():
        own = sum(p.numel() for p in m.parameters(recurse=False))
        if own and id(m) not in ran:
            idle[path] = own
    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_module = analysis.by_module()
    return counter.get_total_flops(), out, by_module, idle


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_is_exact(name):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet's and Inception's notes on their weight initialisation
        model = torchvision.models.get_model(name, weights=None).eval()
    assert_exact(model, input_size(name), name)


def assert_exact(model, size: int, name: str) -> None:
    """from_module's reading of ``model`` at ``size`` x ``size`` against torch and fvcore."""
    imported = from_module(model, (3, size, size))
    x = torch.randn(1, 3, size, size)
    flops, out, by_module, idle = _measured(model, x)
    cost = imported.cost()
    assert cost.totals.params == imported.params == sum(p.numel() for p in model.parameters())
    assert 2 * cost.totals.macs == flops
    assert (1, *imported.network.output_shape) == tuple(out.shape)
    assert imported.unused == idle
    macs_by_path = {}
    for row, path in zip(cost.layers, imported.paths):
        if row.type in ("Conv2d", "Linear"):
            macs_by_path[path] = macs_by_path.get(path, 0) + row.macs
    assert macs_by_path, name
    assert macs_by_path == {path: by_module[path] for path in macs_by_path}


def test_every_cnn_has_a_family():
    names = cnn_names()
    assert len(names) == 68
    assert {family(n) for n in names} == set(FAMILIES)
    assert all(family(rep) == f for f, (_, rep) in FAMILIES.items())


def test_the_docs_table_lists_every_family_and_its_models():
    """docs/from-module.md's table: one row per family, its model count as torchvision has it."""
    import re
    from collections import Counter
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "from-module.md").read_text()
    table = text[text.index("| family | models | exact |"):].split("\n\n")[0].splitlines()[2:]
    rows = [line.split("|")[1:-1] for line in table]
    counts = Counter(family(n) for n in cnn_names())
    stated = {cells[0].strip(): (int(re.match(r" (\d+):", cells[1])[1]), cells[2].strip()) for cells in rows}
    assert stated == {f: (n, f"{n} of {n}") for f, n in counts.items()}


@pytest.mark.parametrize("name, message", [
    ("vit_b_16", r"method 'expand' in module '\(root\)' \(VisionTransformer\) \(fx node 'expand'\): alexcost has no "
                 r"layer kind for the tensor method expand\(\)"),
    ("swin_t", r"function '_get_relative_position_bias' in module 'features\.1\.0\.attn' \(ShiftedWindowAttention\)"),
])
def test_vision_transformers_are_refused_by_node(name, message):
    with torch.device("meta"):  # no memory and no initialisation: from_module does not run the model
        model = torchvision.models.get_model(name, weights=None)
    with pytest.raises(SpecError, match=message):
        from_module(model, (3, 224, 224))


# -- torchvision's other model families: read exactly, or refused at the node alexcost cannot read ----------

@pytest.mark.parametrize("build, shape, message", [
    (lambda m: m.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None), (3, 64, 64),
     r"function 'interpolate' in module 'classifier' \(LRASPPHead\).*no layer kind for torch\.nn\.functional\.interpolate"),
    (lambda m: m.video.r3d_18(weights=None), (3, 4, 32, 32),
     r"module 'stem\.0' \(Conv3d\).*no layer kind for torch\.nn\.Conv3d"),
    (lambda m: m.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None), (3, 128, 128),
     r"module '\(root\)' \(SSD\): its forward\(\) branches on a traced value"),
    (lambda m: m.optical_flow.raft_small(weights=None), (3, 64, 64),
     r"module '\(root\)' \(RAFT\): forward\(\) needs an argument 'image2'"),
], ids=["segmentation", "video", "detection", "optical flow"])
def test_other_families_are_refused_at_their_first_unreadable_node(build, shape, message):
    with torch.device("meta"):
        model = build(torchvision.models).eval()
    with pytest.raises(SpecError, match=message):
        from_module(model, shape)


def test_quantization_ready_mobilenet_v2_is_exact():
    """torchvision.models.quantization's float model (QuantStub and DeQuantStub are identities until
    converted; its residual add is a FloatFunctional), read as the classification models are."""
    torch.manual_seed(0)
    assert_exact(torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False).eval(), 64,
                 "quantization.mobilenet_v2")


def test_a_converted_quantized_model_is_refused_at_its_quantize_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notes on its quantization API
        model = torchvision.models.quantization.resnet18(weights=None, quantize=True).eval()
    with pytest.raises(SpecError, match=r"module 'quant' \(Quantize\).*no layer kind for torch\.ao\.nn\.quantized"):
        from_module(model, (3, 64, 64))
