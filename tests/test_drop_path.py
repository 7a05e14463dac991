"""timm's ``DropPath`` (its ``drop_path`` function: stochastic depth per sample), read as `StochasticDepth` with
``mode="row"``: the input at inference, a branch dropped per sample in training, as torchvision's. Checked against
torch's forward and a CPU training step (FLOPs and saved bytes: the mask, one value per sample), and the refusal
of ``scale_by_keep=False``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
timm_layers = pytest.importorskip("timm.layers")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_and_step_agree  # noqa: E402


class Residual(nn.Module):
    def __init__(self, p=0.3, scale_by_keep=True):
        super().__init__()
        self.branch, self.drop = nn.Linear(6, 6), timm_layers.DropPath(p, scale_by_keep=scale_by_keep)

    def forward(self, x):
        return x + self.drop(self.branch(x))


@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_and_training_step_agree_with_torch(p, batch):
    forward_and_step_agree(lambda: Residual(p), (4, 6), batch)


def test_it_is_one_stochastic_depth_layer():
    rows = [(row.name, row.type) for row in from_module(Residual(), (4, 6)).cost().layers]
    assert ("drop", "StochasticDepth") in rows


def test_without_scale_by_keep_it_is_refused():
    with pytest.raises(SpecError, match="drop_path.* scale_by_keep=False"):
        from_module(Residual(scale_by_keep=False), (4, 6))
