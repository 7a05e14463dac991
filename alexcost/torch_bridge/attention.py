"""The calls of transformers, as alexcost layers: matrix products, ``F.scaled_dot_product_attention``,
``nn.MultiheadAttention``, indexing with constant bounds (``x[:, 0]``), ``expand`` (of an activation, or
of a class token concatenated to one), ``unsqueeze``, ``squeeze``, ``sum``, the 1- and 2-norms and ``roll``. Handlers as in `alexcost.torch_bridge.ops`, which adds
`FUNCTIONS` and `METHODS` to its tables (its ``torch.cat`` reads a `Token`); `MODULE_CALLS` reads the modules of several inputs. Imports torch.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from ..layers import (Expand, IndexSelect, Matmul, MultiheadAttention, Norm, ParameterShape, Roll, ScaledDotProductAttention, Slice, SliceAdd,
                      Squeeze, Sum, Transpose, Unsqueeze)
from . import per_pass
from .calls import REQUIRED, bind, unary
from .folded import fold_of


class Token:
    """A parameter or buffer of shape ``(1, ...)`` expanded over the batch (``token.expand(N, -1, -1)``): read
    by ``torch.cat`` as a class token and by arithmetic with an activation as a broadcast operand; elsewhere a
    view of it for each sample (an `Expand` with ``batch=True``)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return f"the {self.value.kind} {self.value.path!r} expanded over the batch"

    def unsqueeze(self, dim: int) -> Token:
        """``token.unsqueeze(dim)`` (MViT's ``class_token.expand(N, -1).unsqueeze(1)``): the token with a
        dimension of size 1 at ``dim`` of the batched tensor, after the batch (the reader evaluates it as a
        method of a plain value)."""
        shape = tuple(self.value.tensor.shape)
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim % (len(shape) + 1) <= len(shape):
            raise ValueError(f"{self} unsqueezed at dim {dim!r}: alexcost keeps the batch first (dim 1 to "
                             f"{len(shape)})")
        dim %= len(shape) + 1
        return Token(_viewed(self.value, (*shape[:dim], 1, *shape[dim:])))


def token_attribute(handler):
    """``getattr`` (``handler``), with ``token.shape`` and ``token.ndim`` of a `Token` read as the expanded
    tensor's: ``(N, *shape[1:])`` (PiT reads its class tokens' length so)."""
    def handle(r, node, args, kwargs):
        if len(args) == 2 and isinstance(args[0], Token) and args[1] in ("shape", "ndim"):
            shape = (r.BATCH, *tuple(args[0].value.tensor.shape)[1:])
            return shape if args[1] == "shape" else len(shape)
        return handler(r, node, args, kwargs)
    return handle


def matmul(r, node, args, kwargs, names=("input", "other")):
    b = bind(r, node, ((names[0], REQUIRED), (names[1], REQUIRED)), args, kwargs)
    a, c = b[names[0]], b[names[1]]
    if not (r.is_tensor(a) or r.is_tensor(c)):
        return r.pure(node, args, kwargs)
    return r.emit(node, Matmul(), [per_pass.operand(r, node, a, c), per_pass.operand(r, node, c, a)])


