"""A permute that moves the batch, reshaped to fold the heads into it, then selected (SAM's attention), against torch.

timm's SAM ViT writes ``qkv.view(B, N, 3, h, d).permute(2, 0, 3, 1, 4).reshape(3, B * h, N, -1).unbind(0)``:
the permute moves the batch to dim 1, the reshape folds the heads into it, and each selection of dim 0 is
``(B*h, N, d)``, per sample the ``(h, N, d)`` tensor of its heads. Each module is read by ``from_module``
and checked against torch on the CPU: parameters, output shape and forward MACs as FlopCounterMode's
FLOPs / 2 (attention as matrix products). Torch copies the permute into one storage at the reshape; a
training step is refused. Reshapes that do not keep dim 0 and fold the batch are refused at their node.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import alexcost_step, forward_against_torch, torch_attention_step  # noqa: E402


class SamAttention(nn.Module):
    """SAM's attention without position terms; ``how`` spells the fold: ``B * h`` or ``-1``."""

    def __init__(self, dim=12, heads=3, fused=False, how="B*h", select="unbind"):
        super().__init__()
        self.heads, self.fused, self.how, self.select = heads, fused, how, select
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):                 # x: (N, L, C)
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        d = C // self.heads
        merged = qkv.reshape(3, -1, N, d) if self.how == "-1" else qkv.reshape(3, B * self.heads, N, -1)
        q, k, v = merged.unbind(0) if self.select == "unbind" else (merged[0], merged[1], merged[2])
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = torch.softmax((q * 0.5) @ k.transpose(-2, -1), dim=-1) @ v
        out = out.view(B, self.heads, N, -1).transpose(1, 2).reshape(B, N, -1)
        return self.proj(out)


CASES = {
    "unbind, B * h": dict(),
    "unbind, -1": dict(how="-1"),
    "selected by index": dict(select="index"),
    "attention of three dims": dict(fused=True),
    "one head": dict(heads=1),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_torch(case):
    torch.manual_seed(0)
    forward_against_torch(SamAttention(**CASES[case]), (5, 12), batch=3)


def test_the_heads_of_each_sample_are_its_own_rows():
    """The reading's premise, by torch: selection ``i`` of the reshape, rows ``n*h`` to ``n*h + h - 1``, is
    sample ``n``'s selection ``i`` of the permute."""
    x = torch.randn(2, 5, 3, 4, 6)        # (B, N, 3, h, d)
    permuted = x.permute(2, 0, 3, 1, 4)   # (3, B, h, N, d)
    merged = permuted.reshape(3, 2 * 4, 5, -1)
    for i in range(3):
        for n in range(2):
            assert torch.equal(merged[i][n * 4:(n + 1) * 4], permuted[i][n])


def test_training_step_is_refused_where_torch_runs_it():
    torch.manual_seed(0)
    module = SamAttention()
    theirs, ours = torch_attention_step(module, (5, 12)), alexcost_step(module, (5, 12))
    assert theirs.refused is None
    assert ours.refused is not None and "reshapes a permute that moves the batch" in ours.refused


class Reshaped(nn.Module):
    """``permute(2, 0, 3, 1, 4)`` of an (N, 4, 3, 2, 4) tensor, reshaped by ``how``, then ``[0]``."""

    def __init__(self, how):
        super().__init__()
        self.fc, self.how = nn.Linear(8, 24), how

    def forward(self, x):                 # x: (N, 4, 8)
        b, n, c = x.shape
        qkv = self.fc(x).reshape(b, n, 3, 2, 4).permute(2, 0, 3, 1, 4)
        return self.how(qkv, b)[0].reshape(b, -1)


@pytest.mark.parametrize("how", [
    lambda qkv, b: qkv.reshape(-1, 2, 4, 4),          # dim 0 not kept
    lambda qkv, b: qkv.reshape(3, b, -1, 2, 4)[:, :, 0],  # a use that is not a selection of dim 0
    lambda qkv, b: qkv.reshape(3, 2, -1),             # the batch not folded at dim 1
    lambda qkv, b: qkv.reshape(3, -1, 5, 3),          # -1 that is no whole number of rows of a sample
    lambda qkv, b: qkv.view(3, -1, 4, 4),             # a view (torch's fails: the strides cannot be merged)
])
def test_other_reshapes_are_refused(how):
    module = Reshaped(how)
    try:
        module(torch.randn(2, 4, 8))
    except RuntimeError:
        pass  # torch refuses some of them too
    with pytest.raises(SpecError, match="permute"):
        from_module(module, (4, 8))
