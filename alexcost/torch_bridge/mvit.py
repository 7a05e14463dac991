"""torchvision's MViT helpers, which torch.fx records as single calls, read by their known semantics:
``_unsqueeze`` and ``_squeeze`` (a dimension added for a lower-rank input and dropped again, or nothing),
``torch.tensor_split`` of an activation (a `Split`), ``_add_shortcut`` (the pooled query added to
attention's output in place: an in-place `Add`, or, without the class token, a `SliceAdd`)
and ``_add_rel_pos`` (MViT V2's decomposed relative position bias: products with gathered tables, added into
the scores; see `add_rel_pos`). Handlers as in
`alexcost.torch_bridge.ops`, which adds `functions(METHODS)` to its table. Imports torch and torchvision.
"""

from __future__ import annotations

from math import prod

import torch

from ..layers import (Add, Contiguous, Matmul, ParameterShape, Permute, PositionBias, Reshape, Slice, SliceAdd, Split,
                     Squeeze, Unsqueeze)
from .calls import REQUIRED, bind, weight_arg


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
    """``_add_rel_pos(attn, q, q_thw, k_thw, rel_pos_h, rel_pos_w, rel_pos_t)``: MViT V2's decomposed relative
    position bias. Each table's rows are gathered by an index torchvision computes with ``torch.arange`` (a
    `PositionBias` with ``index_buffer=False``, transposed for the product); the query after the class token
    (a `Slice`, viewed as ``(heads, T, H, W, dim)``) is multiplied by each, a `Matmul` with a parameter operand
    of as many MACs as torch's einsums and matmul (along H; along W, each row unsqueezed to a 1-row matrix;
    along T, the permuted copy torch makes); the three are unsqueezed, added (two `Add`s, as torch broadcasts
    them) and viewed as the scores after the class token, then added into them in place (a `SliceAdd`).
    A table that torchvision would interpolate (its rows not ``2 * max(q, k) - 1``) is refused."""
    spec = (("attn", REQUIRED), ("q", REQUIRED), ("q_thw", REQUIRED), ("k_thw", REQUIRED), ("rel_pos_h", REQUIRED),
            ("rel_pos_w", REQUIRED), ("rel_pos_t", REQUIRED))
    b = bind(r, node, spec, args, kwargs)
    attn, q = r.tensor(b["attn"], node), r.tensor(b["q"], node)
    q_thw, k_thw = (tuple(r.constant(b[k], node, k)) for k in ("q_thw", "k_thw"))
    tables = [weight_arg(r, node, b[f"rel_pos_{a}"], f"rel_pos_{a}", 2) for a in "thw"]
    if len(q.shape) != 3 or len(q_thw) != 3 or len(k_thw) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (*q_thw, *k_thw)):
        r.refuse(node, f"reads q {r.show(q)} at {r.show(q_thw)} and keys at {r.show(k_thw)}; alexcost reads "
                       f"(heads, 1 + T*H*W, dim) queries at (T, H, W) sizes")
    heads, tokens, dim = q.shape
    if tokens != 1 + prod(q_thw) or tuple(attn.shape) != (heads, tokens, 1 + prod(k_thw)):
        r.refuse(node, f"its scores {r.show(attn)} and queries {r.show(q)} do not fit {list(q_thw)} queries and "
                       f"{list(k_thw)} keys after a class token")
    for axis, table, qs, ks in zip("thw", tables, q_thw, k_thw):
        if table is None or tuple(table.tensor.shape) != (2 * max(qs, ks) - 1, dim):
            r.refuse(node, f"its table rel_pos_{axis} {r.show(table)} is not ({2 * max(qs, ks) - 1}, {dim}): "
                           f"torchvision interpolates it then, which alexcost does not read")
    gathered = [_gathered(r, node, table, qs, ks) for table, qs, ks in zip(tables, q_thw, k_thw)]
    (qt, qh, qw), (kt, kh, kw) = q_thw, k_thw
    view = r.emit(node, r.build(node, Slice, {"index": _AFTER_TOKEN}), [q], label="slice")
    view = r.emit(node, r.build(node, Reshape, {"shape": (heads, qt, qh, qw, dim)}), [view], label="reshape")
    rel_h = r.emit(node, Matmul(), [view, gathered[1]], label="einsum")                 # (heads, qt, qh, qw, kh)
    r.fvcore_calls.append((rel_h.src[0], "bythwc,hkc->bythwk"))  # fvcore counts torchvision's calls
    rows = r.emit(node, r.build(node, Unsqueeze, {"dim": 5}), [view], label="unsqueeze")
    rel_w = r.emit(node, Matmul(), [rows, gathered[2]], label="einsum")                 # (heads, qt, qh, qw, 1, kw)
    r.fvcore_calls.append((rel_w.src[0], "bythwc,wkc->bythwk"))
    rel_w = r.emit(node, r.build(node, Squeeze, {"dim": 5}), [rel_w], label="squeeze")
    moved = r.emit(node, r.build(node, Permute, {"dims": (0, 1, 3, 4, 2, 5)}), [view], label="permute")
    moved = r.emit(node, Contiguous(), [moved], label="reshape")                        # (heads, qh, qw, qt, dim)
    moved = r.emit(node, r.build(node, Unsqueeze, {"dim": 5}), [moved], label="unsqueeze")
    rel_t = r.emit(node, Matmul(), [moved, gathered[0]], label="matmul")                # (heads, qh, qw, qt, 1, kt)
    r.fvcore_calls.append((rel_t.src[0], None))  # (qt, heads*qh*qw, dim) @ (qt, dim, kt): its MACs
    rel_t = r.emit(node, r.build(node, Squeeze, {"dim": 5}), [rel_t], label="squeeze")
    rel_t = r.emit(node, r.build(node, Permute, {"dims": (0, 1, 4, 2, 3, 5)}), [rel_t], label="permute")
    parts = [_lifted(r, node, part, at) for part, at in ((rel_h, (5, 7)), (rel_w, (5, 6)), (rel_t, (6, 7)))]
    total = r.emit(node, Add(), parts[:2], label="add")
    total = r.emit(node, Add(), [total, parts[2]], label="add")
    total = r.emit(node, r.build(node, Reshape, {"shape": (heads, qt * qh * qw, kt * kh * kw)}), [total],
                   label="reshape")
    index = (*_AFTER_TOKEN, (1, None, None))
    return r.emit(node, r.build(node, SliceAdd, {"index": index}), [attn, total], label="add")


