"""``t.expand(...)`` of a tensor computed once per pass (the `Expand` kind run once): MViT v1's position
embedding, its spatial table repeated for every frame by a view, then copied by ``reshape``. Read by
``from_module`` and checked against torch on the CPU: parameters, output shape, forward MACs (FlopCounterMode),
and a training step's FLOPs and saved bytes (`module_step`)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_against_torch, step_agrees  # noqa: E402


class FramePositions(nn.Module):
    """torchvision's MViT v1 position encoding, at a small size: a class token, then per-frame and per-place
    embeddings summed (the spatial one expanded over the frames and reshaped, a copy)."""

    def __init__(self, c=6, frames=2, places=4):
        super().__init__()
        self.proj = nn.Linear(3, c)
        self.class_token = nn.Parameter(torch.randn(c))
        self.spatial_pos = nn.Parameter(torch.randn(places, c))
        self.temporal_pos = nn.Parameter(torch.randn(frames, c))
        self.class_pos = nn.Parameter(torch.randn(c))
        self.frames = frames

    def forward(self, x):
        x = self.proj(x)
        token = self.class_token.expand(x.size(0), -1).unsqueeze(1)
        x = torch.cat((token, x), dim=1)
        places, c = self.spatial_pos.shape
        pos = torch.repeat_interleave(self.temporal_pos, places, dim=0)
        pos.add_(self.spatial_pos.unsqueeze(0).expand(self.frames, -1, -1).reshape(-1, c))
        pos = torch.cat((self.class_pos.unsqueeze(0), pos), dim=0).unsqueeze(0)
        return x.add_(pos)


def test_mvit_position_encoding_agrees_with_torch():
    cost = forward_against_torch(FramePositions(), (8, 3), batch=3)
    expand = next(row for row in cost.layers if row.name == "expand")
    assert (tuple(expand.input_shape), tuple(expand.output_shape), expand.batch) == ((1, 4, 6), (2, 4, 6), 1)
    torch.manual_seed(0)
    step_agrees(FramePositions(), (8, 3), batch=3)


class Grown(nn.Module):
    """A per-pass table of shape (1, 5) grown to (4, 5) by ``expand``, its view read by a matrix product."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, 5))
        self.proj = nn.Linear(5, 5)

    def forward(self, x):
        return self.proj(x) + (self.table * 2).expand(4, 5)


def test_a_grown_view_added_to_activations_agrees_with_torch():
    forward_against_torch(Grown(), (4, 5), batch=2)
    torch.manual_seed(0)
    step_agrees(Grown(), (4, 5), batch=2)


class Expanded(nn.Module):
    """A parameter of ``shape`` expanded to ``sizes`` and added to the input."""

    def __init__(self, shape, sizes):
        super().__init__()
        self.table, self.sizes = nn.Parameter(torch.randn(shape)), sizes

    def forward(self, x):
        return x + self.table.expand(*self.sizes).sum(0)


def test_expand_that_adds_dimensions_is_refused():
    with pytest.raises(SpecError, match=r"expand'.*expands .* to \[2, 3, 4\]; alexcost expands without adding "
                                        r"dimensions"):
        from_module(Expanded((3, 4), (2, 3, 4)), (3, 4))


def test_a_size_that_does_not_fit_is_refused_with_torch_words():
    with pytest.raises(SpecError, match="must match the existing size"):
        from_module(Expanded((2, 4), (3, 4)), (3, 4))
