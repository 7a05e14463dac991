"""What each traced call is, as an alexcost layer: torch.nn modules, functions and tensor methods.

A handler gets the reader (see `alexcost.torch_bridge.reader`), the fx node and its arguments with every
traced value replaced by what the reader knows of it: an activation (a per-sample shape), a
parameter or buffer, the batch size (a marker: it is not known), or a plain Python value.
It returns the node's value, emitting layers through the reader. Anything it cannot read
exactly, it refuses. What handlers share is in `alexcost.torch_bridge.calls`; the calls of dense and
video models (convolutions in 1 to 3 dimensions, 3-D pools, the norms, interpolation, padding) are
in `alexcost.torch_bridge.dense`, whose table this one takes in. Imports torch.
"""

from __future__ import annotations

import math
import operator
from dataclasses import fields

import torch
import torch.fx
import torch.nn.functional as F

from ..errors import SpecError
from ..layers import (GELU, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Add, AvgPool2d, Cat, Chunk, Contiguous, Div,
                     Dropout, Dropout2d, Hardsigmoid, Hardswish, LayerNorm, LeakyReLU, Linear, MaxPool2d,
                     Mean, Mul, Pad, ParameterShape, Permute, ReLU, ReLU6, Reshape, Scalar, SiLU, Sigmoid, Softmax,
                     Split, StochasticDepth, Sub, Tanh, Transpose, View)
from ..layers import Clone, UnfoldView
from . import per_pass
from .params import gathered_parameter, gathered_view, reshaped_parameter
from .calls import REQUIRED, bind, unary
from .calls import fixed_args as _fixed, weight_arg as _weight
from .dense import CONVOLUTIONS, module_conv, padding_module
from .dense import FUNCTIONS as DENSE_FUNCTIONS
from .attention import FUNCTIONS as ATTENTION_FUNCTIONS, METHODS as ATTENTION_METHODS, Token, token_attribute
from .misc import FUNCTIONS as MISC_FUNCTIONS, METHODS as MISC_METHODS, float32
from .moves import FUNCTIONS as MOVES_FUNCTIONS, METHODS as MOVES_METHODS, Selections, moved_permute
from .stacks import FUNCTIONS as STACK_FUNCTIONS, reduced
from .elementwise import FUNCTIONS as ELEMENTWISE_FUNCTIONS, METHODS as ELEMENTWISE_METHODS, device_attribute
from .fold import flatten, mark, refold, repeat_interleave
from .mvit import functions as mvit_functions, tensor_split


def _dims(r, node, args, kwargs, name: str):
    """``x.permute(0, 2, 1)`` or ``x.permute((0, 2, 1))``: the dims as one tuple."""
    x, *rest = args
    if kwargs:
        if rest or set(kwargs) != {name}:
            r.refuse(node, f"takes its {name} positionally or as {name}=")
        rest = [kwargs[name]]
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        rest = list(rest[0])
    return x, tuple(r.constant(d, node, name, batch_ok=(name == "shape")) for d in rest)


def permute(r, node, args, kwargs):
    """``x.permute(dims)``; one that moves the batch is read where its uses put it back (`moves`)."""
    x, dims = _dims(r, node, args, kwargs, "dims")
    x = r.tensor(x, node)
    if dims and dims[0] not in (0, -len(x.shape) - 1):
        moved = moved_permute(r, node, x, dims)
        if moved is not None:
            return moved
    return r.emit(node, r.build(node, Permute, {"dims": dims}), [x])


def reshape(kind):
    """``x.view(sizes)``, ``x.reshape(sizes)``: per sample, the shape `fold.refold` gives (the batch kept,
    folded or unfolded)."""
    def handle(r, node, args, kwargs):
        x, sizes = _dims(r, node, args, kwargs, "shape")
        if isinstance(x, Selections):
            return x.reshaped(node, sizes)
        x = r.tensor(x, node)
        if not sizes:
            r.refuse(node, "gives no sizes")
        shape, k = refold(r, node, x, sizes)
        return mark(r, r.emit(node, r.build(node, kind, {"shape": shape}), [x]), k)
    return handle


