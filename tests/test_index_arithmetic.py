"""Arithmetic on tensors made from constants whose result serves only as an index: timm's MViT v2 computes its
relative positions as ``torch.arange(q).unsqueeze(-1) * ratio - torch.arange(k).unsqueeze(0) * ratio``, then
gathers ``table[dist.long()]``. The index's arithmetic is no count (nor is it FlopCounterMode's); the gather is a
`PositionBias` whose index is computed (``index_buffer=False``: no training step). Checked against torch's forward
pass on the CPU: parameters, output shape, MACs (FlopCounterMode); the training step refused with one line; and
a constant's arithmetic read otherwise is not taken as an index's."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import alexcost_step, forward_against_torch  # noqa: E402


class RelativeRows(nn.Module):
    """MViT v2's relative positions along one axis, added to attention scores of a (q, k) grid."""

    def __init__(self, q=4, k=2, c=6):
        super().__init__()
        self.q, self.k = q, k
        self.table = nn.Parameter(torch.randn(2 * max(q, k) - 1, c))
        self.proj = nn.Linear(c, c)

    def forward(self, x):
        q_ratio, k_ratio = max(self.k / self.q, 1.0), max(self.q / self.k, 1.0)
        dist = (torch.arange(self.q, device=x.device, dtype=torch.long).unsqueeze(-1) * q_ratio
                - torch.arange(self.k, device=x.device, dtype=torch.long).unsqueeze(0) * k_ratio)
        dist += (self.k - 1) * k_ratio
        rel = self.table[dist.long()]  # (q, k, c)
        return self.proj(x).unsqueeze(2) + rel  # (N, q, k, c)


def test_forward_agrees_with_torch_and_the_index_costs_nothing():
    cost = forward_against_torch(RelativeRows(), (4, 6), batch=2)
    assert [row.type for row in cost.layers if row.type not in ("Linear", "Unsqueeze", "Add")] == ["PositionBias"]
    bias = next(row for row in cost.layers if row.type == "PositionBias")
    assert tuple(bias.output_shape) == (4, 2, 6) and bias.other_ops == 0


def test_its_training_step_is_refused_in_one_line():
    refused = alexcost_step(RelativeRows(), (4, 6)).refused
    assert refused and "PositionBias with index_buffer=False" in refused


class ConstantScaled(nn.Module):
    """A constant's arithmetic that is read as a value, not an index: it stays a layer (refused here: an integer
    constant as an operand)."""

    def forward(self, x):
        return x * (torch.arange(x.shape[-1], device=x.device) * 2)


def test_arithmetic_on_constants_that_is_no_index_is_not_taken_as_one():
    with pytest.raises(SpecError, match="arange"):
        from_module(ConstantScaled(), (4, 6))
