"""MobileNetV2 as ``torchvision.models.mobilenet_v2`` builds it (width 1.0), layer for layer.

Names are torchvision's module paths with dots as underscores: ``features_0`` is a
``Conv2dNormActivation`` (``features_0_0`` convolution, ``_1`` BatchNorm2d, ``_2`` ReLU6);
``features_1`` to ``features_17`` are inverted residual blocks, whose ``conv`` runs an
optional 1x1 expansion, a 3x3 depthwise convolution (``groups`` = its channels), and a
1x1 projection with batch norm and no activation; a block of stride 1 whose input and
output widths agree adds its input, ``x + self.conv(x)``, the Add ``features_N_add``.
After ``features_18`` (1x1 to 1280 channels), torchvision calls
``adaptive_avg_pool2d(x, (1, 1))`` and ``torch.flatten(x, 1)``: the layers
``adaptive_avg_pool2d`` and ``flatten`` here.
"""

from __future__ import annotations

from ..layers import Add, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, ReLU6
from ..engine.network import Network
from .wiring import Wiring

SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))
"""torchvision's ``inverted_residual_setting``: expansion t, output channels c, blocks n, first stride s."""


def _conv_norm_act(w: Wiring, p: str, reads: str | None = None, kernel_size: int = 3, **conv_args) -> str:
    """torchvision's Conv2dNormActivation: convolution padded to keep the size, batch norm, ReLU6."""
    w.add(Conv2d, f"{p}_0", reads=reads, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False,
          **conv_args)
    w.add(BatchNorm2d, f"{p}_1")
    return w.add(ReLU6, f"{p}_2", inplace=True)


def _inverted_residual(w: Wiring, p: str, x: str, inp: int, oup: int, stride: int, t: int) -> str:
    hidden = round(inp * t)
    j = 0
    reads = x
    if t != 1:
        _conv_norm_act(w, f"{p}_conv_0", reads, kernel_size=1, out_channels=hidden)
        j, reads = 1, None
    _conv_norm_act(w, f"{p}_conv_{j}", reads, out_channels=hidden, stride=stride, groups=hidden)
    w.add(Conv2d, f"{p}_conv_{j + 1}", out_channels=oup, kernel_size=1, bias=False)
    out = w.add(BatchNorm2d, f"{p}_conv_{j + 2}")
    if stride == 1 and inp == oup:
        return w.add(Add, f"{p}_add", reads=(x, out))
    return out


def mobilenet_v2() -> Network:
    w = Wiring()
    x = _conv_norm_act(w, "features_0", out_channels=32, stride=2)
    inp, index = 32, 1
    for t, c, n, s in SETTINGS:
        for i in range(n):
            x = _inverted_residual(w, f"features_{index}", x, inp, c, s if i == 0 else 1, t)
            inp, index = c, index + 1
    _conv_norm_act(w, f"features_{index}", kernel_size=1, out_channels=1280)
    w.add(AdaptiveAvgPool2d, "adaptive_avg_pool2d", output_size=(1, 1))
    w.add(Flatten, "flatten")
    w.add(Dropout, "classifier_0", p=0.2)
    w.add(Linear, "classifier_1", out_features=1000)
    return w.network((3, 224, 224), "mobilenet_v2")
