"""A layer kind alexcost does not ship, PReLU, and a small real model that uses it.

    alexcost report --module docs.examples.prelu_net:model --input-shape 3,32,32

Importing this file registers the kind (spec files can say "type": "PReLU") and tells
``from_module`` that it reads ``torch.nn.PReLU``; ``model()`` builds the torch model.
"""

from dataclasses import dataclass
from math import prod

from alexcost import Layer, SpecError, register_layer
from alexcost.layers import Saved


@register_layer(reads="torch.nn.PReLU", replace=True)  # replace: a PReLU registered before, this one wins
@dataclass(frozen=True, kw_only=True)
class PReLU(Layer):
    """max(0, x) + weight * min(0, x), with a learnt slope per channel (or one for all of them)."""

    num_parameters: int = 1
    init: float = 0.25

    def output_shape(self, x):
        if self.num_parameters not in (1, x[0]):
            raise SpecError(f"num_parameters must be 1 or the input's {x[0]} channels, got {self.num_parameters}")
        return x

    def weight_params(self, x):
        return self.num_parameters

    def other_ops(self, x, y):  # a comparison and a multiply per element
        return 2 * prod(y)

    def saved_tensors(self, x, y, grads, ctx):  # autograd keeps the input (and the weight, a parameter)
        return (Saved("input"),)


def model():
    """A small classifier of 3 x 32 x 32 images with a PReLU after each convolution."""
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(16), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.PReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10))
