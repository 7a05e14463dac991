"""Values whose leading dimension is the batch times a known factor ``k`` (the batch folded).

Window attention (timm's Swin family, DaViT) partitions each sample into ``k`` windows and folds them
into the batch: ``x.view(-1, w, w, C)`` of a ``(N, H/w, W/w, w, w, C)`` tensor is ``(N*k, w, w, C)``.
Torch's ``(N*k, ...)`` tensor holds sample ``b``'s windows at rows ``b*k`` to ``b*k + k - 1``, so per
sample it is the ``(k, ...)`` tensor: alexcost reads it as an activation of that per-sample shape, and
the reader remembers ``k`` (its `Reader.folds`). A call on it that leaves dim 0 alone is the existing
per-sample layer with the call's dims shifted by one (dim ``d >= 1`` is the per-sample dim ``d``):
the modules and functions of `_MODULES`, `_PLAIN`, `_BINARY`, the dims of `_DIMS`, ``permute`` keeping
dim 0 first or moving it where `alexcost.torch_bridge.moves` reads it; operands are folded alike, or
parameters that do not reach dim 0. ``x.shape[0]`` is `FoldedBatch` (``N*k``): given back to ``view``
or ``reshape`` it is read, any arithmetic on it is refused. A ``view``/``reshape`` whose first size is
the batch, ``N*k'`` or ``-1`` folds or unfolds (per sample, a view of the same elements). Everything
else on a folded value is refused at its node. Imports torch.
"""

from __future__ import annotations

import operator
from math import prod

import torch
import torch.nn.functional as F

from ..layers import strides as st
from ..layers import (GELU, BatchNorm1d, Clone, Contiguous, Dropout, Expand, Flatten, Hardswish, Identity,
                      LayerNorm, Linear, ParameterShape, ReLU, SiLU, Sigmoid, Softmax, StochasticDepth, Tanh,
                      Transpose, Unsqueeze)
from .calls import REQUIRED, bind
from .folded import FoldedBatch, fold_of, mark