def reshape_as(kind):
    """``x.view_as(other)``, ``x.reshape_as(other)``: ``x.view(other.shape)`` (`reshape`), the batch, folded or
    not, as ``other`` has it; of a tensor computed once per pass, a parameter's or buffer's shape (a standardised
    weight viewed as the weight)."""
    def handle(r, node, args, kwargs):
        bound = bind(r, node, (("input", REQUIRED), ("other", REQUIRED)), args, kwargs)
        other, value = bound["other"], bound["input"]
        once = r.is_activation(value) and isinstance(value.shape, ParameterShape)
        if once and r.is_attribute(other) and other.kind in ("parameter", "buffer"):
            return METHODS[kind.__name__.lower()](r, node, (value, tuple(other.tensor.shape)), {})
        if not r.is_activation(other) or isinstance(other.shape, ParameterShape):
            r.refuse(node, f"takes the shape of {r.show(other)}; alexcost reads it from an activation only")
        return METHODS[kind.__name__.lower()](r, node, (bound["input"], r.sizes(other, node)), {})
    return handle


def mean(r, node, args, kwargs):
    bound = bind(r, node, (("input", REQUIRED), ("dim", None), ("keepdim", False), ("dtype", None)), args, kwargs)
    x = r.tensor(bound["input"], node)
    if bound["dim"] is None:
        r.refuse(node, "averages over every dimension, the batch's too; alexcost analyses each sample on its own")
    _fixed(r, node, bound, {"dtype": None})
    dim = r.constant(bound["dim"], node, "dim")
    return r.emit(node, r.build(node, Mean, {"dim": dim, "keepdim": r.constant(bound["keepdim"], node, "keepdim")}),
                  [x])


def contiguous(r, node, args, kwargs):
    bound = bind(r, node, (("input", REQUIRED), ("memory_format", torch.contiguous_format)), args, kwargs)
    _fixed(r, node, bound, {"memory_format": torch.contiguous_format})
    return r.emit(node, Contiguous(), [r.tensor(bound["input"], node)])


def cat(r, node, args, kwargs, name="tensors", dim="dim"):
    bound = bind(r, node, ((name, REQUIRED), (dim, 0)), args, kwargs)
    tensors = bound[name]
    if not isinstance(tensors, (list, tuple)) or not tensors:
        r.refuse(node, "concatenates something other than a list of tensors")
    xs = [r.operand(t.value, node) if isinstance(t, Token) else r.tensor(t, node) for t in tensors]  # class tokens
    d = r.constant(bound[dim], node, dim)
    if len(xs) == 1:  # torch.cat([x], dim): a copy of x, whatever the dim (checked as torch would)
        r.build(node, Cat, {"dim": d}).output_shape((xs[0].shape, xs[0].shape))
        return r.emit(node, Clone(), xs)
    return r.emit(node, r.build(node, Cat, {"dim": d}), xs)


def split(r, node, args, kwargs, size_name="split_size_or_sections"):
    bound = bind(r, node, (("tensor", REQUIRED), (size_name, REQUIRED), ("dim", 0)), args, kwargs)
    sizes = r.constant(bound[size_name], node, size_name)
    return r.emit(node, r.build(node, Split, {"split_size_or_sections": sizes,
                                              "dim": r.constant(bound["dim"], node, "dim")}),
                  [r.tensor(bound["tensor"], node)])


