"""Computations on a module's parameters, buffers and constants alone (an MLP on a table of relative coordinates,
a learned scale through a sigmoid, the sine of positions made by ``torch.arange``): torch runs them once per
forward pass, whatever the batch.

The reader keeps such a tensor whole (a `ParameterShape`: no batch dimension), and the network runs the
layers that read only such tensors once per pass (`alexcost.engine.network.Network.once`), their rules
seeing the full shapes as one sample. The kinds whose arguments name no dimension (an elementwise op,
arithmetic) or only the last ones (Linear, LayerNorm, a constant pad) read it as they read an activation
(`reads`). The calls that number dimensions (views, permutes, slices, ``None`` indexing, chunks and fixed-index
gathers, `torch.cat`, `torch.stack`, a softmax, a sum or a mean) are read here, each dimension ``d`` of the whole
tensor being the layer's ``d + 1``, and ``F.interpolate`` and a convolution module, which take the first dimension
as the batch, on a tensor whose first size is 1; every other call on such a tensor is refused, naming the node.

A weight computed before use: ``F.batch_norm`` in training mode of a convolution's weight viewed as (1, C_out, k),
its statistics those of the tensor alone (`standardised`); ``F.conv2d``, ``F.linear`` and a matrix product whose
weight is a buffer or a tensor computed once per pass read it as an input (`convolved`, `multiplied`, `operand`).
"""

from __future__ import annotations

from dataclasses import fields

from math import prod

from ..layers import (Add, Cat, Contiguous, Conv1d, Conv2d, Conv3d, DynamicConv2d, Expand, GroupNorm, IndexSelect, LayerNorm,
                      Linear, Matmul, Mean, Pad, ParameterShape, Permute, Reshape, Scalar, Slice, Softmax, Standardize,
                      Sum, Transpose, Unsqueeze, View)
from ..layers.base import Elementwise
from .calls import REQUIRED, bind

_LAST_DIMENSIONS = (Linear, LayerNorm, Scalar, Pad)


def reads(kind) -> bool:
    """Does a layer of ``kind`` read a tensor computed from parameters alone exactly as torch does?"""
    if kind is None:
        return False
    return kind in _LAST_DIMENSIONS or (issubclass(kind, Elementwise) and "dim" not in {f.name for f in fields(kind)})


def refusal(shown: str, kind) -> str:
    """Why a layer of ``kind`` (None: a call that is not a layer) does not read ``shown``, computed once per pass."""
    what = f"a {kind.__name__}" if kind is not None else "this call"
    return (f"reads {shown}, with no activation: a computation on parameters or buffers alone runs once per "
            f"forward pass; alexcost reads one through elementwise layers, arithmetic, Linear, LayerNorm, views, "
            f"concatenation, a softmax, sums and means and a constant pad, not through {what}, whose arguments "
            f"number dimensions from the batch's")


# -- views, copies and gathers of a tensor computed once per pass ------------------------------------------------
# torch numbers the whole tensor's dimensions; the layer, run as one sample of it, numbers them after a batch
# dimension: dimension d of the tensor is the layer's d + 1.

_SHAPES = ("view", "reshape", "flatten", "unsqueeze", "squeeze", "permute", "transpose", "contiguous")


def _whole(r, value) -> bool:
    return r.is_activation(value) and value.shape.__class__ is ParameterShape


def held(r, value, node, gathered: bool):
    """``value`` as a tensor computed once per pass where it is a parameter or buffer of the module, or a view of
    one: a `Parameter` or `Buffer` layer's output of its shape (with ``gathered``, a gathered table's too: a
    `PositionBias`'s); else ``value`` itself."""
    if r.is_attribute(value) and (gathered or not value.gathered) and \
            (value.kind != "constant" or value.tensor.is_floating_point()):
        return r.operand(value, node)
    return value


