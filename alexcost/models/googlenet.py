"""GoogLeNet as ``torchvision.models.googlenet(aux_logits=False)`` builds it, layer for layer.

The auxiliary classifiers run only in training, so they are left out, as torchvision
leaves them out of an evaluation forward pass; ``transform_input`` is False (torchvision's
default without pretrained weights). Names are torchvision's module paths with dots as
underscores. Each ``BasicConv2d`` is a bias-free convolution, a BatchNorm2d (eps 0.001)
and ``F.relu(x, inplace=True)``, called ``<block>_relu`` here; each Inception module ends
in ``torch.cat`` of its four branches, ``<module>_cat``. Like torchvision, branch 3 uses
a 3x3 convolution where the paper has 5x5 (pytorch/vision issue 906).
"""

from __future__ import annotations

from ..layers import AdaptiveAvgPool2d, BatchNorm2d, Cat, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ..engine.network import Network
from .wiring import Wiring

INCEPTIONS = (
    ("inception3a", 64, 96, 128, 16, 32, 32), ("inception3b", 128, 128, 192, 32, 96, 64), "maxpool3",
    ("inception4a", 192, 96, 208, 16, 48, 64), ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64), ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128), "maxpool4",
    ("inception5a", 256, 160, 320, 32, 128, 128), ("inception5b", 384, 192, 384, 48, 128, 128),
)
"""torchvision's Inception arguments after ``in_channels``: ch1x1, ch3x3red, ch3x3, ch5x5red,
ch5x5 (a 3x3 convolution, as torchvision builds it), pool_proj; and the max pools between."""


def _basic_conv(w: Wiring, p: str, reads: str | None = None, **conv_args) -> str:
    w.add(Conv2d, f"{p}_conv", reads=reads, bias=False, **conv_args)
    w.add(BatchNorm2d, f"{p}_bn", eps=0.001)
    return w.add(ReLU, f"{p}_relu", inplace=True)


def _inception(w: Wiring, p: str, x: str, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) -> str:
    b1 = _basic_conv(w, f"{p}_branch1", x, out_channels=ch1x1, kernel_size=1)
    _basic_conv(w, f"{p}_branch2_0", x, out_channels=ch3x3red, kernel_size=1)
    b2 = _basic_conv(w, f"{p}_branch2_1", out_channels=ch3x3, kernel_size=3, padding=1)
    _basic_conv(w, f"{p}_branch3_0", x, out_channels=ch5x5red, kernel_size=1)
    b3 = _basic_conv(w, f"{p}_branch3_1", out_channels=ch5x5, kernel_size=3, padding=1)
    w.add(MaxPool2d, f"{p}_branch4_0", reads=x, kernel_size=3, stride=1, padding=1, ceil_mode=True)
    b4 = _basic_conv(w, f"{p}_branch4_1", out_channels=pool_proj, kernel_size=1)
    return w.add(Cat, f"{p}_cat", reads=(b1, b2, b3, b4), dim=1)


def googlenet() -> Network:
    w = Wiring()
    _basic_conv(w, "conv1", out_channels=64, kernel_size=7, stride=2, padding=3)
    w.add(MaxPool2d, "maxpool1", kernel_size=3, stride=2, ceil_mode=True)
    _basic_conv(w, "conv2", out_channels=64, kernel_size=1)
    _basic_conv(w, "conv3", out_channels=192, kernel_size=3, padding=1)
    x = w.add(MaxPool2d, "maxpool2", kernel_size=3, stride=2, ceil_mode=True)
    for entry in INCEPTIONS:
        if isinstance(entry, str):
            size = 2 if entry == "maxpool4" else 3
            x = w.add(MaxPool2d, entry, kernel_size=size, stride=2, ceil_mode=True)
        else:
            x = _inception(w, entry[0], x, *entry[1:])
    w.add(AdaptiveAvgPool2d, "avgpool", output_size=(1, 1))
    w.add(Flatten, "flatten")
    w.add(Dropout, "dropout", p=0.2)
    w.add(Linear, "fc", out_features=1000)
    return w.network((3, 224, 224), "googlenet")
