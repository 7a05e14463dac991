"""``x.repeat`` and ``x.tile`` (the `Repeat` kind): counts by hand, against torch, and SAM 2's tiled embedding.

Of an activation each sample is copied along its own dimensions (the batch's count 1); of a parameter, or of a
tensor computed from parameters alone, the whole tensor, once per forward pass (SAM 2's Hiera tiles its window
position embedding over the resized global one). Each module is read by ``from_module`` and checked against
torch on the CPU: parameters, output shape, forward MACs (FlopCounterMode), a training step's FLOPs and
saved bytes (`module_step`).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from alexcost import Network, Repeat  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from module_step import (Around, forward_against_torch, forward_and_step_agree, refused_at_the_node,  # noqa: E402
                         step_agrees)

CASES = {
    "x.repeat": lambda y: y.repeat(1, 2, 1)[:, :3] * y,
    "x.tile with fewer counts": lambda y: y.tile((1, 2))[..., :6] + y,
    "torch.tile": lambda y: torch.tile(y, (1, 1, 2)).view(y.shape[0], 3, 2, 6).sum(2),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_and_training_step_match_torch(case):
    forward_and_step_agree(lambda: Around(CASES[case]), (3, 6))


class TiledEmbedding(nn.Module):
    """SAM 2's Hiera: a global embedding resized to the feature map, plus a window embedding tiled over it."""

    def __init__(self, c=4, window=2):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 2, stride=2)
        self.pos = nn.Parameter(torch.randn(1, c, 3, 3))
        self.window = nn.Parameter(torch.randn(1, c, window, window))

    def forward(self, x):
        x = self.conv(x)
        pos = F.interpolate(self.pos, size=x.shape[2:], mode="bicubic")
        tiles = (pos.shape[-2] // self.window.shape[-2], pos.shape[-1] // self.window.shape[-1])
        return x + (pos + self.window.tile(tiles))


def test_a_tiled_parameter_runs_once_per_pass_and_agrees_with_torch():
    cost = forward_against_torch(TiledEmbedding(), (3, 8, 8), batch=3)
    repeat = next(row for row in cost.layers if row.type == "Repeat")
    assert (tuple(repeat.input_shape), tuple(repeat.output_shape), repeat.batch) == ((1, 4, 2, 2), (1, 4, 4, 4), 1)
    torch.manual_seed(0)
    step_agrees(TiledEmbedding(), (3, 8, 8), batch=3)


def test_counts_by_hand():
    """(4, 5) repeated (2, 3) times: (8, 15), a copy (no ops); backward, the 6 copies' gradients summed into
    one: 120 - 20 adds per sample."""
    layer = Repeat(repeats=(2, 3))
    assert Network((4, 5), [layer]).output_shape == (8, 15)
    assert layer.other_ops((4, 5), (8, 15)) == 0
    assert layer.backward_other_ops((4, 5), (8, 15), Grads((True,), False, False), 3) == 3 * (120 - 20)


@pytest.mark.parametrize("call, message", [
    (lambda y: y.repeat(2, 1, 1), r"repeats the batch 2 times"),
    (lambda y: y.repeat(1, 1, 1, 1), r"more counts than dimensions"),
    (lambda y: y.repeat(1, 2), r"torch needs a count for each dimension"),
])
def test_other_repeats_are_refused(call, message):
    refused_at_the_node(call, (3, 6), message)


def test_the_torch_module_built_for_timing_computes_the_same():
    from alexcost.torch_bridge.modules import BUILDERS

    x = torch.rand(2, 3, 4)
    assert torch.equal(BUILDERS[Repeat](Repeat(repeats=(2, 3)), None)(x), x.repeat(1, 2, 3))
