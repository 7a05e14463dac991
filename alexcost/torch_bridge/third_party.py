"""Functions of libraries alexcost does not import, read where the model has imported them: timm's ``drop_path``
(stochastic depth per sample, as torchvision's ``stochastic_depth`` with ``mode="row"``). The tracer keeps each
whole (fx's ``autowrap_functions``), and the reader reads it as a layer."""

from __future__ import annotations

import sys

from ..layers import StochasticDepth
from .calls import REQUIRED, bind

_FUNCTIONS = {"timm.layers.drop": "drop_path"}
"""Module -> the function in it that is read as a layer."""


def leaves() -> tuple:
    """The functions of `_FUNCTIONS` whose modules are loaded (a model of that library is being read)."""
    found = (getattr(sys.modules.get(module), name, None) for module, name in _FUNCTIONS.items())
    return tuple(f for f in found if f is not None)


def drop_path(r, node, args, kwargs):
    """timm's ``drop_path(x, drop_prob, training, scale_by_keep)``: a `StochasticDepth` of ``mode="row"`` (the
    input at inference; in training each sample's branch dropped with ``drop_prob``, the kept ones scaled by
    ``1 / (1 - drop_prob)``: the same ops as torchvision's). ``training`` is the module's flag, read as in eval
    mode; without ``scale_by_keep`` it is refused."""
    b = bind(r, node, (("x", REQUIRED), ("drop_prob", 0.0), ("training", False), ("scale_by_keep", True)), args,
             kwargs)
    if r.constant(b["training"], node, "training") is not False:
        r.refuse(node, "is called with training=True; alexcost reads drop_path with the module's own flag")
    if not r.constant(b["scale_by_keep"], node, "scale_by_keep"):
        r.refuse(node, "is called with scale_by_keep=False; alexcost's StochasticDepth scales the kept samples by "
                       "1 / (1 - p), as torchvision's does")
    layer = r.build(node, StochasticDepth, {"p": r.constant(b["drop_prob"], node, "drop_prob"), "mode": "row"})
    return r.emit(node, layer, [r.tensor(b["x"], node)])


def handler(target):
    """The reader's handler for ``target``, a function of `_FUNCTIONS`; else None."""
    name = _FUNCTIONS.get(getattr(target, "__module__", None))
    return drop_path if name is not None and getattr(target, "__name__", None) == name else None
