"""torchvision's models by family, for the zoo and transformer tests and benchmarks/bench_from_module.py;
and ``assert_exact``, a model read by from_module against torch and fvcore.

``FAMILIES`` maps a classification family to its model-name prefix and its representative (the
smallest model of the family, tested by default); every CNN in ``torchvision.models.list_models``
belongs to exactly one family. Vision transformers are listed apart. ``DENSE_FAMILIES`` does the
same for the segmentation and video models, each family with the input its models read.
"""

from __future__ import annotations

import os
import warnings

FAMILIES = {
    "AlexNet": (("alexnet",), "alexnet"),
    "VGG": (("vgg11", "vgg13", "vgg16", "vgg19"), "vgg11"),
    "VGG with BN": (("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"), "vgg11_bn"),
    "ResNet": (("resnet",), "resnet18"),
    "ResNeXt": (("resnext",), "resnext50_32x4d"),
    "Wide ResNet": (("wide_resnet",), "wide_resnet50_2"),
    "GoogLeNet": (("googlenet",), "googlenet"),
    "Inception v3": (("inception_v3",), "inception_v3"),
    "DenseNet": (("densenet",), "densenet121"),
    "SqueezeNet": (("squeezenet",), "squeezenet1_1"),
    "MobileNet v2": (("mobilenet_v2",), "mobilenet_v2"),
    "MobileNet v3": (("mobilenet_v3",), "mobilenet_v3_small"),
    "MNASNet": (("mnasnet",), "mnasnet0_5"),
    "ShuffleNet v2": (("shufflenet_v2",), "shufflenet_v2_x0_5"),
    "EfficientNet": (("efficientnet_b",), "efficientnet_b0"),
    "EfficientNet v2": (("efficientnet_v2",), "efficientnet_v2_s"),
    "RegNet": (("regnet_",), "regnet_y_400mf"),
    "ConvNeXt": (("convnext",), "convnext_tiny"),
}

TRANSFORMERS = ("vit_", "swin_", "maxvit_")
"""Name prefixes of torchvision's vision transformers (tested apart, in test_transformers.py)."""

TRANSFORMER_FAMILIES = {
    "ViT": (("vit_",), "vit_b_16"),
    "Swin": (("swin_t", "swin_s", "swin_b"), "swin_t"),
    "Swin V2": (("swin_v2_",), "swin_v2_t"),
    "MaxViT": (("maxvit_",), "maxvit_t"),
}
"""torchvision's vision transformers alexcost reads exactly, by family: (models' names or prefixes,
representative)."""


def transformer_names() -> list[str]:
    """torchvision's vision transformers in `TRANSFORMER_FAMILIES`."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return [n for n in names for prefixes, _ in TRANSFORMER_FAMILIES.values() if n.startswith(prefixes)]


def build_transformer(name: str):
    """A vision transformer with no weights at the input `transformer_input` gives: a ViT at two patches
    a side (its position embeddings fix the image size), a Swin at 64 x 64, a MaxViT at 224 x 224 (the
    smallest its 7 x 7 windows and grids take after five halvings)."""
    import torchvision

    extra = {"image_size": transformer_input(name)[1]} if name.startswith("vit_") else {}
    return torchvision.models.get_model(name, weights=None, **extra)


def transformer_input(name: str) -> tuple[int, int, int]:
    if name.startswith("vit_"):
        side = 2 * int(name.rsplit("_", 1)[1])  # two patches a side
        return (3, side, side)
    if name.startswith("maxvit_"):
        return (3, 224, 224)
    return (3, 64, 64)


def family(name: str) -> str:
    """The family of a model name: the one whose prefix matches most closely (vgg11_bn is VGG with BN)."""
    matches = [(len(p), f) for f, (prefixes, _) in FAMILIES.items() for p in prefixes
               if name == p or (name.startswith(p) and not name[len(p):].startswith("_bn"))]
    if not matches:
        raise KeyError(name)
    return max(matches)[1]


def cnn_names() -> list[str]:
    """Every classification model of torchvision that is not a vision transformer."""
    import torchvision

    return [n for n in torchvision.models.list_models(module=torchvision.models) if not n.startswith(TRANSFORMERS)]


def input_size(name: str) -> int:
    """The square input side the tests use: the smallest each model takes, 64 (75 for Inception v3,
    whose stem needs it), or ``ALEXCOST_ZOO_SIZE`` when set (e.g. 224)."""
    smallest = 75 if name == "inception_v3" else 64
    return max(smallest, int(os.environ.get("ALEXCOST_ZOO_SIZE", smallest)))


DENSE_FAMILIES = {
    "FCN": ("segmentation", ("fcn_resnet50", "fcn_resnet101"), "fcn_resnet50"),
    "DeepLabV3": ("segmentation", ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large"),
                  "deeplabv3_mobilenet_v3_large"),
    "LR-ASPP": ("segmentation", ("lraspp_mobilenet_v3_large",), "lraspp_mobilenet_v3_large"),
    "Video ResNet": ("video", ("r3d_18", "mc3_18", "r2plus1d_18"), "r3d_18"),
    "S3D": ("video", ("s3d",), "s3d"),
    "MViT": ("video", ("mvit_v1_b", "mvit_v2_s"), "mvit_v2_s"),
    "Video Swin": ("video", ("swin3d_t", "swin3d_s", "swin3d_b"), "swin3d_t"),
}
"""torchvision's segmentation and video families: (module, models, representative)."""