def _folds(r, value, found: set) -> set:
    from .moves import Selections

    if isinstance(value, Selections):
        _folds(r, value.x, found)
    elif r.is_activation(value):
        if fold_of(r, value) > 1:
            found.add(fold_of(r, value))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _folds(r, v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _folds(r, v, found)
    return found


def folded_in(r, args, kwargs) -> set:
    """The factors of the folded values among a call's arguments (empty where none is)."""
    return _folds(r, (args, kwargs), set())


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def size_arithmetic(r, fn, args, kwargs):
    """``B * n`` (``n * B``) and ``(B*k) // n`` where ``n`` divides ``k`` (``k = 1``: the batch itself), on the
    batch ``B`` or a folded batch (what a view folds windows by): the batch times a known factor; ``(B*k) // B``
    is ``k`` (``B // B`` 1), a number; sizes concatenated (``x.shape[:-1] + (-1,)``), the batch among them as it was; None for anything
    else (refused)."""
    if kwargs or len(args) != 2:
        return None
    a, b = args
    if fn is operator.add and isinstance(a, tuple) and isinstance(b, tuple):
        return (*a, *b)
    k = None
    if fn in (operator.mul, operator.imul):
        a, b = (b, a) if (b is r.BATCH or isinstance(b, FoldedBatch)) else (a, b)
        if _count(b) and (a is r.BATCH or isinstance(a, FoldedBatch)):
            k = (1 if a is r.BATCH else a.k) * b
    elif fn is operator.floordiv and (a is r.BATCH or isinstance(a, FoldedBatch)) and _count(b) and \
            (1 if a is r.BATCH else a.k) % b == 0:
        k = (1 if a is r.BATCH else a.k) // b
    elif fn is operator.floordiv and (a is r.BATCH or isinstance(a, FoldedBatch)) and b is r.BATCH:
        return 1 if a is r.BATCH else a.k  # (N*k) // N: the fold itself, whatever N
    return None if k is None else r.BATCH if k == 1 else FoldedBatch(k)


def refold(r, node, x, sizes) -> tuple:
    """``x.view(sizes)``/``x.reshape(sizes)``: the per-sample shape and the factor of its output. The first
    size is the batch (``k = 1``), a folded batch ``N*k``, or ``-1`` with the others fixed (``k`` is then the
    sample's elements over theirs); the rest are per sample."""
    first, rest = sizes[0], tuple(sizes[1:])
    if any(s is r.BATCH or isinstance(s, FoldedBatch) for s in rest):
        r.refuse(node, "moves the batch size to another dimension; alexcost analyses each sample on its own")
    if first is r.BATCH:
        return rest, 1
    if isinstance(first, FoldedBatch) and rest:
        return (first.k, *rest), first.k
    whole, known = prod(x.shape), prod(rest)
    if first != -1 or -1 in rest or known <= 0 or whole % known or (not rest and whole != 1):
        r.refuse(node, f"sizes {list(sizes)} do not keep the batch as the first dimension (write x.size(0) "
                       f"there, or -1 with the other sizes fixed) on input "
                       f"{[_batch(r, x), *x.shape[fold_of(r, x) > 1:]]}")
    k = whole // known
    return ((k, *rest) if k > 1 else rest), k


def flatten(r, node, args, kwargs):
    """``x.flatten(start_dim, end_dim)``, ``torch.flatten``, on a tensor whose batch is folded by ``k`` (1:
    not folded). A flatten after dim 0 is the per-sample `Flatten` of the same dims (shifted past the fold).
    ``start_dim=0`` flattens the batch with the next dims: torch's ``(N*k, a, b, ...)`` flattened to ``(N*k*a,
    b, ...)`` holds sample ``n``'s rows together, in the sample's order, so per sample it is the `Flatten` of
    the fold and those dims, folded by their product (dims of size 1 only: the batch alone). Read only where
    torch's merge of the batch with the next dim is a view exactly when the sample's is (else torch copies
    what the sample views: refused)."""
    b = bind(r, node, (("input", REQUIRED), ("start_dim", 0), ("end_dim", -1)), args, kwargs)
    x = r.tensor(b["input"], node)
    k = fold_of(r, x)
    rank = len(x.shape) + (k == 1)  # torch's
    start, end = (_shift(r, node, r.constant(b[name], node, name), rank, name, batch=True) % rank
                  for name in ("start_dim", "end_dim"))
    if start > end:
        r.refuse(node, f"flatten() has invalid args: start_dim cannot come after end_dim (start_dim={b['start_dim']}, "
                       f"end_dim={b['end_dim']})")
    folded = k > 1
    if (start and not folded) or isinstance(x.shape, ParameterShape):  # the batch left alone: the dims as given
        return r.emit(node, r.build(node, Flatten, {"start_dim": b["start_dim"], "end_dim": b["end_dim"]}), [x])
    if start or (end == 0 and not folded):  # the batch and its fold left alone
        if not x.shape:
            r.refuse(node, "flattens a tensor of the batch dimension alone; alexcost analyses each sample on its own")
        first = max(start, 1) + folded
        return mark(r, r.emit(node, r.build(node, Flatten, {"start_dim": first, "end_dim": max(end, 1) + folded}),
                              [x]), k)
    if not folded and prod(x.shape[:end]) == 1:  # (N, 1, ..., a, ...) to (N, a, ...): the batch alone
        if end == len(x.shape):
            r.refuse(node, f"flattens {r.show(x)} into the batch dimension alone; alexcost analyses each sample "
                           f"on its own")
        return r.emit(node, r.build(node, Flatten, {"start_dim": 1, "end_dim": end + 1}), [x])
    y = r.emit(node, r.build(node, Flatten, {"start_dim": 1, "end_dim": end + folded}), [x])
    (before, xs), (after, _) = r._placed(node, 2, x.src), r._placed(node, 2, y.src)
    if before == after and xs[0] != x.shape[0] * xs[1]:
        r.refuse(node, f"flattens the batch of {r.show(x)} with dims whose strides torch cannot view together "
                       f"(it copies the tensor where each sample's flatten is a view); alexcost does not read it")
    return mark(r, y, y.shape[0])


def repeat_interleave(r, node, args, kwargs):
    """``x.repeat_interleave(n, dim)`` of a tensor whose batch is in front, ``n`` a number: as torch runs it,
    ``x.unsqueeze(dim + 1).expand(...)`` copied to a contiguous tensor and flattened at ``dim``. Per sample the
    `Unsqueeze`, `Expand` and copy (`Contiguous`; for ``n = 1``, of a contiguous ``x``, a `Clone`), then the
    `Flatten`; at ``dim=0`` each sample's copies are its own rows, in order: the batch folded by ``n``. Of a
    tensor computed once per pass (a rotary table's sines), the same run once, its dims the whole tensor's."""
    b = bind(r, node, (("input", REQUIRED), ("repeats", REQUIRED), ("dim", None), ("output_size", None)), args,
             kwargs)
    from .per_pass import held

    x = held(r, b["input"], node, gathered=False)
    whole = r.is_activation(x) and isinstance(x.shape, ParameterShape)
    x = x if whole else r.tensor(x, node)
    n, d = r.constant(b["repeats"], node, "repeats"), r.constant(b["dim"], node, "dim")
    rank = len(x.shape) + (not whole)
    if whole and (n == 1 or d is None):
        r.refuse(node, f"repeats {r.show(x)}, computed once per pass, {r.show(n)} times along dim={r.show(d)}; "
                       f"alexcost reads repeat_interleave of such a tensor 2 or more times along a dim it names")
    if not _count(n) or b["output_size"] is not None:
        r.refuse(node, f"repeats {r.show(n)} times (output_size={r.show(b['output_size'])}); alexcost reads a "
                       f"number of repeats of 1 or more, without output_size")
    if d is None or isinstance(d, bool) or not isinstance(d, int) or not -rank <= d < rank:
        r.refuse(node, f"its dim={r.show(d)} is not a dim of a tensor of {rank} dimensions; alexcost reads "
                       f"repeat_interleave along a dim it names")
    d = d % rank + whole  # (a tensor computed once per pass: its dimension d is the layer's d + 1)
    if n == 1:
        if r._placed(node, 2, x.src)[1] != st.contiguous((2, *x.shape)):
            r.refuse(node, "repeats a tensor that is not contiguous once (a copy of a layout alexcost does not "
                           "follow)")
        return r.emit(node, Clone(), [x])
    y = r.emit(node, r.build(node, Unsqueeze, {"dim": d + 1}), [x])
    y = r.emit(node, r.build(node, Expand, {"sizes": tuple(n if i == d else -1 for i in range(len(y.shape)))}), [y])
    y = r.emit(node, Contiguous(), [y])
    if d == 0:
        return mark(r, y, n)
    return r.emit(node, r.build(node, Flatten, {"start_dim": d, "end_dim": d + 1}), [y])


def _batch(r, x) -> str:
    k = fold_of(r, x)
    return "N" if k == 1 else f"N*{k}"


# -- calls on folded values ------------------------------------------------------------------------------
_MODULES = (Linear, LayerNorm, Dropout, Identity, GELU, ReLU, SiLU, Sigmoid, Tanh, Hardswish, StochasticDepth,
            Softmax)
"""Leaf modules that act on each row of dim 0 alone (a Softmax only over a dim counted from the end)."""

_PLAIN = frozenset({"contiguous", "clone", torch.clone, F.gelu, F.relu, "relu", torch.relu, F.silu, torch.sigmoid,
                    "sigmoid", "tanh", torch.tanh,
                    F.dropout, F.linear, F.layer_norm, F.normalize, F.softmax, torch.softmax, "softmax",
                    "transpose", torch.transpose, "mean", torch.mean, "sum", torch.sum, "unbind", torch.unbind,
                    "chunk", torch.chunk, "split", torch.split, "permute", torch.permute,
                    torch.cat, torch.concat, "amax", torch.amax})
"""Functions and methods on one folded tensor that leave its dim 0 alone (their dims shifted: `_DIMS`)."""

_BINARY = frozenset({operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul, torch.sub,
                     torch.div, "add", "mul", "sub", "div", operator.matmul, torch.matmul,
                     F.scaled_dot_product_attention})
"""Elementwise arithmetic and matrix products: every tensor operand folded alike, or a parameter that
does not reach dim 0 (broadcast over it)."""

_EQUATIONS = frozenset({torch.einsum})
"""Products whose equation names the folded dim (`_einsum`): its letter leads the folded operands and the output
and no other operand has it."""

_OWN = frozenset({"view", "reshape", torch.reshape, "view_as", "reshape_as", "size", "dim", "ndimension", getattr})
"""Calls that read a folded value themselves (sizes, `refold`)."""

_DIMS = {"transpose": ("dim0", "dim1"), torch.transpose: ("dim0", "dim1"), F.softmax: ("dim",),
         torch.softmax: ("dim",), "softmax": ("dim",), "mean": ("dim",), torch.mean: ("dim",), "sum": ("dim",),
         torch.sum: ("dim",), "unbind": ("dim",), torch.unbind: ("dim",), "chunk": ("chunks", "dim"),
         torch.chunk: ("chunks", "dim"), "split": ("split_size", "dim"),
         torch.split: ("split_size_or_sections", "dim"), torch.cat: ("dim",), torch.concat: ("dim",),
         "amax": ("dim",), torch.amax: ("dim",),
         F.normalize: ("p", "dim")}
"""The arguments after the tensor, in torch's order up to the last dim; the dims are those named dim*."""


def call(r, node, args, kwargs, default, ks: set):
    """The node's value where some of its arguments are folded (by the factors ``ks``)."""
    if len(ks) > 1:
        r.refuse(node, f"mixes tensors whose batch is folded with different factors {sorted(ks)}")
    k = next(iter(ks))
    if node.op == "output":
        r.refuse(node, f"returns a tensor whose first dimension is the batch times {k} (windows or heads "
                       f"folded into it); alexcost reads outputs whose first dimension is the batch")
    from .moves import Selections

    target = node.target
    if node.op != "call_module" and target in ("flatten", torch.flatten):
        return flatten(r, node, args, kwargs)
    if node.op == "call_module":
        how = _module(r, node, args, kwargs, k)
        if how == "rows":
            return _batch_norm_rows(r, node, args[0] if args else next(iter(kwargs.values())), k)
        if how == "folded":
            return _folded(r, node, args[0] if args else next(iter(kwargs.values())), k)
        return mark(r, default(node, args, kwargs), k)
    if target is operator.getitem:
        return _getitem(r, node, args, kwargs, default, k)
    if target is F.pad:
        return _pad(r, node, args, kwargs, default, k)
    if target == "expand":
        return _expand(r, node, args, kwargs, default, k)
    try:
        known = target in _OWN or target in _PLAIN or target in _BINARY or target in _EQUATIONS
    except TypeError:  # an unhashable callable
        known = False
    if not known:
        r.refuse(node, f"reads a tensor whose batch is folded with {k} windows or heads (its first dimension "
                       f"is N*{k}); alexcost reads such a tensor only through calls that leave that dimension "
                       f"alone")
    if target in _OWN:
        return default(node, args, kwargs)
    if target in ("unbind", torch.unbind) and args and isinstance(args[0], Selections):
        return mark(r, default(node, args, kwargs), k)  # its dim was checked at the permute: the selected one
    if (target in _DIMS or target in ("permute", torch.permute)) and not args:
        r.refuse(node, "passes its tensor by keyword; alexcost reads it on a folded tensor passed positionally")
    if target in _EQUATIONS:
        _einsum(r, node, args, kwargs, k)
        return mark(r, default(node, args, kwargs), k)
    _operands(r, node, args, kwargs, k, target in _BINARY)
    if target in (torch.cat, torch.concat) and not (isinstance(args[0], (list, tuple)) and all(
            r.is_activation(v) and fold_of(r, v) == k for v in args[0])):
        r.refuse(node, f"concatenates a tensor whose batch is folded with {k} windows or heads with others that "
                       f"are not folded alike; alexcost reads it only with tensors folded alike")
    if target is F.layer_norm:
        shape = args[1] if len(args) > 1 else kwargs.get("normalized_shape", ())
        _normalized(r, node, args[:1], tuple(shape) if isinstance(shape, (tuple, list)) else (shape,))
    if target is F.scaled_dot_product_attention:
        r.untrainable.append(f"{r.where(node)} attends over tensors whose batch is folded (N*{k}): what "
                               f"autograd keeps for torch's attention kernel on them is not what it keeps per "
                               f"sample, and alexcost does not count it")
    if target in ("permute", torch.permute):
        args, kwargs = _permuted(r, node, args, kwargs), {}
    elif target in _DIMS:
        args, kwargs = _shifted(r, node, args, kwargs, _DIMS[target])
    return mark(r, default(node, args, kwargs), k)


def _einsum(r, node, args, kwargs, k: int) -> None:
    """``torch.einsum(equation, *operands)`` on folded operands: the first letter of each folded operand is
    the one that leads the output, and no other operand (a parameter, or a tensor computed from parameters)
    has it; per sample it is then the same einsum (`alexcost.torch_bridge.attention.einsum`)."""
    equation, *operands = args if args else (None,)
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    text = equation.replace(" ", "") if isinstance(equation, str) and not kwargs else ""
    terms, _, out = text.partition("->")
    terms = terms.split(",")
    folded = [fold_of(r, v) == k for v in operands]
    if len(terms) != len(operands) or not out or not any(folded) or any(
            (t[:1] != out[0]) if f else (out[0] in t or not r.is_tensor(v) or r.is_activation(v) and not isinstance(
                v.shape, ParameterShape)) for t, f, v in zip(terms, folded, operands)):
        r.refuse(node, f"einsum {r.show(equation)} on a tensor whose batch is folded with {k} windows or heads; "
                       f"alexcost reads it where the folded dimension's letter leads the folded operands and the "
                       f"output and no other operand, the others parameters or tensors computed from them")


def _module(r, node, args, kwargs, k: int) -> str:
    """Checks a module's call on a folded tensor: "rows" for a BatchNorm1d of rows (`_batch_norm_rows`),
    "plain" for a module whose layer reads the folded sample as it is (`_MODULES`), "folded" for any other
    module of one tensor in and one out, in storage of its own (`_folded`)."""
    from .trace import kind_of

    module = r.module(node.target)
    kind = kind_of(type(module))
    values = [*args, *kwargs.values()]
    if kind is BatchNorm1d and len(values) == 1 and r.is_activation(values[0]) and len(values[0].shape) == 2:
        return "rows"
    if kind in _MODULES and not (kind is Softmax and not (isinstance(module.dim, int) and module.dim < 0)):
        _operands(r, node, args, kwargs, k, False)
        if kind is LayerNorm:
            _normalized(r, node, [*args, *kwargs.values()], tuple(module.normalized_shape))
        return "plain"
    if kind is None:
        r._module_call(node, args, kwargs)  # refused there: alexcost has no kind for it
    if kind in _MODULES or kind.arity != 1 or kind.multi_output or kind.storage != "new" or \
            len(values) != 1 or not r.is_activation(values[0]):
        r.refuse(node, ROWS_ONLY.format(k=k))
    _operands(r, node, args, kwargs, k, False)
    return "folded"


ROWS_ONLY = ("reads a tensor whose batch is folded with {k} windows or heads (its first dimension is N*{k}); "
             "alexcost reads such a tensor only with modules of one tensor in and one out, in storage of their own "
             "(a Softmax over a dim counted from the end)")
"""Why a module is not read on a folded tensor."""


def _folded(r, node, x, k: int):
    """A module run on the ``(N*k, ...)`` tensor: per sample, its layer on each of the ``k`` rows (a `Folded`
    of the layer read from the module for one row, `Reader._module_call`). Read on a contiguous tensor only
    (where torch's output is contiguous, as `Folded`'s is)."""
    strides = r._placed(node, 2, x.src)[1]
    y = r._module_call(node, (x,), {}, rows=True)
    rows = (2 * x.shape[0], *x.shape[1:])
    if strides != st.contiguous((2, *x.shape)) and not (
            r.layers[y.src[0]].layout == "rows format" and strides[0] == x.shape[0] * strides[1]
            and st.is_channels_last(rows, strides[1:])):
        r.refuse(node, f"reads a tensor whose batch is folded with {k} windows or heads and that is neither "
                       f"contiguous nor channels-last; alexcost reads a module on such a tensor only so laid out "
                       f"(channels-last for a module that keeps that format)")
    return mark(r, y, k)


def _batch_norm_rows(r, node, x, k: int):
    """``BatchNorm1d`` of ``(N*k, C)`` rows: per channel, over every row, as of ``(N, C, k)``: per sample the
    `BatchNorm1d` of the rows transposed to ``(C, k)``, then transposed back (both views, no ops). The same
    forward counts; a training step is refused, as the layout of torch's output (rows, contiguous) is not
    that of the one read (channels first)."""
    rows = r.emit(node, Transpose(dim0=1, dim1=2), [x], label="transpose")
    y = r._module_call(node, (rows,), {})
    r.untrainable.append(f"{r.where(node)} normalizes the rows of several samples folded into the batch "
                           f"(N*{k}, {x.shape[1]}): alexcost reads its forward pass as a batch norm of (N, "
                           f"{x.shape[1]}, {k}), and does not count a training step of it (torch's output is laid "
                           f"out as rows)")
    return mark(r, r.emit(node, Transpose(dim0=1, dim1=2), [y], label="transpose"), k)


def _normalized(r, node, values, shape) -> None:
    """A layer norm over dims that reach the folded dim 0 (as many as the tensor has): refused."""
    rank = min((len(v.shape) for v in values if r.is_activation(v)), default=0)
    if len(shape) >= rank:
        r.refuse(node, f"normalizes over {list(shape)}, which reaches the dimension the batch is folded into")


def _getitem(r, node, args, kwargs, default, k: int):
    from .moves import Selections

    if args and isinstance(args[0], (list, tuple)):  # one of several outputs: already marked
        return default(node, args, kwargs)
    if args and isinstance(args[0], Selections):
        return mark(r, default(node, args, kwargs), k)
    index = args[1] if len(args) == 2 and not kwargs else None
    if isinstance(index, tuple) and index and index[0] == slice(None) and r.is_activation(args[0]):
        return mark(r, default(node, (args[0], (slice(None), *index)), {}), k)  # the fold's dim kept, whole
    r.refuse(node, f"indexes a tensor whose batch is folded with {k} windows or heads; alexcost reads indexing "
                   f"on it that keeps its first dimension whole (x[:, ...])")


def _pad(r, node, args, kwargs, default, k: int):
    """``F.pad(x, pad)`` (constant) of a contiguous folded tensor over dims after the first: per sample the same
    pad of each of the ``k`` rows, read as the pad of the ``(k, ...)`` sample; torch's output is contiguous."""
    call = bind(r, node, (("input", REQUIRED), ("pad", REQUIRED), ("mode", "constant"), ("value", None)), args,
                kwargs)
    x, pad, mode = call["input"], call["pad"], r.constant(call["mode"], node, "mode")
    contiguous = r.is_activation(x) and r._placed(node, 2, x.src)[1] == st.contiguous((2, *x.shape))
    if mode != "constant" or not isinstance(pad, (tuple, list)) or not contiguous or len(pad) // 2 >= len(x.shape):
        r.refuse(node, f"pads a tensor whose batch is folded with {k} windows or heads; alexcost reads a constant "
                       f"pad of such a tensor where it is contiguous and the pad leaves its first dimension alone")
    return mark(r, default(node, args, kwargs), k)


def _expand(r, node, args, kwargs, default, k: int):
    """``x.expand(-1, ...)`` of a folded tensor, as many sizes as it has dims, the first -1 (or its own
    ``N*k``): per sample the same expand of the ``(k, ...)`` sample, a view."""
    x, *sizes = args
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = list(sizes[0])
    first = sizes[0] if sizes else None
    if kwargs or len(sizes) != len(x.shape) or not (
            first == -1 and not isinstance(first, bool) or isinstance(first, FoldedBatch) and first.k == k):
        r.refuse(node, f"expands a tensor whose batch is folded with {k} windows or heads to {r.show(sizes)}; "
                       f"alexcost reads such an expand with a size for each of its dims, the first -1")
    return mark(r, default(node, (x, -1, -1, *sizes[1:]), {}), k)


def _operands(r, node, args, kwargs, k: int, binary: bool) -> None:
    """Every tensor operand folded by ``k`` (of two dims at least), or, for arithmetic and matrix
    products, a parameter that does not reach dim 0: fewer dims than the folded ones, or as many with
    size 1 first."""
    from .moves import Selections

    values = [*args, *kwargs.values()]
    flat = [w for v in values for w in (v if isinstance(v, (list, tuple)) else (v,))]
    ranks = {len(v.shape) for v in flat if r.is_activation(v) and fold_of(r, v) == k}
    if binary and len(ranks) > 1:
        r.refuse(node, f"mixes tensors whose batch is folded with {k}, of {sorted(ranks)} dimensions; alexcost "
                       f"reads folded operands of as many dimensions only")
    rank = min(ranks, default=2)
    if rank < 2 or (binary and node.target in (operator.matmul, torch.matmul,
                                               F.scaled_dot_product_attention) and rank < 3):
        r.refuse(node, f"reads a tensor of {rank} dimensions whose batch is folded with {k}; alexcost reads "
                       f"it only where each row of the first dimension is a tensor itself")
    for v in flat:
        if isinstance(v, Selections) or (r.is_activation(v) and fold_of(r, v) == k):
            continue
        if not r.is_tensor(v):
            continue
        param = r.is_attribute(v) or isinstance(v.shape, ParameterShape)
        shape = tuple(v.tensor.shape) if r.is_attribute(v) else tuple(v.shape)
        if not param or (binary and (len(shape) > rank or (len(shape) == rank and shape[0] != 1))):
            r.refuse(node, f"mixes a tensor whose batch is folded with {k} windows or heads with "
                           f"{r.show(v)}; alexcost reads it with tensors folded alike, or with parameters "
                           f"broadcast over the batch")


def _shift(r, node, d, rank: int, name: str, batch: bool = False):
    """Torch's dim ``d`` of a folded tensor of ``rank`` dims as the per-sample activation's dim (``batch``:
    ``d`` itself, checked, and the folded dim allowed)."""
    if isinstance(d, (tuple, list)):
        return type(d)(_shift(r, node, e, rank, name) for e in d)
    if not isinstance(d, int) or isinstance(d, bool) or not -rank <= d < rank:
        r.refuse(node, f"its {name}={r.show(d)} is not a dim of a tensor of {rank} dimensions")
    if batch:
        return d
    if d % rank == 0:
        r.refuse(node, f"its {name}={d} is the dimension the batch is folded into (N*k); alexcost "
                       f"analyses each sample on its own")
    return d + 1 if d > 0 else d


def _shifted(r, node, args, kwargs, names: tuple):
    """The arguments with each dim named in ``names`` shifted; a dim left at its default is refused."""
    x, rest, kwargs = args[0], list(args[1:]), dict(kwargs)
    rank = len((x[0] if isinstance(x, (list, tuple)) and x else x).shape)
    for i, name in enumerate(names):
        if not name.startswith("dim"):
            continue
        if i < len(rest):
            rest[i] = _shift(r, node, r.constant(rest[i], node, name), rank, name)
        elif name in kwargs:
            kwargs[name] = _shift(r, node, r.constant(kwargs[name], node, name), rank, name)
        else:
            r.refuse(node, f"leaves {name} at its default on a tensor whose batch is folded; write the dim")
    return (x, *rest), kwargs


def _permuted(r, node, args, kwargs):
    """``x.permute(dims)`` of a folded tensor as the activation's permute: torch's dim 0 is the batch and
    the fold (kept together, in this order), any other dim ``d`` the activation's ``d + 1``."""
    x, *rest = args
    if kwargs:
        if rest or set(kwargs) != {"dims"}:
            r.refuse(node, "takes its dims positionally or as dims=")
        rest = [kwargs["dims"]]
    if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
        rest = list(rest[0])
    rank = len(x.shape)
    out = []
    for d in rest:
        d = r.constant(d, node, "dims")
        if not isinstance(d, int) or isinstance(d, bool) or not -rank <= d < rank:
            r.refuse(node, f"its dims {list(rest)} are not a permutation of {rank} dimensions")
        out.extend((0, 1) if d % rank == 0 else (d % rank + 1,))
    return (x, *out)
