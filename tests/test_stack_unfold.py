"""torch.stack, x.expand_as(y), x.float() and nn.Unfold / F.unfold read from torch modules, against torch on
the CPU: output shape and parameters, FlopCounterMode's forward count, and a training step's forward and
backward FLOPs and saved bytes (`module_step`). Unfold's backward adds are checked by hand arithmetic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import SpecError, Unfold  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree, refused_at_the_node  # noqa: E402


class Two(nn.Module):
    """Two convolutions of the input, a call joining them, a projection: products to count, gradients to pass."""

    def __init__(self, call, features=8):
        super().__init__()
        self.call = call
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.head = nn.Linear(features, 5)

    def forward(self, x):
        return self.head(self.call(self.a(x), self.b(x)))


CALLS = {
    "stack dim 1, then sum": lambda a, b: torch.stack([a, b], 1).sum(1),
    "stack last dim, then mean": lambda a, b: torch.stack((a, b), dim=-1).mean(-1),
    "stack of three at dim 2": lambda a, b: torch.stack([a, b, a * b], 2)[:, :, 1],
    "selective kernel": lambda a, b: (torch.stack([a, b], 1) * torch.stack([a, b], 1).sum(1).mean(
        (2, 3), keepdim=True).unsqueeze(1).softmax(1)).sum(1),
    "expand_as": lambda a, b: a * b.mean((2, 3), keepdim=True).expand_as(a),
    "expand_as of a row": lambda a, b: a + b[:, :, :1].expand_as(a),
    "float": lambda a, b: a.float() + b,
    "F.unfold": lambda a, b: F.unfold(a, 3, padding=1, stride=2).reshape(a.shape[0], 36, 4, 4).mean(1)[..., :1]
    .expand(-1, -1, 8),
    "F.unfold, dilated": lambda a, b: F.unfold(a + b, (2, 3), dilation=(1, 2), padding=(0, 1), stride=(2, 1))[..., :8],
}


@pytest.mark.parametrize("call", CALLS)
def test_training_step_matches_torch(call):
    torch.manual_seed(0)
    theirs, ours = agree(Two(CALLS[call]), (3, 8, 8))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("call", CALLS)
def test_forward_shape_params_and_flops_are_torchs(call):
    torch.manual_seed(0)
    module = Two(CALLS[call]).eval()
    imported = from_module(module, (3, 8, 8))
    with FlopCounterMode(display=False) as counter:
        out = module(torch.randn(2, 3, 8, 8))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in module.parameters())
    net = imported.network
    per_sample = sum(layer.torch_flops(x, y) for layer, x, y in zip(net.layers, net.input_shapes, net.output_shapes))
    assert 2 * per_sample == counter.get_total_flops()


class Columns(nn.Module):
    """A convolution, an nn.Unfold module, a projection of the columns (tnt's and volo's pattern)."""

    def __init__(self, features, **unfold):
        super().__init__()
        self.conv, self.unfold, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Unfold(**unfold), nn.Linear(features, 5)

    def forward(self, x):
        return self.head(self.unfold(self.conv(x)))


UNFOLDS = [  # (arguments, L: the windows of an 8 x 8 input)
    (dict(kernel_size=(2, 3), dilation=(1, 2), padding=(0, 1), stride=(2, 1)), 4 * 6),  # (8-2)//2+1, (8+2-5)//1+1
    (dict(kernel_size=3, padding=1, stride=3), 3 * 3),                                      # (8+2-3)//3+1 = 3
    (dict(kernel_size=4, stride=4), 2 * 2),
]


@pytest.mark.parametrize("args, windows", UNFOLDS)
def test_unfold_module_matches_torch(args, windows):
    torch.manual_seed(0)
    module = Columns(windows, **args)
    imported = from_module(module.eval(), (3, 8, 8))
    out = module.unfold(module.conv(torch.randn(2, 3, 8, 8)))
    assert tuple(out.shape) == (2, *imported.network.output_shapes[1])
    theirs, ours = agree(module, (3, 8, 8))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_unfold_counts_by_hand():
    """No ops forward; backward (col2im) one add per column element taken from the input. Kernel 3, stride 2,
    padding 1 on 5 x 5: windows start at -1, 1, 3 along each side and read 2, 3, 2 taps of the input."""
    layer = Unfold(kernel_size=3, stride=2, padding=1)
    x, y = (4, 5, 5), (4 * 9, 3 * 3)
    assert layer.output_shape(x) == y
    assert layer.macs(x, y) == layer.other_ops(x, y) == 0
    assert layer.backward_other_ops(x, y, Grads((True,), False, False), batch=2) == 2 * 4 * (2 + 3 + 2) ** 2
    assert layer.backward_other_ops(x, y, Grads((False,), False, False), batch=2) == 0


@pytest.mark.parametrize("forward, message, torch_refuses", [
    (lambda x: torch.stack([x, x], 0), r"stacks before the batch dimension \(dim=0\)", False),
    (lambda x: torch.stack([x, x[:, :1]], 1), r"stack expects each tensor to be equal size", True),
    (lambda x: torch.stack([x, x], 5), r"dim=5 is out of range", True),
    (lambda x: x.expand_as(x[:, :, :1]), r"The expanded size of the tensor", True),
    (lambda x: torch.stack([x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)] * 2, 1),
     r"stacks a channels-last tensor", False),
    (lambda x: F.unfold(x, 9), r"must be at least one", True),
    (lambda x: F.unfold(x[:, 0], 2), r"Unfold expects a \(C, H, W\) input per sample", False),
])
def test_what_cannot_be_read_is_refused_at_the_node(forward, message, torch_refuses):
    refused_at_the_node(forward, (3, 8, 8), message)
    if torch_refuses:
        with pytest.raises((RuntimeError, IndexError)):
            forward(torch.randn(2, 3, 8, 8))


def test_float_of_a_half_module_is_refused():
    module = nn.Sequential(nn.Linear(4, 4)).half()

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            return self.inner(x).float()

    with pytest.raises(SpecError, match=r"float.*parameters are \['torch.float16'\]"):
        from_module(Module(), (4,))


class Scaled(nn.Module):
    """A layer scale read through ``.float()`` (a float32 parameter: torch returns it as it is)."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(8, 5)
        self.gamma = nn.Parameter(torch.randn(4, 1, 1))

    def forward(self, x):
        return self.head(self.conv(x) * self.gamma.float())


def test_float_of_a_float32_parameter_is_that_parameter():
    torch.manual_seed(0)
    module = Scaled()
    theirs, ours = agree(module, (3, 8, 8))
    assert theirs.refused is None and ours == theirs
    assert from_module(module, (3, 8, 8)).params == sum(p.numel() for p in module.parameters())


def test_float_of_a_half_parameter_is_refused():
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3, 1, 1, dtype=torch.float16))

        def forward(self, x):
            return x * self.scale.float()

    with pytest.raises(SpecError, match=r"converts the parameter 'scale' of torch.float16 to float32"):
        from_module(Module(), (3, 8, 8))
