"""VGG-16 as ``torchvision.models.vgg16`` builds it (configuration D, no batch norm), layer for layer.

torchvision's module names with dots as underscores: ``features_N`` (3x3 convolutions padded
by 1, each followed by an in-place ReLU; 2x2 max pools of stride 2), ``avgpool``
(AdaptiveAvgPool2d((7, 7))), ``flatten`` (its ``torch.flatten(x, 1)``), ``classifier_N``.
"""

from __future__ import annotations

from ..layers import AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ..engine.network import Network
from .wiring import Wiring

CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
"""torchvision's ``cfgs["D"]``: output channels of each 3x3 convolution, "M" for a max pool."""


def vgg16() -> Network:
    w = Wiring()
    index = 0
    for v in CONFIG_D:
        if v == "M":
            w.add(MaxPool2d, f"features_{index}", kernel_size=2, stride=2)
            index += 1
        else:
            w.add(Conv2d, f"features_{index}", out_channels=v, kernel_size=3, padding=1)
            w.add(ReLU, f"features_{index + 1}", inplace=True)
            index += 2
    w.add(AdaptiveAvgPool2d, "avgpool", output_size=(7, 7))
    w.add(Flatten, "flatten")
    for i, width in ((0, 4096), (3, 4096)):
        w.add(Linear, f"classifier_{i}", out_features=width)
        w.add(ReLU, f"classifier_{i + 1}", inplace=True)
        w.add(Dropout, f"classifier_{i + 2}", p=0.5)
    w.add(Linear, "classifier_6", out_features=1000)
    return w.network((3, 224, 224), "vgg16")
