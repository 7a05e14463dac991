"""Buffers read in a module's own forward code: the trace records what torch computes from them at every pass
(CSATv2's ``(x - self.mean) / (self.var ** 0.5 + 1e-8)``), where a trace that ran it while tracing would leave a
constant alexcost cannot count; and their sizes are plain numbers (``assert self.periods.numel() == dim``, as
timm's rotary embeddings check). Each module is read by ``from_module`` and checked against torch on the CPU:
parameters, output shape, forward MACs (FlopCounterMode), a training step's FLOPs and saved bytes
(`module_step`); the computation on buffers alone is counted by hand."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_and_step_agree  # noqa: E402


class Normalised(nn.Module):
    """A projection, then each feature normalised by fixed statistics computed from buffers at every pass."""

    def __init__(self, c=6):
        super().__init__()
        self.proj = nn.Linear(c, c)
        self.register_buffer("mean", torch.randn(c), persistent=False)
        self.register_buffer("var", torch.rand(c) + 0.5, persistent=False)

    def forward(self, x):
        std = self.var ** 0.5 + 1e-8
        return (self.proj(x) - self.mean) / std


class Periods(nn.Module):
    """A rotary-style scale: the buffer's size checked, then the buffer read with None indexing."""

    def __init__(self, c=6):
        super().__init__()
        self.proj = nn.Linear(c, c)
        self.register_buffer("periods", torch.rand(c) + 1.0)

    def forward(self, x):
        assert self.periods.numel() == self.periods.shape[0] == x.shape[-1]
        angles = self.proj(x)[:, :, :, None] / self.periods[None, None, :]
        return angles.flatten(2).sin()


@pytest.mark.parametrize("module", [Normalised, Periods])
def test_forward_and_training_step_agree_with_torch(module):
    forward_and_step_agree(module, (4, 6), batch=2)


def test_the_computation_on_buffers_runs_once_per_pass_and_is_counted():
    """var ** 0.5 (6 ops) and + 1e-8 (6 ops) once per pass, whatever the batch; per sample, - mean and / std
    (4 * 6 each)."""
    cost = from_module(Normalised(), (4, 6)).cost(batch=3)
    once = [row for row in cost.layers if row.type == "Scalar"]
    assert [(row.batch, row.other_ops) for row in once] == [(1, 6), (1, 6)]
    sub, div = (next(row for row in cost.layers if row.type == kind) for kind in ("Sub", "Div"))
    assert sub.other_ops == div.other_ops == 3 * 4 * 6
