"""torchvision's models by family, for test_zoo.py and benchmarks/bench_from_module.py.

``FAMILIES`` maps a classification family to its model-name prefix and its representative (the
smallest model of the family, tested by default); every CNN in ``torchvision.models.list_models``
belongs to exactly one family. Vision transformers are listed apart. ``DENSE_FAMILIES`` does the
same for the segmentation and video models, each family with the input its models read.
"""

from __future__ import annotations

import os

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
}
"""torchvision's vision transformers alexcost reads exactly, by family: (models' names or prefixes,
representative)."""

TRANSFORMERS_REFUSED = {
    "swin_v2_t": r"module 'features\.1\.0\.attn\.cpb_mlp\.0' \(Linear\) .*reads the buffer "
                 r"'features\.1\.0\.attn\.relative_coords_table' as its input",
    "maxvit_t": r"function 'mul' in module 'blocks\.0\.layers\.0\.layers\.window_attention\.attn_layer\.1' "
                r"\(RelativePositionalMultiHeadAttention\) .*multiplies a tensor and a Python number",
}
"""The vision transformers refused, each at its first node alexcost cannot read: Swin V2 computes its
position bias with an MLP on a buffer, once per forward pass, not per sample; MaxViT scales by a
Python number and multiplies by einsum."""


def transformer_names() -> list[str]:
    """torchvision's vision transformers in `TRANSFORMER_FAMILIES`."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return [n for n in names for prefixes, _ in TRANSFORMER_FAMILIES.values() if n.startswith(prefixes)]


def build_transformer(name: str):
    """A vision transformer with no weights at the input `transformer_input` gives: a ViT at two patches
    a side (its position embeddings fix the image size), a Swin at 64 x 64."""
    import torchvision

    extra = {"image_size": transformer_input(name)[1]} if name.startswith("vit_") else {}
    return torchvision.models.get_model(name, weights=None, **extra)


def transformer_input(name: str) -> tuple[int, int, int]:
    if name.startswith("vit_"):
        side = 2 * int(name.rsplit("_", 1)[1])  # two patches a side
        return (3, side, side)
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

_MVIT = ("pooling attention that folds the heads into the batch, unbind of the qkv tensor, tensor_split, and "
         "torchvision's fx-wrapped helpers _unsqueeze, _squeeze, _add_rel_pos, _add_shortcut")
NEEDS_ATTENTION = {"mvit_v1_b": _MVIT, "mvit_v2_s": _MVIT}
"""Video transformers and what they need beyond the kinds alexcost has: their tests are a strict xfail."""

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
    if name in NEEDS_ATTENTION:
        return (3, 16, 224, 224)
    return {"s3d": (3, 13, 209, 209)}.get(name, (3, 4, 32, 32))


def build_dense(name: str):
    """A segmentation or video model with no weights, as torchvision builds it (no download)."""
    import torchvision

    module = next(m for m, names, _ in DENSE_FAMILIES.values() if name in names)
    extra = {"weights_backbone": None} if module == "segmentation" else {}
    return torchvision.models.get_model(name, weights=None, **extra)
