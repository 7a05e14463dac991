"""Layer kinds, one frozen dataclass each, by family: conv, linear, pool, norm, activation,
merge, scalar (arithmetic with a Python number), shape, resize, pad, parameter. `base` holds the `Layer`
base class and the registry.

Names, argument names and defaults are torch's, so ``Conv2d(**args)`` here and
``torch.nn.Conv2d(**args)`` describe the same layer. Arguments are keyword-only;
``in_channels`` / ``in_features`` / ``num_features`` may be left out (inferred).
Counting conventions: see docs/conventions.md and each kind's docstring.
"""

from .activation import (GELU, Dropout, Dropout2d, Hardsigmoid, Hardswish, Identity, LeakyReLU, ReLU, ReLU6, SiLU,
                         Sigmoid, Softmax, StochasticDepth, Tanh)
from .attention import Matmul, MultiheadAttention, ScaledDotProductAttention
from .base import INPUT, LAYER_KINDS, Grads, Layer, ParameterShape, Saved, Shape, TrainContext, register_layer
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose2d, DynamicConv2d
from .folded import Folded
from .index import Expand, IndexSelect, Repeat, Slice, SliceAdd, Squeeze, UnfoldView, Unsqueeze
from .reduce import Amax, Norm, Roll, Sum, Var
from .scalar import Scalar
from .window import CosineWindowAttention, WindowAttention
from .linear import Embedding, Linear
from .merge import Add, Cat, Div, Mul, Sub
from .pointwise import Clamp, Exp, Rsqrt, Sqrt
from .unfold import Fold, Unfold
from .normalize import Normalize, RMSNorm
from .norm import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm2d, LayerNorm, LocalResponseNorm,
                   Standardize)
from .parameter import Buffer, Parameter, PositionBias
from .pad import Pad, ZeroPad2d
from .pool import (AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, AvgPool3d, MaxPool2d,
                   MaxPool3d)
from .resize import Upsample
from .shape import Chunk, Clone, Contiguous, Flatten, Mean, Permute, Reshape, Split, Transpose, View

BUILTIN_KINDS = frozenset(LAYER_KINDS.values())
"""alexcost's own kinds; a user's kinds get their output shapes checked too."""

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d", "Add", "Amax", "AvgPool1d", "AvgPool2d",
    "AvgPool3d", "BUILTIN_KINDS", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Buffer", "Cat", "Chunk", "Clamp",
    "Clone", "Contiguous", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "CosineWindowAttention", "Div",
    "Dropout", "Dropout2d", "DynamicConv2d", "Embedding", "Exp", "Expand", "Flatten", "Fold", "Folded", "GELU", "Grads", "GroupNorm",
    "Hardsigmoid", "Hardswish", "INPUT", "Identity", "IndexSelect", "InstanceNorm2d", "LAYER_KINDS", "Layer",
    "LayerNorm", "LeakyReLU", "Linear", "LocalResponseNorm", "Matmul", "MaxPool2d", "MaxPool3d", "Mean", "Mul",
    "MultiheadAttention", "Norm", "Normalize", "Pad", "Parameter", "ParameterShape", "Permute", "PositionBias",
    "RMSNorm", "ReLU", "ReLU6", "Repeat", "Reshape", "Roll", "Rsqrt", "Saved", "Scalar", "ScaledDotProductAttention", "Shape",
    "SiLU", "Sigmoid", "Slice", "SliceAdd", "Softmax", "Split", "Sqrt", "Squeeze", "Standardize", "StochasticDepth", "Sub", "Sum", "Tanh",
    "TrainContext", "Transpose", "Unfold", "UnfoldView", "Unsqueeze", "Upsample", "Var", "View", "WindowAttention", "ZeroPad2d",
    "register_layer",
]
