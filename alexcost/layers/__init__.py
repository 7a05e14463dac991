"""Layer kinds, one frozen dataclass each, by family: conv, linear, pool, norm, activation,
merge, shape, parameter. `base` holds the `Layer` base class and the registry.

Names, argument names and defaults are torch's, so ``Conv2d(**args)`` here and
``torch.nn.Conv2d(**args)`` describe the same layer. Arguments are keyword-only;
``in_channels`` / ``in_features`` / ``num_features`` may be left out (inferred).
Counting conventions: see docs/conventions.md and each kind's docstring.
"""

from .activation import (GELU, Dropout, Dropout2d, Hardsigmoid, Hardswish, Identity, LeakyReLU, ReLU, ReLU6, SiLU,
                         Sigmoid, Softmax, StochasticDepth, Tanh)
from .base import INPUT, LAYER_KINDS, Layer, ParameterShape, Shape, register_layer
from .conv import Conv2d
from .linear import Linear
from .merge import Add, Cat, Mul
from .norm import BatchNorm2d, LayerNorm, LocalResponseNorm
from .parameter import Parameter
from .pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .shape import Chunk, Contiguous, Flatten, Mean, Permute, Reshape, Split, Transpose, View, ZeroPad2d

BUILTIN_KINDS = frozenset(LAYER_KINDS.values())
"""alexcost's own kinds; a user's kinds get their output shapes checked too."""
from .extra import Clone  # noqa: E402  (after BUILTIN_KINDS: not yet in the spec schema)

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Add", "AvgPool2d", "BUILTIN_KINDS", "BatchNorm2d", "Cat", "Chunk",
    "Contiguous", "Conv2d", "Dropout", "Dropout2d", "Flatten", "GELU", "Hardsigmoid", "Hardswish", "INPUT",
    "Identity", "LAYER_KINDS", "Layer", "LayerNorm", "LeakyReLU", "Linear", "LocalResponseNorm", "MaxPool2d",
    "Mean", "Mul", "Parameter", "ParameterShape", "Permute", "ReLU", "ReLU6", "Reshape", "SiLU", "Shape",
    "Sigmoid", "Softmax", "Split", "StochasticDepth", "Tanh", "Transpose", "View", "ZeroPad2d", "register_layer",
]
