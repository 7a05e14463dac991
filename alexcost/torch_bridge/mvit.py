"""torchvision's MViT helpers, which torch.fx records as single calls, read by their known semantics:
``_unsqueeze`` and ``_squeeze`` (a dimension added for a lower-rank input and dropped again, or nothing),
``torch.tensor_split`` of an activation (a `Split`), ``_add_shortcut`` (the pooled query added to
attention's output in place: an in-place `Add`, or, without the class token, a `SliceAdd`)
and ``_add_rel_pos`` (MViT V2's decomposed relative position bias, refused). Handlers as in
`alexcost.torch_bridge.ops`, which adds `functions(METHODS)` to its table. Imports torch and torchvision.
"""

from __future__ import annotations

import torch

from ..layers import Slice, SliceAdd, Split
from .calls import REQUIRED, bind


def _rank(r, node, x) -> int:
    """The batched rank of activation ``x``: ``x.dim()`` as torch gives it."""
    return len(r.sizes(r.tensor(x, node), node))


def unsqueeze(r, node, args, kwargs, methods):
    """``_unsqueeze(x, target_dim, expand_dim)``: ``(x.unsqueeze(expand_dim), x.dim())`` for an input of rank
    ``target_dim - 1``, ``(x, x.dim())`` for one of rank ``target_dim``; torchvision raises for any other."""
    b = bind(r, node, (("x", REQUIRED), ("target_dim", REQUIRED), ("expand_dim", REQUIRED)), args, kwargs)
    target, at = (r.constant(b[k], node, k) for k in ("target_dim", "expand_dim"))
    rank = _rank(r, node, b["x"])
    if rank == target - 1:
        return methods["unsqueeze"](r, node, (b["x"], at), {}), rank
    if rank != target:
        r.refuse(node, f"Unsupported input dimension: {r.show(b['x'])} (torchvision's _unsqueeze takes rank "
                       f"{target - 1} or {target})")
    return b["x"], rank


def squeeze(r, node, args, kwargs, methods):
    """``_squeeze(x, target_dim, expand_dim, tensor_dim)``: ``x.squeeze(expand_dim)`` when ``tensor_dim`` is
    ``target_dim - 1`` (what `unsqueeze` added), else ``x`` itself."""
    spec = (("x", REQUIRED), ("target_dim", REQUIRED), ("expand_dim", REQUIRED), ("tensor_dim", REQUIRED))
    b = bind(r, node, spec, args, kwargs)
    target, at, rank = (r.constant(b[k], node, k) for k in ("target_dim", "expand_dim", "tensor_dim"))
    r.tensor(b["x"], node)
    if rank == target - 1:
        return methods["squeeze"](r, node, (b["x"], at), {})
    return b["x"]


def tensor_split(r, node, args, kwargs):
    """``torch.tensor_split(x, indices, dim)`` (a list of indices, or ``sections``: that many near-equal pieces,
    the first ``size % sections`` one longer): a `Split` into the pieces' sizes. Indices must rise strictly
    inside the dimension (an empty piece is refused)."""
    names = {"indices", "sections", "tensor_indices_or_sections"}
    if len(args) > 3 or len(set(kwargs) & names) + (len(args) > 1) != 1 or set(kwargs) - names - {"input", "dim"}:
        r.refuse(node, "takes its input, one of indices= or sections=, and dim; alexcost reads no other form")
    x = r.tensor(args[0] if args else kwargs.get("input"), node)
    how = args[1] if len(args) > 1 else next(kwargs[k] for k in names if k in kwargs)
    how = r.constant(how, node, "indices_or_sections")
    dim = r.constant(args[2] if len(args) > 2 else kwargs.get("dim", 0), node, "dim")
    sizes = r.sizes(x, node)
    if not isinstance(dim, int) or isinstance(dim, bool) or not -len(sizes) <= dim < len(sizes):
        r.refuse(node, f"splits along dim {r.show(dim)} of {r.show(x)}")
    d = dim % len(sizes)
    if d == 0:
        r.refuse(node, "splits the batch dimension; alexcost analyses each sample on its own")
    size = sizes[d]
    if isinstance(how, int) and not isinstance(how, bool):
        if how < 1:
            r.refuse(node, f"number of sections must be larger than 0, got {how}")
        pieces = [size // how + (i < size % how) for i in range(how)]
    elif isinstance(how, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in how):
        bounds = [0, *how, size]
        pieces = [b - a for a, b in zip(bounds, bounds[1:])]
    else:
        r.refuse(node, f"splits at {r.show(how)}; alexcost reads a number of sections or a list of indices")
    if any(p < 1 for p in pieces):
        r.refuse(node, f"splits dimension {d} of size {size} at {r.show(how)}, which leaves an empty piece or "
                       f"indices that do not rise; alexcost reads indices rising strictly inside the dimension")
    return r.emit(node, r.build(node, Split, {"split_size_or_sections": tuple(pieces), "dim": d}), [x])


def add_shortcut(r, node, args, kwargs, methods):
    """``_add_shortcut(x, shortcut, residual_with_cls_embed)``: ``x.add_(shortcut)``, an in-place `Add`; without
    the class token, ``x[:, :, 1:, :] += shortcut[:, :, 1:, :]``: a `Slice` of the shortcut added into the
    same slice of ``x`` in place (a `SliceAdd`)."""
    spec = (("x", REQUIRED), ("shortcut", REQUIRED), ("residual_with_cls_embed", REQUIRED))
    b = bind(r, node, spec, args, kwargs)
    if r.constant(b["residual_with_cls_embed"], node, "residual_with_cls_embed"):
        return methods["add_"](r, node, (b["x"], b["shortcut"]), {})
    x, shortcut = r.tensor(b["x"], node), r.tensor(b["shortcut"], node)
    return _add_into(r, node, x, r.emit(node, r.build(node, Slice, {"index": _AFTER_TOKEN}), [shortcut],
                                        label="slice"))


_AFTER_TOKEN = ((None, None, None), (1, None, None))
"""``[:, :, 1:]``: every head's tokens after the class token (per sample, the heads first)."""


def _add_into(r, node, x, y):
    """``x[:, :, 1:] += y`` (a `SliceAdd` writing into ``x``)."""
    return r.emit(node, r.build(node, SliceAdd, {"index": _AFTER_TOKEN}), [x, y], label="add")


def add_rel_pos(r, node, args, kwargs):
    """``_add_rel_pos``: MViT V2's decomposed relative position bias, refused (see the message)."""
    r.refuse(node, "adds MViT V2's decomposed relative position bias to attention's scores: products of the "
                   "query with position tables gathered per query and key position (einsums of an activation "
                   "with a gathered parameter), added into the scores after the class token in place "
                   "(attn[:, :, 1:, 1:] += rel_pos); alexcost has no layer kind for a matrix product with a "
                   "parameter operand nor for an add into a slice of a tensor in place")


def functions(methods: dict) -> dict:
    """The handlers by function, for the torchvision installed (an ImportError without it); ``methods``: the
    reader's tensor methods by name, which they call (``unsqueeze``, ``squeeze``, ``add_``)."""
    from torchvision.models.video import mvit

    def using(handler):
        return lambda r, node, args, kwargs: handler(r, node, args, kwargs, methods)
    return {mvit._unsqueeze: using(unsqueeze), mvit._squeeze: using(squeeze), mvit._add_shortcut: using(add_shortcut),
            mvit._add_rel_pos: add_rel_pos}
