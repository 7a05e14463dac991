"""Single calls that stop otherwise readable models, as alexcost layers: ``x.expand_as(y)``, ``x.float()``
(the tensor itself) and ``x.dtype`` in a float32 module, ``x.amax(dim)``, ``x.var(dim)``,
``F.rms_norm``, ``F.normalize``, ``F.avg_pool1d``, ``F.unfold`` and
``F.fold`` (``nn.RMSNorm``, ``nn.AvgPool1d``, ``nn.Unfold`` and ``nn.Fold`` are read by name). Handlers as in
`alexcost.torch_bridge.ops`, which adds
`FUNCTIONS` and `METHODS` to its tables. Imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers import (Amax, AvgPool1d, Expand, Fold, Normalize, ParameterShape, Repeat, RMSNorm, Unfold, Var,
                      View)
from .per_pass import held
from .calls import REQUIRED, bind, unary, weight_arg


def expand_as(r, node, args, kwargs):
    """``x.expand_as(y)`` of activations: ``x.expand(y.size())``, an `Expand` to ``y``'s per-sample shape
    (the batch sizes are the same: both are activations of one batch)."""
    b = bind(r, node, (("input", REQUIRED), ("other", REQUIRED)), args, kwargs)
    x, other = r.tensor(b["input"], node), r.tensor(b["other"], node)
    return r.emit(node, r.build(node, Expand, {"sizes": tuple(other.shape)}), [x])


def float32(r, node, what: str):
    """``torch.float32``: the dtype of every activation in a module whose parameters are float32, as alexcost
    reads it (its input float32 too); refused in any other module."""
    found = {p.dtype for p in r.root.parameters()} - {torch.float32}
    if found:
        r.refuse(node, f"{what} in a module whose parameters are {sorted(map(str, found))}; alexcost reads it "
                       f"only in a float32 module, where every activation is float32")
    r.casts.append(r.where(node))  # under autocast a dtype depends on the region: a training step is refused
    return torch.float32


def to_float(r, node, args, kwargs):
    """``x.float()``: of a float32 parameter or buffer, that tensor; of an activation, or of a tensor computed
    once per pass from float32 parameters and buffers, in a module whose parameters are float32 (as alexcost
    reads it), the tensor itself, as torch returns it."""
    b = bind(r, node, (("input", REQUIRED), ("memory_format", torch.preserve_format)), args, kwargs)
    if b["memory_format"] is not torch.preserve_format:
        r.refuse(node, "converts with a memory_format; alexcost reads x.float() without one")
    return as_float32(r, node, b["input"])


def as_float32(r, node, x):
    """``x`` converted to float32, where it is float32 already (see `to_float`)."""
    if r.is_attribute(x):
        if x.tensor.dtype != torch.float32:
            r.refuse(node, f"converts {r.show(x)} of {x.tensor.dtype} to float32; alexcost reads a conversion to "
                           f"float32 of a float32 tensor only")
        return x
    if not (r.is_activation(x) and x.shape.__class__ is ParameterShape):  # (computed once per pass: float32 too)
        x = r.tensor(x, node)
    float32(r, node, "converts to float32")
    return x


def rms_norm(r, node, args, kwargs):
    """``F.rms_norm(x, normalized_shape, weight, eps)``, its weight a parameter of normalized_shape."""
    b = bind(r, node, (("input", REQUIRED), ("normalized_shape", REQUIRED), ("weight", None), ("eps", None)),
             args, kwargs)
    x = r.tensor(b["input"], node)
    shape = r.constant(b["normalized_shape"], node, "normalized_shape")
    rank = 1 if isinstance(shape, int) else len(shape)
    weight = weight_arg(r, node, b["weight"], "weight", rank)
    layer = r.build(node, RMSNorm, dict(normalized_shape=shape, eps=r.constant(b["eps"], node, "eps"),
                                        elementwise_affine=weight is not None))
    if weight is not None and tuple(weight.tensor.shape) != layer.normalized_shape:
        r.refuse(node, f"{weight.path!r} has shape {list(weight.tensor.shape)}, not normalized_shape "
                       f"{list(layer.normalized_shape)}")
    return r.emit(node, layer, [x], params=(("weight", weight),))


def amax(r, node, args, kwargs):
    """``x.amax(dim, keepdim)``, ``torch.amax``: an `Amax` over the dims given (none given: every dim, the
    batch's too, refused)."""
    b = bind(r, node, (("input", REQUIRED), ("dim", ()), ("keepdim", False), ("out", None)), args, kwargs)
    if b["out"] is not None:
        r.refuse(node, "writes into out=; alexcost reads it without")
    dim = r.constant(b["dim"], node, "dim")
    if isinstance(dim, (tuple, list)) and not dim:
        r.refuse(node, "reduces every dimension, the batch's too; alexcost analyses each sample on its own")
    return r.emit(node, r.build(node, Amax, {"dim": dim, "keepdim": r.constant(b["keepdim"], node, "keepdim")}),
                  [r.tensor(b["input"], node)])


def var(r, node, args, kwargs):
    """``x.var(dim, unbiased, keepdim)``, ``x.var(dim, correction=c, keepdim=k)`` (``torch.var``): a `Var` over the
    dims given (none given: every dim, the batch's too, refused); ``unbiased`` is ``correction`` 1 or 0."""
    b = bind(r, node, (("input", REQUIRED), ("dim", None), ("unbiased", None), ("keepdim", False),
                       ("correction", None), ("out", None)), args, kwargs)
    if b["out"] is not None:
        r.refuse(node, "writes into out=; alexcost reads it without")
    dim = r.constant(b["dim"], node, "dim")
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        r.refuse(node, "reduces every dimension, the batch's too; alexcost analyses each sample on its own")
    unbiased, correction = r.constant(b["unbiased"], node, "unbiased"), r.constant(b["correction"], node, "correction")
    if unbiased is not None and correction is not None:
        r.refuse(node, "takes both unbiased and correction; torch takes one")
    correction = int(unbiased) if unbiased is not None else 1 if correction is None else correction
    layer = r.build(node, Var, {"dim": dim, "keepdim": r.constant(b["keepdim"], node, "keepdim"),
                                "correction": correction})
    return r.emit(node, layer, [r.tensor(b["input"], node)])


def repeat(tile: bool):
    """``x.repeat(*sizes)`` (``tile``: ``x.tile(sizes)``, ``torch.tile``, fewer sizes meaning leading 1s): a
    `Repeat`. Of an activation the batch's count must be 1 (each sample copied along its own dimensions); of
    a parameter or buffer, or a tensor computed from them alone, its whole shape is repeated, once per pass
    (SAM 2's window position embedding tiled; more sizes than dimensions add leading ones, a view first), or,
    of shape ``(1, ...)`` repeated by ``(N, ...)``, copied for each sample (a `Repeat` with ``batch``: XCiT's
    positions). Of an activation, more sizes than dimensions are refused."""
    def handle(r, node, args, kwargs):
        b = bind(r, node, (("input", REQUIRED), ("dims" if tile else "sizes", ())), args[:1], kwargs)
        sizes = args[1:] or b["dims" if tile else "sizes"]
        sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        sizes = [r.constant(s, node, "dims" if tile else "sizes", batch_ok=True) for s in sizes]
        x = held(r, b["input"], node, gathered=False)
        whole = r.is_activation(x) and x.shape.__class__ is ParameterShape
        if whole and len(sizes) == len(x.shape) and sizes[0] is r.BATCH and x.shape[0] == 1 and \
                not any(s is r.BATCH for s in sizes[1:]):  # a tensor computed once per pass, copied for each sample
            return r.emit(node, r.build(node, Repeat, {"repeats": tuple(sizes[1:]), "batch": True}), [x])
        if any(s is r.BATCH for s in sizes):
            r.refuse(node, f"repeats {r.show(x)} by {r.show(sizes)}; alexcost reads the batch size among the counts "
                           f"only as the first count of a tensor computed once per pass whose first size is 1, "
                           f"of as many dimensions as counts (x.repeat(N, 1, ...))")
        if not whole:
            x = r.tensor(x, node)
        rank = len(x.shape) + (not whole)
        sizes = (1,) * (rank - len(sizes)) + tuple(sizes) if tile else tuple(sizes)
        if whole and len(sizes) > rank:  # new leading dimensions of 1, then repeated: torch's own reading
            x = r.emit(node, r.build(node, View, {"shape": (1,) * (len(sizes) - rank) + tuple(x.shape)}), [x])
            rank = len(sizes)
        if len(sizes) != rank:
            r.refuse(node, f"repeats {r.show(x)} by {list(sizes)}: "
                           + ("torch needs a count for each dimension" if len(sizes) < rank else
                              "more counts than dimensions add leading ones; alexcost repeats without adding "
                              "dimensions"))
        if not whole and sizes[0] != 1:
            r.refuse(node, f"repeats the batch {sizes[0]} times; alexcost analyses each sample on its own")
        return r.emit(node, r.build(node, Repeat, {"repeats": sizes if whole else sizes[1:]}), [x])
    return handle


FUNCTIONS = {
    F.rms_norm: rms_norm, torch.tile: repeat(True), torch.amax: amax, torch.var: var,
    F.avg_pool1d: unary(AvgPool1d, (("kernel_size", REQUIRED), ("stride", None), ("padding", 0),
                                    ("ceil_mode", False), ("count_include_pad", True))),
    F.normalize: unary(Normalize, (("p", 2.0), ("dim", 1), ("eps", 1e-12), ("out", None)), fixed={"out": None}),
    F.unfold: unary(Unfold, (("kernel_size", REQUIRED), ("dilation", 1), ("padding", 0), ("stride", 1))),
    F.fold: unary(Fold, (("output_size", REQUIRED), ("kernel_size", REQUIRED), ("dilation", 1), ("padding", 0),
                         ("stride", 1))),
}
"""Functions by the object fx records as a call_function node's target."""

METHODS = {"expand_as": expand_as, "float": to_float, "amax": amax, "var": var, "repeat": repeat(False),
           "tile": repeat(True)}
"""Tensor methods by name."""
