"""torchvision's Swin and Video Swin helpers, which torch.fx records as single calls: the relative
position bias (a gather from a parameter table; Swin V2's, from a table an MLP computes once per pass), the
shifted-window attention (one `WindowAttention`; Swin V2's, one `CosineWindowAttention`),
patch merging's pad and strided slices, and the size helpers (evaluated on plain values). Handlers as
in `alexcost.torch_bridge.ops`, which adds `functions()` to its table. Imports torch and torchvision.
"""

from __future__ import annotations

from math import log, prod

from ..layers import (Cat, Clamp, Contiguous, CosineWindowAttention, Exp, IndexSelect, Pad, ParameterShape, Permute,
                      Slice, View, WindowAttention)
from .calls import REQUIRED, bind, weight_arg


class PositionBias:
    """What ``_get_relative_position_bias`` returns: the table (a parameter) gathered by the index (a
    buffer) to ``(1, heads, T, T)`` for windows of ``T`` tokens; read only by the window attention."""

    __slots__ = ("table", "tokens", "index")

    def __init__(self, table, tokens: int, index):
        self.table, self.tokens, self.index = table, tokens, index

    def __repr__(self) -> str:
        return f"the relative position bias gathered from {self.table.path!r}"


def position_bias(r, node, args, kwargs):
    b = bind(r, node, (("relative_position_bias_table", REQUIRED), ("relative_position_index", REQUIRED),
                       ("window_size", REQUIRED)), args, kwargs)
    if r.is_activation(b["relative_position_bias_table"]):  # Swin V2's: an MLP's output, computed once per pass
        return _computed_bias(r, node, b)
    table = weight_arg(r, node, b["relative_position_bias_table"], "relative_position_bias_table", 2)
    if table is None:
        r.refuse(node, "has no relative position bias table")
    window = r.constant(b["window_size"], node, "window_size")
    index = b["relative_position_index"]
    if not r.is_attribute(index) or index.kind != "buffer":
        r.refuse(node, f"gathers by {r.show(index)}; alexcost reads an index the module holds as a buffer")
    return PositionBias(table, prod(window), index)


def _computed_bias(r, node, b):
    """``table[index].view(T, T, -1).permute(2, 0, 1).contiguous().unsqueeze(0)`` of a table computed once
    per pass: the layers that gather and lay it out, run once per pass too."""
    table, index = b["relative_position_bias_table"], b["relative_position_index"]
    tokens = prod(r.constant(b["window_size"], node, "window_size"))
    if table.shape.__class__ is not ParameterShape or len(table.shape) != 2:
        r.refuse(node, f"gathers from {r.show(table)}; alexcost reads a table of (rows, heads) computed from "
                       f"parameters or buffers alone")
    if not r.is_attribute(index) or index.kind == "parameter" or index.tensor.shape != (tokens * tokens,):
        r.refuse(node, f"gathers by {r.show(index)}; alexcost reads a fixed index of {tokens * tokens} entries")
    heads = table.shape[1]
    x = r.emit(node, IndexSelect(dim=1, index_size=tokens * tokens), [table], label="gather")
    for layer, label in ((View(shape=(tokens, tokens, heads)), "view"), (Permute(dims=(0, 3, 1, 2)), "permute"),
                         (Contiguous(), "contiguous"), (View(shape=(1, heads, tokens, tokens)), "unsqueeze")):
        x = r.emit(node, layer, [x], label=label)
    return x


def window_attention(r, node, args, kwargs):
    spec = (("input", REQUIRED), ("qkv_weight", REQUIRED), ("proj_weight", REQUIRED),
            ("relative_position_bias", REQUIRED), ("window_size", REQUIRED), ("num_heads", REQUIRED),
            ("shift_size", REQUIRED), ("attention_dropout", 0.0), ("dropout", 0.0), ("qkv_bias", None),
            ("proj_bias", None), ("logit_scale", None), ("training", True))
    if node.target.__name__.endswith("_3d"):  # the 3-D function has no logit_scale
        spec = spec[:11] + spec[12:]
    b = bind(r, node, spec, args, kwargs)
    if r.constant(b["training"], node, "training"):
        r.refuse(node, "runs with training=True; alexcost reads the module in eval mode")
    if b.get("logit_scale") is not None:
        return _cosine(r, node, b)
    bias = b["relative_position_bias"]
    if not isinstance(bias, PositionBias):
        r.refuse(node, f"adds {r.show(bias)} to the scores; alexcost reads torchvision's gathered relative "
                       f"position bias only")
    x = r.tensor(b["input"], node)
    qkv, proj = (weight_arg(r, node, b[k], k, 2) for k in ("qkv_weight", "proj_weight"))
    qkv_bias, proj_bias = (weight_arg(r, node, b[k], k, 1) for k in ("qkv_bias", "proj_bias"))
    heads = r.constant(b["num_heads"], node, "num_heads")
    table = tuple(bias.table.tensor.shape)
    window = tuple(r.constant(b["window_size"], node, "window_size"))
    if table[1] != heads or prod(window) != bias.tokens:
        r.refuse(node, f"its position bias table {list(table)} or window {list(window)} does not fit {heads} heads")
    layer = r.build(node, WindowAttention, dict(
        window_size=window, shift_size=tuple(r.constant(b["shift_size"], node, "shift_size")), num_heads=heads,
        table_size=table[0], index_size=bias.index.tensor.numel(), qkv_bias=qkv_bias is not None, proj_bias=proj_bias is not None,
        attention_dropout=r.constant(b["attention_dropout"], node, "attention_dropout"),
        dropout=r.constant(b["dropout"], node, "dropout")))
    params = (("weight", qkv), ("weight", proj), ("weight", bias.table), ("bias", qkv_bias), ("bias", proj_bias))
    return r.emit(node, layer, [x], params=tuple(p for p in params if p[1] is not None))


