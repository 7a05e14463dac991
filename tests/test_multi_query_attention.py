"""Multi-query attention: ``F.scaled_dot_product_attention`` whose keys and values have one head shared by every
query head (q ``(N, h, L, E)``, k and v ``(N, 1, S, E)``), as MobileNetV4 and V5 compute it, read from torch
modules and checked against torch on the CPU: output shape, parameters, FlopCounterMode's forward and backward
FLOPs (torch's math backend, which broadcasts the shared head as a matrix product does) and the bytes a real
training step keeps (the default backend: torch's fused CPU kernel takes the shared head as it is). What torch
runs on its math backend in training (v's features not q's, k and v broadcast unlike each other) keeps other
tensors: refused in a training step, read at inference. The gradient's sum over heads by hand arithmetic.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from alexcost import ScaledDotProductAttention, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import (alexcost_step, attention_step_agrees, forward_against_torch, refused_at_the_node,  # noqa: E402
                         torch_attention_step)


class Shared(nn.Module):
    """Queries in ``heads`` heads of ``d``; keys of ``k_heads`` and values of ``v_heads`` heads (1: shared), values
    of ``dv`` features; optionally causal, or masked by a mask computed from the input."""

    def __init__(self, heads=4, d=8, dv=8, k_heads=1, v_heads=1, causal=False, masked=False):
        super().__init__()
        self.heads, self.d, self.dv, self.k_heads, self.v_heads = heads, d, dv, k_heads, v_heads
        self.causal, self.masked = causal, masked
        self.q, self.k, self.v = nn.Linear(8, heads * d), nn.Linear(8, k_heads * d), nn.Linear(8, v_heads * dv)
        self.out = nn.Linear(heads * dv, 8)

    def forward(self, x):
        n, length, _ = x.shape
        q = self.q(x).view(n, length, self.heads, self.d).transpose(1, 2)
        k = self.k(x).view(n, length, self.k_heads, self.d).transpose(1, 2)
        v = self.v(x).view(n, length, self.v_heads, self.dv).transpose(1, 2)
        mask = None
        if self.masked:
            mask = torch.unsqueeze(x[:, :, :1] @ x[:, :, :1].transpose(-2, -1), 1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        return self.out(y.transpose(1, 2).reshape(n, length, self.heads * self.dv))


def mobilenet_attention():
    """timm's MultiQueryAttention2d (MobileNetV4's), keys and values from a strided depthwise convolution."""
    from timm.layers import MultiQueryAttention2d

    torch.manual_seed(0)
    return MultiQueryAttention2d(16, num_heads=4, key_dim=8, value_dim=8, kv_stride=2)


TRAINED = {
    "one shared head": (lambda: Shared(), (6, 8)),
    "causal": (lambda: Shared(causal=True), (6, 8)),
    "masked by the input": (lambda: Shared(masked=True), (6, 8)),
    "one query head": (lambda: Shared(heads=1), (6, 8)),
    "MobileNetV4's MultiQueryAttention2d": (mobilenet_attention, (16, 8, 8)),
}


@pytest.mark.parametrize("name", TRAINED)
def test_a_training_step_is_torchs(name):
    make, shape = TRAINED[name]
    torch.manual_seed(0)
    attention_step_agrees(make(), shape)


def test_the_counts_are_the_formulas_written_out():
    """Per sample, 4 query heads of 8 features over 6 queries and 6 keys: the scores and the weighted values,
    ``4 * 6 * 6 * (8 + 8)`` MACs, as many as if the shared head were copied to each."""
    torch.manual_seed(0)
    module = Shared()
    imported = from_module(module, (6, 8))
    layer = next(layer for layer in imported.network.layers if isinstance(layer, ScaledDotProductAttention))
    at = imported.network.layers.index(layer)
    x, y = imported.network.input_shapes[at], imported.network.output_shapes[at]
    assert x[:3] == ((4, 6, 8), (1, 6, 8), (1, 6, 8)) and y == (4, 6, 8)
    assert layer.macs(x, y) == 4 * 6 * 6 * (8 + 8)
    assert layer.backward_macs(x, y, Grads((True, True, True), False, False)) == 4 * 6 * 6 * 4 * 8
    plain = 4 * (4 * 6 * 6 + 6 * 8)                  # the softmax's 4 per score, the scale per query feature
    heads_summed = 2 * (4 - 1) * 6 * 8                # k's and v's gradients summed over the 4 heads
    batch = 3
    assert layer.backward_other_ops(x, y, Grads((True, True, True), False, False), batch) == \
        batch * (plain + heads_summed)
    assert layer.backward_other_ops(x, y, Grads((True, False, False), False, False), batch) == batch * plain
    cost = forward_against_torch(module, (6, 8), batch=2)
    assert cost.totals.macs == 2 * (6 * (8 * 32 + 8 * 8 + 8 * 8) + 4 * 6 * 6 * 16 + 6 * 32 * 8)  # a batch of 2


@pytest.mark.parametrize("timm_name", ["mobilenetv4_hybrid_medium_075"])
def test_timm_models_with_multi_query_attention_read_as_torch_counts(timm_name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    module = timm.create_model(timm_name, pretrained=False, num_classes=10)
    forward_against_torch(module, (3, 64, 64))


MATH_BACKEND = {
    "v's features not q's": (lambda: Shared(dv=16), "v's features \\(16\\) are not q's and k's \\(8\\)"),
    "equal heads, v's features not q's": (lambda: Shared(k_heads=4, v_heads=4, dv=4),
                                          "v's features \\(4\\) are not q's and k's \\(8\\)"),
    "k shared, v not": (lambda: Shared(v_heads=4), "other than both sharing one head"),
    "v shared, k not": (lambda: Shared(k_heads=4), "other than both sharing one head"),
}


def _torch_backward_node(module, shape):
    """The name of the backward node of torch's attention call in ``module`` (which kernel ran it)."""
    seen = []
    original = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(type(out.grad_fn).__name__)
        return out
    F.scaled_dot_product_attention = spy
    try:
        module(torch.randn(2, *shape))
    finally:
        F.scaled_dot_product_attention = original
    return seen[0]


@pytest.mark.parametrize("name", MATH_BACKEND)
def test_what_torch_runs_on_its_math_backend_is_read_but_refused_in_training(name):
    make, message = MATH_BACKEND[name]
    torch.manual_seed(0)
    forward_against_torch(make(), (6, 8), batch=2)
    assert "FlashAttention" not in _torch_backward_node(make(), (6, 8))   # the premise: not the fused kernel
    assert "FlashAttention" in _torch_backward_node(Shared(), (6, 8))
    assert torch_attention_step(make(), (6, 8)).refused is None
    ours = alexcost_step(make(), (6, 8))
    assert ours.refused is not None and re.search(message, ours.refused), ours.refused


@pytest.mark.parametrize("heads, message", [
    ((4, 2, 2), r"do not fit .* k's and v's leading dimensions q's or 1"),
    ((1, 4, 4), r"do not fit"),
])
def test_heads_that_are_not_shared_are_refused_at_the_node(heads, message):
    """Two key heads for four query heads torch refuses (no broadcast); one query head for four key heads
    torch broadcasts the other way (an output of the keys' heads), which alexcost does not read."""
    q, k, v = heads
    refused_at_the_node(lambda x: F.scaled_dot_product_attention(x[:, :q], x[:, :k], x[:, :v]), (4, 6, 8), message)
