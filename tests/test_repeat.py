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


class FourierPositions(nn.Module):
    """XCiT's positional encoding, small: a table made from ``torch.arange`` once per pass (floor division,
    a number raised to a tensor, ``torch.stack`` of its sines and cosines), a Conv2d run on it once per pass,
    then ``pos.repeat(B, 1, 1, 1)``: a copy for each sample, added to the activation."""

    def __init__(self, hidden=4, c=6):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 2, stride=2)
        self.projection = nn.Conv2d(2 * hidden, c, 1)
        self.hidden = hidden

    def forward(self, x):
        x = self.conv(x)
        B, _, H, W = x.shape
        y = torch.arange(1, H + 1).to(torch.float32).unsqueeze(1).repeat(1, 1, W)
        xs = torch.arange(1, W + 1).to(torch.float32).repeat(1, H, 1)
        t = torch.arange(self.hidden, device=self.projection.weight.device).to(torch.float32)  # (traced)
        t = 10000 ** (2 * torch.div(t, 2, rounding_mode="floor") / self.hidden)
        px, py = xs[:, :, :, None] / t, y[:, :, :, None] / t
        px = torch.stack([px[:, :, :, 0::2].sin(), px[:, :, :, 1::2].cos()], dim=4).flatten(3)
        py = torch.stack([py[:, :, :, 0::2].sin(), py[:, :, :, 1::2].cos()], dim=4).flatten(3)
        pos = self.projection(torch.cat((py, px), dim=3).permute(0, 3, 1, 2))
        return x + pos.repeat(B, 1, 1, 1)


def test_a_tensor_computed_once_per_pass_repeated_over_the_batch_agrees_with_torch():
    cost = forward_against_torch(FourierPositions(), (3, 8, 8), batch=3)
    rows = {row.type: row for row in cost.layers}
    conv = [row for row in cost.layers if row.type == "Conv2d"][-1]  # the projection, once per pass
    assert (tuple(conv.input_shape), conv.batch) == ((8, 4, 4), 1)  # torch's batch of one, as one sample
    repeat = [row for row in cost.layers if row.type == "Repeat"][-1]
    assert (tuple(repeat.input_shape), tuple(repeat.output_shape), repeat.batch) == ((1, 6, 4, 4), (6, 4, 4), 3)
    assert "Repeat" in rows
    torch.manual_seed(0)
    step_agrees(FourierPositions(), (3, 8, 8), batch=3)


def test_a_parameter_repeated_over_the_batch_is_a_copy_for_each_sample():
    """(1, 4, 5) repeated (B, 1, 2): per sample (4, 10), new storage; backward the B copies summed back into
    the parameter: B * 40 - 20 adds."""
    class Repeated(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.randn(1, 4, 5))

        def forward(self, x):
            return x * self.p.repeat(x.shape[0], 1, 2)

    forward_and_step_agree(Repeated, (4, 10), batch=3)
    layer = Repeat(repeats=(1, 2), batch=True)
    from alexcost.layers import ParameterShape

    assert layer.output_shape(ParameterShape((1, 4, 5))) == (4, 10)
    assert layer.backward_other_ops(ParameterShape((1, 4, 5)), (4, 10), Grads((True,), False, False), 3) == \
        3 * 40 - 20


@pytest.mark.parametrize("call, message", [
    (lambda y: y.repeat(y.shape[0], 1, 1), r"reads the batch size among the counts only as the first count of a "
                                           r"tensor computed once per pass"),
])
def test_the_batch_among_an_activations_counts_is_refused(call, message):
    refused_at_the_node(call, (3, 6), message)


def test_a_repeat_over_the_batch_is_not_timed_on_its_own():
    from alexcost import SpecError
    from alexcost.torch_bridge.modules import torch_module

    with pytest.raises(SpecError, match=r"Repeat over the batch \(batch=True\)"):
        torch_module(Repeat(repeats=(1, 2), batch=True), (4, 5))
