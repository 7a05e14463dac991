"""``a - b`` of two tensors (`Sub`), read from torch modules in every spelling and checked against torch on
the CPU (output shape, parameters, a training step's FLOPs and saved bytes, `module_step`); its counts by
hand arithmetic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Network, Parameter, SpecError, Sub  # noqa: E402
from alexcost.layers import Grads, ParameterShape  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree  # noqa: E402


class Pooling(nn.Module):
    """PoolFormer's token mixer, ``pool(x) - x``, between two convolutions; a parameter to subtract too."""

    def __init__(self, call):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.shift = nn.Parameter(torch.randn(4, 1, 1))
        self.call = call

    def forward(self, x):
        y = self.a(x)
        return self.b(self.call(self, y))


def _isub(self, y):
    z = self.pool(y)
    z -= y
    return z


CALLS = {
    "a - b": lambda self, y: self.pool(y) - y,
    "torch.sub": lambda self, y: torch.sub(self.pool(y), y),
    "x.sub": lambda self, y: self.pool(y).sub(y),
    "x.sub_": lambda self, y: self.pool(y).sub_(y),
    "a -= b": _isub,
    "a parameter": lambda self, y: y - self.shift,
    "from a parameter": lambda self, y: self.shift - y.relu(),
    "broadcast": lambda self, y: y - y.mean((2, 3), keepdim=True),
}


@pytest.mark.parametrize("call", CALLS)
def test_each_spelling_reads_as_a_sub_and_trains_as_torch(call):
    torch.manual_seed(0)
    module = Pooling(CALLS[call]).eval()
    imported = from_module(module, (3, 5, 5))
    subs = [layer for layer in imported.network.layers if isinstance(layer, Sub)]
    assert len(subs) == 1 and subs[0].inplace == (call in ("x.sub_", "a -= b"))
    assert imported.params == sum(p.numel() for p in module.parameters())
    out = module(torch.randn(2, 3, 5, 5))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    theirs, ours = agree(Pooling(CALLS[call]), (3, 5, 5))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_counts_by_hand():
    """One subtract per output element; backward: the second input's gradient negated (one per output
    element), a broadcast input's gradient summed back (one add per element beyond its own)."""
    x, y, batch = ((4, 5, 5), (4, 1, 1)), (4, 5, 5), 2
    layer = Sub()
    assert layer.output_shape(x) == y and layer.other_ops(x, y) == 4 * 5 * 5
    assert layer.backward_other_ops(x, y, Grads((True, False), False, False), batch) == 0
    assert layer.backward_other_ops(x, y, Grads((False, True), False, False), batch) == \
        batch * 4 * 5 * 5 + (batch * 4 * 5 * 5 - batch * 4)
    shift = (ParameterShape((4, 1, 1)), (4, 5, 5))
    assert layer.backward_other_ops(shift, y, Grads((True, True), False, False), batch) == \
        (batch * 100 - 4) + batch * 100
    net = Network((4, 5, 5), [Parameter(name="p", shape=(4, 1, 1)), Sub(inputs=("input", "p"))])
    assert net.cost(batch=3).totals.other_ops == 3 * 100 and net.cost().totals.params == 4
    with pytest.raises(SpecError, match=r"Sub takes 2 inputs \(a - b\), got 3"):
        Network((4, 5, 5), [Sub(inputs=("input", "input", "input"))])
