"""Shifted-window attention (Swin): WindowAttention; Swin V2's CosineWindowAttention.

torchvision's Swin and Video Swin run their attention as one function: pad the per-sample
``(*spatial, C)`` input to multiples of the window, roll it by the shift, cut it into
windows of ``T`` tokens, project queries, keys and values (one linear layer), add a
learned relative position bias (and, shifted, a mask) to the scores, softmax, weight the
values, project back, undo the windows, the roll and the padding. Counted per sample, as
torch runs it on the padded input: ``P`` padded positions, ``nW = P / T`` windows.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer
from .normalize import Normalize


def _windows(layer, x: Shape):
    """``(P, T, nW, C, shifted)`` of a window attention ``layer`` on the per-sample input ``x``."""
    rank = len(layer.window_size)
    name = type(layer).__name__
    if len(x) != rank + 1:
        raise SpecError(f"{name} with a {rank}-D window expects a per-sample ({'T, ' if rank == 3 else ''}"
                        f"H, W, C) input, got {format_shape(x)}")
    c = x[-1]
    if c % layer.num_heads:
        raise SpecError(f"{c} channels do not split into {layer.num_heads} heads")
    padded = tuple(-(-s // w) * w for s, w in zip(x[:-1], layer.window_size))
    shifted = any(sh and w < p for sh, w, p in zip(layer.shift_size, layer.window_size, padded))
    tokens = prod(layer.window_size)
    return prod(padded), tokens, prod(padded) // tokens, c, shifted


@register_layer
@layer_kind
class WindowAttention(Layer):
    """torchvision's ``shifted_window_attention`` (2 spatial dimensions) and
    ``shifted_window_attention_3d`` (3) on a per-sample ``(*spatial, C)`` input; ``window_size`` and
    ``shift_size`` as the function gets them (a shift where the window covers the padded size is
    none). ``table_size``: rows of the relative position bias table (default ``prod(2*w - 1)``);
    ``index_size``: elements of the module's relative position index, an int64 buffer (default
    ``prod(window_size)**2``).

    Parameters: qkv ``3*C*C`` (bias ``3*C``), projection ``C*C`` (bias ``C``), the bias table
    ``table_size * num_heads``. MACs: the projections ``4*P*C*C`` and attention's ``2*nW*T*T*C``.
    Other ops: the query's scale (``nW*T*C``) and, per score (``nW*num_heads*T*T``), the position
    bias, the shift's mask when shifted, and the softmax's 3.

    Backward: the projections' products as `Linear`'s, attention's 4 products as
    `ScaledDotProductAttention`'s. Training keeps, on the CPU without dropout, with 2 or more heads and
    2 or more windows in the batch: copies of every token for the windows the qkv projection
    reads and the weighted values the output projection reads (for their weights' gradients), and for
    q, k and v (the copies torch's matmul makes), and the softmax's scores; elsewhere it is refused."""

    window_size: tuple[int, ...]
    shift_size: tuple[int, ...]
    num_heads: int
    table_size: int | None = None
    qkv_bias: bool = True
    proj_bias: bool = True
    attention_dropout: float = 0.0
    dropout: float = 0.0
    index_size: int | None = None

    group: ClassVar[str] = "fc"

    def __post_init__(self):
        super().__post_init__()
        rank = len(self.window_size) if isinstance(self.window_size, (tuple, list)) else 0
        if rank not in (2, 3):
            raise SpecError(f"window_size must list 2 or 3 sizes, got {check.shown(self.window_size)}")
        object.__setattr__(self, "window_size", check.ntuple(self.window_size, "window_size", rank))
        object.__setattr__(self, "shift_size", check.ntuple(self.shift_size, "shift_size", rank, minimum=0))
        object.__setattr__(self, "num_heads", check.integer(self.num_heads, "num_heads"))
        if self.table_size is None:
            object.__setattr__(self, "table_size", prod(2 * w - 1 for w in self.window_size))
        object.__setattr__(self, "table_size", check.integer(self.table_size, "table_size"))
        if self.index_size is None:
            object.__setattr__(self, "index_size", prod(self.window_size) ** 2)
        object.__setattr__(self, "index_size", check.integer(self.index_size, "index_size"))
        for arg in ("qkv_bias", "proj_bias"):
            object.__setattr__(self, arg, check.flag(getattr(self, arg), arg))
        for arg in ("attention_dropout", "dropout"):
            object.__setattr__(self, arg, check.real(getattr(self, arg), arg, 0.0, 1.0))

    def _parts(self, x: Shape):
        return _windows(self, x)

    def output_shape(self, x: Shape) -> Shape:
        self._parts(x)
        return x

    def weight_params(self, x: Shape) -> int:
        return 4 * x[-1] * x[-1] + self.table_size * self.num_heads

    def bias_params(self, x: Shape) -> int:
        return x[-1] * (3 * self.qkv_bias + self.proj_bias)

    def buffers(self, x: Shape) -> int:
        return self.index_size

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        return 8 * self.index_size  # int64 indices, whatever the dtype

    def macs(self, x: Shape, y: Shape) -> int:
        positions, tokens, windows, c, _ = self._parts(x)
        return 4 * positions * c * c + 2 * windows * tokens * tokens * c

    def bias_adds(self, x: Shape, y: Shape) -> int:
        positions, *_, c, _ = self._parts(x)
        return positions * c * (3 * self.qkv_bias + self.proj_bias)

    def other_ops(self, x: Shape, y: Shape) -> int:
        positions, tokens, windows, c, shifted = self._parts(x)
        return positions * c + windows * self.num_heads * tokens * tokens * (4 + shifted)

    def backward_macs(self, x: Shape, y: Shape, grads: Grads) -> int:
        positions, tokens, windows, c, _ = self._parts(x)
        live = grads.input or grads.params
        projections = positions * c * c * (3 * grads.input + 3 * grads.weight + live + grads.weight)
        return projections + 4 * windows * tokens * tokens * c * live

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        positions, tokens, windows, c, _ = self._parts(x)
        live = grads.input or grads.params
        sums = self.bias_adds(x, y) if grads.bias else 0
        return batch * (sums + (windows * self.num_heads * tokens * tokens * 4 + positions * c) * live)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        positions, tokens, windows, c, _ = self._parts(x)
        if ctx.device != "cpu" or self.dropout or self.attention_dropout or self.num_heads < 2 or \
                ctx.batch * windows < 2:
            raise SpecError("alexcost models what autograd keeps inside torchvision's shifted window attention on "
                            "the CPU without dropout, with 2 or more heads and 2 or more windows in the batch "
                            "only; its training memory is refused here")
        new = ctx.batch * positions * c  # a copy of every token: the windows, q, k, v, the weighted values
        live = grads.input or grads.params
        copies = [what for what, kept in (("windows", grads.weight), ("q", live), ("k", live), ("v", live),
                                          ("weighted values", grads.weight)) if kept]
        scores = (Saved("scores", "new", elements=ctx.batch * windows * self.num_heads * tokens * tokens,
                        itemsize=ctx.itemsize),) if live else ()
        return (*(Saved(what, "new", elements=new, itemsize=ctx.itemsize) for what in copies), *scores)

    def label(self) -> str:
        return "Window Attention"


@register_layer
@layer_kind
class CosineWindowAttention(Layer):
    """Swin V2's window attention: torchvision's ``shifted_window_attention`` given a ``logit_scale``. It reads a
    per-sample ``(H, W, C)`` input and two tensors torch computes once per forward pass, read as inputs 1 and
    2: the position bias ``(1, num_heads, T, T)`` (16·sigmoid of an MLP's table, gathered) and the scale
    ``(num_heads, 1, 1)`` (``exp`` of the clamped logit scale). As `WindowAttention`, but cosine: queries and
    keys normalised (`Normalize`'s count each), no query scale, the scores times the scale.

    Parameters: qkv ``3*C*C`` (bias ``3*C``), projection ``C*C`` (bias ``C``). MACs as `WindowAttention`'s.
    Bias adds: the projection's. Other ops: the qkv bias, which torch adds as a copy made each pass (its keys'
    third zeroed), ``3*P*C``; the two normalisations; and, per score (``nW*num_heads*T*T``), the scale, the
    position bias, the shift's mask when shifted, and the softmax's 3. A training step is refused."""

    window_size: tuple[int, ...]
    shift_size: tuple[int, ...]
    num_heads: int
    qkv_bias: bool = True
    proj_bias: bool = True
    attention_dropout: float = 0.0
    dropout: float = 0.0

    arity: ClassVar[int | None] = None
    group: ClassVar[str] = "fc"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "window_size", check.ntuple(self.window_size, "window_size", 2))
        object.__setattr__(self, "shift_size", check.ntuple(self.shift_size, "shift_size", 2, minimum=0))
        object.__setattr__(self, "num_heads", check.integer(self.num_heads, "num_heads"))
        for arg in ("qkv_bias", "proj_bias"):
            object.__setattr__(self, arg, check.flag(getattr(self, arg), arg))
        for arg in ("attention_dropout", "dropout"):
            object.__setattr__(self, arg, check.real(getattr(self, arg), arg, 0.0, 1.0))

    def _parts(self, x):
        if len(x) != 3:
            raise SpecError(f"CosineWindowAttention reads the input, the position bias and the scale, got {len(x)} "
                            f"inputs")
        parts = _windows(self, x[0])
        tokens, heads = parts[1], self.num_heads
        for what, shape, want in (("position bias", x[1], (1, heads, tokens, tokens)), ("scale", x[2], (heads, 1, 1))):
            if tuple(shape) != want:
                raise SpecError(f"CosineWindowAttention: its {what} is {format_shape(shape)}, not {format_shape(want)}")
        return parts

    def output_shape(self, x) -> Shape:
        self._parts(x)
        return x[0]

    def weight_params(self, x) -> int:
        return 4 * x[0][-1] * x[0][-1]

    def bias_params(self, x) -> int:
        return x[0][-1] * (3 * self.qkv_bias + self.proj_bias)

    def macs(self, x, y: Shape) -> int:
        positions, tokens, windows, c, _ = self._parts(x)
        return 4 * positions * c * c + 2 * windows * tokens * tokens * c

    def bias_adds(self, x, y: Shape) -> int:
        positions, *_, c, _ = self._parts(x)
        return positions * c * self.proj_bias

    def other_ops(self, x, y: Shape) -> int:
        positions, tokens, windows, c, shifted = self._parts(x)
        heads = (windows, self.num_heads, tokens, c // self.num_heads)  # the queries (and the keys), per sample
        return (3 * positions * c * self.qkv_bias + 2 * Normalize(dim=-1).other_ops(heads, heads) +
                windows * self.num_heads * tokens * tokens * (5 + shifted))

    def check_training(self, x, batch: int) -> None:
        raise SpecError("alexcost does not model a training step through Swin V2's cosine window attention "
                        "(what autograd keeps there is not checked against torch); its forward counts are exact")

    def label(self) -> str:
        return "Cosine Window Attention"
