"""A sum or a mean of a tensor computed once per pass: ``torch.sum(q * k, dim=-1)`` of two learned vectors.

timm's differential attention (``DiffAttention``, in its ``vit_d*`` models) weighs its second attention map by
``lambda = exp(sum(q1 * k1)) - exp(sum(q2 * k2)) + lambda_init``, four learned vectors reduced to one number in
every forward pass. alexcost reads the reduction as a `Sum` (or `Mean`) run once, over the same dimensions
(all of them where none is given), and its 0-d result broadcast over the activations. Checked against torch on
the CPU: forward MACs (FlopCounterMode), parameters, the output shape, and a training step.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Mean, Network, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, alexcost_step, forward_against_torch, step_agrees  # noqa: E402

FEATURES, D = 6, 4


class Lambda(nn.Module):
    """A branch scaled by ``exp(sum(q * k)) + 0.8`` of two learned vectors, and a mean of one of them."""

    def __init__(self):
        super().__init__()
        self.branch = nn.Linear(FEATURES, FEATURES)
        self.q, self.k = nn.Parameter(torch.randn(D)), nn.Parameter(torch.randn(D))

    def forward(self, x):
        lam = torch.exp(torch.sum(self.q * self.k, dim=-1).float()) + 0.8
        return self.branch(x) * lam.type_as(x) + x * self.q.mean()


def test_a_reduction_of_learned_vectors_agrees_with_torch():
    batch = 3
    cost = forward_against_torch(Lambda(), (FEATURES,), batch=batch)
    assert cost.totals.macs == batch * FEATURES * FEATURES  # the branch's Linear
    rows = {row.type: row for row in cost.layers if row.type in ("Sum", "Mean")}
    assert (rows["Sum"].input_shape, rows["Sum"].output_shape, rows["Sum"].batch) == ((D,), (), 1)  # once per pass
    assert rows["Sum"].other_ops == D - 1                     # adds: one fewer than the elements
    assert (rows["Mean"].output_shape, rows["Mean"].batch, rows["Mean"].other_ops) == ((), 1, D)
    torch.manual_seed(0)
    step_agrees(Lambda(), (FEATURES,), batch=batch)


@pytest.mark.parametrize("reduce, shape", [
    (lambda t: t.sum(), ()), (lambda t: t.sum((0, 1)), ()), (lambda t: t.mean(0), (3,)),
    (lambda t: t.sum(-1, keepdim=True), (2, 1)), (lambda t: torch.mean(t, dim=(0,), keepdim=True), (1, 3))])
def test_every_form_of_the_call_reads_as_torch_runs_it(reduce, shape):
    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(2, 3))

        def forward(self, x):
            reduced = reduce(self.table)
            return x * (reduced.sum() if shape else reduced)  # a number, broadcast over the sample

    assert tuple(reduce(torch.empty(2, 3)).shape) == shape
    cost = forward_against_torch(Table(), (5,), batch=2)
    first = next(row for row in cost.layers if row.type in ("Sum", "Mean"))
    assert (first.input_shape, first.output_shape, first.batch) == ((2, 3), shape, 1)
    torch.manual_seed(0)
    step_agrees(Table(), (5,), batch=2)


def test_timm_differential_attention_reads_exactly():
    timm = pytest.importorskip("timm")
    from timm.layers.diff_attention import DiffAttention

    for dual in (False, True):  # lambda from four vectors, or from two scalars' exp
        torch.manual_seed(0)
        cost = forward_against_torch(DiffAttention(32, num_heads=2, dual_lambda=dual), (5, 32), batch=3)
        assert any(row.type == ("Exp" if dual else "Sum") and row.batch == 1 for row in cost.layers)
    # its attention's values have twice the queries' features: torch trains it on its math backend
    assert "v's features (16) are not q's and k's (8)" in alexcost_step(DiffAttention(32, num_heads=2), (5, 32)).refused
    from zoo_cases import assert_exact

    torch.manual_seed(0)
    model = timm.create_model("vit_dwee_patch16_reg1_gap_256", pretrained=False, img_size=32, depth=2,
                              num_classes=10)
    assert_exact(model.eval(), 32, "vit_dwee_patch16_reg1_gap_256")


def test_what_stays_refused():
    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Parameter(torch.randn(D))

        def forward(self, x):
            return x * self.q.sum(dtype=torch.float64).float()

    with pytest.raises(SpecError, match=r"method 'sum' .*converts to another dtype"):
        from_module(Wide(), (FEATURES,))
    for dim in ([], 1, True):  # torch reduces every dimension for []; the vector has one
        with pytest.raises(SpecError, match=rf"method 'sum' .*dim={re.escape(repr(dim))} does not name dimensions "
                                            rf"of a tensor of shape \[{FEATURES}\] computed from parameters"):
            from_module(Around(lambda self, y, dim=dim: y * self.w.sum(dim), own=True), (FEATURES,))
    with pytest.raises(SpecError, match=r"Mean leaves no dimension per sample"):  # an activation's, per sample
        from_module(Around(lambda y: y.mean(-1)), (FEATURES,))
    with pytest.raises(SpecError, match=r"layers\[0\].*Mean leaves no dimension per sample"):
        Network((FEATURES,), [Mean(dim=1)])