def einsum(r, node, args, kwargs):
    """``torch.einsum(equation, a, b)`` where the equation is a batch of matrix products, the batch first in
    every term (``"bhid,bhjd->bhij"``): a `Matmul`, after a `Transpose` of an operand whose last two letters
    are the other way round (torch's einsum permutes the same views, then runs one ``bmm``). Or a product with
    a table of three letters computed from parameters, one of the activation's letters, a new one and the last
    (``"bhwc,hkc->bhwk"``, ``"bhwc,wkc->bhwk"``: SAM's decomposed relative position bias): the table transposed
    and a `Matmul` with it, the activation's rows unsqueezed to 1-row matrices where the table's first letter is
    the one before the last (as many MACs as torch's ``bmm``). On a tensor whose batch is folded, its letters
    count the folded dimension as the batch. Any other equation is refused, naming it."""
    if kwargs or len(args) < 2:
        r.refuse(node, "takes the equation and the operands positionally")
    equation, *operands = args
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    equation = r.constant(equation, node, "equation")
    if not isinstance(equation, str) or len(operands) != 2 or not all(r.is_tensor(t) for t in operands):
        r.refuse(node, f"einsum of {len(operands)} operand(s) ({r.show(equation)}); alexcost reads the einsum of "
                       f"two tensors that is a batch of matrix products")
    if all(per_pass.computed(r, t) for t in operands) and not any(r.is_attribute(t) and t.gathered for t in operands):
        return per_pass.einsum(r, node, equation, operands)
    a, b = (r.operand(t, node) if r.is_attribute(t) and t.gathered else r.tensor(t, node) for t in operands)
    ranks = tuple(len(x.shape) + (not isinstance(x.shape, ParameterShape) and fold_of(r, x) == 1) for x in (a, b))
    plan = _einsum_plan(equation, ranks)
    if plan is not None and a.shape[:-2] == b.shape[:-2]:
        a, b = (r.emit(node, Transpose(dim0=len(x.shape) - 1, dim1=len(x.shape)), [x], label="transpose") if swap
                else x for x, swap in zip((a, b), plan))
        return r.emit(node, Matmul(), [a, b])
    row = _table_plan(equation, ranks) if isinstance(b.shape, ParameterShape) and \
        not isinstance(a.shape, ParameterShape) else None
    if row is None:
        r.refuse(node, f"einsum {equation!r} on {r.show(a)} and {r.show(b)} is not a batch of matrix products "
                       f"((..., i, k), (..., k, j) -> (..., i, j), the same leading letters and sizes in every term, "
                       f"either operand's last two letters swapped) nor a product with a table of parameters "
                       f"('bhwc,hkc->bhwk'); alexcost reads no other equation")
    table = r.emit(node, Transpose(dim0=-2, dim1=-1), [b], label="transpose")
    if not row:
        return r.emit(node, Matmul(), [a, table])
    a = r.emit(node, Unsqueeze(dim=-2), [a], label="unsqueeze")
    return r.emit(node, Squeeze(dim=-2), [r.emit(node, Matmul(), [a, table])], label="squeeze")


def _terms(equation: str, ranks) -> tuple[str, str, str] | None:
    """The two operands' letters and the output's of an equation on operands of ``ranks`` dimensions (each
    letter once per term, as many as the dimensions); None for any other."""
    text = equation.replace(" ", "")
    if text.count("->") != 1:
        return None
    inputs, out = text.split("->")
    terms = inputs.split(",")
    if len(terms) != 2 or not all(t.isalpha() and t.isascii() and len(set(t)) == len(t) for t in (*terms, out)):
        return None
    left, right = terms
    return (left, right, out) if (len(left), len(right)) == tuple(ranks) else None


def _table_plan(equation: str, ranks) -> bool | None:
    """For ``"...pqc,pkc->...pqk"`` (False: the table's first letter is the one before the one before the
    last, ``p``; a batch of products along it) or ``"...pqc,qkc->...pqk"`` (True: the one before the last,
    ``q``), the other letters in the activation alone, the output its letters with the last replaced: whether
    the activation's rows are products of their own; None for any other equation."""
    terms = _terms(equation, ranks)
    if terms is None:
        return None
    left, right, out = terms
    if len(right) != 3 or len(left) < 3 or right[2] != left[-1] or right[1] in left or \
            out != left[:-1] + right[1] or right[0] not in left[-3:-1]:
        return None
    return right[0] == left[-2]


def _einsum_plan(equation: str, ranks) -> tuple[bool, bool] | None:
    """For an equation that is a batch of matrix products, ``(..., i, k), (..., k, j) -> (..., i, j)`` with the
    same leading letters in every term (the batch's first), whether each operand's last two dimensions are
    swapped (``(..., k, i)``, ``(..., j, k)``); None for any other equation."""
    terms = _terms(equation, ranks)
    if terms is None:
        return None
    left, right, out = terms
    if len(out) < 3 or not left[:-2] == right[:-2] == out[:-2]:
        return None
    i, j = out[-2:]
    k = set(left[-2:]) - {i}
    if len(k) != 1 or set(left[-2:]) != {i, *k} or set(right[-2:]) != {j, *k} or k & set(out):
        return None
    k = k.pop()
    return left[-2:] != i + k, right[-2:] != k + j


