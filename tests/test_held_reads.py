"""What a trace can know of a module's own tensors without data: a parameter's or buffer's dtype (code that
branches on it, as timm's Qwen 3 encoder picks the dtype it resizes its position embedding in), the type of the
device every tensor of the forward pass is on (timm's EfficientViT: ``if v.device.type != 'meta'``), and a view of
a parameter permuted and resized once per pass. Each module is read by ``from_module`` and checked against torch on
the CPU: parameters, output shape, forward MACs (FlopCounterMode), a training step's FLOPs and saved bytes
(`module_step`)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_and_step_agree  # noqa: E402


class ResizedPositions(nn.Module):
    """Qwen 3's encoder: a learned (1, G*G, C) grid of positions, resized to the input's tokens in float32 unless
    it is float64 (a branch on the parameter's dtype), added to the projected tokens."""

    def __init__(self, c=6, grid=3):
        super().__init__()
        self.proj, self.grid = nn.Linear(c, c), grid
        self.pos = nn.Parameter(torch.randn(1, grid * grid, c))

    def forward(self, x):
        n, tokens, c = x.shape
        side = int(tokens ** 0.5)
        dtype = self.pos.dtype if self.pos.dtype == torch.float64 else torch.float32
        grid = self.pos.reshape(1, self.grid, self.grid, c).permute(0, 3, 1, 2).to(dtype)
        grid = F.interpolate(grid, size=(side, side), mode="bilinear", align_corners=True)
        return self.proj(x) + grid.permute(0, 2, 3, 1).reshape(1, side * side, c).to(self.pos.dtype)


class DeviceBranch(nn.Module):
    """EfficientViT's attention: one path on a real device, another on the meta device."""

    def __init__(self, c=6):
        super().__init__()
        self.a, self.b = nn.Linear(c, c), nn.Linear(c, c)

    def forward(self, x):
        if x.device.type != "meta":
            return self.a(x).relu()
        return self.b(x)


@pytest.mark.parametrize("module", [ResizedPositions, DeviceBranch])
def test_forward_and_training_step_agree_with_torch(module):
    forward_and_step_agree(module, (16, 6), batch=2)


def test_the_branch_taken_is_the_one_torch_takes_on_the_module_device():
    """On the CPU the first branch runs: `a` and a ReLU; `b`'s parameters are counted but never read."""
    imported = from_module(DeviceBranch(), (16, 6))
    names = [row.name for row in imported.cost().layers]
    assert "a" in names and "b" not in names
    with torch.device("meta"):
        meta = from_module(DeviceBranch(), (16, 6))
    assert [row.name for row in meta.cost().layers] == ["b"]
