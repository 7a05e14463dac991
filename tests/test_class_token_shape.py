"""A class token's shape read before it is concatenated (``token.shape[1]`` of ``cls_token.expand(N, -1, -1)``,
as timm's PiT reads its tokens' length to split them off again), against torch on the CPU: output shape,
parameters, FlopCounterMode's forward FLOPs and a training step's FLOPs and saved bytes (`module_step`); any
other use of the expanded token stays refused.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import attention_step_agrees, counted_attention, forward_against_torch, step_agrees  # noqa: E402


class Tokens(nn.Module):
    """``tokens`` class tokens concatenated in front of the sequence, a block, then split off by their length
    (read from the expanded token's shape) and averaged with the rest."""

    def __init__(self, tokens=2, dim=8, ndim=False):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, tokens, dim))
        self.block, self.head = nn.Linear(dim, dim), nn.Linear(dim, 3)
        self.ndim = ndim

    def forward(self, x):
        tokens = self.token.expand(x.shape[0], -1, -1)
        length = tokens.shape[1] if not self.ndim else tokens.ndim - 1
        y = self.block(torch.cat((tokens, x), dim=1))
        return self.head(y[:, :length].mean(1) + y[:, length:].mean(1))


@pytest.mark.parametrize("tokens", [1, 2])
def test_a_training_step_is_torchs(tokens):
    torch.manual_seed(0)
    attention_step_agrees(Tokens(tokens), (5, 8))


@pytest.mark.parametrize("ndim", [False, True])
def test_the_forward_pass_is_torchs(ndim):
    """The block runs on ``tokens + 5`` rows: ``(2 + 5) * 8 * 8`` MACs, then the head's ``8 * 3``."""
    cost = forward_against_torch(Tokens(ndim=ndim), (5, 8), batch=2)
    assert cost.totals.macs == 2 * ((2 + 5) * 8 * 8 + 8 * 3)


def test_timm_pit_reads_as_torch_counts():
    """Counted with grad enabled (FlopCounterMode's module tracker fails on PiT's tuple of tensors under
    ``torch.no_grad()``), attention as matrix products."""
    timm = pytest.importorskip("timm")
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    module = timm.create_model("pit_ti_224", pretrained=False, img_size=64, num_classes=10).eval()
    imported = from_module(module, (3, 64, 64))
    with counted_attention(), FlopCounterMode(display=False) as counter:
        out = module(torch.randn(2, 3, 64, 64))
    cost = imported.cost(batch=2)
    assert imported.params == sum(p.numel() for p in module.parameters())
    assert 2 * cost.totals.macs == counter.get_total_flops()
    assert (2, *imported.network.output_shape) == tuple(out.shape)


def test_other_uses_of_the_expanded_token_stay_refused():
    class Module(Tokens):
        def forward(self, x):
            tokens = self.token.expand(x.shape[0], -1, -1)
            return self.head(self.block(torch.cat((tokens * 2, x), dim=1)).mean(1))

    with pytest.raises(SpecError, match=r"expanded over the batch as a class token given to torch.cat, or as an "
                                        r"operand of arithmetic with an activation"):
        from_module(Module(), (5, 8))


class ClassAttention(nn.Module):
    """CaiT's class attention: the expanded class token, then added to (the token broadcast over the batch)."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, 8))
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        cls = self.token.expand(x.shape[0], -1, -1)
        cls = cls + self.proj(x).mean(1, keepdim=True)
        return torch.cat((cls, x), dim=1)


def test_an_expanded_token_added_to_an_activation_is_the_parameter_broadcast():
    cost = forward_against_torch(ClassAttention(), (5, 8), batch=2)
    assert cost.totals.macs == 2 * 5 * 8 * 8
    step_agrees(ClassAttention(), (5, 8), 2)