def attention(r, node, args, kwargs):
    spec = (("query", REQUIRED), ("key", REQUIRED), ("value", REQUIRED), ("attn_mask", None), ("dropout_p", 0.0),
            ("is_causal", False), ("scale", None), ("enable_gqa", False))
    b = bind(r, node, spec, args, kwargs)
    if r.constant(b["enable_gqa"], node, "enable_gqa"):
        r.refuse(node, "enable_gqa=True is not read by alexcost")
    inputs = [r.tensor(b[k], node) for k in ("query", "key", "value")]
    if b["attn_mask"] is not None:
        mask = b["attn_mask"]
        if r.is_attribute(mask):  # a parameter or buffer of the module (a learned or fixed bias)
            mask = r.operand(mask, node)
        if not r.is_activation(mask):
            r.refuse(node, f"its attn_mask is {r.show(mask)}; alexcost reads a mask computed in the forward pass "
                           f"(from the input, or from parameters and buffers alone) only")
        inputs.append(mask)
    layer = r.build(node, ScaledDotProductAttention, {k: r.constant(b[k], node, k)
                                                      for k in ("dropout_p", "is_causal", "scale")})
    return r.emit(node, layer, inputs)


def getitem(r, node, args, kwargs):
    """``x[:, 0]``, ``x[:, :c]``, ``x[..., 1:3]`` with constant bounds on an activation: a `Slice`; a ``None``
    in the index (``x[:, :, None]``) a dimension of size 1 added there after it (an `Unsqueeze`, a view as
    torch's); anything else as Python's."""
    x, index = args
    if not r.is_tensor(x):
        return r.pure(node, args, kwargs)
    x = r.tensor(x, node)
    entries = _entries(r, node, x, index)
    listed = [d for d, e in enumerate(entries) if isinstance(e, list)]
    if listed:
        return _listed(r, node, x, entries, listed)
    rest, added = _slices(r, node, entries)
    if rest:
        x = r.emit(node, r.build(node, Slice, {"index": rest}), [x])
    for d in added:
        x = r.emit(node, r.build(node, Unsqueeze, {"dim": d}), [x], label="unsqueeze")
    return x  # x[:, :] is x, as a view


def setitem(r, node, args, kwargs):
    """``x[:, 0] = y``, ``x[:, :, 1:, 1:] = y`` (timm's MViT v2 writing its relative position bias into the
    scores): a `SliceAdd` without ``accumulate``, ``y`` copied into the slice of ``x`` in place; the index as
    `getitem` reads it, without ``None``; ``y`` an activation of the slice's shape."""
    x, index, y = args
    if not (r.is_activation(x) and r.is_activation(y)) or kwargs:
        r.refuse(node, f"writes {r.show(y)} into {r.show(x)}; alexcost reads an activation written into a slice "
                       f"of another")
    rest, added = _slices(r, node, _entries(r, node, x, index))
    if added:
        r.refuse(node, f"writes into {r.show(index)}; alexcost reads integers and slices with constant bounds here")
    return r.emit(node, r.build(node, SliceAdd, {"index": rest, "accumulate": False}), [x, y], label="setitem")


def _entries(r, node, x, index) -> list:
    """The entries of ``index`` on ``x``, an ellipsis filled with whole slices; the batch's whole."""
    entries = list(index) if isinstance(index, tuple) else [index]
    if any(e is Ellipsis for e in entries):
        if entries.count(Ellipsis) > 1:
            r.refuse(node, "an index can only have a single ellipsis ('...')")
        at = entries.index(Ellipsis)
        fill = len(x.shape) + 1 - (len(entries) - 1 - entries.count(None))
        entries[at:at + 1] = [slice(None)] * fill
    first = entries[0] if entries else None
    if not (isinstance(first, slice) and first == slice(None)):
        r.refuse(node, f"indexes the batch dimension ({r.show(first)}); alexcost analyses each sample on its own: "
                       f"keep it whole (x[:, ...])")
    return entries


def _slices(r, node, entries) -> tuple[tuple, list[int]]:
    """A sample's index as a `Slice`'s (ints and ``(start, stop, step)``, the trailing whole ones dropped), and
    the dimensions a ``None`` adds."""
    rest, added, at = [], [], 1
    for e in entries[1:]:
        e = r.constant(e, node, "index")
        if e is None:
            added.append(at)
            at += 1
        elif isinstance(e, slice):
            rest.append((e.start, e.stop, e.step))
            at += 1
        elif isinstance(e, int) and not isinstance(e, bool):
            rest.append(e)
        else:
            r.refuse(node, f"indexes with {r.show(e)}; alexcost reads integers, slices with constant bounds and "
                           f"None")
    while rest and rest[-1] == (None, None, None):
        rest.pop()
    return tuple(rest), added


