"""Attention and its companions read from torch modules, against torch on the CPU.

Each module below is read by ``from_module``; its output shape and parameters are torch's, its
forward MACs are FlopCounterMode's FLOPs / 2, and a training step's backward FLOPs and saved bytes are
those of a real CPU step (`module_step`). FlopCounterMode does not count the CPU's fused attention
kernel, so FLOPs are measured on torch's math backend (attention as matrix products, which
FlopCounterMode counts as it counts the fused kernels on CUDA); the saved bytes are measured on the
default backend, the one a CPU training step runs.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import alexcost_step, attention_step_agrees, forward_against_torch, torch_attention_step  # noqa: E402


class Heads(nn.Module):
    """Self-attention written out: projections, heads by reshape/permute, F.scaled_dot_product_attention."""

    def __init__(self, dim=16, heads=2, causal=False, masked=False):
        super().__init__()
        self.heads, self.causal, self.masked = heads, causal, masked
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3 * self.heads, dim // self.heads).transpose(1, 2).chunk(3, 1)
        mask = None
        if self.masked:  # from the input alone (a mask that requires grad runs torch's math backend)
            mask = torch.unsqueeze(x[:, :, :1] @ x[:, :, :1].transpose(-2, -1), 1).unsqueeze(-1).squeeze(-1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(n, length, dim))


class Products(nn.Module):
    """Matrix products with broadcasting: ``a @ b``, ``torch.matmul`` and ``torch.bmm``."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 6), nn.Linear(8, 5)

    def forward(self, x):                             # x: (N, 3, 4, 8)
        a = self.a(x)                                 # (N, 3, 4, 6)
        b = self.b(x[:, :1])                          # (N, 1, 4, 5), broadcast over the 3
        c = a.transpose(-2, -1) @ b                   # (N, 3, 6, 5)
        d = torch.matmul(c, c.transpose(-2, -1))      # (N, 3, 6, 6)
        return torch.bmm(d.flatten(1, 2), a[:, 0, :, :].transpose(1, 2))  # (N, 18, 4)


class ClassToken(nn.Module):
    """A ViT's stem: patches, a class token concatenated, position embeddings added, the token read back."""

    def __init__(self, dim=12, patches=4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.token = nn.Parameter(torch.randn(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, patches + 1, dim))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 5)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1) + self.position
        x = self.norm(x)
        return self.head(x[:, 0]) + self.head(x[:, 1:3].mean(1)) + x[..., 1:11:2].expand(-1, -1, -1)[:, 2]


class Attention(nn.Module):
    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        y = self.norm(x)
        return x + self.attention(y, y, y, need_weights=False)[0]