def _cosine(r, node, b):
    """Swin V2's attention: the scale ``exp(clamp(logit_scale, max=log(100)))`` computed once per pass, then one
    `CosineWindowAttention` of the input, the position bias (computed once per pass) and the scale."""
    x, bias = r.tensor(b["input"], node), b["relative_position_bias"]
    if not (r.is_activation(bias) and bias.shape.__class__ is ParameterShape):
        r.refuse(node, f"adds {r.show(bias)} to the cosine scores; alexcost reads a bias computed once per pass "
                       f"(Swin V2's position MLP) only")
    logit = b["logit_scale"]
    if not r.is_attribute(logit) or logit.kind != "parameter":
        r.refuse(node, f"its logit_scale is {r.show(logit)}; alexcost reads a parameter of the module")
    scale = r.emit(node, Clamp(max=log(100.0)), [r.operand(logit, node)], label="clamp")
    scale = r.emit(node, Exp(), [scale], label="exp")
    qkv, proj = (weight_arg(r, node, b[k], k, 2) for k in ("qkv_weight", "proj_weight"))
    qkv_bias, proj_bias = (weight_arg(r, node, b[k], k, 1) for k in ("qkv_bias", "proj_bias"))
    layer = r.build(node, CosineWindowAttention, dict(
        window_size=tuple(r.constant(b["window_size"], node, "window_size")),
        shift_size=tuple(r.constant(b["shift_size"], node, "shift_size")),
        num_heads=r.constant(b["num_heads"], node, "num_heads"), qkv_bias=qkv_bias is not None,
        proj_bias=proj_bias is not None, attention_dropout=r.constant(b["attention_dropout"], node, "attention_dropout"),
        dropout=r.constant(b["dropout"], node, "dropout")))
    params = (("weight", qkv), ("weight", proj), ("bias", qkv_bias), ("bias", proj_bias))
    return r.emit(node, layer, [x, bias, scale], params=tuple(p for p in params if p[1] is not None))


def patch_merging_pad(r, node, args, kwargs):
    """``_patch_merging_pad(x)``: pad H and W to even sizes, then the four strided quarters concatenated
    along the channels."""
    b = bind(r, node, (("x", REQUIRED),), args, kwargs)
    x = r.tensor(b["x"], node)
    h, w = x.shape[-3], x.shape[-2]
    x = r.emit(node, r.build(node, Pad, {"pad": (0, 0, 0, w % 2, 0, h % 2)}), [x], label="pad")
    lead = (None, None, None) if len(x.shape) == 4 else None
    quarters = []
    for i, j in ((0, 0), (1, 0), (0, 1), (1, 1)):
        index = (*(() if lead is None else (lead,)), (i, None, 2), (j, None, 2))
        quarters.append(r.emit(node, r.build(node, Slice, {"index": index}), [x], label="slice"))
    return r.emit(node, r.build(node, Cat, {"dim": -1}), quarters, label="cat")


def _plain(value):
    """fx's immutable lists and dicts as Python's own (the size helpers change the lists they get)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def functions() -> dict:
    """The handlers by function, for the torchvision installed (an ImportError without it)."""
    from torchvision.models import swin_transformer as swin
    from torchvision.models.video import swin_transformer as swin3d

    pure = {fn: (lambda r, node, args, kwargs: r.pure(node, _plain(args), _plain(kwargs)))
            for fn in (swin3d._compute_pad_size_3d, swin3d._get_window_and_shift_size)}
    return {swin._get_relative_position_bias: position_bias, swin3d._get_relative_position_bias: position_bias,
            swin.shifted_window_attention: window_attention, swin3d.shifted_window_attention_3d: window_attention,
            swin._patch_merging_pad: patch_merging_pad, **pure}