def shaped(handler, method: str):
    """``handler`` (``x.<method>(...)`` of an activation), which reads the same of a tensor computed once per
    pass: the result's shape is torch's own (the call run on a tensor of that shape, without data)."""
    def handle(r, node, args, kwargs):
        value = args[0] if args else kwargs.get("input")
        if method not in ("view", "reshape"):  # (a parameter's view keeps it a parameter: see params)
            value = held(r, value, node, gathered=False)
        if not _whole(r, value):
            return handler(r, node, args, kwargs)
        rest = [r.constant(a, node, "argument") for a in args[1:]]
        more = {k: r.constant(v, node, k) for k, v in kwargs.items() if k != "input"}
        import torch

        try:
            out = tuple(getattr(torch.empty(value.shape, device="meta"), method)(*rest, **more).shape)
        except (RuntimeError, TypeError, IndexError, ValueError) as err:
            r.refuse(node, f"fails on {r.show(value)}: {err}")
        rank = len(value.shape)
        if method == "permute":
            dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else rest or more.get("dims")
            kind, args = Permute, {"dims": (0, *[d % rank + 1 for d in dims])}
        elif method == "transpose":
            d0, d1 = (rest + [more.get("dim0"), more.get("dim1")])[:2] if len(rest) < 2 else rest[:2]
            kind, args = Transpose, {"dim0": d0 % rank + 1, "dim1": d1 % rank + 1}
        elif method == "contiguous":
            kind, args = Contiguous, {}
        elif method in ("view", "unsqueeze", "squeeze"):
            kind, args = View, {"shape": out}  # views torch makes of the strides it has, or refuses
        else:
            kind, args = Reshape, {"shape": out}  # reshape, flatten: a view where torch can make one, else a copy
        return r.emit(node, r.build(node, kind, args), [value])
    return handle


def gathered(handler):
    """``handler`` (``x[...]`` of an activation), which reads ``t[index]`` and ``t[:, index]`` of a tensor ``t``
    computed once per pass, ``index`` a fixed int64 tensor (a buffer of the module, or the view of one that
    fx keeps as a constant): an `IndexSelect`, viewed to
    the index's shape; and constant slices of it (a `Slice`)."""
    def handle(r, node, args, kwargs):
        value, index = (list(args) + [None, None])[:2]
        if r.is_attribute(value) and (value.gathered or value.kind == "constant"):  # a gathered table, sliced
            value = held(r, value, node, gathered=True)  # (EfficientViT's per head), a float constant
        elif r.is_attribute(value) and _constant_index(index):  # a parameter's slice (a rotary table's freqs[0])
            value = held(r, value, node, gathered=False)
        if not _whole(r, value) or kwargs:
            return handler(r, node, args, kwargs)
        import torch

        dim, entries = 0, index if isinstance(index, tuple) else (index,)
        if r.is_attribute(entries[-1]) and all(e == slice(None) for e in entries[:-1]):
            dim, index = len(entries) - 1, entries[-1]
            if index.kind == "parameter" or index.tensor.dtype != torch.int64:
                r.refuse(node, f"indexes {r.show(value)} with {r.show(index)}; alexcost reads such a tensor "
                               f"gathered by a fixed int64 index (a buffer of the module, or its view) only")
            shape = tuple(value.shape)
            out = (*shape[:dim], *index.tensor.shape, *shape[dim + 1:])
            picked = r.emit(node, r.build(node, IndexSelect, {"dim": dim + 1, "index_size": index.tensor.numel()}),
                            [value])
            return picked if picked.shape == out else r.emit(node, r.build(node, View, {"shape": out}), [picked])
        if any(r.is_tensor(e) for e in entries) or not all(isinstance(e, (int, slice)) or e is None
                                                           for e in entries):
            r.refuse(node, f"indexes {r.show(value)} with {r.show(index)}; alexcost reads such a tensor gathered "
                           f"by an int64 buffer, or sliced by constants (None adding a dimension)")
        entries = r.constant(entries, node, "index")
        picked = [e for e in entries if e is not None]
        spec = tuple(e if isinstance(e, int) else (e.start, e.stop, e.step) for e in picked)
        if any(e != slice(None) for e in picked):
            value = r.emit(node, r.build(node, Slice, {"index": spec}), [value], label="getitem")
        if len(picked) == len(entries):
            return value
        try:  # None entries: a view with the dimensions they add
            out = tuple(torch.empty(value.shape, device="meta")[tuple(  # (the slice made, its entries whole)
                slice(None) if e is not None and not isinstance(e, int) else e for e in entries
                if e is None or not isinstance(e, int))].shape)
        except (IndexError, RuntimeError, TypeError) as err:
            r.refuse(node, f"fails on {r.show(value)}: {err}")
        return r.emit(node, r.build(node, View, {"shape": out}), [value])
    return handle


