"""Attention and matrix products: Matmul, ScaledDotProductAttention, MultiheadAttention.

Shapes are per sample. A head of ``d`` features attending from ``L`` queries to ``S`` keys
does ``L*S*d`` multiply-accumulates for the scores (``Q K^T``) and ``L*S*d_v`` for the
weighted values (``P V``): attention's quadratic term. The scale, the softmax (3 ops per
score) and a mask (1 op per score) are other ops. FlopCounterMode counts 2 per MAC of both
products (its formulas for torch's fused kernels, and the matrix products of the math
backend); on the CPU, torch's fused kernel is not counted by FlopCounterMode at all.

Backward: each product gives the gradients of its two operands, one product each; the
softmax's backward is 4 ops per score.
"""

from __future__ import annotations

from math import prod
from typing import ClassVar

from . import arguments as check
from . import strides as st
from ..errors import SpecError, format_shape
from .base import Grads, Layer, ParameterShape, Saved, Shape, TrainContext, layer_kind, register_layer
from .merge import broadcast


def _activations(layer, x, count: tuple[int, ...], weights: int = 0) -> None:
    """``x`` holds ``count`` inputs, activations but for the last ``weights`` (which may be a parameter's)."""
    name = type(layer).__name__
    if len(x) not in count:
        raise SpecError(f"{name} takes {' or '.join(map(str, count))} inputs, got {len(x)}")
    if any(isinstance(s, ParameterShape) for s in x[:len(x) - weights if len(x) == max(count) else len(x)]):
        raise SpecError(f"{name} reads activations only; a parameter as an operand is not read")


@register_layer
@layer_kind
class Matmul(Layer):
    """``torch.matmul(a, b)`` (also ``a @ b`` and ``torch.bmm``) of two batched activations of at
    least 2 dimensions per sample: a batch of matrix products, the leading dimensions broadcast as
    torch broadcasts them. MACs ``prod(batch dims) * n * k * m`` for ``(n, k) @ (k, m)``. One operand
    may be a parameter (a `Parameter` or `PositionBias` named in ``inputs``), broadcast over the batch;
    alexcost then derives no training step (refused).

    Backward: each operand's gradient is one product of as many MACs; an operand broadcast over
    leading dimensions sums its gradient back (adds). Autograd keeps each operand the other one's
    gradient needs: the operand itself where torch can view it as a stack of matrices, else the
    copy torch makes."""

    arity: ClassVar[int | None] = None
    group: ClassVar[str] = "fc"

    def _parts(self, x):
        if len(x) != 2 or all(isinstance(s, ParameterShape) for s in x):
            _activations(self, x, (2,))
        a, b = x
        if len(a) < 2 or len(b) < 2:
            raise SpecError(f"Matmul reads operands of at least 2 dimensions per sample, got {format_shape(a)} and "
                            f"{format_shape(b)}: a batched vector would be multiplied across the batch")
        if a[-1] != b[-2]:
            raise SpecError(f"mat1 and mat2 shapes cannot be multiplied ({a[-2]}x{a[-1]} and {b[-2]}x{b[-1]}) "
                            f"for operands {format_shape(a)} and {format_shape(b)}")
        lead = broadcast(tuple(ParameterShape(s[:-2]) if isinstance(s, ParameterShape) else s[:-2] for s in (a, b)))
        return lead, a[-2], a[-1], b[-1]

    def output_shape(self, x) -> Shape:
        lead, n, _, m = self._parts(x)
        return (*lead, n, m)

    def macs(self, x, y: Shape) -> int:
        lead, n, k, m = self._parts(x)
        return prod(lead) * n * k * m

    def fvcore_count(self, x, y: Shape) -> int | None:
        """fvcore's ``aten::matmul`` handle: the first operand's elements times the second's columns (None with
        a parameter operand, which torch reaches through other ops than fvcore's handle reads)."""
        if any(isinstance(s, ParameterShape) for s in x):
            return None
        return prod(x[0]) * x[1][-1]

    def backward_macs(self, x, y: Shape, grads: Grads) -> int:
        return self.macs(x, y) * (grads.inputs[0] + grads.inputs[1])

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        lead = y[:-2]
        out = 0
        for s, g in zip(x, grads.inputs):
            if g and s[:-2] != lead:
                out += batch * (prod(lead) - prod(s[:-2])) * s[-2] * s[-1]
        return out

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if any(isinstance(s, ParameterShape) for s in x):
            raise SpecError("Matmul with a parameter operand: alexcost does not count what autograd keeps for it (the "
                            "copies torch's einsum and broadcasting matmul make), so it derives no training step")
        lead = y[:-2]
        saved = []
        for k in (0, 1):
            if not grads.inputs[1 - k]:
                continue  # operand k is kept for the other operand's gradient
            s, strides = x[k], ctx.strides[k]
            full = (ctx.batch, *lead, *s[-2:])
            spread = (strides[0], *(0 if size == 1 and want != 1 else stride for size, want, stride in
                                    zip(s[:-2], lead, strides[1:-2])), *strides[-2:])
            if st.view(full, spread, (ctx.batch * prod(lead), *s[-2:])) is not None:  # (as torch's reshape)
                saved.append(Saved("input", "input", k))
            else:
                saved.append(Saved(f"operand {k} copy", "new", elements=prod(full), itemsize=ctx.itemsize))
        return tuple(saved)

    def label(self) -> str:
        return "Matrix Product"


