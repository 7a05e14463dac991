"""Scalar: elementwise arithmetic of a tensor with a Python number (``x * 0.5``, ``x + 1e-6``,
``1 - x``, ``x / c``, ``x ** 2``, ``c ** x``, ``torch.div(x, c, rounding_mode='floor')``).

One op per element, whatever the op and the number: ``x + 0`` and ``x * 1`` are counted, as
torch runs them, and so is ``x ** 2`` (torch's ``pow`` is one op per element, not a multiply).

Backward (ops per element of the input's gradient): ``add`` and ``sub`` pass the gradient on (0);
``rsub`` negates it (1); ``mul`` and ``div`` multiply or divide it by the number (1); ``pow`` computes
``grad * n * x ** (n - 1)`` (3: a power and two multiplies; 0 for ``n == 0``, whose gradient torch
gives as zeros); ``rpow`` (``c ** x``) computes ``grad * (y * log(c))`` (2); ``floordiv``'s gradient is
zeros (0). What autograd keeps: ``pow`` its input (in place, a copy of it made before overwriting it);
``rpow`` its input and its output; the others nothing (the number is not a tensor of the model's).
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError
from .base import Grads, InplaceElementwise, Saved, Shape, TrainContext, layer_kind, register_layer

OPS = ("add", "sub", "rsub", "mul", "div", "floordiv", "pow", "rpow")
"""The operations, by torch's names: ``rsub`` is ``value - x``, ``rpow`` ``value ** x``, ``floordiv``
``torch.div(x, value, rounding_mode='floor')``."""

SYMBOLS = {"add": "x + {}", "sub": "x - {}", "rsub": "{} - x", "mul": "x * {}", "div": "x / {}",
           "floordiv": "x // {}", "pow": "x ** {}", "rpow": "{} ** x"}

_BACKWARD = {"add": 0, "sub": 0, "rsub": 1, "mul": 1, "div": 1, "floordiv": 0, "pow": 3, "rpow": 2}
"""Ops per element of the input's gradient."""


@register_layer
@layer_kind
class Scalar(InplaceElementwise):
    """``x <op> value`` elementwise, with a Python number ``value``. ``op`` is ``"add"`` (``x + value``),
    ``"sub"`` (``x - value``), ``"rsub"`` (``value - x``), ``"mul"``, ``"div"`` (``x / value``), ``"floordiv"``
    (rounded down), ``"pow"`` (``x ** value``) or ``"rpow"`` (``value ** x``); ``inplace`` writes into ``x``
    (``x.mul_(value)``, ``x += value``; not ``rsub`` nor ``rpow``).
    One op per element; see the module docstring for the backward pass."""

    op: str
    value: float
    inplace: bool = False

    def __post_init__(self):
        super().__post_init__()
        check.choice(self.op, "op", OPS)
        object.__setattr__(self, "value", check.real(self.value, "value"))
        if self.inplace and self.op in ("rsub", "rpow"):
            raise SpecError(f"{self.op} ({SYMBOLS[self.op].format('value')}) has no in-place form in torch; "
                            f"use inplace=False")

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.inputs[0] or (self.op == "pow" and self.value == 0):
            return 0
        return batch * prod(x) * _BACKWARD[self.op]

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if self.op == "rpow":
            return (Saved("input"), Saved("output", "output"))
        if self.op != "pow":
            return ()
        return super().saved_tensors(x, y, grads, ctx)

    def label(self) -> str:
        return SYMBOLS[self.op].format(self.value)