def _constant_index(index) -> bool:
    """Is ``index`` ints, slices of fixed ints and None alone (``t[0]``, ``t[:, 1:3]``, ``t[None, :]``)?"""
    entries = index if isinstance(index, tuple) else (index,)
    return all(e is None or (isinstance(e, int) and not isinstance(e, bool)) or (isinstance(e, slice) and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (e.start, e.stop, e.step)))
        for e in entries)


def wrap(methods: dict, functions: dict) -> None:
    """The reader's tables, their views and indexing taught to read tensors computed once per pass."""
    import operator

    for method in _SHAPES:
        if method in methods:
            methods[method] = shaped(methods[method], method)
    functions[operator.getitem] = gathered(functions[operator.getitem])
    for cat in [f for f in functions if getattr(f, "__name__", None) in ("cat", "concat", "concatenate")]:
        functions[cat] = joined(functions[cat])
    for function in [f for f in functions if getattr(f, "__name__", None) == "stack"]:
        functions[function] = stacked(functions[function])
    for function in [f for f in functions if getattr(f, "__name__", None) == "softmax"]:
        functions[function] = softmax(functions[function])
    methods["softmax"] = softmax(methods["softmax"])
    for name, kind in (("sum", Sum), ("mean", Mean)):
        for function in [f for f in functions if getattr(f, "__name__", None) == name]:
            functions[function] = summed(functions[function], kind)
        methods[name] = summed(methods[name], kind)
    for function in [f for f in functions if getattr(f, "__name__", None) == "chunk"]:
        functions[function] = chunked(functions[function])
    methods["chunk"] = chunked(methods["chunk"])
    for function in [f for f in functions if getattr(f, "__name__", None) == "pad"]:
        functions[function] = padded(functions[function])
    for function in [f for f in functions if getattr(f, "__name__", None) == "interpolate"]:
        functions[function] = batched(functions[function])
    methods["expand"] = expanded(methods["expand"])


def expanded(handler):
    """``handler`` (``x.expand(N, ...)`` of an activation, or of a class token), which reads ``t.expand(*sizes)``
    of a tensor ``t`` computed once per pass to sizes that hold no batch size (MViT's spatial positions repeated
    for each frame): an `Expand`, a view run once per pass."""
    def handle(r, node, args, kwargs):
        sizes = list(args[1:]) or [kwargs.get("size")]
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = list(sizes[0])
        if not args or any(s is r.BATCH for s in sizes) or (set(kwargs) - {"size"}):
            return handler(r, node, args, kwargs)
        value = held(r, args[0], node, gathered=False)
        if not _whole(r, value):
            return handler(r, node, args, kwargs)
        sizes = [r.constant(s, node, "size") for s in sizes]
        import torch

        try:
            out = tuple(torch.empty(value.shape, device="meta").expand(*sizes).shape)
        except (RuntimeError, TypeError, ValueError) as err:
            r.refuse(node, f"fails on {r.show(value)}: {err}")
        if len(out) != len(value.shape):
            r.refuse(node, f"expands {r.show(value)} to {r.show(sizes)}; alexcost expands without adding dimensions")
        return r.emit(node, r.build(node, Expand, {"sizes": out}), [value])
    return handle


