"""``torch.einsum`` of two tensors computed once per pass (parameters, buffers, what is computed from them): timm's
TensorFlow MaxViT gathers its relative position table by one-hot lookups, ``'nhw,ixh->nixw'`` then
``'nixw,jyw->nijxy'``. Read as torch runs it (unsqueezes, permutes, views, a reshape's copy, one batched
product), each step once per pass. Checked against torch on the CPU: parameters, output shape, forward MACs
(FlopCounterMode: the ``bmm``), a training step's FLOPs and saved bytes (`module_step`); and a refusal."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_and_step_agree  # noqa: E402


def one_hot_lookup(window: int) -> torch.Tensor:
    """(window, window, 2*window - 1): for query row i and key row x, the one-hot row of their offset."""
    lookup = torch.zeros(window, window, 2 * window - 1)
    for i in range(window):
        for x in range(window):
            lookup[i, x, x - i + window - 1] = 1.0
    return lookup


class LookupBias(nn.Module):
    """timm's ``RelPosBiasTf``: a (heads, 2H-1, 2W-1) table reindexed to (heads, H*W, H*W) by two einsums with
    one-hot buffers, added to attention scores."""

    def __init__(self, heads=2, window=3):
        super().__init__()
        self.heads, self.area = heads, window * window
        self.table = nn.Parameter(torch.randn(heads, 2 * window - 1, 2 * window - 1))
        self.register_buffer("height", one_hot_lookup(window), persistent=False)
        self.register_buffer("width", one_hot_lookup(window), persistent=False)
        self.qk = nn.Linear(4, 2 * heads * 4)

    def forward(self, x):
        n, tokens, _ = x.shape
        q, k = self.qk(x).reshape(n, tokens, 2, self.heads, 4).permute(2, 0, 3, 1, 4).unbind(0)
        bias = torch.einsum("nhw,ixh->nixw", self.table, self.height)
        bias = torch.einsum("nixw,jyw->nijxy", bias, self.width).reshape(self.heads, self.area, self.area)
        return ((q @ k.transpose(-2, -1)) + bias).softmax(-1)


class Product(nn.Module):
    """A plain matrix product of two parameters by einsum, scaling the input."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(3, 6))
        self.proj = nn.Linear(6, 6)

    def forward(self, x):
        return self.proj(x) * torch.einsum("ij,jk->ik", self.a, self.b)


@pytest.mark.parametrize("module, shape", [(LookupBias, (9, 4)), (Product, (5, 6))], ids=["lookup", "product"])
@pytest.mark.parametrize("batch", [1, 2])
def test_forward_and_training_step_agree_with_torch(module, shape, batch):
    forward_and_step_agree(module, shape, batch)


def test_the_products_run_once_per_pass():
    """The two lookups' products: (1, 2*5*5... ) as torch's bmm runs them, once whatever the batch."""
    cost = from_module(LookupBias(), (9, 4)).cost(batch=3)
    once = [row for row in cost.layers if row.type == "Matmul" and row.batch == 1]
    # 'nhw,ixh->nixw': bmm (1, n*w, h) @ (1, h, i*x); then 'nixw,jyw->nijxy': (1, n*i*x, w) @ (1, w, j*y)
    assert [row.macs for row in once] == [2 * 5 * 5 * 3 * 3, 2 * 3 * 3 * 5 * 3 * 3]


class Diagonal(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x * torch.einsum("ii->i", self.a)


def test_a_step_alexcost_does_not_read_is_refused():
    with pytest.raises(SpecError, match="einsum"):
        from_module(Diagonal(), (4,))
