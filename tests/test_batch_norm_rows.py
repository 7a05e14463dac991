"""BatchNorm1d of rows of several samples (``(N*L, C)``, the batch flattened with the tokens), against torch.

timm's LeViT runs ``bn(linear(x).flatten(0, 1)).reshape_as(x)``: a batch norm of ``(N*L, C)`` rows, which
normalises each channel over every row, as a batch norm of ``(N, C, L)`` does. Its forward pass is read
so (per sample, the rows transposed, normalised, transposed back: views, no ops); the counts are checked
against torch's FlopCounterMode and fvcore. A training step is refused: torch's output is laid out as
rows, not as the one read.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import alexcost_step, forward_against_torch, torch_step  # noqa: E402


class LinearNorm(nn.Module):
    """timm's LeViT ``LinearNorm``: a Linear without bias, then a batch norm of its rows; a residual."""

    def __init__(self, dim=8, out=8, affine=True):
        super().__init__()
        self.linear, self.bn = nn.Linear(dim, out, bias=False), nn.BatchNorm1d(out, affine=affine)

    def forward(self, x):                 # x: (N, L, C)
        y = self.linear(x)
        return self.bn(y.flatten(0, 1)).reshape_as(y) + x


def _fvcore(module, shape) -> int:
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module.eval(), torch.randn(1, *shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


@pytest.mark.parametrize("affine", [True, False])
def test_forward_matches_torch_and_fvcore(affine):
    pytest.importorskip("fvcore")
    torch.manual_seed(0)
    module = LinearNorm(affine=affine)
    cost = forward_against_torch(module, (5, 8), batch=3)
    net = from_module(module, (5, 8)).network
    ours = sum(layer.fvcore_count(x, y) for layer, x, y in zip(net.layers, net.input_shapes, net.output_shapes))
    # fvcore: the Linear's 5*8*8 MACs, the batch norm 1 per element (2 with affine); it skips the residual add
    assert _fvcore(module, (5, 8)) == ours == 5 * 8 * 8 + (2 if affine else 1) * 5 * 8
    # the batch norm at inference: 2 ops per element, as of (N, C, L), by hand
    norm = next(row for row in cost.layers if row.layer.label() == "BatchNorm")
    assert norm.other_ops == 3 * 2 * 5 * 8


def test_the_rows_are_normalised_as_channels_of_n_c_l():
    """The reading's premise: torch's batch norm of (N*L, C) rows is the batch norm of (N, C, L), in eval mode
    and in training (the same statistics, over every row of every sample)."""
    x = torch.randn(3, 5, 8)
    for train in (False, True):
        norm = nn.BatchNorm1d(8).train(train)
        norm.running_mean.uniform_(), norm.running_var.uniform_(0.5, 2)
        rows = norm(x.flatten(0, 1)).view(3, 5, 8)
        channels = norm(x.transpose(1, 2)).transpose(1, 2)
        assert torch.allclose(rows, channels, atol=1e-6)


def test_training_step_is_refused_where_torch_runs_it():
    torch.manual_seed(0)
    module = LinearNorm()
    theirs, ours = torch_step(module, (5, 8), batch=3), alexcost_step(module, (5, 8), batch=3)
    assert theirs.refused is None
    assert ours.refused is not None and "rows of several samples" in ours.refused and "'bn'" in ours.refused


def test_rows_of_more_dimensions_are_a_batch_norm_of_each_row():
    """BatchNorm1d of (N*k, C, L): torch normalises each channel over the N*k rows and L, as a batch norm of a
    batch of N*k samples of (C, L): per sample, the batch norm on each of the k rows (a `Folded` layer), its
    training step torch's (statistics over N*k rows)."""
    from module_step import step_agrees

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn, self.scale = nn.BatchNorm1d(4), nn.Parameter(torch.ones(1))

        def forward(self, x):             # x: (N, 3, 4, 6)
            return self.bn((x * self.scale).flatten(0, 1)).view(x.shape[0], -1)

    forward_against_torch(Module(), (3, 4, 6), batch=3)
    step_agrees(Module(), (3, 4, 6), batch=3)


def test_timm_levit_matches_torch():
    """LeViT: every linear layer is a LinearNorm; attention with position biases; subsampling by slices."""
    levit = pytest.importorskip("timm.models.levit")
    module = levit.Levit(img_size=64, num_classes=10, embed_dim=(32, 48, 64), key_dim=8, num_heads=(2, 3, 4),
                         depth=(1, 1, 1))
    forward_against_torch(module, (3, 64, 64), batch=2)


def test_timm_levit_matches_fvcore():
    pytest.importorskip("fvcore")
    levit = pytest.importorskip("timm.models.levit")
    module = levit.Levit(img_size=64, num_classes=10, embed_dim=(32, 48, 64), key_dim=8, num_heads=(2, 3, 4),
                         depth=(1, 1, 1)).eval()
    net = from_module(module, (3, 64, 64)).network
    ours = sum(layer.fvcore_count(x, y) for layer, x, y in zip(net.layers, net.input_shapes, net.output_shapes))
    assert _fvcore(module, (3, 64, 64)) == ours