def joined(handler):
    """``handler`` (``torch.cat`` of activations), which reads ``torch.cat`` of tensors computed once per pass,
    parameters and buffers among them (BEiT's query, zero and value biases): a `Cat` run once per pass."""
    def handle(r, node, args, kwargs):
        tensors = args[0] if args else kwargs.get("tensors")
        if not (isinstance(tensors, (list, tuple)) and len(tensors) > 1 and
                all(_whole(r, t) or r.is_attribute(t) for t in tensors)):
            return handler(r, node, args, kwargs)
        dim = r.constant(args[1] if len(args) > 1 else kwargs.get("dim", 0), node, "dim")
        xs = [r.operand(t, node) for t in tensors]
        rank = len(xs[0].shape)
        if not isinstance(dim, int) or not -rank <= dim < rank:
            r.refuse(node, f"dim={dim!r} is out of range for tensors of {rank} dimensions")
        return r.emit(node, r.build(node, Cat, {"dim": dim % rank + 1}), xs)
    return handle


def stacked(handler):
    """``handler`` (``torch.stack`` of activations), which reads ``torch.stack`` of tensors computed once per pass:
    each unsqueezed at the dimension (a view), then a `Cat`, run once per pass (XCiT's Fourier positions)."""
    def handle(r, node, args, kwargs):
        tensors = args[0] if args else kwargs.get("tensors")
        if not (isinstance(tensors, (list, tuple)) and len(tensors) > 1 and all(_whole(r, t) for t in tensors)) \
                or kwargs.get("out") is not None:
            return handler(r, node, args, kwargs)
        dim = r.constant(args[1] if len(args) > 1 else kwargs.get("dim", 0), node, "dim")
        rank = len(tensors[0].shape) + 1  # the stack's
        if any(t.shape != tensors[0].shape for t in tensors):
            r.refuse(node, f"stack expects each tensor to be equal size, got {r.show(tensors[0])} and others")
        if isinstance(dim, bool) or not isinstance(dim, int) or not -rank <= dim < rank:
            r.refuse(node, f"dim={dim!r} is out of range for a stack of {rank - 1}-dimensional tensors")
        from .stacks import _stacked

        return _stacked(r, node, list(tensors), dim % rank + 1)
    return handle


def linear_with_bias(r, node, x, linear, params, bias):
    """``F.linear(x, weight, bias)`` with a ``bias`` computed once per pass (BEiT's and Swin V2's query, zero and
    value biases concatenated): the product (``linear``, without a bias), then the bias added (an `Add` of one
    op per output element; torch's addmm adds it in its kernel)."""
    product = r.emit(node, linear, [x], params=params, label="linear")
    return r.emit(node, Add(), [product, r.operand(bias, node)], label="add")


def softmax(handler):
    """``handler`` (a softmax of an activation), which reads the softmax of a tensor computed once per pass
    (EfficientViM's learned weights): a `Softmax` run once, over the same dimension."""
    def handle(r, node, args, kwargs):
        value = args[0] if args else kwargs.get("input")
        if r.is_attribute(value) and value.kind in ("parameter", "buffer"):
            value = r.operand(value, node)
        if not _whole(r, value):
            return handler(r, node, args, kwargs)
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        dim = r.constant(dim, node, "dim")
        if kwargs.get("dtype") is not None or len(args) > 2 or not isinstance(dim, int):
            r.refuse(node, f"takes dim={dim!r} and a dtype; alexcost reads a softmax over one given dimension, in "
                           f"the input's dtype")
        rank = len(value.shape)
        if not -rank <= dim < rank:
            r.refuse(node, f"dim={dim} is out of range for {r.show(value)}")
        return r.emit(node, r.build(node, Softmax, {"dim": dim % rank + 1}), [value])
    return handle