def arithmetic(op: str, kind=None, inplace: bool = False, alpha: bool = False, names=("input", "other"), fixed=()):
    """``a <op> b`` in any spelling (``a + b``, ``torch.add(a, b)``, ``a.add_(b)``, ``a += b``): of two
    tensors, the merge ``kind`` (Add, Mul; refused without one); of a tensor and a Python number, a
    `Scalar` (``c - x`` is ``rsub``, ``c ** x`` ``rpow``, ``torch.div(x, c, rounding_mode='floor')``
    ``floordiv``); of plain values, Python's arithmetic. ``fixed``: arguments that
    must keep their defaults (``alpha=1``, ``rounding_mode=None``)."""
    spec = ((names[0], REQUIRED), (names[1], REQUIRED)) + ((("alpha", 1),) if alpha else ()) + tuple(fixed)

    def handle(r, node, args, kwargs):
        bound = bind(r, node, spec, args, kwargs)
        _fixed(r, node, bound, {"alpha": 1} if alpha else {})
        a, b = bound[names[0]], bound[names[1]]
        floor = op == "div" and not inplace and r.is_tensor(a) and not r.is_tensor(b) and \
            r.constant(bound.get("rounding_mode"), node, "rounding_mode") == "floor"  # torch.div(x, c, rounding_mode='floor'): a Scalar floordiv
        _fixed(r, node, bound, {k: v for k, v in fixed if not (floor and k == "rounding_mode")})
        other = b if isinstance(a, Token) else a
        if isinstance(a, Token) != isinstance(b, Token) and kind is not None and r.is_activation(other) and \
                other.shape.__class__ is not ParameterShape:  # CaiT's class token expanded, then added to: broadcast
            a, b = (a.value if isinstance(a, Token) else a), (b.value if isinstance(b, Token) else b)
        if isinstance(a, Token) or isinstance(b, Token):
            r.refuse(node, f"reads {a if isinstance(a, Token) else b}; alexcost reads a parameter expanded over "
                           f"the batch as a class token given to torch.cat, or as an operand of arithmetic with an "
                           f"activation")
        if not (r.is_tensor(a) or r.is_tensor(b)):
            return r.pure(node, args, kwargs)
        if r.is_tensor(a) and r.is_tensor(b):
            if kind is None:
                r.refuse(node, f"computes {op} of two tensors ({r.show(a)}, {r.show(b)}); alexcost has no layer "
                               f"kind for it (Add, Sub, Mul and Div only)")
            if kind in (Mul, Div) and any(r.is_attribute(v) and v.gathered for v in (a, b)):
                r.refuse(node, f"multiplies by {r.show(b if r.is_attribute(b) and b.gathered else a)} gathered by an "
                               f"index; alexcost reads a gathered table only as an operand of +")
            if inplace and not r.is_activation(a):
                r.refuse(node, f"writes its result into {r.show(a)}; alexcost reads in-place arithmetic on "
                               f"activations only")
            return r.emit(node, r.build(node, kind, {"inplace": inplace}), [r.operand(a, node), r.operand(b, node)])
        return _with_number(r, node, "floordiv" if floor else op, inplace, a, b, names)
    return handle


_REVERSED = {"add": "add", "mul": "mul", "sub": "rsub", "pow": "rpow"}
"""``c <op> x`` with the number first, as a `Scalar` op."""


def _with_number(r, node, op, inplace, a, b, names):
    """A tensor and a Python number: one `Scalar` on the tensor (an activation)."""
    first = r.is_tensor(a)
    x, number = (a, b) if first else (b, a)
    number = r.constant(number, node, names[1] if first else names[0])
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        r.refuse(node, f"computes {op} of a tensor and {r.show(number)}; alexcost reads arithmetic with a Python "
                       f"int or float only")
    if not first:
        if op not in _REVERSED:
            r.refuse(node, f"computes {number!r} / a tensor (the number first); "
                           f"alexcost reads {op} with the tensor first only")
        op, inplace = _REVERSED[op], False  # ``c += x`` on a Python number makes a new tensor
    x = r.tensor(x, node, Scalar)
    return r.emit(node, r.build(node, Scalar, {"op": op, "value": number, "inplace": inplace}), [x])


def negative(r, node, args, kwargs):
    """``-x``, ``torch.neg(x)``, ``x.neg()`` of a tensor: a `Scalar` ``mul`` by -1 (torch's negation is one op
    per element, keeps nothing, and its backward negates the gradient, as the product by -1's does); of a
    plain value, Python's."""
    x = bind(r, node, (("input", REQUIRED),), args, kwargs)["input"]
    if not r.is_tensor(x):
        return r.pure(node, args, kwargs)
    return r.emit(node, r.build(node, Scalar, {"op": "mul", "value": -1}), [r.tensor(x, node, Scalar)])


def size(r, node, args, kwargs):
    bound = bind(r, node, (("input", REQUIRED), ("dim", None)), args, kwargs)
    x, d = bound["input"], bound["dim"]
    full = r.sizes(x, node)
    if d is None:
        return full
    d = r.constant(d, node, "dim")
    if not isinstance(d, int) or not -len(full) <= d < len(full):
        r.refuse(node, f"dim={d!r} is out of range for a tensor of {len(full)} dimensions")
    return full[d]


