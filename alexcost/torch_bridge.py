"""Network -> torch.nn.Module. torch is imported only when these functions run."""

from __future__ import annotations

from .network import Network


def to_module(network: Network):
    """An ``nn.Sequential`` whose children are the network's layers, named as in the network.

    Weights are torch's default initialisation; the module is on the CPU in float32.
    """
    from collections import OrderedDict

    import torch.nn

    children = OrderedDict((name, layer.torch_module(x))
                           for name, layer, x in zip(network.names, network.layers, network.shapes))
    return torch.nn.Sequential(children)