def summed(handler, kind):
    """``handler`` (``x.sum(dim, keepdim)`` or ``x.mean(...)`` of an activation), which reads the same of a tensor
    computed once per pass (the differential attention's ``torch.sum(q * k, dim=-1)`` of two learned vectors): a
    `Sum` or `Mean` run once, over the same dimensions, all of them where none is given."""
    spec = (("input", REQUIRED), ("dim", None), ("keepdim", False), ("dtype", None))

    def handle(r, node, args, kwargs):
        value = held(r, args[0] if args else kwargs.get("input"), node, gathered=False)
        if not _whole(r, value):
            return handler(r, node, args, kwargs)
        b = bind(r, node, spec, (value, *args[1:]), {k: v for k, v in kwargs.items() if k != "input"})
        dim, keepdim = r.constant(b["dim"], node, "dim"), r.constant(b["keepdim"], node, "keepdim")
        if r.constant(b["dtype"], node, "dtype") is not None:
            r.refuse(node, "converts to another dtype; alexcost reads it with dtype=None only")
        rank = len(value.shape)
        dims = tuple(range(rank)) if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
        if not rank or not dims or not all(type(d) is int and -rank <= d < rank for d in dims):
            r.refuse(node, f"dim={dim!r} does not name dimensions of {r.show(value)}")
        return r.emit(node, r.build(node, kind, {"dim": tuple(d % rank + 1 for d in dims), "keepdim": keepdim}),
                      [value])
    return handle


def chunked(handler):
    """``handler`` (``x.chunk(chunks, dim)`` of an activation), which reads the chunks of a tensor computed once
    per pass (a rotary table's sines and cosines): each chunk a `Slice` of it along the same dimension (the
    views torch returns; a layer run once has one output)."""
    def handle(r, node, args, kwargs):
        value = held(r, args[0] if args else kwargs.get("input"), node, gathered=False)
        if not _whole(r, value):
            return handler(r, node, args, kwargs)
        chunks = r.constant(args[1] if len(args) > 1 else kwargs.get("chunks"), node, "chunks")
        dim = r.constant(args[2] if len(args) > 2 else kwargs.get("dim", 0), node, "dim")
        rank = len(value.shape)
        if not isinstance(dim, int) or not -rank <= dim < rank:
            r.refuse(node, f"dim={dim!r} is out of range for {r.show(value)}")
        import torch

        try:
            sizes = [t.shape[dim] for t in torch.empty(value.shape, device="meta").chunk(chunks, dim)]
        except (RuntimeError, TypeError) as err:
            r.refuse(node, f"fails on {r.show(value)}: {err}")
        lead, starts = ((None, None, None),) * (dim % rank), [sum(sizes[:k]) for k in range(len(sizes))]
        return tuple(r.emit(node, r.build(node, Slice, {"index": (*lead, (start, start + size, None))}), [value],
                            label="chunk") for start, size in zip(starts, sizes))
    return handle


ONE_SAMPLE = (Conv1d, Conv2d, Conv3d)
"""The modules read on a tensor computed once per pass whose first size is 1, as on one sample (`batched`):
XCiT's Conv2d of its Fourier positions."""


def batched(handler):
    """``handler`` (``F.interpolate`` of an activation, a module of `ONE_SAMPLE`), which reads the same of a tensor
    computed once per pass whose first size is 1 (a position embedding resized or convolved): torch takes that
    dimension as the batch, so the tensor is viewed without it, read as one sample, and viewed back with it."""
    def handle(r, node, args, kwargs):
        value = held(r, args[0] if args else kwargs.get("input"), node, gathered=False)
        if not _whole(r, value):
            return handler(r, node, args, kwargs)
        if value.shape[0] != 1:
            r.refuse(node, f"reads {r.show(value)}, whose first size is not 1; alexcost reads this call on a tensor "
                           f"computed once per pass as on one sample only")
        sample = r.emit(node, r.build(node, View, {"shape": tuple(value.shape[1:])}), [value], label="view")
        rest, more = (args[1:], kwargs) if args else ((), {k: v for k, v in kwargs.items() if k != "input"})
        out = handler(r, node, (type(sample)(sample.src, tuple(sample.shape)), *rest), more)  # as one sample
        whole = type(out)(out.src, ParameterShape(out.shape))
        return r.emit(node, r.build(node, View, {"shape": (1, *out.shape)}), [whole], label="view")
    return handle


