"""AvgPool1d (``nn.AvgPool1d``, ``F.avg_pool1d``) read from torch modules, against torch on the CPU: output
shape, FlopCounterMode's forward count, a training step's forward and backward FLOPs and saved bytes
(`module_step`), and the layout of its output on a transposed input (torch pools the (N, C, 1, L) view,
channels-last there). Its other ops are checked by hand arithmetic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from alexcost import AvgPool1d, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree  # noqa: E402


class Reduced(nn.Module):
    """Tokens (N, L, C) pooled along L, as an efficient attention shortens its keys: the pool reads the
    tokens transposed to (N, C, L), a norm and a projection follow."""

    def __init__(self, pool, transposed=True):
        super().__init__()
        self.a, self.pool, self.transposed = nn.Linear(8, 8), pool, transposed
        self.norm, self.b = nn.LayerNorm(8), nn.Linear(8, 5)

    def forward(self, x):
        y = self.a(x)
        if self.transposed:
            return self.b(self.norm(self.pool(y.transpose(1, 2)).transpose(1, 2)))
        return self.b(self.pool(y.transpose(1, 2).contiguous()).transpose(1, 2).reshape(x.shape[0], -1, 8))


POOLS = {
    "nn.AvgPool1d(4)": (lambda: nn.AvgPool1d(4), True),
    "nn.AvgPool1d(4), contiguous input": (lambda: nn.AvgPool1d(4), False),
    "ceil_mode, padding": (lambda: nn.AvgPool1d(3, 2, padding=1, ceil_mode=True, count_include_pad=False), True),
    "F.avg_pool1d": (lambda: (lambda t: F.avg_pool1d(t, 2, stride=3)), True),
}


@pytest.mark.parametrize("name", POOLS)
def test_training_step_matches_torch(name):
    make, transposed = POOLS[name]
    torch.manual_seed(0)
    theirs, ours = agree(Reduced(make(), transposed), (12, 8))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("name", POOLS)
def test_output_shape_is_torchs(name):
    make, transposed = POOLS[name]
    torch.manual_seed(0)
    module = Reduced(make(), transposed).eval()
    out = module(torch.randn(2, 12, 8))
    assert (2, *from_module(module, (12, 8)).network.output_shape) == tuple(out.shape)


def test_other_ops_by_hand():
    """Kernel 3, stride 2, padding 1, ceil_mode on 12: windows start at -1, 1, 3, 5, 7, 9, 11 and read
    2, 3, 3, 3, 3, 3, 1 taps; 4 channels."""
    layer = AvgPool1d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    assert layer.output_shape((4, 12)) == (4, 7)
    assert layer.other_ops((4, 12), (4, 7)) == 4 * (2 + 3 * 5 + 1)


def test_divisor_override_is_refused():
    with pytest.raises(SpecError, match="AvgPool1d takes no divisor_override"):
        AvgPool1d(kernel_size=2, divisor_override=3)
