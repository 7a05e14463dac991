"""Batch norm written out in a module's own forward (timm's ``BatchNormAct2d`` copies nn.BatchNorm2d's code: it
counts batches with ``num_batches_tracked.add_(1)`` and passes ``training=True`` to ``F.batch_norm`` in training
mode): read from the eval-mode graph, its training step is batch norm's with the batch's statistics, as torch runs
it. A batch norm that keeps ``training=False`` in training mode too (running statistics: a frozen batch norm) has
no such step, and alexcost refuses it rather than count one. Checked against torch's CPU training step."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from module_step import alexcost_step, forward_and_step_agree, torch_step  # noqa: E402


class WrittenOut(nn.BatchNorm2d):
    """nn.BatchNorm2d's forward, as timm copies it into BatchNormAct2d, then an activation."""

    def forward(self, x):
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            if self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                factor = self.momentum
        bn_training = True if self.training else (self.running_mean is None) and (self.running_var is None)
        x = F.batch_norm(x, self.running_mean if not self.training or self.track_running_stats else None,
                         self.running_var if not self.training or self.track_running_stats else None,
                         self.weight, self.bias, bn_training, factor, self.eps)
        return F.silu(x)


class Net(nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(3, 4, 3), norm(4)
        self.conv2, self.norm2 = nn.Conv2d(4, 4, 3), norm(4)

    def forward(self, x):
        return self.norm2(self.conv2(self.norm1(self.conv1(x)))) + 1


class Flagged(nn.Module):
    """``self.training`` passed on as ``F.batch_norm``'s argument."""

    def __init__(self, c):
        super().__init__()
        self.norm = nn.BatchNorm2d(c)

    def forward(self, x):
        n = self.norm
        return F.batch_norm(x, n.running_mean, n.running_var, n.weight, n.bias, self.training, 0.1, n.eps)


class Frozen(Flagged):
    """``training=False`` whatever the mode: the running statistics in training too."""

    def forward(self, x):
        n = self.norm
        return F.batch_norm(x, n.running_mean, n.running_var, n.weight, n.bias, False, 0.1, n.eps)


@pytest.mark.parametrize("norm", [WrittenOut, Flagged, nn.BatchNorm2d])
@pytest.mark.parametrize("batch", [1, 2])
def test_batch_norm_in_training_mode_agrees_with_torch(norm, batch):
    forward_and_step_agree(lambda: Net(norm), (3, 9, 9), batch)


def test_a_frozen_batch_norm_is_refused_in_training_not_counted_with_the_batch_statistics():
    torch.manual_seed(0)
    assert torch_step(Net(Frozen), (3, 9, 9)).refused is None  # torch runs it
    refused = alexcost_step(Net(Frozen), (3, 9, 9)).refused
    assert refused and "normalises with the running statistics (training=False) in training mode too" in refused
