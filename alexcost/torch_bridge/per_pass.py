"""Computations on a module's parameters and buffers alone (an MLP on a table of relative coordinates, a
learned scale through a sigmoid): torch runs them once per forward pass, whatever the batch.

The reader keeps such a tensor whole (a `ParameterShape`: no batch dimension), and the network runs the
layers that read only such tensors once per pass (`alexcost.engine.network.Network.once`), their rules
seeing the full shapes as one sample. That reading is exact for the kinds whose arguments name no
dimension (an elementwise op, arithmetic with a number) or only the last ones (Linear, LayerNorm): the
same call on a batched tensor and on a whole one means the same thing. Every other kind (a view, a
permute, a softmax over a dimension) numbers dimensions from the batch's, so it is refused on such a tensor.
"""

from __future__ import annotations

from dataclasses import fields

from ..layers import LayerNorm, Linear, Scalar
from ..layers.base import Elementwise

_LAST_DIMENSIONS = (Linear, LayerNorm, Scalar)


def reads(kind) -> bool:
    """Does a layer of ``kind`` read a tensor computed from parameters alone exactly as torch does?"""
    if kind is None:
        return False
    return kind in _LAST_DIMENSIONS or (issubclass(kind, Elementwise) and "dim" not in {f.name for f in fields(kind)})


def refusal(shown: str, kind) -> str:
    """Why a layer of ``kind`` (None: a call that is not a layer) does not read ``shown``, computed once per pass."""
    what = f"a {kind.__name__}" if kind is not None else "this call"
    return (f"reads {shown}, with no activation: a computation on parameters or buffers alone runs once per "
            f"forward pass; alexcost reads one through elementwise layers, arithmetic, Linear and "
            f"LayerNorm, not through {what}, whose arguments number dimensions from the batch's")
