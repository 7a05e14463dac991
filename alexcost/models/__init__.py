"""Presets: AlexNet three ways, and its successors as torchvision (or, for ZFNet, the paper) builds them.

`PRESETS` names every preset; `preset(name)` builds one the first time it is asked for
and returns that same `Network` ever after (a Network is immutable, so sharing it is safe).
A family's module is imported only when one of its presets is first built, so
``alexcost report`` on AlexNet never reads the ResNet code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from ..engine.network import Network


@dataclass(frozen=True)
class Preset:
    """A preset network: its name, where its builder lives, and one line saying what it is.

    ``build()`` makes a fresh `Network` every call; `preset` keeps the first one.
    """

    name: str
    module: str
    function: str
    description: str

    def build(self) -> Network:
        """A fresh copy of the network (imports the family's module on first use)."""
        family = __import__(f"{__name__}.{self.module}", fromlist=[self.function])  # no importlib to load
        return getattr(family, self.function)()


PRESETS = {p.name: p for p in (
    Preset("seed", "alexnet", "seed", "AlexNet as the seed table counts it (ungrouped, FC without bias)"),
    Preset("paper", "alexnet", "paper", "AlexNet as trained in the 2012 paper (two GPU groups, LRN, biases)"),
    Preset("torchvision", "alexnet", "torchvision", "torchvision.models.alexnet, layer for layer"),
    Preset("zfnet", "zfnet", "zfnet", "ZFNet, Zeiler & Fergus 2013, figure 3 (7x7/2 conv1, 224x224)"),
    Preset("vgg16", "vgg", "vgg16", "torchvision.models.vgg16 (configuration D, no batch norm)"),
    Preset("googlenet", "googlenet", "googlenet", "torchvision.models.googlenet without its auxiliary heads"),
    Preset("resnet18", "resnet", "resnet18", "torchvision.models.resnet18 (basic blocks)"),
    Preset("resnet50", "resnet", "resnet50", "torchvision.models.resnet50 (bottleneck blocks)"),
    Preset("mobilenet_v2", "mobilenet", "mobilenet_v2", "torchvision.models.mobilenet_v2 (inverted residuals)"),
)}
"""Every preset by name; ``seed`` is the default model."""

DEFAULT_MODEL = "seed"

_BUILT: dict[str, Network] = {}


def preset(name: str) -> Network:
    """The preset network called ``name``: built on the first call, the same object after."""
    network = _BUILT.get(name)
    if network is None:
        try:
            entry = PRESETS[name]
        except (KeyError, TypeError):
            raise SpecError(f"unknown model {name!r}; choose from {', '.join(PRESETS)}") from None
        network = _BUILT[name] = entry.build()
    return network
