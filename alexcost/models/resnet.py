"""ResNet-18 and ResNet-50 as ``torchvision.models.resnet18`` / ``resnet50`` build them, layer for layer.

Names are torchvision's module paths with dots as underscores (``layer1_0_conv1``,
``layer2_0_downsample_0``). A block runs its one ``relu`` module two or three times:
those runs are ``relu``, ``relu_2``, ``relu_3``. The residual sum, ``out += identity``
in torchvision's code, is the in-place Add ``layerS_B_add``; ``flatten`` is its
``torch.flatten(x, 1)``. Every convolution is bias-free and followed by a BatchNorm2d.
"""

from __future__ import annotations

from ..layers import Add, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU
from ..engine.network import Network
from .wiring import Wiring


def _conv_bn(w: Wiring, conv: str, bn: str, reads: str | None = None, **conv_args) -> str:
    w.add(Conv2d, conv, reads=reads, bias=False, **conv_args)
    return w.add(BatchNorm2d, bn)


def _basic(w: Wiring, p: str, x: str, inplanes: int, planes: int, stride: int) -> tuple[str, int]:
    """torchvision's BasicBlock: two 3x3 convolutions and the shortcut."""
    _conv_bn(w, f"{p}_conv1", f"{p}_bn1", x, out_channels=planes, kernel_size=3, stride=stride, padding=1)
    w.add(ReLU, f"{p}_relu", inplace=True)
    out = _conv_bn(w, f"{p}_conv2", f"{p}_bn2", out_channels=planes, kernel_size=3, padding=1)
    return _shortcut(w, p, x, out, inplanes, planes, stride), planes


def _bottleneck(w: Wiring, p: str, x: str, inplanes: int, planes: int, stride: int) -> tuple[str, int]:
    """torchvision's Bottleneck (ResNet v1.5: the stride on the 3x3 convolution)."""
    _conv_bn(w, f"{p}_conv1", f"{p}_bn1", x, out_channels=planes, kernel_size=1)
    w.add(ReLU, f"{p}_relu", inplace=True)
    _conv_bn(w, f"{p}_conv2", f"{p}_bn2", out_channels=planes, kernel_size=3, stride=stride, padding=1)
    w.add(ReLU, f"{p}_relu", inplace=True)
    out = _conv_bn(w, f"{p}_conv3", f"{p}_bn3", out_channels=4 * planes, kernel_size=1)
    return _shortcut(w, p, x, out, inplanes, 4 * planes, stride), 4 * planes


def _shortcut(w: Wiring, p: str, x: str, out: str, inplanes: int, width: int, stride: int) -> str:
    """``out += identity`` (a 1x1 convolution and batch norm make the identity fit), then ReLU."""
    identity = x
    if stride != 1 or inplanes != width:
        identity = _conv_bn(w, f"{p}_downsample_0", f"{p}_downsample_1", x, out_channels=width, kernel_size=1,
                            stride=stride)
    w.add(Add, f"{p}_add", reads=(out, identity), inplace=True)
    return w.add(ReLU, f"{p}_relu", inplace=True)


def _resnet(name: str, block, counts: tuple[int, int, int, int]) -> Network:
    w = Wiring()
    _conv_bn(w, "conv1", "bn1", out_channels=64, kernel_size=7, stride=2, padding=3)
    w.add(ReLU, "relu", inplace=True)
    x = w.add(MaxPool2d, "maxpool", kernel_size=3, stride=2, padding=1)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        for i in range(blocks):
            stride = 2 if stage > 1 and i == 0 else 1
            x, inplanes = block(w, f"layer{stage}_{i}", x, inplanes, planes, stride)
    w.add(AdaptiveAvgPool2d, "avgpool", output_size=(1, 1))
    w.add(Flatten, "flatten")
    w.add(Linear, "fc", out_features=1000)
    return w.network((3, 224, 224), name)


def resnet18() -> Network:
    return _resnet("resnet18", _basic, (2, 2, 2, 2))


def resnet50() -> Network:
    return _resnet("resnet50", _bottleneck, (3, 4, 6, 3))
