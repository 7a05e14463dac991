"""``a / b`` of two tensors (`Div`), read from torch modules in every spelling and checked against torch on
the CPU (output shape, parameters, a training step's FLOPs and saved bytes, `module_step`); its counts by
hand arithmetic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Div, Network, Parameter, SpecError  # noqa: E402
from alexcost.layers import Grads, ParameterShape, Saved, TrainContext  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree  # noqa: E402


class Dividing(nn.Module):
    """``a / b`` between two convolutions (ConvNeXt-V2's global response norm among them); a parameter too."""

    def __init__(self, call):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.scale = nn.Parameter(torch.rand(4, 1, 1) + 1)
        self.call = call

    def forward(self, x):
        y = self.a(x)
        return self.b(self.call(self, y))


def _idiv(self, y):
    z = self.pool(y)
    z /= y.sigmoid()
    return z


def _grn(self, y):
    """timm's GlobalResponseNorm (channels first): the spatial norm over its mean across channels."""
    g = y.norm(p=2, dim=(2, 3), keepdim=True)
    n = g / (g.mean(dim=1, keepdim=True) + 1e-6)
    return y + y * n


CALLS = {
    "a / b": lambda self, y: self.pool(y) / y.sigmoid(),
    "torch.div": lambda self, y: torch.div(self.pool(y), y.sigmoid()),
    "torch.true_divide": lambda self, y: torch.true_divide(self.pool(y), y.sigmoid()),
    "x.div": lambda self, y: self.pool(y).div(y.sigmoid()),
    "x.div_": lambda self, y: self.pool(y).div_(y.sigmoid()),
    "a /= b": _idiv,
    "by a parameter": lambda self, y: y / self.scale,
    "a parameter by": lambda self, y: self.scale / y.sigmoid(),
    "broadcast": lambda self, y: y / y.sigmoid().mean((2, 3), keepdim=True),
    "global response norm": _grn,
}


@pytest.mark.parametrize("call", CALLS)
def test_each_spelling_reads_as_a_div_and_trains_as_torch(call):
    torch.manual_seed(0)
    module = Dividing(CALLS[call]).eval()
    imported = from_module(module, (3, 5, 5))
    divs = [layer for layer in imported.network.layers if isinstance(layer, Div)]
    assert len(divs) == 1 and divs[0].inplace == (call in ("x.div_", "a /= b"))
    assert imported.params == sum(p.numel() for p in module.parameters())
    out = module(torch.randn(2, 3, 5, 5))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    theirs, ours = agree(Dividing(CALLS[call]), (3, 5, 5))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("call", ["by a parameter", "a parameter by"])
def test_a_frozen_parameter_on_either_side(call):
    """One input needs no gradient (a frozen parameter): torch keeps the divisor, the dividend only when
    the divisor needs a gradient."""
    module = Dividing(CALLS[call])
    module.scale.requires_grad_(False)
    theirs, ours = agree(module, (3, 5, 5))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_counts_by_hand():
    """One divide per output element; backward: ``grad / b`` (1 per output element) for ``a``,
    ``-grad * ((a / b) / b)`` (4) for ``b``, a broadcast input's gradient summed back (one add per element
    beyond its own); kept: ``b``, and ``a`` when ``b`` needs a gradient."""
    x, y, batch = ((4, 5, 5), (4, 1, 1)), (4, 5, 5), 2
    out = batch * 4 * 5 * 5
    layer = Div()
    assert layer.output_shape(x) == y and layer.other_ops(x, y) == 4 * 5 * 5
    assert layer.backward_other_ops(x, y, Grads((True, False), False, False), batch) == out
    assert layer.backward_other_ops(x, y, Grads((False, True), False, False), batch) == \
        4 * out + (out - batch * 4)
    ctx = TrainContext(batch=batch, itemsize=4)
    assert layer.saved_tensors(x, y, Grads((True, False), False, False), ctx) == (Saved("input", "input", 1),)
    assert layer.saved_tensors(x, y, Grads((True, True), False, False), ctx) == \
        (Saved("input", "input", 0), Saved("input", "input", 1))
    shift = (ParameterShape((4, 1, 1)), (4, 5, 5))
    assert layer.backward_other_ops(shift, y, Grads((True, True), False, False), batch) == \
        (out - 4) + out + 4 * out
    net = Network((4, 5, 5), [Parameter(name="p", shape=(4, 1, 1)), Div(inputs=("input", "p"))])
    assert net.cost(batch=3).totals.other_ops == 3 * 100 and net.cost().totals.params == 4
    with pytest.raises(SpecError, match=r"Div takes 2 inputs \(a / b\), got 3"):
        Network((4, 5, 5), [Div(inputs=("input", "input", "input"))])


def test_the_torch_module_built_from_a_div_divides():
    from alexcost.torch_bridge.modules import BUILDERS

    for inplace in (False, True):
        a, b = torch.randn(2, 4, 5, 5), torch.rand(2, 4, 1, 1) + 1
        expected = a / b
        built = BUILDERS[Div](Div(inplace=inplace), None)
        assert torch.equal(built(a.clone(), b), expected)