def padded(handler):
    """``handler`` (``F.pad``), which reads a constant pad of a tensor computed once per pass (the place of a
    class token in a position bias); other modes check the tensor's rank, which differs by the batch's."""
    def handle(r, node, args, kwargs):
        value = args[0] if args else kwargs.get("input")
        mode = args[2] if len(args) > 2 else kwargs.get("mode", "constant")
        if _whole(r, value) and mode != "constant":
            r.refuse(node, f"pads {r.show(value)} in mode {mode!r}; alexcost reads such a tensor padded with a "
                           f"constant only")
        return handler(r, node, args, kwargs)
    return handle


# -- weights computed before use ---------------------------------------------------------------------------------

def _computed(r, value, node):
    """``value`` as a tensor computed once per pass where it is one, or a parameter or buffer of the module (its
    view too: a `Parameter` or `Buffer` layer); else None."""
    if r.is_attribute(value) and value.kind in ("parameter", "buffer") and not value.gathered:
        return r.operand(value, node)
    return value if _whole(r, value) else None


def computed(r, value) -> bool:
    """Is ``value`` a parameter or buffer of the module, or a tensor computed from them alone?"""
    return _whole(r, value) or (r.is_attribute(value) and value.kind in ("parameter", "buffer"))


def given_weight(r, value) -> bool:
    """Is ``value``, passed as a layer's weight, a buffer of the module or a tensor computed once per pass (the
    layer then reads it as an input), not a parameter (which the layer holds)?"""
    return computed(r, value) and not (r.is_attribute(value) and value.kind == "parameter")


def standardised(r, node, b: dict):
    """``F.batch_norm(t, None, None, weight, training=True)`` of ``t`` computed once per pass whose first size is
    1 (a convolution's weight standardised, timm's ``StdConv2d``, ``ScaledStdConv2d``): torch normalises each
    channel (the second dimension) by its own statistics. Read on the tensor viewed as (C, L), as one sample: a
    `GroupNorm` of C groups without a weight, a `Standardize` with its ``weight`` (computed once per pass, a gain
    times a scale), and viewed back; once per pass."""
    value = _computed(r, b["input"], node)
    shape = tuple(value.shape)
    if len(shape) < 2 or shape[0] != 1:
        r.refuse(node, f"normalises {r.show(value)} by its statistics; alexcost reads batch norm in training mode "
                       f"on a tensor computed once per pass whose first size is 1 only")
    if b["bias"] is not None:
        r.refuse(node, f"adds the bias {r.show(b['bias'])}; alexcost reads a standardisation with a weight only")
    eps = r.constant(b["eps"], node, "eps")
    r.constant(b["momentum"], node, "momentum")
    c = shape[1]
    if prod(shape[2:]) < 2:
        r.refuse(node, f"Expected more than 1 value per channel when training, got input size {list(shape)}")
    sample = r.emit(node, r.build(node, View, {"shape": (c, prod(shape[2:]))}), [value], label="view")
    if b["weight"] is None:
        normed = r.emit(node, r.build(node, GroupNorm, {"num_groups": c, "affine": False, "eps": eps}), [sample])
    else:
        weight = _computed(r, b["weight"], node)
        if weight is None:
            r.refuse(node, f"its weight is {r.show(b['weight'])}; alexcost reads a standardisation's weight computed "
                           f"once per pass, or a parameter")
        normed = r.emit(node, r.build(node, Standardize, {"eps": eps}), [sample, weight])
    return r.emit(node, r.build(node, View, {"shape": shape}), [normed], label="view")


