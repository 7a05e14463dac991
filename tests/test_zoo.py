"""torchvision's models, read by from_module, against torch and fvcore.

For each model: parameters equal ``sum(p.numel())``; MACs equal FlopCounterMode's FLOPs / 2
on a real forward pass (on meta tensors for a model whose real pass is too slow for CI); the
output shape is torch's; every convolution's and linear layer's MACs equal fvcore's count for
its module; the parameters reported unused are those of the modules the forward pass never ran
(found with a hook). By default one model per family, at the smallest input each takes;
``ALEXCOST_ZOO=all`` runs every classification, segmentation and video model (68 + 6 + 9),
``ALEXCOST_ZOO_SIZE=224`` the images at 224x224. No weights are downloaded.
"""

from __future__ import annotations

import os
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402

from zoo_cases import (DENSE_FAMILIES, FAMILIES, HEAVY, META, assert_exact,  # noqa: E402
                       build_dense, cnn_names, dense_input, dense_names, family, input_size)

ALL = os.environ.get("ALEXCOST_ZOO") == "all"
MODELS = cnn_names() if ALL else [rep for _, rep in FAMILIES.values()]
DENSE_MODELS = dense_names() if ALL else [rep for _, _, rep in DENSE_FAMILIES.values()]
@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_torchvision_model_is_exact(name):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet's and Inception's notes on their weight initialisation
        model = torchvision.models.get_model(name, weights=None).eval()
    assert_exact(model, input_size(name), name)


@pytest.mark.slow
@pytest.mark.parametrize("name", DENSE_MODELS)
def test_torchvision_segmentation_and_video_model_is_exact(name):
    """Every segmentation model (its forward returns {"out": ...}) and video model, as the CNNs are."""
    torch.manual_seed(0)
    meta = name in META or (name in HEAVY and not ALL)
    with warnings.catch_warnings(), torch.device("meta" if meta else "cpu"):
        warnings.simplefilter("ignore")
        model = build_dense(name).eval()
    assert_exact(model, dense_input(name), name)


def test_every_segmentation_and_video_model_has_a_family():
    listed = [n for module in (torchvision.models.segmentation, torchvision.models.video)
              for n in torchvision.models.list_models(module=module)]
    assert sorted(dense_names()) == sorted(listed) and len(listed) == 6 + 9
    assert all(rep in names for _, names, rep in DENSE_FAMILIES.values())


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


def test_the_docs_table_lists_every_segmentation_and_video_family():
    """docs/from-module.md's second table: one row per family, its models as torchvision lists them,
    every one of them exact, as the tests here find them."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "from-module.md").read_text()
    start = text.index("| family | models | exact |", text.index("## torchvision's segmentation and video models"))
    rows = [line.split("|")[1:-1] for line in text[start:].split("\n\n")[0].splitlines()[2:]]
    stated = {cells[0].strip(): (cells[1].strip(), cells[2].strip()) for cells in rows}
    expected = {}
    for name, (_, models, _) in DENSE_FAMILIES.items():
        expected[name] = (f"{len(models)}: " + ", ".join(f"`{m}`" for m in models), f"{len(models)} of {len(models)}")
    assert stated == expected




# -- torchvision's other model families: read exactly, or refused at the node alexcost cannot read ----------

@pytest.mark.parametrize("build, shape, message", [
    (lambda m: m.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None), (3, 128, 128),
     r"module '\(root\)' \(SSD\): its forward\(\) branches on a traced value"),
    (lambda m: m.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None), (3, 128, 128),
     r"module '\(root\)' \(FasterRCNN\): its forward\(\) branches on a traced value"),
    (lambda m: m.optical_flow.raft_small(weights=None), (3, 64, 64),
     r"module '\(root\)' \(RAFT\): forward\(\) needs an argument 'image2'"),
], ids=["detection", "two-stage detection", "optical flow"])
def test_other_families_are_refused_at_their_first_unreadable_node(build, shape, message):
    with torch.device("meta"):
        model = build(torchvision.models).eval()
    with pytest.raises(SpecError, match=message):
        from_module(model, shape)


@pytest.mark.slow
def test_a_detection_backbone_reads_on_its_own():
    """Detection is refused as a whole (its forward branches on the data); its backbone's feature extractor
    returns a dict of feature maps (refused: one output), and the trunk up to the deepest map reads exactly."""
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None,
                                                                              weights_backbone=None).eval()
    body = model.backbone.body
    with pytest.raises(SpecError, match=r"\(IntermediateLayerGetter\): forward\(\) returns dict of 2 values"):
        from_module(body, (3, 128, 128))
    assert_exact(torch.nn.Sequential(*body.values()), 128, "fasterrcnn_mobilenet_v3_large_320_fpn trunk")


@pytest.mark.slow
def test_an_optical_flow_encoder_reads_on_its_own():
    """RAFT takes two images (refused); its feature encoder takes one and reads exactly (InstanceNorm2d)."""
    torch.manual_seed(0)
    raft = torchvision.models.optical_flow.raft_small(weights=None).eval()
    assert_exact(raft.feature_encoder, 64, "raft_small.feature_encoder")
    kinds = {type(layer).__name__ for layer in from_module(raft.feature_encoder, (3, 64, 64)).network.layers}
    assert "InstanceNorm2d" in kinds


@pytest.mark.slow
def test_quantization_ready_mobilenet_v2_is_exact():
    """torchvision.models.quantization's float model (QuantStub and DeQuantStub are identities until
    converted; its residual add is a FloatFunctional), read as the classification models are."""
    torch.manual_seed(0)
    assert_exact(torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False).eval(), 64,
                 "quantization.mobilenet_v2")


@pytest.mark.slow
def test_a_converted_quantized_model_is_refused_at_its_quantize_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notes on its quantization API
        model = torchvision.models.quantization.resnet18(weights=None, quantize=True).eval()
    with pytest.raises(SpecError, match=r"module 'quant' \(Quantize\).*no layer kind for torch\.ao\.nn\.quantized"):
        from_module(model, (3, 64, 64))