def dim(r, node, args, kwargs):
    bound = bind(r, node, (("input", REQUIRED),), args, kwargs)
    return len(r.sizes(bound["input"], node))


def get_attribute(r, node, args, kwargs):
    """``x.shape``, ``x.ndim`` (fx records them as calls of ``getattr``); attributes of plain values."""
    obj, name = args[0], args[1]
    if r.is_tensor(obj):
        if name == "shape":
            return r.sizes(obj, node)
        if name == "ndim":
            return len(r.sizes(obj, node))
        if r.is_attribute(obj) and name in ("dtype", "device", "requires_grad"):
            return getattr(obj.tensor, name)
        if name == "dtype":
            return float32(r, node, "reads the tensor's dtype")
        r.refuse(node, f"reads the tensor's {name!r}, which alexcost does not know without data")
    return r.pure(node, args, kwargs)


def check_assert(r, node, args, kwargs):
    """``torch._assert(condition, message)`` on sizes: checked now, as torch would."""
    condition = r.constant(args[0] if args else kwargs.get("condition"), node, "condition")
    if not condition:
        message = args[1] if len(args) > 1 else kwargs.get("message", "")
        r.refuse(node, f"fails on this input shape: {message}")
    return None


def check_none(r, node, args, kwargs):
    """fx's guard for a forward argument fixed at its default None."""
    if args[0] is not None:
        r.refuse(node, f"{args[1] if len(args) > 1 else 'an argument fixed at None is not None'}")
    return None


def linear(r, node, args, kwargs):
    b = bind(r, node, (("input", REQUIRED), ("weight", REQUIRED), ("bias", None)), args, kwargs)
    x = r.tensor(b["input"], node)
    w = b["weight"]
    if per_pass.given_weight(r, w):
        return per_pass.multiplied(r, node, x, w, _weight(r, node, b["bias"], "bias", 1))  # a buffer's weight
    if r.is_activation(b["bias"]) and b["bias"].shape.__class__ is ParameterShape:  # computed once per pass
        weight = _weight(r, node, b["weight"], "weight", 2)
        linear = r.build(node, Linear, dict(in_features=weight.tensor.shape[1], out_features=weight.tensor.shape[0],
                                            bias=False))
        return per_pass.linear_with_bias(r, node, x, linear, (("weight", weight),), b["bias"])
    weight, bias = _weight(r, node, b["weight"], "weight", 2), _weight(r, node, b["bias"], "bias", 1)
    return r.emit(node, _linear(r, node, weight, bias), [x], params=(("weight", weight), ("bias", bias)))


def _linear(r, node, weight, bias):
    """The Linear that ``F.linear`` computes with ``weight`` (its shape gives the features)."""
    out, features = weight.tensor.shape
    return r.build(node, Linear, dict(in_features=features, out_features=out, bias=bias is not None))


def layer_norm(r, node, args, kwargs):
    spec = (("input", REQUIRED), ("normalized_shape", REQUIRED), ("weight", None), ("bias", None), ("eps", 1e-5))
    b = bind(r, node, spec, args, kwargs)
    x = r.tensor(b["input"], node)
    shape = r.constant(b["normalized_shape"], node, "normalized_shape")
    rank = 1 if isinstance(shape, int) else len(shape)
    weight, bias = _weight(r, node, b["weight"], "weight", rank), _weight(r, node, b["bias"], "bias", rank)
    if weight is None and bias is not None:
        r.refuse(node, "has a bias but no weight; alexcost's LayerNorm has a bias only with a weight")
    layer = r.build(node, LayerNorm, dict(normalized_shape=shape, eps=r.constant(b["eps"], node, "eps"),
                                          elementwise_affine=weight is not None, bias=bias is not None))
    for p in (weight, bias):
        if p is not None and tuple(p.tensor.shape) != layer.normalized_shape:
            r.refuse(node, f"{p.path!r} has shape {list(p.tensor.shape)}, not normalized_shape "
                           f"{list(layer.normalized_shape)}")
    return r.emit(node, layer, [x], params=(("weight", weight), ("bias", bias)))


