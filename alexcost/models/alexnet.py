"""AlexNet three ways: as the seed table counts it, as the 2012 paper trained it, and as torchvision builds it."""

from __future__ import annotations

from ..layers import (AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, LocalResponseNorm,
                     MaxPool2d, ReLU, Softmax)
from ..engine.network import Network


def _lrn(name: str) -> LocalResponseNorm:
    """AlexNet's normalisation, n=5, alpha=1e-4, beta=0.75, k=2, in torch's terms: the paper
    multiplies the sum of squares by alpha, torch by alpha/n, so torch's alpha is 5 * 1e-4."""
    return LocalResponseNorm(name=name, size=5, alpha=5e-4, beta=0.75, k=2.0)


def seed() -> Network:
    """The seed table's network: 227x227 input, 96-256-384-384-256, no groups,
    pool before norm, and FC layers counted without bias. fc8 has no ReLU."""
    return Network((3, 227, 227), (
        Conv2d(name="conv1", out_channels=96, kernel_size=11, stride=4),
        ReLU(name="relu1"),
        MaxPool2d(name="pool1", kernel_size=3, stride=2),
        _lrn("norm1"),
        Conv2d(name="conv2", out_channels=256, kernel_size=5, padding=2),
        ReLU(name="relu2"),
        MaxPool2d(name="pool2", kernel_size=3, stride=2),
        _lrn("norm2"),
        Conv2d(name="conv3", out_channels=384, kernel_size=3, padding=1),
        ReLU(name="relu3"),
        Conv2d(name="conv4", out_channels=384, kernel_size=3, padding=1),
        ReLU(name="relu4"),
        Conv2d(name="conv5", out_channels=256, kernel_size=3, padding=1),
        ReLU(name="relu5"),
        MaxPool2d(name="pool5", kernel_size=3, stride=2),
        Flatten(name="flatten"),
        Dropout(name="drop6", p=0.5),
        Linear(name="fc6", out_features=4096, bias=False),
        ReLU(name="relu6"),
        Dropout(name="drop7", p=0.5),
        Linear(name="fc7", out_features=4096, bias=False),
        ReLU(name="relu7"),
        Linear(name="fc8", out_features=1000, bias=False),
    ), name="seed")


def paper() -> Network:
    """Krizhevsky, Sutskever & Hinton (2012) as trained on two GPUs: conv2, conv4 and conv5
    in two groups; ReLU -> LRN -> max-pool after conv1 and conv2; dropout on the outputs of
    fc6 and fc7; biases everywhere; a 1000-way softmax. 227x227 (the paper's 224 does not fit)."""
    return Network((3, 227, 227), (
        Conv2d(name="conv1", out_channels=96, kernel_size=11, stride=4),
        ReLU(name="relu1"),
        _lrn("norm1"),
        MaxPool2d(name="pool1", kernel_size=3, stride=2),
        Conv2d(name="conv2", out_channels=256, kernel_size=5, padding=2, groups=2),
        ReLU(name="relu2"),
        _lrn("norm2"),
        MaxPool2d(name="pool2", kernel_size=3, stride=2),
        *convs_3_to_softmax(groups=2),
    ), name="paper")


def convs_3_to_softmax(groups: int, ceil_mode: bool = False) -> tuple:
    """The paper's conv3 to the softmax (ZFNet keeps them): conv3 384, conv4 384 and conv5 256
    (3x3, padded by 1; conv4 and conv5 in ``groups``), ReLUs, a 3x3/2 max pool, fc6 and fc7
    4096 with ReLU then dropout 0.5, fc8 1000, softmax."""
    return (
        Conv2d(name="conv3", out_channels=384, kernel_size=3, padding=1),
        ReLU(name="relu3"),
        Conv2d(name="conv4", out_channels=384, kernel_size=3, padding=1, groups=groups),
        ReLU(name="relu4"),
        Conv2d(name="conv5", out_channels=256, kernel_size=3, padding=1, groups=groups),
        ReLU(name="relu5"),
        MaxPool2d(name="pool5", kernel_size=3, stride=2, ceil_mode=ceil_mode),
        Flatten(name="flatten"),
        Linear(name="fc6", out_features=4096),
        ReLU(name="relu6"),
        Dropout(name="drop6", p=0.5),
        Linear(name="fc7", out_features=4096),
        ReLU(name="relu7"),
        Dropout(name="drop7", p=0.5),
        Linear(name="fc8", out_features=1000),
        Softmax(name="prob", dim=1),
    )


def torchvision() -> Network:
    """``torchvision.models.alexnet()`` layer for layer (224x224, 64-192-384-256-256),
    with torchvision's module names: features.N, avgpool, classifier.N (dots become '_')."""
    return Network((3, 224, 224), (
        Conv2d(name="features_0", out_channels=64, kernel_size=11, stride=4, padding=2),
        ReLU(name="features_1", inplace=True),
        MaxPool2d(name="features_2", kernel_size=3, stride=2),
        Conv2d(name="features_3", out_channels=192, kernel_size=5, padding=2),
        ReLU(name="features_4", inplace=True),
        MaxPool2d(name="features_5", kernel_size=3, stride=2),
        Conv2d(name="features_6", out_channels=384, kernel_size=3, padding=1),
        ReLU(name="features_7", inplace=True),
        Conv2d(name="features_8", out_channels=256, kernel_size=3, padding=1),
        ReLU(name="features_9", inplace=True),
        Conv2d(name="features_10", out_channels=256, kernel_size=3, padding=1),
        ReLU(name="features_11", inplace=True),
        MaxPool2d(name="features_12", kernel_size=3, stride=2),
        AdaptiveAvgPool2d(name="avgpool", output_size=(6, 6)),
        Flatten(name="flatten"),
        Dropout(name="classifier_0", p=0.5),
        Linear(name="classifier_1", out_features=4096),
        ReLU(name="classifier_2", inplace=True),
        Dropout(name="classifier_3", p=0.5),
        Linear(name="classifier_4", out_features=4096),
        ReLU(name="classifier_5", inplace=True),
        Linear(name="classifier_6", out_features=1000),
    ), name="torchvision")
