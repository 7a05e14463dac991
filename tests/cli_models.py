"""Torch modules the CLI tests read as ``--module cli_models:FACTORY`` (from tests/) or
``--module tests.cli_models:FACTORY`` (from the repository's root). Each factory takes no arguments."""

import torch
import torch.nn as nn


def tiny_cnn():
    """3 x 16 x 16 in: conv 3->8 (3x3, padding 1), ReLU, 2x2 max pool, flatten, linear 8*8*8 -> 10."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


class Shared(nn.Module):
    """One convolution run twice: its parameters count once, its MACs twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.relu(self.conv(x)))


class Cumulative(nn.Module):
    """A running sum over the channels, which alexcost has no layer kind for."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=1)


def cumulative():
    return Cumulative()


def broken():
    raise ValueError("no weights for this size")


def not_a_module():
    return 42


class TrainingBranch(nn.Module):
    """A forward that tests self.training (as dropout-like code does): read in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = self.conv(x)
        return torch.relu(x) if self.training else x