def _gathered(r, node, table, qs: int, ks: int):
    """``table[dist.long()]`` transposed to ``(qs, dim, ks)``, as torchvision's index arithmetic gathers it: a
    `PositionBias` (its index computed in the forward pass) read by a `Matmul`."""
    q_ratio, k_ratio = max(ks / qs, 1.0), max(qs / ks, 1.0)
    dist = torch.arange(qs)[:, None] * q_ratio - (torch.arange(ks)[None, :] + (1.0 - ks)) * k_ratio
    rows = table.tensor.detach()[dist.long()].transpose(1, 2)
    layer = r.build(node, PositionBias, {"table": tuple(table.tensor.shape), "shape": tuple(rows.shape), "dim": 0,
                                         "index_buffer": False})
    module, _, name = table.path.rpartition(".")  # added as `Reader.operand` adds a gathered parameter's layer
    act = r._add(node, layer, (), ParameterShape(layer.shape), f"{module}:{name}", None, (("weight", table.tensor),),
                 layer.shape, module, name)
    return type(act)(act.src, ParameterShape(layer.shape))


def _lifted(r, node, part, dims):
    """``part`` with dimensions of size 1 at ``dims`` of the batched tensor (torch's ``[..., None, :, None]``)."""
    for d in dims:
        part = r.emit(node, r.build(node, Unsqueeze, {"dim": d}), [part], label="unsqueeze")
    return part


def functions(methods: dict) -> dict:
    """The handlers by function, for the torchvision installed (an ImportError without it); ``methods``: the
    reader's tensor methods by name, which they call (``unsqueeze``, ``squeeze``, ``add_``)."""
    from torchvision.models.video import mvit

    def using(handler):
        return lambda r, node, args, kwargs: handler(r, node, args, kwargs, methods)
    return {mvit._unsqueeze: using(unsqueeze), mvit._squeeze: using(squeeze), mvit._add_shortcut: using(add_shortcut),
            mvit._add_rel_pos: add_rel_pos}
