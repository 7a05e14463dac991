"""ZFNet: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks" (2013), figure 3.

torchvision has no ZFNet, so this follows the paper: a 224x224x3 input; conv1 96 filters
7x7 stride 2 -> 110x110; 3x3 max pool stride 2 -> 55x55; contrast normalisation; conv2 256
5x5 stride 2 -> 26x26; pool -> 13x13; norm; conv3 384, conv4 384, conv5 256, all 3x3 -> 13x13;
3x3 max pool stride 2 -> 6x6; fc6 4096, fc7 4096; a 1000-way softmax. Each layer is
convolution, then ReLU, then the optional pooling, then the optional normalisation
(section 2 of the paper); dropout 0.5 on fc6 and fc7 (section 3).

The paper gives no paddings. These reproduce its map sizes: conv1 pads 1 ((224 + 2 - 7) // 2
+ 1 = 110; without padding it would be 109); the max pools round up (``ceil_mode``, as
Caffe's pooling does: ceil((110 - 3) / 2) + 1 = 55, ceil((26 - 3) / 2) + 1 = 13), the
convolutions round down; conv3 to conv5 pad 1 to keep 13x13. The paper does not give the
normalisation's constants either: AlexNet's (n=5, alpha=1e-4, beta=0.75, k=2) are used.
"""

from __future__ import annotations

from ..layers import Conv2d, MaxPool2d, ReLU
from ..engine.network import Network
from .alexnet import _lrn, convs_3_to_softmax


def zfnet() -> Network:
    """ZFNet as figure 3 of the paper draws it, with the paddings above; biases everywhere."""
    return Network((3, 224, 224), (
        Conv2d(name="conv1", out_channels=96, kernel_size=7, stride=2, padding=1),
        ReLU(name="relu1"),
        MaxPool2d(name="pool1", kernel_size=3, stride=2, ceil_mode=True),
        _lrn("norm1"),
        Conv2d(name="conv2", out_channels=256, kernel_size=5, stride=2),
        ReLU(name="relu2"),
        MaxPool2d(name="pool2", kernel_size=3, stride=2, ceil_mode=True),
        _lrn("norm2"),
        *convs_3_to_softmax(groups=1, ceil_mode=True),
    ), name="zfnet")
