"""alexcost: what each layer of a CNN costs, derived without running it.

>>> from alexcost import Network, Conv2d, ReLU, MaxPool2d, Flatten, Linear
>>> net = Network((3, 32, 32), [Conv2d(out_channels=16, kernel_size=3, padding=1), ReLU(),
...                             MaxPool2d(kernel_size=2), Flatten(), Linear(out_features=10)])
>>> cost = net.cost()
>>> cost.totals.params, cost.totals.macs
(41418, 483328)
"""

from .engine.cost import DTYPE_BYTES, LayerCost, NetworkCost, Totals
from .errors import SpecError
from .layers import (GELU, INPUT, LAYER_KINDS, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool2d, Add, AvgPool2d,
                     AvgPool3d, BatchNorm1d, BatchNorm2d, BatchNorm3d, Cat, Chunk, Clone, Contiguous, Conv1d, Conv2d,
                     Conv3d, ConvTranspose2d, Dropout, Dropout2d, Flatten, GroupNorm, Hardsigmoid, Hardswish, Identity,
                     InstanceNorm2d, Layer, LayerNorm, LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, MaxPool3d,
                     Mean, Mul, Pad, Parameter, Permute, ReLU, ReLU6, Reshape, SiLU, Sigmoid, Softmax, Split,
                     StochasticDepth, Tanh, Transpose, Upsample, View, ZeroPad2d, register_layer)
from .layers import (CosineWindowAttention, Expand, Matmul, MultiheadAttention, ScaledDotProductAttention, Slice,
                     SliceAdd, Squeeze, Unsqueeze, WindowAttention)
from .layers import DynamicConv2d, Standardize
from .layers import AvgPool1d, Buffer, Fold, IndexSelect, Normalize, RMSNorm, Unfold
from .layers import Amax, Clamp, Div, Embedding, Exp, Norm, PositionBias, Roll, Rsqrt, Scalar, Sub, Sum
from .layers import Repeat, Sqrt, UnfoldView, Var
from .models import DEFAULT_MODEL, PRESETS, preset
from .engine.network import Network
from .engine.rules import forget as forget_rules

__version__ = "0.1.0"

_LAZY = {"dumps_spec", "load_spec", "network_from_dict", "network_to_dict"}


def __getattr__(name):
    """Spec-file functions and `predict` load on first use: ``alexcost report --model`` never parses a
    spec nor reads the time model."""
    if name in _LAZY:
        from .specs import specfile

        return getattr(specfile, name)
    if name == "predict":
        from .prediction import predict

        return predict
    raise AttributeError(f"module 'alexcost' has no attribute {name!r}")

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d", "Add", "Amax", "AvgPool1d", "AvgPool2d",
    "AvgPool3d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Buffer", "Cat", "Chunk", "Clamp", "Clone",
    "Contiguous", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "CosineWindowAttention", "DEFAULT_MODEL", "DynamicConv2d",
    "DTYPE_BYTES", "Div", "Dropout", "Dropout2d", "Embedding", "Exp", "Expand", "Flatten", "Fold", "GELU",
    "GroupNorm", "Hardsigmoid", "Hardswish", "INPUT", "Identity", "IndexSelect", "InstanceNorm2d",
    "LAYER_KINDS", "Layer", "LayerCost", "LayerNorm", "LeakyReLU", "Linear", "LocalResponseNorm", "Matmul",
    "MaxPool2d", "MaxPool3d", "Mean", "Mul", "MultiheadAttention", "Network", "NetworkCost", "Norm", "Normalize",
    "PRESETS", "Pad", "Parameter", "Permute", "PositionBias", "RMSNorm", "ReLU", "ReLU6", "Repeat", "Reshape", "Roll", "Rsqrt",
    "Scalar", "ScaledDotProductAttention", "SiLU", "Sigmoid", "Slice", "SliceAdd", "Softmax", "SpecError", "Split", "Sqrt", "Squeeze",
    "Standardize", "StochasticDepth", "Sub", "Sum", "Tanh", "Totals", "Transpose", "Unfold", "UnfoldView", "Unsqueeze", "Upsample",
    "Var", "View",
    "WindowAttention", "ZeroPad2d", "dumps_spec", "forget_rules", "load_spec", "network_from_dict",
    "network_to_dict", "predict", "preset", "register_layer",
]
