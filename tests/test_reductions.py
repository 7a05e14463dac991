"""Sum, the norms, roll, expand, unsqueeze and squeeze read from torch modules, against torch on the
CPU: output shape and parameters, and a training step's forward and backward FLOPs and saved bytes
(`module_step`). Their other ops are checked by hand arithmetic, written out in each test.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Norm, SpecError, Sum  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree, refused_at_the_node  # noqa: E402


class Reduce(nn.Module):
    """Projections around each call, so the step has products to count and gradients to pass."""

    def __init__(self, call):
        super().__init__()
        self.call = call
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 4)

    def forward(self, x):
        return self.b(self.call(self.a(x)))


CALLS = {
    "sum": lambda y: y.sum(1, keepdim=True) + y,
    "torch.sum": lambda y: torch.sum(y, dim=(1,)).unsqueeze(1) * y,
    "norm": lambda y: y * y.norm(dim=-1, keepdim=True),
    "norm 1": lambda y: y * torch.linalg.vector_norm(y, 1, dim=1, keepdim=True),
    "torch.norm": lambda y: y + torch.norm(y, 2, dim=-1).unsqueeze(-1),
    "roll": lambda y: torch.roll(y, shifts=(1, -2), dims=(1, 2)),
    "roll method": lambda y: y.roll(2, 1) + y,
    "expand": lambda y: y[:, :1].expand(-1, 5, -1) + y,
    "squeeze": lambda y: y.mean(1, keepdim=True).squeeze(1).unsqueeze(1) + y,
}


@pytest.mark.parametrize("call", CALLS)
def test_training_step_matches_torch(call):
    torch.manual_seed(0)
    module = Reduce(CALLS[call])
    theirs, ours = agree(module, (5, 6))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("call", CALLS)
def test_forward_shape_and_params_are_torchs(call):
    torch.manual_seed(0)
    module = Reduce(CALLS[call]).eval()
    imported = from_module(module, (5, 6))
    out = module(torch.randn(2, 5, 6))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in module.parameters())


def test_other_ops_by_hand():
    """Per sample: a sum of k elements is k - 1 adds; the 2-norm squares, adds and takes a root (2 per element
    read); the 1-norm takes absolute values and adds (2 per element, less one add per output)."""
    x, y = (5, 6), (5,)
    assert Sum(dim=2).other_ops(x, y) == 5 * (6 - 1)
    assert Norm(dim=2).other_ops(x, y) == 5 * (6 + (6 - 1) + 1)
    assert Norm(dim=2, ord=1).other_ops(x, y) == 5 * (6 + (6 - 1))


@pytest.mark.parametrize("forward, message", [
    (lambda x: x.sum(), r"reduces every dimension, the batch's too"),
    (lambda x: x.norm(p="nuc", dim=(1, 2)), r"p='nuc' is not read by alexcost"),
    (lambda x: x.norm(p=3, dim=1), r"ord=3: alexcost counts the 1- and 2-norms only"),
    (lambda x: torch.roll(x, 1), r"rolls the flattened tensor"),
    (lambda x: torch.roll(x, 1, 0), r"dim 0 is the batch dimension"),
    (lambda x: torch.stack([x, x]), r"stacks before the batch dimension \(dim=0\)"),
])
def test_what_cannot_be_read_is_refused_at_the_node(forward, message):
    refused_at_the_node(forward, (5, 6), message)


class Tokens(nn.Module):
    """Token ids to vectors (an nn.Embedding), a position embedding, a projection."""

    def __init__(self, padding_idx=None):
        super().__init__()
        self.embed = nn.Embedding(50, 8, padding_idx=padding_idx)
        self.position = nn.Parameter(torch.randn(1, 7, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.embed(x) + self.position)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_matches_torch(padding_idx):
    from module_step import alexcost_step, torch_step

    torch.manual_seed(0)
    module = Tokens(padding_idx)
    imported = from_module(module, (7,))
    out = module(torch.randint(50, (2, 7)))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in module.parameters()) == 50 * 8 + 7 * 8 + 8 * 3 + 3
    theirs, ours = torch_step(module, (7,), indices=50), alexcost_step(module, (7,))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_embedding_with_max_norm_is_refused():
    with pytest.raises(SpecError, match=r"module '0' \(Embedding\).*max_norm renormalises"):
        from_module(nn.Sequential(nn.Embedding(10, 4, max_norm=1.0)), (3,))