# -- the tables ------------------------------------------------------------------------------------

_INPLACE = (("inplace", False),)
_POOL = (("kernel_size", REQUIRED), ("stride", None), ("padding", 0))

def _stochastic_depth():
    from torchvision.ops.stochastic_depth import stochastic_depth

    return stochastic_depth


FUNCTIONS = {
    torch.add: arithmetic("add", Add, alpha=True), torch.mul: arithmetic("mul", Mul),
    torch.multiply: arithmetic("mul", Mul), torch.sub: arithmetic("sub", Sub, alpha=True),
    torch.subtract: arithmetic("sub", Sub, alpha=True),
    torch.div: arithmetic("div", Div, fixed=(("rounding_mode", None),)),
    torch.divide: arithmetic("div", Div, fixed=(("rounding_mode", None),)), torch.true_divide: arithmetic("div", Div),
    torch.pow: arithmetic("pow", names=("input", "exponent")),
    torch.cat: cat, torch.concat: cat, operator.neg: negative, torch.neg: negative, torch.negative: negative,
    torch.concatenate: lambda r, node, args, kwargs: cat(r, node, args, kwargs, dim="axis"),
    torch.flatten: flatten, torch.repeat_interleave: repeat_interleave,
    torch.reshape: reshape(Reshape),
    torch.permute: permute,
    torch.transpose: unary(Transpose, (("dim0", REQUIRED), ("dim1", REQUIRED))),
    torch.swapaxes: unary(Transpose, (("axis0", REQUIRED), ("axis1", REQUIRED)),
                          rename={"axis0": "dim0", "axis1": "dim1"}),
    torch.swapdims: unary(Transpose, (("dim0", REQUIRED), ("dim1", REQUIRED))),
    torch.chunk: unary(Chunk, (("chunks", REQUIRED), ("dim", 0))),
    torch.split: split,
    torch.mean: mean,
    torch.relu: unary(ReLU), F.relu: unary(ReLU, _INPLACE), torch.relu_: unary(ReLU, preset={"inplace": True}),
    F.relu6: unary(ReLU6, _INPLACE), F.silu: unary(SiLU, _INPLACE), F.hardswish: unary(Hardswish, _INPLACE),
    F.hardsigmoid: unary(Hardsigmoid, _INPLACE), F.gelu: unary(GELU, (("approximate", "none"),)),
    F.leaky_relu: unary(LeakyReLU, (("negative_slope", 0.01), ("inplace", False))),
    torch.sigmoid: unary(Sigmoid), F.sigmoid: unary(Sigmoid), torch.tanh: unary(Tanh), F.tanh: unary(Tanh),
    F.softmax: unary(Softmax, (("dim", None), ("_stacklevel", 3), ("dtype", None)), fixed={"dtype": None},
                     drop=("_stacklevel",)), torch.softmax: unary(Softmax, (("dim", REQUIRED), ("dtype", None)), fixed={"dtype": None}),
    F.dropout: unary(Dropout, (("p", 0.5), ("training", True), ("inplace", False)), fixed={"training": False}),
    F.dropout2d: unary(Dropout2d, (("p", 0.5), ("training", True), ("inplace", False)),
                       fixed={"training": False}),
    F.adaptive_avg_pool2d: unary(AdaptiveAvgPool2d, (("output_size", REQUIRED),)),
    F.adaptive_max_pool2d: unary(AdaptiveMaxPool2d, (("output_size", REQUIRED), ("return_indices", False))),
    F.avg_pool2d: unary(AvgPool2d, (*_POOL, ("ceil_mode", False), ("count_include_pad", True),
                                    ("divisor_override", None))),
    F.max_pool2d: unary(MaxPool2d, (*_POOL, ("dilation", 1), ("ceil_mode", False), ("return_indices", False))),
    F.linear: linear, F.layer_norm: layer_norm,
    torch.clone: unary(Clone, (("memory_format", torch.preserve_format),),
                       fixed={"memory_format": torch.preserve_format}),
    getattr: get_attribute, torch._assert: check_assert, torch.fx._symbolic_trace._assert_is_none: check_none,
    **DENSE_FUNCTIONS, **ATTENTION_FUNCTIONS, **MISC_FUNCTIONS, **MOVES_FUNCTIONS, **ELEMENTWISE_FUNCTIONS,
}
"""Functions by the object fx records as a call_function node's target."""

