"""A forward set on the instance (``self.forward = self.forward_split_cat``, timm's FasterNet) of a module traced
through: torch runs it, and so does fx's trace of the parent; read and checked against torch on the CPU (output
shape, parameters, FlopCounterMode's forward FLOPs, a training step's FLOPs and saved bytes, `module_step`). Where
the trace would not run it (the root, a layer kind, a function not the module's own method), refused.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_against_torch, step_agrees  # noqa: E402


class Partial(nn.Module):
    """FasterNet's partial convolution: a 3 x 3 convolution of the first quarter of the channels; its forward
    picked at construction and set on the instance."""

    def __init__(self, dim=8, mode="split_cat"):
        super().__init__()
        self.part = dim // 4
        self.conv = nn.Conv2d(self.part, self.part, 3, padding=1, bias=False)
        self.forward = {"split_cat": self.forward_split_cat, "double": self.forward_double}[mode]

    def forward_split_cat(self, x):
        x1, x2 = torch.split(x, [self.part, x.shape[1] - self.part], dim=1)
        return torch.cat((self.conv(x1), x2), 1)

    def forward_double(self, x):
        return x * 2

    def forward(self, x):  # the class's forward, which torch does not run on these instances
        return x


class Block(nn.Module):
    def __init__(self, mode="split_cat"):
        super().__init__()
        self.mixing = Partial(mode=mode)
        self.mlp = nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU(), nn.Conv2d(16, 8, 1))

    def forward(self, x):
        return x + self.mlp(self.mixing(x))


@pytest.mark.parametrize("mode", ["split_cat", "double"])
def test_the_instance_forward_is_read_as_torch_runs_it(mode):
    torch.manual_seed(0)
    module = Block(mode)
    cost = forward_against_torch(module, (8, 6, 6), batch=2)
    conv = 2 * 6 * 6 * 2 * 9 if mode == "split_cat" else 0       # 2 channels in and out, 3 x 3, per position
    assert cost.totals.macs == 2 * (conv + 6 * 6 * (8 * 16 + 16 * 8))
    torch.manual_seed(0)
    step_agrees(Block(mode), (8, 6, 6))


def test_timm_fasternet_reads_as_torch_counts():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    forward_against_torch(timm.create_model("fasternet_t0", pretrained=False, num_classes=10), (3, 64, 64))


def test_where_the_trace_would_not_run_it_it_stays_refused():
    root = Partial()          # the root: fx traces its class's forward
    with pytest.raises(SpecError, match=r"module '\(root\)' \(Partial\) has its forward replaced on the instance"):
        from_module(root, (8, 6, 6))
    block = Block()           # a function that is not the module's own method
    block.mixing.forward = lambda x: x * 3
    with pytest.raises(SpecError, match=r"module 'mixing' \(Partial\) has its forward replaced on the instance"):
        from_module(block, (8, 6, 6))
    block = Block()           # a method of another module
    block.mixing.forward = Partial().forward_double
    with pytest.raises(SpecError, match=r"module 'mixing' \(Partial\) has its forward replaced on the instance"):
        from_module(block, (8, 6, 6))
    block = Block()           # a layer kind, read from its attributes
    block.mlp[0].forward = block.mlp[0]._conv_forward
    with pytest.raises(SpecError, match=r"module 'mlp.0' \(Conv2d\) has its forward replaced on the instance"):
        from_module(block, (8, 6, 6))