def _listed(r, node, x, entries, listed):
    """``x[:, ..., [i, j, ...]]``: one list of numbers written in the code, every other entry a whole slice: an
    `IndexSelect` along that dimension (``index_buffer=False``: torch makes the list a new int64 tensor)."""
    d = listed[0]
    index = r.constant(entries[d], node, "index")
    rank = len(x.shape) + 1
    if len(listed) > 1 or any(e != slice(None) for k, e in enumerate(entries) if k != d) or d >= rank:
        r.refuse(node, f"indexes with {r.show(tuple(entries))}; alexcost reads a list of numbers as the one entry "
                       f"of an index that is not a whole slice (x[:, :, [0, 2]])")
    size = x.shape[d - 1]
    if not index or not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
        r.refuse(node, f"indexes with the list {r.show(index)}; alexcost reads a list of integers")
    if not all(-size <= i < size for i in index):
        bad = next(i for i in index if not -size <= i < size)
        r.refuse(node, f"index {bad} is out of bounds for dimension {d} with size {size}")
    return r.emit(node, r.build(node, IndexSelect, {"dim": d, "index_size": len(index), "index_buffer": False}), [x])


def _viewed(value, shape):
    """A view of the parameter ``value`` (or of a view of it) as ``shape``: its elements are the parameter's."""
    base = value.base if value.base is not None else value.tensor
    return type(value)(value.path, value.tensor.reshape(shape), "parameter", value.node, base=base)


def expand(r, node, args, kwargs):
    x, *sizes = args
    if kwargs:
        if sizes or set(kwargs) != {"size"}:
            r.refuse(node, "takes its sizes positionally or as size=")
        sizes = [kwargs["size"]]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = list(sizes[0])
    sizes = [r.constant(s, node, "size", batch_ok=True) for s in sizes]
    if r.is_attribute(x):
        shape = tuple(x.tensor.shape)
        if x.kind in ("parameter", "buffer") and sizes and sizes[0] is r.BATCH and len(sizes) == len(shape) and shape[0] == 1 \
                and all(s == -1 or s == n for s, n in zip(sizes[1:], shape[1:])):
            return Token(x)
        if x.kind == "parameter" and sizes and sizes[0] is r.BATCH and len(sizes) == len(shape) + 1 \
                and all(s == -1 or s == n for s, n in zip(sizes[1:], shape)):  # (C,) to (N, C): MViT's
            return Token(_viewed(x, (1, *shape)))
        r.refuse(node, f"expands {r.show(x)} to {r.show(sizes)}; alexcost reads a parameter of shape (1, ...) "
                       f"expanded over the batch only (x.expand(N, -1, ...)), as a class token given to torch.cat")
    if r.is_activation(x) and x.shape.__class__ is ParameterShape and sizes and sizes[0] is r.BATCH:
        return r.emit(node, r.build(node, Expand, {"sizes": tuple(sizes[1:]), "batch": True}), [x])  # computed once
    x = r.tensor(x, node)
    if not sizes or sizes[0] not in (r.BATCH, -1) or any(s is r.BATCH for s in sizes[1:]):
        r.refuse(node, f"expands to {r.show(sizes)}; alexcost keeps the batch as the first dimension "
                       f"(x.expand(x.size(0), ...) or -1 there)")
    return r.emit(node, r.build(node, Expand, {"sizes": tuple(sizes[1:])}), [x])


def multihead_attention(r, node, kind, module, args, kwargs):
    """``mha(q, k, v, need_weights=False)`` with no masks: one `MultiheadAttention`, its output a tuple
    ``(out, None)`` as torch returns it."""
    spec = (("query", REQUIRED), ("key", REQUIRED), ("value", REQUIRED), ("key_padding_mask", None),
            ("need_weights", True), ("attn_mask", None), ("average_attn_weights", True), ("is_causal", False))
    b = bind(r, node, spec, args, kwargs)
    for arg, value in (("key_padding_mask", None), ("attn_mask", None), ("need_weights", False),
                       ("is_causal", False)):
        if r.constant(b[arg], node, arg) != value:
            r.refuse(node, f"is called with {arg}={r.show(b[arg])}; alexcost reads {type(module).__name__} "
                           f"called with need_weights=False and no masks")
    inputs = [r.tensor(b[k], node) for k in ("query", "key", "value")]
    args = {name: getattr(module, name) for name in ("embed_dim", "num_heads", "dropout", "kdim", "vdim",
                                                     "batch_first")}
    args["bias"] = module.in_proj_bias is not None
    args["add_bias_kv"] = module.bias_k is not None
    layer = r.build(node, kind, args)
    names = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias")
    params = [("bias" if n.endswith("bias") else "weight", r.attribute(module._parameters.get(n), f"{node.target}.{n}",
                                                                    node)) for n in names]
    out = module.out_proj
    params += [(role, r.attribute(out._parameters.get(role), f"{node.target}.out_proj.{role}", node))
               for role in ("weight", "bias")]
    return (r.emit(node, layer, inputs, params=tuple(p for p in params if p[1] is not None), module=module), None)