def convolved(r, node, x, weight, bias, args: dict, conv_layer):
    """``F.conv2d(x, weight, bias, ...)`` whose ``weight`` is a buffer (a blur filter) or a tensor computed once
    per pass (a standardised weight): a `DynamicConv2d` reading it as its second input; the bias, a parameter,
    is its own."""
    w = _computed(r, weight, node)
    layer = conv_layer(r, node, DynamicConv2d, x, tuple(w.shape), bias, args)
    return r.emit(node, layer, [x, w], params=(("bias", bias),))


def multiplied(r, node, x, weight, bias):
    """``F.linear(x, weight, bias)`` whose ``weight`` is a buffer (timm's DCT matrix) or computed once per pass:
    ``x @ weight.T``, a `Matmul` by the weight transposed (a view, once per pass), then the bias, a parameter,
    added (an `Add` of one op per output element, as `linear_with_bias`)."""
    w = _computed(r, weight, node)
    if len(w.shape) != 2:
        r.refuse(node, f"its weight is {r.show(w)}, not a matrix")
    t = r.emit(node, r.build(node, Transpose, {"dim0": 1, "dim1": 2}), [w], label="t")
    product = r.emit(node, r.build(node, Matmul, {}), [x, t], label="linear")
    return product if bias is None else r.emit(node, Add(), [product, r.operand(bias, node)], label="add")


def operand(r, node, value, other):
    """An operand of a matrix product: an activation, or, beside one (``other``), a parameter or buffer of the
    module or a tensor computed from them alone (SwiftFormer's ``query @ self.w_g``)."""
    if r.is_activation(other) and not _whole(r, other) and computed(r, value):
        return _computed(r, value, node)
    return r.tensor(value, node)


# -- einsum of tensors computed once per pass ----------------------------------------------------------------------

def einsum(r, node, equation: str, operands: list):
    """``torch.einsum(equation, a, b)`` of two parameters, buffers or tensors computed from them once per pass
    (timm's TensorFlow MaxViT gathers its relative position table by one-hot lookups: ``'nhw,ixh->nixw'``): torch's
    own steps, recorded as it runs them on tensors without data of the operands' shapes and strides, each read as
    a layer run once per pass: unsqueezes, permutes, views, the copy of a reshape (a `Contiguous`), the batched
    product (a `Matmul`: the MACs torch's ``bmm`` does). A step of any other kind is refused, naming it."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    values = [_computed(r, t, node) for t in operands]
    tensors = [torch.empty_strided(v.shape, r._placed(node, 1, v.src)[1], device="meta") for v in values]
    steps = []

    class Steps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            steps.append((func, args, kwargs or {}, out))
            return out

    try:
        with Steps():
            result = torch.einsum(equation, *tensors)
    except (RuntimeError, ValueError) as err:
        r.refuse(node, f"fails on {', '.join(r.show(v) for v in values)}: {err}")
    read = {id(t): v for t, v in zip(tensors, values)}
    for func, args, kwargs, out in steps:
        inputs = [read[id(a)] for a in args if isinstance(a, torch.Tensor)]
        read[id(out)] = r.emit(node, _step(r, node, func, args, kwargs, out), inputs, label="einsum")
    return read[id(result)]


def _step(r, node, func, args, kwargs, out):
    """The layer, run once per pass, for one step torch's einsum takes (dimension ``d`` of the whole tensor is the
    layer's ``d + 1``)."""
    import torch

    aten, name = torch.ops.aten, func.overloadpacket
    if name is aten.unsqueeze:
        return r.build(node, Unsqueeze, {"dim": args[1] % out.dim() + 1})
    if name is aten.permute:
        return r.build(node, Permute, {"dims": (0, *[d % out.dim() + 1 for d in args[1]])})
    if name in (aten.view, aten._unsafe_view):
        return r.build(node, View, {"shape": tuple(out.shape)})
    if name is aten.clone and kwargs.get("memory_format") is torch.contiguous_format:
        return r.build(node, Contiguous, {})
    if name is aten.bmm:
        return r.build(node, Matmul, {})
    r.refuse(node, f"einsum runs {name} on these operands, which alexcost does not read in an einsum")