FUNCTIONS.update(STACK_FUNCTIONS)
FUNCTIONS[torch.sum], FUNCTIONS[torch.mean] = reduced("sum", FUNCTIONS[torch.sum]), reduced("mean", FUNCTIONS[torch.mean])
for _op, _kind, _plain, _inplace in (("add", Add, operator.add, operator.iadd),
                                     ("mul", Mul, operator.mul, operator.imul),
                                     ("sub", Sub, operator.sub, operator.isub),
                                     ("div", Div, operator.truediv, operator.itruediv),
                                     ("pow", None, operator.pow, operator.ipow)):
    FUNCTIONS[_plain], FUNCTIONS[_inplace] = arithmetic(_op, _kind), arithmetic(_op, _kind, inplace=True)

try:
    FUNCTIONS[_stochastic_depth()] = unary(StochasticDepth, (("p", REQUIRED), ("mode", REQUIRED),
                                                             ("training", True)), fixed={"training": False})
except ImportError:  # torchvision is optional
    pass

try:
    from .swin import functions as _swin

    FUNCTIONS.update(_swin())
except ImportError:  # torchvision is optional
    pass

PURE = frozenset({operator.getitem, operator.floordiv, operator.mod, operator.neg, operator.pos, operator.abs,
                  operator.eq, operator.ne, operator.lt,
                  operator.le, operator.gt, operator.ge, operator.not_, operator.and_, operator.or_,
                  operator.xor, operator.invert, operator.truth, operator.contains, operator.index,
                  *(f for f in vars(math).values() if callable(f))})
"""Python's operators and ``math`` functions (fx records both when a size is traced): evaluated
on plain values, refused on tensors."""

METHODS = {
    "neg": negative, "negative": negative,
    "add": arithmetic("add", Add, alpha=True), "add_": arithmetic("add", Add, inplace=True, alpha=True),
    "mul": arithmetic("mul", Mul), "mul_": arithmetic("mul", Mul, inplace=True),
    "multiply": arithmetic("mul", Mul), "multiply_": arithmetic("mul", Mul, inplace=True),
    "sub": arithmetic("sub", Sub, alpha=True), "sub_": arithmetic("sub", Sub, inplace=True, alpha=True),
    "subtract": arithmetic("sub", Sub, alpha=True), "subtract_": arithmetic("sub", Sub, inplace=True, alpha=True),
    "div": arithmetic("div", Div, fixed=(("rounding_mode", None),)),
    "div_": arithmetic("div", Div, inplace=True, fixed=(("rounding_mode", None),)),
    "divide": arithmetic("div", Div, fixed=(("rounding_mode", None),)),
    "divide_": arithmetic("div", Div, inplace=True, fixed=(("rounding_mode", None),)),
    "true_divide": arithmetic("div", Div), "true_divide_": arithmetic("div", Div, inplace=True),
    "pow": arithmetic("pow", names=("input", "exponent")),
    "pow_": arithmetic("pow", inplace=True, names=("input", "exponent")),
    "size": size, "dim": dim, "ndimension": dim,
    "view": reshape(View), "reshape": reshape(Reshape), "permute": permute,
    "transpose": unary(Transpose, (("dim0", REQUIRED), ("dim1", REQUIRED))),
    "swapaxes": unary(Transpose, (("axis0", REQUIRED), ("axis1", REQUIRED)),
                      rename={"axis0": "dim0", "axis1": "dim1"}),
    "swapdims": unary(Transpose, (("dim0", REQUIRED), ("dim1", REQUIRED))),
    "flatten": flatten, "repeat_interleave": repeat_interleave, "view_as": reshape_as(View), "reshape_as": reshape_as(Reshape),
    "contiguous": contiguous,
    "chunk": unary(Chunk, (("chunks", REQUIRED), ("dim", 0))),
    "split": lambda r, node, args, kwargs: split(r, node, args, kwargs, size_name="split_size"),
    "mean": mean,
    "relu": unary(ReLU), "relu_": unary(ReLU, preset={"inplace": True}), "sigmoid": unary(Sigmoid), "tanh": unary(Tanh),
    "softmax": unary(Softmax, (("dim", REQUIRED), ("dtype", None)), fixed={"dtype": None}),
    "unfold": unary(UnfoldView, (("dimension", REQUIRED), ("size", REQUIRED), ("step", REQUIRED)),
                    rename={"dimension": "dim"}),
    "clone": unary(Clone, (("memory_format", torch.preserve_format),),
                   fixed={"memory_format": torch.preserve_format}),
    **ATTENTION_METHODS, **MISC_METHODS, **MOVES_METHODS, **ELEMENTWISE_METHODS,
}
"""Tensor methods by name (a call_method node's target)."""