CASES = {
    "attention": (lambda: Heads(), (6, 16)),
    "causal attention": (lambda: Heads(causal=True), (5, 16)),
    "masked attention": (lambda: Heads(masked=True), (5, 16)),
    "matrix products": (Products, (3, 4, 8)),
    "class token": (ClassToken, (3, 8, 8)),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    forward_against_torch(build(), shape, batch=2)


@pytest.mark.parametrize("case", CASES)
def test_training_step_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    attention_step_agrees(build(), shape)


def test_attention_macs_are_the_quadratic_term():
    """Per sample, h heads of d features over L queries and S keys: h*L*S*(d + d) MACs (hand arithmetic)."""
    from alexcost import ScaledDotProductAttention

    h, length, s, d = 3, 7, 11, 4
    layer = ScaledDotProductAttention()
    x = ((h, length, d), (h, s, d), (h, s, d))
    assert layer.output_shape(x) == (h, length, d)
    assert layer.macs(x, (h, length, d)) == h * length * s * 2 * d


def test_multihead_attention_forward_matches_torch():
    cost = forward_against_torch(Attention(), (10, 16))
    # by hand: projections 4*L*E*E, attention 2*L*L*E
    mha = next(r for r in cost.layers if r.type == "MultiheadAttention")
    assert mha.macs == 4 * 10 * 16 * 16 + 2 * 10 * 10 * 16


@pytest.mark.parametrize("batch", [1, 3])
def test_multihead_attention_training_step_matches_torch(batch):
    """Self-attention: backward FLOPs on the math backend, saved bytes on the default one (a batch of one
    lets torch view the input as (L*N, E) instead of copying it)."""
    torch.manual_seed(0)
    module = Attention()
    theirs, ours = torch_attention_step(module, (6, 16), batch), alexcost_step(module, (6, 16), batch)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


class SameWidths(nn.Module):
    """Attention from the input to a projection of it of the same width: not self-attention for torch."""

    def __init__(self):
        super().__init__()
        self.keys = nn.Linear(16, 16)
        self.attention = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        y = self.keys(x)
        return self.attention(x, y, y, need_weights=False)[0]


@pytest.mark.parametrize("build", [lambda: Cross(), lambda: SameWidths()], ids=["other widths", "same widths"])
def test_multihead_attention_training_memory_is_refused_beyond_self_attention(build):
    """torch trains cross-attention; what autograd keeps there is not modelled: one SpecError naming the kind."""
    torch.manual_seed(0)
    module = build()
    assert torch_attention_step(module, (6, 16)).refused is None
    ours = alexcost_step(module, (6, 16))
    assert ours.refused and "MultiheadAttention" in ours.refused


class StridedHeads(nn.Module):
    """q, k and v strided in their last dimension: torch's CPU step takes its math backend, not the fused kernel."""

    def __init__(self, width=8):
        super().__init__()
        self.fc = nn.Linear(width, 3 * width)

    def forward(self, x):
        q, k, v = self.fc(x).chunk(3, -1)
        q, k, v = [a.transpose(-1, -2).contiguous().transpose(-1, -2) for a in (q, k, v)]
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("shape", [(2, 12, 8), (2, 16, 8)])
def test_attention_on_inputs_strided_in_their_last_dimension_is_refused_in_training(shape):
    """The fused kernel's saved tensors would differ from the math backend's torch runs: refused, not guessed."""
    torch.manual_seed(0)
    module = StridedHeads(shape[-1])
    assert torch_attention_step(module, shape).refused is None
    ours = alexcost_step(module, shape)
    assert ours.refused and "strided in its last dimension" in ours.refused


@pytest.mark.parametrize("call, message", [
    (lambda m, x: m.attention(x, x, x)[0], r"need_weights=True"),
    (lambda m, x: x[0], r"indexes the batch dimension"),
    (lambda m, x: x @ x, r"mat1 and mat2 shapes cannot be multiplied"),
    (lambda m, x: x[:, [0, 1], [0, 1]], r"alexcost reads a list of numbers as the one entry of an index"),
    (lambda m, x: m.token.expand(2, 3, -1, -1)[:, 0] + x, r"expands .* to \[2, 3, -1, -1\]; alexcost expands "
                                                         r"without adding dimensions"),
    (lambda m, x: m.token.expand(x.size(0), -1, -1) * 2, r"reads the parameter 'token' expanded over the batch; "
                                                         r"alexcost reads .* as a class token given to torch\.cat, "
                                                         r"or as an operand of arithmetic with an activation"),
])
def test_what_cannot_be_read_is_refused_at_the_node(call, message):
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
            self.token = nn.Parameter(torch.zeros(1, 6, 16))

        def forward(self, x):
            return call(self, x)

    with pytest.raises(SpecError, match=message):
        from_module(Module(), (6, 16))


class Cross(nn.Module):
    """Attention from the input to a projection of it of other widths (kdim, vdim): separate projections."""

    def __init__(self):
        super().__init__()
        self.keys, self.values = nn.Linear(16, 12), nn.Linear(16, 10)
        self.attention = nn.MultiheadAttention(16, 4, kdim=12, vdim=10, bias=False, batch_first=True)

    def forward(self, x):
        return self.attention(x, self.keys(x), self.values(x), need_weights=False)[0]


def test_multihead_attention_with_other_key_and_value_widths_matches_torch():
    forward_against_torch(Cross(), (9, 16))


def test_verify_checks_attention_against_torch_on_the_cpu():
    """verify runs attention as FlopCounterMode counts it on the CPU (the math backend, no fused multi-head
    path): nn.MultiheadAttention's and F.scaled_dot_product_attention's counts agree, bias adds included."""
    from alexcost.torch_run.verify import verify_imported

    for build, shape in ((Attention, (6, 16)), (lambda: Heads(causal=True), (5, 16))):
        torch.manual_seed(0)
        module = build().eval()
        result = verify_imported(from_module(module, shape), module, batch=2)
        assert result.ok, result.problems
