"""A write in place into a view whose base required no grad when the view was made, against a
real CPU training step: the base is the output of a frozen convolution (its weight and bias
require no grad) rather than the network's input. torch refuses ``v.relu_()`` once a write in
place has made the base require grad ("a leaf Variable that requires grad is being used in an
in-place operation"); where the base required grad all along, or the view is not written, the
step runs and alexcost's counts equal torch's (FlopCounterMode, saved bytes)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from module_step import agree  # noqa: E402

C, SHAPE = 3, (3, 4, 4)


class Net(nn.Module):
    """A first convolution (``frozen``: its parameters require no grad), a learned scale, a second
    convolution, and ``body`` as forward."""

    def __init__(self, body, frozen: bool):
        super().__init__()
        self.first = nn.Conv2d(C, C, 1)
        self.first.requires_grad_(not frozen)
        self.g = nn.Parameter(torch.rand(1, C, 1, 1) + 0.5)
        self.conv = nn.Conv2d(C, C, 1)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def _view_written_after_base_scaled(self, x):
    y = self.first(x)
    v = y.flatten(1)  # a view of y, made while y requires no grad when first is frozen
    y.mul_(self.g)  # y requires grad from here on
    v.relu_()
    return self.conv(y)


def _view_not_written(self, x):
    y = self.first(x)
    v = y.flatten(1)
    y.mul_(self.g)
    return self.conv(y) + v.view(y.shape)


def _view_made_after_base_scaled(self, x):
    y = self.first(x)
    y.mul_(self.g)
    v = y.flatten(1)  # made once y requires grad
    v.relu_()
    return self.conv(y)


@pytest.mark.parametrize("body, frozen, refused", [
    (_view_written_after_base_scaled, True, True),
    (_view_written_after_base_scaled, False, False),
    (_view_not_written, True, False),
    (_view_made_after_base_scaled, True, False),
], ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("batch", [1, 2])
def test_view_of_a_frozen_layers_output(body, frozen, refused, batch):
    torch.manual_seed(0)
    theirs, ours = agree(Net(body, frozen), SHAPE, batch)
    assert bool(theirs.refused) == refused, theirs.refused  # the case is what it says
    if refused:
        assert ours.refused and "leaf Variable that requires grad" in ours.refused, \
            f"torch refuses ({theirs.refused}), alexcost counts {ours}"
    else:
        assert ours == theirs
