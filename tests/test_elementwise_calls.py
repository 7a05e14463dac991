"""``torch.rsqrt`` (`Rsqrt`), ``torch.addcmul`` (a `Mul` then an `Add` in place) and ``x.device`` of an
activation, read from torch modules and checked against torch on the CPU (output shape, parameters, a
training step's FLOPs and saved bytes, `module_step`); Rsqrt's counts by hand arithmetic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Add, Mul, Network, Rsqrt, SpecError  # noqa: E402
from alexcost.layers import Grads, Saved, TrainContext  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree  # noqa: E402


class Between(nn.Module):
    """``call(self, y)`` between two convolutions; an affine pair of parameters (ResMLP's) at hand."""

    def __init__(self, call):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)
        self.alpha, self.beta = nn.Parameter(torch.randn(4, 1, 1)), nn.Parameter(torch.randn(4, 1, 1))
        self.weight = nn.Parameter(torch.randn(4))
        self.call = call

    def forward(self, x):
        return self.b(self.call(self, self.a(x)))


def _rms_norm2d(self, y):
    """timm's ``rms_norm2d`` (MobileNetV5's RmsNormAct2d)."""
    v = torch.mean(y.pow(2), dim=1, keepdim=True)
    y = y * torch.rsqrt(v + 1e-5)
    return y * self.weight.reshape(1, -1, 1, 1)


def _grn_tail(self, y):
    """timm's GlobalResponseNorm's tail: ``x + addcmul(bias.view, weight.view, x * x_n)``."""
    n = y.norm(p=2, dim=(2, 3), keepdim=True)
    return y + torch.addcmul(self.beta.view(1, 4, 1, 1), self.alpha.view(1, 4, 1, 1), y * n)


def _on_device(self, y):
    """``x.device`` read to make nothing (a bias cache keyed by the device, as timm's attention does)."""
    str(y.device)
    return y.relu()


CALLS = {
    "torch.rsqrt": lambda self, y: torch.rsqrt(y.sigmoid()),
    "x.rsqrt": lambda self, y: (y * y + 1).rsqrt(),
    "rms_norm2d": _rms_norm2d,
    "addcmul of parameters and x (ResMLP's Affine)": lambda self, y: torch.addcmul(self.beta, self.alpha, y),
    "x.addcmul": lambda self, y: y.addcmul(y.sigmoid(), y.tanh()),
    "addcmul broadcasting its input": lambda self, y: torch.addcmul(y.mean((2, 3), keepdim=True), y, y.relu()),
    "global response norm": _grn_tail,
    "x.device unused": _on_device,
    "a constant made on x.device, multiplied in": lambda self, y: y * torch.ones(1, device=y.device),
}


@pytest.mark.parametrize("call", CALLS)
def test_each_call_reads_and_trains_as_torch(call):
    torch.manual_seed(0)
    module = Between(CALLS[call]).eval()
    imported = from_module(module, (3, 5, 5))
    assert imported.params == sum(p.numel() for p in module.parameters())
    out = module(torch.randn(2, 3, 5, 5))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    theirs, ours = agree(Between(CALLS[call]), (3, 5, 5))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_addcmul_is_a_product_then_an_add_into_it():
    module = Between(CALLS["addcmul of parameters and x (ResMLP's Affine)"])
    layers = from_module(module, (3, 5, 5)).network.layers
    mul, add = [layer for layer in layers if isinstance(layer, (Mul, Add))]
    assert isinstance(mul, Mul) and not mul.inplace and isinstance(add, Add) and add.inplace


@pytest.mark.parametrize("call, message", [
    (lambda self, y: torch.addcmul(y, y, y, value=2), r"value=2 is not read by alexcost"),
    (lambda self, y: torch.addcmul(y, y.mean((2, 3), keepdim=True), self.alpha),
     r"product tensor1 \* tensor2 \[4, 1, 1\] is broadcast to \[4, 5, 5\]"),
    (lambda self, y: torch.addcmul(y, self.alpha, self.beta), r"no activation; alexcost reads addcmul where"),
    (lambda self, y: y + torch.arange(y.size(-1)), r"reads the constant 'arange' of torch.int64 as an operand"),
    (lambda self, y: y * (y.device.type == "cpu"), r"computes mul of a tensor and True; alexcost reads arithmetic "
                                                    r"with a Python int or float only"),
])
def test_refused(call, message):
    with pytest.raises(SpecError, match=message):
        from_module(Between(call), (3, 5, 5))


def test_rsqrt_counts_by_hand():
    """One op per element; backward ``-0.5 * grad * y ** 3``: 3 per element; keeps its output."""
    x, batch = (4, 5, 5), 2
    layer = Rsqrt()
    assert layer.output_shape(x) == x and layer.other_ops(x, x) == 4 * 5 * 5
    assert layer.backward_other_ops(x, x, Grads((True,), False, False), batch) == 3 * batch * 100
    assert layer.saved_tensors(x, x, Grads((True,), False, False), TrainContext(batch, 4)) == \
        (Saved("output", "output"),)
    assert Network(x, [Rsqrt()]).cost(batch=3).totals.other_ops == 3 * 100


def test_the_torch_module_built_from_rsqrt_computes_it():
    from alexcost.torch_bridge.modules import BUILDERS

    x = torch.rand(2, 4, 5, 5) + 0.5
    assert torch.equal(BUILDERS[Rsqrt](Rsqrt(), None)(x), torch.rsqrt(x))
