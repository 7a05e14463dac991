"""A parameter or buffer of shape ``(1, ...)`` expanded over the batch and read by a layer (``Expand`` with
``batch=True``): SigLIP's latent query into a ``Linear``, ConViT's relative positions (a buffer) into one. A view
with the batch's stride 0: torch's ``linear`` copies it for two samples or more (and keeps the copy for the
weight's gradient), and reads the parameter itself for one. Each module is read by ``from_module`` and checked
against torch on the CPU: parameters, output shape, forward MACs (FlopCounterMode), and a training step's FLOPs
and saved bytes (`module_step`), at batches 1 to 3."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Expand, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.layers.base import ParameterShape  # noqa: E402
from module_step import forward_against_torch, step_agrees  # noqa: E402


class LatentPool(nn.Module):
    """timm's ``AttentionPoolLatent`` at a small size: a learned query per sample, attending over the tokens."""

    def __init__(self, c=8, latent=2):
        super().__init__()
        self.latent = nn.Parameter(torch.randn(1, latent, c))
        self.q, self.kv = nn.Linear(c, c), nn.Linear(c, 2 * c)

    def forward(self, x):
        b, n, c = x.shape
        q = self.q(self.latent.expand(b, -1, -1))
        k, v = self.kv(x).chunk(2, dim=-1)
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v


class Positions(nn.Module):
    """ConViT's gated positional attention: a buffer of relative positions, expanded over the batch, projected
    by a ``Linear`` to one score per head."""

    def __init__(self, n=4, heads=2):
        super().__init__()
        self.register_buffer("rel", torch.randn(1, n, n, 3))
        self.proj, self.pos = nn.Linear(5, 5), nn.Linear(3, heads)

    def forward(self, x):
        scores = self.pos(self.rel.expand(x.shape[0], -1, -1, -1)).permute(0, 3, 1, 2)
        return scores.softmax(-1) @ self.proj(x).unsqueeze(1)


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("module, shape", [(LatentPool, (5, 8)), (Positions, (4, 5))], ids=["latent", "buffer"])
def test_forward_and_training_step_agree_with_torch(module, shape, batch):
    torch.manual_seed(0)
    cost = forward_against_torch(module(), shape, batch, grad=True)
    expand = next(row for row in cost.layers if row.type == "Expand")
    assert expand.batch == batch and expand.input_shape[0] == 1
    torch.manual_seed(0)
    step_agrees(module(), shape, batch=batch)


def test_counts_by_hand():
    """(1, 2, 8) viewed for each sample as (2, 8): no ops, no storage of its own; backward, the N views' gradients
    summed into one: N*16 - 16 adds."""
    layer, x = Expand(sizes=(-1, -1), batch=True), ParameterShape((1, 2, 8))
    assert layer.output_shape(x) == (2, 8)
    assert layer.backward_other_ops(x, (2, 8), Grads((True,), False, False), batch=5) == 5 * 2 * 8 - 2 * 8
    assert layer.backward_other_ops(x, (2, 8), Grads((False,), False, False), batch=5) == 0


def test_an_activation_or_a_first_size_other_than_one_is_refused():
    with pytest.raises(SpecError, match=r"batch=True takes a tensor computed once per pass, of shape \(1, \.\.\.\)"):
        Expand(sizes=(-1,), batch=True).output_shape((2, 8))
    with pytest.raises(SpecError, match=r"got \[2, 8\]"):
        Expand(sizes=(-1,), batch=True).output_shape(ParameterShape((2, 8)))