def _shared(lead: Shape, q_lead: Shape) -> bool:
    """Do k's (or v's) leading dimensions broadcast to the query's without changing them (each the query's
    size or 1: multi-query attention's keys and values shared by every head)?"""
    return all(a in (b, 1) for a, b in zip(lead, q_lead))


def _attention_other_ops(heads_lead: int, n: int, s: int, d: int, masked: bool) -> int:
    """The scale (one multiply per query feature), the softmax (3 per score) and a mask (1 per score)."""
    return heads_lead * (n * d + (3 + masked) * n * s)


@register_layer
@layer_kind
class ScaledDotProductAttention(Layer):
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)``. Its inputs:
    per-sample ``q`` of ``(..., L, E)``, ``k`` of ``(..., S, E)``, ``v`` of ``(..., S, Ev)`` with the same
    leading dimensions (heads), or k's and v's of size 1 where q's are not (multi-query attention: one
    head of keys and values shared by every query head, broadcast as torch broadcasts it); an ``attn_mask``
    is a fourth input broadcastable to ``(..., L, S)``. Output ``(..., L, Ev)``. MACs
    ``prod(...) * L*S*(E + Ev)`` over q's leading dimensions; other ops: the scale, the softmax and the
    mask (see the module docstring).

    Backward: 4 products of ``L*S*E``-sized work when q, k and v need gradients (the scores' and the
    values' gradients, then the queries' and the keys'); a shared k's or v's gradient also sums the
    heads' (one add per element of each head's gradient beyond the first). Training keeps, on the CPU's
    fused kernel, q, k, v, the mask, the output and the log-sum-exp of each query row (float32 for
    float32), where q, k and v have a last-dimension stride of 1, v has q's features and k and v are
    either q's heads or one shared head (else torch runs its math backend: refused); on CUDA the
    kernel torch picks depends on the device and dtype, and is refused. The output takes the query's
    dimension order (see `Layer.layout`)."""

    dropout_p: float = 0.0
    is_causal: bool = False
    scale: float | None = None

    arity: ClassVar[int | None] = None
    layout: ClassVar[str] = "query"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dropout_p", check.real(self.dropout_p, "dropout_p", 0.0, 1.0))
        object.__setattr__(self, "is_causal", check.flag(self.is_causal, "is_causal"))
        if self.scale is not None:
            object.__setattr__(self, "scale", check.real(self.scale, "scale"))

    def _parts(self, x):
        _activations(self, x, (3, 4), weights=1)
        q, k, v = x[:3]
        if len(q) < 2 or not len(q) == len(k) == len(v):
            raise SpecError(f"ScaledDotProductAttention expects q, k, v of equal ranks, at least 2 per sample, got "
                            f"{', '.join(format_shape(s) for s in x[:3])}")
        if not (_shared(k[:-2], q[:-2]) and _shared(v[:-2], q[:-2])) or q[-1] != k[-1] or k[-2] != v[-2]:
            raise SpecError(f"ScaledDotProductAttention: q {format_shape(q)}, k {format_shape(k)} and v "
                            f"{format_shape(v)} do not fit (q (..., L, E), k (..., S, E), v (..., S, Ev), k's and "
                            f"v's leading dimensions q's or 1)")
        if len(x) == 4:
            if self.is_causal:
                raise SpecError("_scaled_dot_product_attention: Explicit attn_mask should not be set when "
                                "is_causal=True")
            mask = x[3]
            if isinstance(mask, ParameterShape):  # computed once per pass: its whole shape, broadcast from the right
                if len(mask) > len(q) + 1 or (len(mask) == len(q) + 1 and mask[0] != 1):
                    raise SpecError(f"attn_mask {format_shape(mask)}, computed from parameters alone, does not "
                                    f"broadcast to the scores {format_shape(('N', *q[:-1], k[-2]))}")
                mask = tuple(mask[1:]) if len(mask) > len(q) else (1,) * (len(q) - len(mask)) + tuple(mask)
            if len(mask) != len(q) or broadcast((mask, (*q[:-1], k[-2]))) != (*q[:-1], k[-2]):
                raise SpecError(f"attn_mask {format_shape(mask)} does not broadcast to the scores "
                                f"{format_shape((*q[:-1], k[-2]))}")
        return prod(q[:-2]), q[-2], k[-2], q[-1], v[-1]

    def output_shape(self, x) -> Shape:
        self._parts(x)
        return (*x[0][:-1], x[2][-1])

    def macs(self, x, y: Shape) -> int:
        lead, n, s, d, dv = self._parts(x)
        return lead * n * s * (d + dv)

    def other_ops(self, x, y: Shape) -> int:
        lead, n, s, d, _ = self._parts(x)
        return _attention_other_ops(lead, n, s, d, len(x) == 4 or self.is_causal)

    def fvcore_count(self, x, y: Shape) -> int | None:
        return None  # fvcore has no handle for aten::scaled_dot_product_attention

    def backward_macs(self, x, y: Shape, grads: Grads) -> int:
        lead, n, s, d, dv = self._parts(x)
        gq, gk, gv = grads.inputs[:3]
        return lead * n * s * (dv * (gq or gk) + dv * gv + d * gq + d * gk)

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        lead, n, s, d, dv = self._parts(x)
        gq, gk, gv = grads.inputs[:3]
        shared = (lead - prod(x[1][:-2])) * s * d * gk + (lead - prod(x[2][:-2])) * s * dv * gv
        return batch * (lead * (4 * n * s * (gq or gk) + n * d * gq) + shared)

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if ctx.device != "cpu" or self.dropout_p:
            raise SpecError("alexcost does not know what autograd keeps for ScaledDotProductAttention "
                            f"{'with dropout' if self.dropout_p else 'on ' + ctx.device}: the kernel torch "
                            f"picks decides it")
        if len(x[0]) > 3:
            raise SpecError(f"alexcost does not know what autograd keeps for ScaledDotProductAttention on inputs "
                            f"of {len(x[0]) + 1} dimensions (torch's fused CPU kernel takes 3 or 4)")
        if len(x) == 4 and isinstance(x[3], ParameterShape) and len(x[3]) != len(x[0]) + 1:
            raise SpecError(f"alexcost does not know what autograd keeps for ScaledDotProductAttention with a mask "
                            f"of {len(x[3])} dimensions, computed from parameters alone, on scores of "
                            f"{len(x[0]) + 1} (torch's CPU kernel keeps more than the mask then)")
        if len(x) == 4 and grads.inputs[3]:
            raise SpecError("alexcost does not know what autograd keeps for ScaledDotProductAttention with a mask "
                            "that requires grad (torch runs its math backend then, not the fused kernel)")
        q, k, v = x[:3]
        if q[-1] != v[-1]:
            raise SpecError(f"alexcost does not know what autograd keeps for ScaledDotProductAttention when v's "
                            f"features ({v[-1]}) are not q's and k's ({q[-1]}) (torch runs its math backend then, not "
                            f"the fused kernel)")
        if not (k[:-2] == v[:-2] and (k[:-2] == q[:-2] or k[:-2] == (1,))):
            raise SpecError(f"alexcost does not know what autograd keeps for ScaledDotProductAttention with k "
                            f"{format_shape(k)} and v {format_shape(v)} broadcast over q {format_shape(q)} other "
                            f"than both sharing one head (torch runs its math backend then, not the fused kernel)")
        if any(strides and strides[-1] != 1 for strides in ctx.strides[:3]):
            raise SpecError("alexcost does not know what autograd keeps for ScaledDotProductAttention when q, k or "
                            "v is strided in its last dimension (torch runs its math backend then, not the fused "
                            "kernel)")
        lead, n, *_ = self._parts(x)
        mask = (Saved("input", "input", 3),) if len(x) == 4 else ()
        return (Saved("input", "input", 0), Saved("input", "input", 1), Saved("input", "input", 2), *mask,
                Saved("output", "output"), Saved("logsumexp", "new", elements=ctx.batch * lead * n,
                                                 itemsize=ctx.stats_itemsize))

    def label(self) -> str:
        return "Attention"


@register_layer
@layer_kind
class MultiheadAttention(Layer):
    """``torch.nn.MultiheadAttention`` with ``batch_first=True``, called as ``mha(q, k, v,
    need_weights=False)`` on per-sample ``(L, E)`` queries and ``(S, kdim)``, ``(S, vdim)`` keys and
    values. Parameters: the input projections (``E*E + E*kdim + E*vdim``, bias ``3*E``) and the output
    projection (``E*E``, bias ``E``). MACs: the projections (``L*E*E + S*kdim*E + S*vdim*E + L*E*E``)
    and attention's ``2*L*S*E`` over all heads; other ops as `ScaledDotProductAttention`'s.

    Backward: the projections' products as `Linear`'s, attention's as `ScaledDotProductAttention`'s.
    Training keeps, for self-attention (query, key and value one tensor) on the CPU without dropout: the
    input as ``(L*N, E)`` (a copy unless torch can view it so) for the projection's weight gradient, the
    packed q, k, v (``3*E`` per token), the log-sum-exp of each head's query rows and the attention's
    output (``E`` per token); other uses are refused. The output is torch's ``(L, N, E)`` result
    transposed (layout "sequence first"), as it runs with grad enabled (under ``torch.no_grad()`` at
    inference torch takes a fused path whose output is contiguous)."""

    embed_dim: int
    num_heads: int
    dropout: float = 0.0
    bias: bool = True
    add_bias_kv: bool = False
    add_zero_attn: bool = False
    kdim: int | None = None
    vdim: int | None = None
    batch_first: bool = False

    arity: ClassVar[int | None] = None
    group: ClassVar[str] = "fc"
    layout: ClassVar[str] = "sequence first"

    def __post_init__(self):
        super().__post_init__()
        for arg in ("embed_dim", "num_heads"):
            object.__setattr__(self, arg, check.integer(getattr(self, arg), arg))
        object.__setattr__(self, "dropout", check.real(self.dropout, "dropout", 0.0, 1.0))
        for arg in ("bias", "add_bias_kv", "add_zero_attn", "batch_first"):
            object.__setattr__(self, arg, check.flag(getattr(self, arg), arg))
        for arg in ("kdim", "vdim"):
            value = getattr(self, arg)
            object.__setattr__(self, arg, self.embed_dim if value is None else check.integer(value, arg))
        if self.embed_dim % self.num_heads:
            raise SpecError(f"embed_dim must be divisible by num_heads, got embed_dim={self.embed_dim} and "
                            f"num_heads={self.num_heads}")
        if self.add_bias_kv or self.add_zero_attn:
            raise SpecError("MultiheadAttention with add_bias_kv or add_zero_attn is not read by alexcost")
        if not self.batch_first:
            raise SpecError("MultiheadAttention with batch_first=False takes the batch as dimension 1; alexcost "
                            "analyses each sample on its own (batch_first=True)")

    def _parts(self, x):
        _activations(self, x, (3,))
        q, k, v = x
        e = self.embed_dim
        if len(q) != 2 or len(k) != 2 or len(v) != 2 or q[1] != e or k[1] != self.kdim or v[1] != self.vdim \
                or k[0] != v[0]:
            raise SpecError(f"MultiheadAttention(embed_dim={e}, kdim={self.kdim}, vdim={self.vdim}) expects "
                            f"per-sample query (L, {e}), key (S, {self.kdim}), value (S, {self.vdim}), got "
                            f"{', '.join(format_shape(s) for s in x)}")
        return q[0], k[0], e

    def output_shape(self, x) -> Shape:
        n, _, e = self._parts(x)
        return (n, e)

    def weight_params(self, x) -> int:
        e = self.embed_dim
        return e * (e + self.kdim + self.vdim) + e * e

    def bias_params(self, x) -> int:
        return 4 * self.embed_dim if self.bias else 0

    def _projections(self, n: int, s: int) -> tuple[int, int, int, int]:
        e = self.embed_dim
        return n * e * e, s * self.kdim * e, s * self.vdim * e, n * e * e

    def macs(self, x, y: Shape) -> int:
        n, s, e = self._parts(x)
        return sum(self._projections(n, s)) + 2 * n * s * e

    def bias_adds(self, x, y: Shape) -> int:
        n, s, e = self._parts(x)
        return (2 * n + 2 * s) * e if self.bias else 0

    def other_ops(self, x, y: Shape) -> int:
        n, s, e = self._parts(x)
        return _attention_other_ops(self.num_heads, n, s, e // self.num_heads, False)

    def fvcore_count(self, x, y: Shape) -> int | None:
        n, s, _ = self._parts(x)
        return sum(self._projections(n, s))  # fvcore counts the linear projections, not aten's attention

    def backward_macs(self, x, y: Shape, grads: Grads) -> int:
        n, s, e = self._parts(x)
        pq, pk, pv, po = self._projections(n, s)
        live = grads.params
        gq, gk, gv = (g or live for g in grads.inputs[:3])
        attention = n * s * e * ((gq or gk) + gv + gq + gk)
        inputs = pq * grads.inputs[0] + pk * grads.inputs[1] + pv * grads.inputs[2]
        return po * ((gq or gk or gv) + grads.weight) + attention + inputs + (pq + pk + pv) * grads.weight

    def backward_other_ops(self, x, y: Shape, grads: Grads, batch: int) -> int:
        n, s, e = self._parts(x)
        gq, gk = (g or grads.params for g in grads.inputs[:2])
        sums = (2 * n + 2 * s) * e if grads.bias else 0
        return batch * (sums + self.num_heads * 4 * n * s * (gq or gk) + n * e * gq)

    def saved_tensors(self, x, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if ctx.device != "cpu" or self.dropout or not self.inputs or len(set(self.inputs)) != 1:
            raise SpecError("alexcost models what autograd keeps inside torch's MultiheadAttention for "
                            "self-attention on the CPU without dropout only (query, key and value one tensor); "
                            "read a model that calls F.scaled_dot_product_attention and its projections as "
                            "Linear layers instead")
        n, _, e = self._parts(x)
        tokens = ctx.batch * n
        saved = []
        if grads.weight:  # the projection's input, seen as (L*N, E): the input when torch can view it so
            s_n, s_l, s_e = ctx.strides[0]
            viewed = st.view((n, ctx.batch, e), (s_l, s_n, s_e), (tokens, e)) is not None
            saved.append(Saved("input", "input", 0) if viewed else
                         Saved("input copy", "new", elements=tokens * e, itemsize=ctx.itemsize))
        return (*saved, Saved("q, k, v", "new", elements=3 * tokens * e, itemsize=ctx.itemsize),
                Saved("logsumexp", "new", elements=tokens * self.num_heads, itemsize=ctx.stats_itemsize),
                Saved("attention", "new", elements=tokens * e, itemsize=ctx.itemsize))

    def torch_args(self, x) -> dict:
        return self.args()

    def label(self) -> str:
        return "Multi-head Attention"
