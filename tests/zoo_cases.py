"""torchvision's classification CNNs, by family, for test_zoo.py and benchmarks/bench_from_module.py.

``FAMILIES`` maps a family to its model-name prefix and its representative (the smallest
model of the family, tested by default); every CNN in ``torchvision.models.list_models``
belongs to exactly one family. Vision transformers are listed apart: alexcost refuses them.
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
"""Name prefixes of torchvision's vision transformers (out of scope: refused)."""


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