def reduction(kind, p_name=None, p_default=None, out=False):
    """``torch.sum``/``x.sum`` (``kind`` Sum) and the norms (Norm: ``torch.norm``, ``x.norm`` with ``p``,
    ``torch.linalg.vector_norm`` with ``ord``) over given dims."""
    spec = (("input", REQUIRED), *(((p_name, p_default),) if p_name else ()), ("dim", None), ("keepdim", False),
            *((("out", None),) if out else ()), ("dtype", None))

    def handle(r, node, args, kwargs):
        b = bind(r, node, spec, args, kwargs)
        x = r.tensor(b["input"], node)
        if b.get("out") is not None:
            r.refuse(node, "writes into out=; alexcost reads it without")
        if b["dim"] is None:
            r.refuse(node, "reduces every dimension, the batch's too; alexcost analyses each sample on its own")
        if r.constant(b["dtype"], node, "dtype") is not None:
            r.refuse(node, "converts to another dtype; alexcost reads it with dtype=None only")
        args = {"dim": r.constant(b["dim"], node, "dim"), "keepdim": r.constant(b["keepdim"], node, "keepdim")}
        if p_name:
            order = r.constant(b[p_name], node, p_name)
            args["ord"] = 2 if order == "fro" else order
            if isinstance(args["ord"], str):
                r.refuse(node, f"{p_name}={order!r} is not read by alexcost (the 1- and 2-norms only)")
        return r.emit(node, r.build(node, kind, args), [x])
    return handle


def roll(r, node, args, kwargs):
    b = bind(r, node, (("input", REQUIRED), ("shifts", REQUIRED), ("dims", None)), args, kwargs)
    if b["dims"] is None:
        r.refuse(node, "rolls the flattened tensor, across the batch; alexcost reads rolls along given dims only")
    return r.emit(node, r.build(node, Roll, {"shifts": r.constant(b["shifts"], node, "shifts"),
                                            "dims": r.constant(b["dims"], node, "dims")}), [r.tensor(b["input"], node)])


FUNCTIONS = {
    torch.matmul: matmul, operator.matmul: matmul, torch.bmm: lambda r, node, args, kwargs: matmul(
        r, node, args, kwargs, ("input", "mat2")),
    torch.einsum: einsum, F.scaled_dot_product_attention: attention, operator.getitem: getitem,
    operator.setitem: setitem,
    torch.unsqueeze: unary(Unsqueeze, (("dim", REQUIRED),)), torch.squeeze: unary(Squeeze, (("dim", None),)),
    torch.sum: reduction(Sum), torch.norm: reduction(Norm, "p", "fro", out=True),
    torch.linalg.vector_norm: reduction(Norm, "ord", 2), torch.roll: roll,
}
"""Functions by the object fx records as a call_function node's target."""

METHODS = {
    "matmul": lambda r, node, args, kwargs: matmul(r, node, args, kwargs, ("input", "other")),
    "bmm": lambda r, node, args, kwargs: matmul(r, node, args, kwargs, ("input", "mat2")),
    "expand": expand,
    "unsqueeze": unary(Unsqueeze, (("dim", REQUIRED),)), "squeeze": unary(Squeeze, (("dim", None),)),
    "sum": reduction(Sum), "norm": reduction(Norm, "p", "fro"), "roll": roll,
}
"""Tensor methods by name."""

MODULE_CALLS = {MultiheadAttention: multihead_attention}
"""Module kinds called with several arguments, by kind: handlers of ``(r, node, kind, module, args, kwargs)``."""
