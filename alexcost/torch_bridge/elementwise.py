"""Per-sample elementwise calls that stop timm models, as alexcost layers: ``torch.rsqrt`` (`Rsqrt`), ``torch.sqrt`` (`Sqrt`),
``torch.square`` (``x ** 2``, a `Scalar`), ``torch.clamp`` with number bounds (`Clamp`),
``torch.addcmul`` (a `Mul` then an `Add` in place into the product: the same ops, one new tensor, the same
tensors kept as torch's single kernel), and ``x.device`` of an activation (a marker, `DEVICE`: alexcost
does not know the device; it is read only where a use does not depend on it). Tensors made from constants
(``torch.arange``, ``torch.zeros``, ...) are refused, saying why. Handlers as in
`alexcost.torch_bridge.ops`, which adds `FUNCTIONS` and `METHODS` to its tables. Imports torch.
"""

from __future__ import annotations

import torch

from ..layers import Add, Clamp, Exp, Mul, Rsqrt, Scalar, Sqrt
from .calls import REQUIRED, bind, unary


class _Device:
    """``x.device`` of an activation: unknown without data. Any computation with it is refused (an
    exception the reader turns into a refusal naming the node)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "the input's device (unknown without data)"

    def __eq__(self, other):
        raise TypeError("alexcost does not know the input's device without data")

    __ne__ = __eq__
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError("alexcost does not know the input's device without data")


DEVICE = _Device()
"""What ``x.device`` of an activation reads as."""


def device_attribute(handler):
    """``getattr`` (``handler``), with ``x.device`` of an activation read as `DEVICE`."""
    def handle(r, node, args, kwargs):
        if len(args) == 2 and r.is_activation(args[0]) and args[1] == "device":
            return DEVICE
        return handler(r, node, args, kwargs)
    return handle


def addcmul(r, node, args, kwargs):
    """``torch.addcmul(input, tensor1, tensor2)`` (``value=1``): ``input + tensor1 * tensor2`` as torch's one
    kernel computes it, read as a `Mul` of ``tensor1`` and ``tensor2`` then an `Add` of ``input`` in place
    into the product; the product must have the result's shape (else it would be a tensor torch never
    makes)."""
    b = bind(r, node, (("input", REQUIRED), ("tensor1", REQUIRED), ("tensor2", REQUIRED), ("value", 1)),
             args, kwargs)
    value = r.constant(b["value"], node, "value")
    if isinstance(value, bool) or value != 1:
        r.refuse(node, f"value={value!r} is not read by alexcost (addcmul with value=1 only)")
    values = [b[name] for name in ("input", "tensor1", "tensor2")]
    for name, v in zip(("input", "tensor1", "tensor2"), values):
        if not r.is_tensor(v):
            r.refuse(node, f"its {name} is {r.show(v)}; alexcost reads addcmul of three tensors only")
    if not (r.is_activation(values[1]) or r.is_activation(values[2])):
        r.refuse(node, f"multiplies {r.show(values[1])} by {r.show(values[2])}, no activation; alexcost reads "
                       f"addcmul where tensor1 or tensor2 is an activation (a product of parameters alone is "
                       f"computed once per forward pass, not per sample)")
    base, t1, t2 = (r.operand(v, node) for v in values)
    product = r.build(node, Mul, {}).output_shape((t1.shape, t2.shape))
    whole = r.build(node, Add, {}).output_shape((base.shape, t1.shape, t2.shape))
    if tuple(product) != tuple(whole):
        r.refuse(node, f"its product tensor1 * tensor2 {list(product)} is broadcast to {list(whole)} by input; "
                       f"alexcost reads addcmul only where the product has the result's shape")
    made = r.emit(node, r.build(node, Mul, {}), [t1, t2])
    return r.emit(node, r.build(node, Add, {"inplace": True}), [made, base])


def square(inplace: bool):
    """``torch.square(x)``, ``x.square()`` (``x.square_()`` in place): torch computes it as ``x ** 2``
    (``pow`` with the exponent 2, its backward and what it keeps alike), so a `Scalar` ``pow`` 2."""
    def handle(r, node, args, kwargs):
        x = r.tensor(bind(r, node, (("input", REQUIRED),), args, kwargs)["input"], node, Scalar)
        return r.emit(node, r.build(node, Scalar, {"op": "pow", "value": 2, "inplace": inplace}), [x])
    return handle


def clamp(inplace: bool, bound: str | None = None):
    """``torch.clamp(x, min, max)`` (``clip``, ``x.clamp_``; ``x.clamp_min(m)`` and ``x.clamp_max(m)`` with
    ``bound``) with Python-number bounds: a `Clamp`. A tensor bound is refused."""
    spec = (("input", REQUIRED), (bound, REQUIRED)) if bound else (("input", REQUIRED), ("min", None), ("max", None))

    def handle(r, node, args, kwargs):
        b = bind(r, node, spec, args, kwargs)
        x = r.tensor(b.pop("input"), node, Clamp)
        for name, value in b.items():
            if r.is_tensor(value):
                r.refuse(node, f"its {name} is {r.show(value)}; alexcost reads clamp with Python-number bounds only")
            b[name] = r.constant(value, node, name)
        return r.emit(node, r.build(node, Clamp, {**b, "inplace": inplace}), [x])
    return handle


def created(name: str):
    """``torch.<name>(...)``, a tensor made from constants (``torch.arange``, ``torch.zeros``): refused, saying
    why: what is computed from it alone (a position table) runs once per forward pass, not per sample."""
    def handle(r, node, args, kwargs):
        r.refuse(node, f"creates a tensor from constants (torch.{name}), not from the input: what is computed from "
                       f"it alone (a position table, a mask) runs once per forward pass, not per sample, and "
                       f"alexcost's per-sample counts cannot hold it")
    return handle


FUNCTIONS = {torch.rsqrt: unary(Rsqrt), torch.sqrt: unary(Sqrt), torch.exp: unary(Exp), torch.addcmul: addcmul, torch.square: square(False),
             torch.square_: square(True), torch.clamp: clamp(False), torch.clip: clamp(False),
             torch.clamp_: clamp(True), torch.clip_: clamp(True), torch.clamp_min: clamp(False, "min"),
             torch.clamp_max: clamp(False, "max"),
             **{getattr(torch, name): created(name) for name in ("arange", "zeros", "ones", "full", "empty",
                                                                 "linspace", "eye", "tensor", "rand", "randn")}}
"""Functions by the object fx records as a call_function node's target."""

METHODS = {"rsqrt": unary(Rsqrt), "sqrt": unary(Sqrt), "exp": unary(Exp), "addcmul": addcmul, "square": square(False), "square_": square(True),
           "clamp": clamp(False), "clip": clamp(False), "clamp_": clamp(True), "clip_": clamp(True),
           **{f"clamp_{b}{i}": clamp(i == "_", b) for b in ("min", "max") for i in ("", "_")}}
"""Tensor methods by name."""