METHODS["view"], METHODS["reshape"] = reshaped_parameter(METHODS["view"]), reshaped_parameter(METHODS["reshape"])
for _method in ("permute", "contiguous", "unsqueeze"):
    METHODS[_method] = gathered_view(METHODS[_method], _method)
FUNCTIONS[operator.getitem] = gathered_parameter(FUNCTIONS[operator.getitem])
FUNCTIONS[getattr] = token_attribute(device_attribute(FUNCTIONS[getattr]))
FUNCTIONS[torch.reshape] = reshaped_parameter(FUNCTIONS[torch.reshape])
FUNCTIONS[torch.tensor_split] = METHODS["tensor_split"] = tensor_split
try:
    FUNCTIONS.update(mvit_functions(METHODS))
except ImportError:  # torchvision is optional
    pass
per_pass.wrap(METHODS, FUNCTIONS)

_ARGS: dict[type, tuple[str, ...]] = {}


def module_call(r, node, kind, module, x):
    """A leaf module's layer and its parameters, as torch's forward uses them: a convolution or Linear
    from its weight's shape (what ``F.conv2d`` and ``F.linear`` read, whatever ``out_channels`` or
    ``in_features`` say after the weight was replaced) and, for a padding mode other than zeros, the
    padding its forward applies (fixed when the module was made); other kinds from the module's
    attributes (a LayerNorm's weight and bias of the shape ``F.layer_norm`` takes; batch norm reads any
    shape of as many elements as channels, as torch does)."""
    own = module._parameters
    params = tuple([(role, r.attribute(own[role], f"{node.target}.{role}" if node.target else role, node))
                    for role in ("weight", "bias") if role in own])
    given = dict(params)
    if kind is Pad:
        try:
            return padding_module(module), params
        except SpecError as err:
            raise err.at(r.where(node, x.shape)) from None
    if kind in CONVOLUTIONS or kind is Linear:
        weight = _weight(r, node, given.get("weight"), "weight", 2 if kind is Linear else kind.dims + 2)
        bias = _weight(r, node, given.get("bias"), "bias", 1)
        if weight is None:
            r.refuse(node, "has no weight")
        if kind is Linear:
            return _linear(r, node, weight, bias), params
        return module_conv(r, node, kind, module, weight, bias, x), params
    try:
        layer = module_layer(kind, module)
    except SpecError as err:
        raise err.at(r.where(node, x.shape)) from None
    for role, value in params if kind is LayerNorm else ():
        if value is not None and tuple(value.tensor.shape) != layer.normalized_shape:
            r.refuse(node, f"its {role} has shape {list(value.tensor.shape)}; F.layer_norm expects "
                           f"{role} of shape {list(layer.normalized_shape)} (normalized_shape)")
    return layer, params


def module_layer(kind, module):
    """The alexcost layer for a leaf module: the kind's arguments read from the module's
    attributes, as torch stores them (a ``bias`` flag from whether the module has one)."""
    names = _ARGS.get(kind)
    if names is None:
        names = _ARGS[kind] = tuple(f.name for f in fields(kind) if f.init and f.name not in ("name", "inputs"))
    args = {}
    for name in names:
        if name == "bias" and "bias" in module._parameters:
            args["bias"] = module._parameters["bias"] is not None
        elif hasattr(module, name):
            args[name] = getattr(module, name)
    return kind(**args)