HEAVY = frozenset({"s3d"})
"""Models whose smallest real forward pass is too slow for CI: read against torch on meta tensors (no
fvcore, which needs a real pass) unless ``ALEXCOST_ZOO=all``."""
META = frozenset({"mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b"})
"""Models read against torch on meta tensors always: their inputs are fixed at 16 frames of 224 x 224
(tens to hundreds of GFLOPs a pass)."""


def dense_names() -> list[str]:
    """Every segmentation and video model of torchvision, by family."""
    return [name for _, names, _ in DENSE_FAMILIES.values() for name in names]


def dense_input(name: str) -> tuple[int, ...]:
    """The per-sample input the tests read a segmentation or video model at: 3 x 64 x 64 for segmentation
    (3 x S x S with ``ALEXCOST_ZOO_SIZE``); 3 x 4 x 32 x 32 frames for the video ResNets; S3D's smallest,
    3 x 13 x 209 x 209; the video transformers' own, 3 x 16 x 224 x 224 (MViT's position embeddings fix it)."""
    module = next(m for m, names, _ in DENSE_FAMILIES.values() if name in names)
    if module == "segmentation":
        side = max(64, int(os.environ.get("ALEXCOST_ZOO_SIZE", 64)))
        return (3, side, side)
    if name in DENSE_FAMILIES["MViT"][1]:
        return (3, 16, 224, 224)
    return {"s3d": (3, 13, 209, 209)}.get(name, (3, 4, 32, 32))


def build_dense(name: str):
    """A segmentation or video model with no weights, as torchvision builds it (no download)."""
    import torchvision

    module = next(m for m, names, _ in DENSE_FAMILIES.values() if name in names)
    extra = {"weights_backbone": None} if module == "segmentation" else {}
    return torchvision.models.get_model(name, weights=None, **extra)


# -- a model read by from_module against torch and fvcore ----------------------------------------

MULTIPLYING = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear")
"""The kinds fvcore counts by module, as alexcost does: their MACs."""


def _measured(model, x):
    """What torch and fvcore say about one forward pass: FLOPs, the output, fvcore by module,
    and the parameters of modules that never ran (by path, their own parameters)."""
    import torch
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
    if idle:  # a module that never ran whose parameters another's forward reads (Swin's qkv, passed to a function)
        reached = _read_elsewhere(model, x, list(idle))
        idle = {path: n for path, n in idle.items() if path not in reached}
    if x.is_meta:  # fvcore traces a real pass
        return counter.get_total_flops(), out, None, idle
    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_module = analysis.by_module()
    return counter.get_total_flops(), out, by_module, idle


def _read_elsewhere(model, x, paths: list) -> set:
    """The modules of ``paths`` whose parameters the output depends on (autograd reaches them all)."""
    import torch

    owned = [(path, p) for path in paths for p in model.get_submodule(path).parameters(recurse=False)]
    with torch.enable_grad():
        out = model(x)
        out = out["out"] if isinstance(out, dict) else out
        grads = torch.autograd.grad(out.sum(), [p for _, p in owned], allow_unused=True)
    missed = {path for (path, _), g in zip(owned, grads) if g is None}
    return set(paths) - missed


def assert_exact(model, size, name: str) -> None:
    """from_module's reading of ``model`` at ``size`` x ``size`` (or at the per-sample shape ``size``)
    against torch and fvcore; a model on the meta device against torch's counter alone."""
    import torch

    from alexcost.torch_bridge import from_module

    shape = (3, size, size) if isinstance(size, int) else tuple(size)
    imported = from_module(model, shape)
    meta = next(model.parameters()).is_meta
    x = torch.empty(1, *shape, device="meta") if meta else torch.randn(1, *shape)
    flops, out, by_module, idle = _measured(model, x)
    out = out["out"] if isinstance(out, dict) else out  # a segmentation model's {"out": ...}
    cost = imported.cost()
    assert cost.totals.params == imported.params == sum(p.numel() for p in model.parameters())
    assert 2 * cost.totals.macs == flops
    assert (1, *imported.network.output_shape) == tuple(out.shape)
    assert imported.unused == idle, (imported.unused, idle)
    macs_by_path = {}
    for row, path in zip(cost.layers, imported.paths):
        if row.type in MULTIPLYING:
            macs_by_path[path] = macs_by_path.get(path, 0) + row.macs
    assert macs_by_path, name
    if by_module is not None:
        assert macs_by_path == {path: by_module[path] for path in macs_by_path}
