"""Per-sample elementwise calls that stop timm models, as alexcost layers: ``torch.rsqrt`` (`Rsqrt`), ``torch.sqrt`` (`Sqrt`),
``torch.sin`` and ``torch.cos`` (`Sin`, `Cos`),
``torch.square`` (``x ** 2``, a `Scalar`), ``torch.clamp`` with number bounds (`Clamp`),
``torch.addcmul`` (a `Mul` then an `Add` in place into the product: the same ops, one new tensor, the same
tensors kept as torch's single kernel), and ``x.device`` of an activation (a marker, `DEVICE`: alexcost
does not know the device; it is read only where a use does not depend on it). Tensors made from constants
(``torch.arange``, ``torch.zeros``, ...) are read as constants of the module (`created`). Handlers as in
`alexcost.torch_bridge.ops`, which adds `FUNCTIONS` and `METHODS` to its tables. Imports torch.
"""

from __future__ import annotations

import torch

from ..layers import Add, Clamp, Cos, Exp, Mul, Rsqrt, Scalar, Sin, Sqrt
from .calls import REQUIRED, bind, unary


class _Unknown:
    """What an activation holds that alexcost does not know without data (its device): any
    computation with it is refused (an exception the reader turns into a refusal naming the node)."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"the input's {self.what} (unknown without data)"

    def __eq__(self, other):
        raise TypeError(f"alexcost does not know the input's {self.what} without data")

    __ne__ = __eq__
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError(f"alexcost does not know the input's {self.what} without data")


DEVICE = _Unknown("device")
"""What ``x.device`` of an activation reads as."""

def device_attribute(handler):
    """``getattr`` (``handler``), with ``x.device`` of an activation, or of a tensor the module holds, read as
    `DEVICE` (the module's device, which alexcost does not follow)."""
    def handle(r, node, args, kwargs):
        if len(args) == 2 and r.is_tensor(args[0]) and args[1] == "device":
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
    """``torch.<name>(...)``, a tensor made from constants (``torch.arange``, ``torch.zeros``): its sizes and
    arguments must be fixed values (not the batch size, no tensor); the tensor is made on the meta device
    (its shape and dtype: its values never matter) and read as a constant of the module, as fx's own
    constants are (a `Constant` where an operand: made once per forward pass, neither a parameter nor a
    buffer)."""
    def handle(r, node, args, kwargs):
        args = r.constant(tuple(args), node, "size")
        kwargs = {k: r.constant(v, node, k) for k, v in kwargs.items()}
        if kwargs.get("requires_grad") or kwargs.get("out") is not None:
            r.refuse(node, "creates a tensor with requires_grad or out=; alexcost reads a tensor made from "
                           "constants without them")
        try:
            tensor = getattr(torch, name)(*args, **{**kwargs, "device": "meta"})
        except (RuntimeError, TypeError, ValueError) as err:
            r.refuse(node, f"fails on these arguments: {err}")
        return r.made_constant(tensor, node)
    return handle


def index_arithmetic(r, node, args, kwargs, tensors: list):
    """A call whose tensors (``tensors``) are all made from constants, and whose result serves only to index
    (timm's MViT v2 computes its relative positions as ``torch.arange(q).unsqueeze(-1) * ratio - ...``, then
    gathers ``table[dist.long()]``): run on the meta device, its result a tensor made from constants. An index's
    arithmetic is no count alexcost keeps (nor does FlopCounterMode); a result read otherwise is not taken here."""
    from torch.fx.node import map_aggregate

    def meta(value):
        return value.tensor if r.is_attribute(value) else value

    args, kwargs = map_aggregate(args, meta), {k: map_aggregate(v, meta) for k, v in kwargs.items()}
    if "device" in kwargs:
        kwargs["device"] = "meta"
    try:
        with torch.device("meta"):
            value = getattr(args[0], node.target)(*args[1:], **kwargs) if node.op == "call_method" else \
                node.target(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - torch fails the same way on these tensors
        r.refuse(node, f"fails on {', '.join(r.show(t) for t in tensors)}: {type(err).__name__}: {err}")
    if not isinstance(value, torch.Tensor):
        r.refuse(node, f"returns {type(value).__name__} from tensors made from constants; alexcost reads such "
                       f"index arithmetic when it returns one tensor")
    return r.made_constant(value, node)


def indexes_only(node, memo: dict) -> bool:
    """Does every use of ``node``'s value end as the index of ``table[index]`` (through other calls)?"""
    import operator

    found = memo.get(node)
    if found is None:
        memo[node] = False  # (a cycle: no)
        found = bool(node.users) and all(
            (user.target is operator.getitem and user.args[0] is not node) or
            (user.op in ("call_function", "call_method") and user.target is not operator.getitem and
             indexes_only(user, memo)) for user in node.users)
        memo[node] = found
    return found


def leaf_of_constants(r, node, args, kwargs):
    """A Python function fx keeps whole (``torch.fx.wrap``: timm's ``_build_grid``), called with constants alone
    (no tensor, not the batch size): the tensor it returns, made on the meta device, read as a tensor made from
    constants (`created`); what it computes inside is the making of that tensor (alexcost does not see inside
    it), where torch's FlopCounterMode counts nothing in it. A function given a tensor, or returning no tensor,
    or counted FLOPs, is refused."""
    args = r.constant(tuple(args), node, "argument")
    kwargs = {k: r.constant(v, node, k) for k, v in kwargs.items()}
    if "device" in kwargs:
        kwargs["device"] = "meta"
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.device("meta"), FlopCounterMode(display=False) as counter:
            tensor = node.target(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - torch would fail the same way on these arguments
        r.refuse(node, f"fails on these arguments: {type(err).__name__}: {err}")
    if counter.get_total_flops():
        r.refuse(node, f"computes {counter.get_total_flops()} FLOPs inside a function fx keeps whole, which alexcost "
                       f"does not see; it reads such a function of constants only where torch counts none")
    if not isinstance(tensor, torch.Tensor) or tensor.device.type != "meta":
        r.refuse(node, f"returns {type(tensor).__name__} off the meta device; alexcost reads a function fx keeps "
                       f"whole, called with constants, where it returns one tensor made on the device it is given")
    return r.made_constant(tensor, node)


def converted(r, node, args, kwargs):
    """``t.to(dtype)``, ``t.to(device)`` where the device is the module's own (an activation's, or that of the
    tensors the module holds: the tensor stays where it is): of a tensor made from constants, that tensor in
    the dtype, still a constant (a conversion costs no arithmetic); of any other tensor, the tensor itself
    where the dtype is float32 in a float32 module (`alexcost.torch_bridge.misc.as_float32`, as
    ``x.float()``); else refused."""
    from .misc import as_float32

    value, rest = args[0], [r.constant(a, node, "argument") for a in args[1:]]
    more = {k: r.constant(v, node, k) for k, v in kwargs.items()}
    dtypes = [v for v in (*rest, *more.values()) if isinstance(v, torch.dtype)]
    others = [r.show(v) for v in rest if not isinstance(v, torch.dtype) and not _own_device(r, v)] + \
        [f"{k}={r.show(v)}" for k, v in more.items()
         if k != "dtype" and not (k == "device" and _own_device(r, v)) and v not in (False, None)]
    if others or len(dtypes) > 1:
        r.refuse(node, f"converts with {', '.join(others) or dtypes}; alexcost reads x.to(dtype) and x.to(device) "
                       f"to the module's own device only")
    dtype = dtypes[0] if dtypes else None
    if r.is_attribute(value) and value.kind == "constant":
        return value if dtype is None or dtype is value.tensor.dtype else r.made_constant(value.tensor.to(dtype), node)
    if dtype is None:
        return r.tensor(value, node)
    if dtype is torch.float32:
        return as_float32(r, node, value)
    r.refuse(node, f"converts {r.show(value)} to {dtype}; alexcost reads x.to(dtype) of a tensor made from "
                   f"constants, or to float32 in a float32 module")


def _own_device(r, device) -> bool:
    """Is ``device`` the module's: an activation's (`DEVICE`), or the one device every tensor it holds is on?"""
    if device is DEVICE:
        return True
    if not isinstance(device, (str, torch.device)):
        return False
    try:
        device = torch.device(device)
    except RuntimeError:
        return False
    held = {t.device for t in (*r.root.parameters(), *r.root.buffers())}
    return len(held) == 1 and (device in held or (device.index is None and next(iter(held)).type == device.type))


def typed_as(r, node, args, kwargs):
    """``x.type_as(other)``: ``x.to(other.dtype)`` (`converted`; an activation's dtype is float32 in a float32
    module, `alexcost.torch_bridge.misc.float32`)."""
    from .misc import float32

    b = bind(r, node, (("input", REQUIRED), ("other", REQUIRED)), args, kwargs)
    other = b["other"]
    if not r.is_tensor(other):
        r.refuse(node, f"converts to the type of {r.show(other)}, not a tensor")
    dtype = other.tensor.dtype if r.is_attribute(other) else float32(r, node, "converts to an activation's type")
    return converted(r, node, (b["input"], dtype), {})


FUNCTIONS = {torch.rsqrt: unary(Rsqrt), torch.sqrt: unary(Sqrt), torch.exp: unary(Exp), torch.sin: unary(Sin), torch.cos: unary(Cos),
             torch.addcmul: addcmul, torch.square: square(False),
             torch.square_: square(True), torch.clamp: clamp(False), torch.clip: clamp(False),
             torch.clamp_: clamp(True), torch.clip_: clamp(True), torch.clamp_min: clamp(False, "min"),
             torch.clamp_max: clamp(False, "max"),
             **{getattr(torch, name): created(name) for name in ("arange", "zeros", "ones", "full", "empty",
                                                                 "linspace", "eye", "tensor", "rand", "randn")}}
"""Functions by the object fx records as a call_function node's target."""

METHODS = {"to": converted, "type_as": typed_as, "rsqrt": unary(Rsqrt), "sqrt": unary(Sqrt), "exp": unary(Exp), "sin": unary(Sin),
           "cos": unary(Cos), "addcmul": addcmul, "square": square(False), "square_": square(True),
           "clamp": clamp(False), "clip": clamp(False), "clamp_": clamp(True), "clip_": clamp(True),
           **{f"clamp_{b}{i}": clamp(i == "_", b) for b in ("min", "max") for i in ("", "_")}}
"""Tensor methods by name."""
