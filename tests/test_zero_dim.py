"""A 0-d tensor computed once per pass: ``w[i]`` of learned weights, a factor broadcast over a branch.

timm's EfficientViM weighs its heads with ``weights = self.weights.softmax(-1)``, then
``weights[i] * head(x[i])``: ``weights[i]`` is a 0-d tensor, computed once per forward pass from a parameter.
alexcost carries it as it is (a `Slice` run once per pass, of shape ``()``); a selection that leaves no
dimension per sample of an activation stays refused. Checked against torch on the CPU: forward MACs
(FlopCounterMode), parameters, the output shape, and a training step.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Network, Slice, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, alexcost_step, forward_against_torch, step_agrees, torch_step  # noqa: E402


class Weighed(nn.Module):
    """Two heads weighed by a softmax of learned weights, each weight a 0-d tensor."""

    def __init__(self, features=6, classes=4):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(features, classes) for _ in range(2))
        self.weights = nn.Parameter(torch.randn(2))

    def forward(self, x):
        weights = self.weights.softmax(-1)
        return weights[0] * self.heads[0](x) + self.heads[1](x) * weights[1]


def test_weighed_heads_agree_with_torch():
    cost = forward_against_torch(Weighed(), (6,), batch=3)
    assert cost.totals.macs == 3 * 2 * 6 * 4  # the two heads' products
    picks = [row for row in cost.layers if row.type == "Slice"]
    assert [(tuple(row.output_shape), row.batch) for row in picks] == [((), 1), ((), 1)]  # 0-d, once per pass
    torch.manual_seed(0)
    step_agrees(Weighed(), (6,), batch=3)


def test_a_selection_leaving_no_dimension_per_sample_stays_refused():
    with pytest.raises(SpecError, match=r"function 'getitem' .*\(fx node 'getitem'\): Slice leaves no dimension per "
                                        r"sample; alexcost reads each sample as a tensor of one dimension or more"):
        from_module(Around(lambda y: y[:, 0]), (6,))


def test_a_network_refuses_it_too():
    with pytest.raises(SpecError, match=r"Slice leaves no dimension per sample"):
        Network((4,), [Slice(index=(0,))])


def test_efficientvim_reads_exactly():
    """A small EfficientViM against torch and fvcore, and its CPU training step."""
    timm = pytest.importorskip("timm")
    from zoo_cases import assert_exact

    torch.manual_seed(0)
    model = timm.create_model("efficientvim_m2", pretrained=False, num_classes=10, depths=(1, 1, 1),
                              embed_dim=(16, 32, 48))
    assert_exact(model.eval(), 32, "efficientvim_m2")
    theirs, ours = torch_step(model, (3, 32, 32)), alexcost_step(model, (3, 32, 32))
    assert theirs.refused is None and ours == theirs, (theirs, ours)


class SkipGain(nn.Module):
    """NFNet's block: its residual branch scaled in place by a 0-d learned gain (``skipinit_gain``, zero at
    first: here random, so the gradient is not trivially zero)."""

    def __init__(self, features=6):
        super().__init__()
        self.branch = nn.Linear(features, features)
        self.gain = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        out = self.branch(x)
        out.mul_(self.gain)
        return out + x


def test_a_0d_parameter_is_one_number_broadcast_and_agrees_with_torch():
    cost = forward_against_torch(SkipGain(), (4, 6), batch=3)
    gain = next(row for row in cost.layers if row.type == "Parameter")
    assert tuple(gain.output_shape) == () and gain.params == 1
    torch.manual_seed(0)
    step_agrees(SkipGain(), (4, 6), batch=3)
