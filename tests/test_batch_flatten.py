"""The batch flattened with the dims after it (``x.flatten(0, d)``), and what reads such rows, against torch.

``x.flatten(0, 1)`` of ``(N, L, C)`` is ``(N*L, C)``: each sample's ``L`` rows, together and in order, so
row-wise calls on it (Linear, elementwise) and a view that gives the batch back are read per sample
(timm's Hiera unrolls its tokens so, LeViT runs its linear layers on such rows). Each module below is
read by ``from_module`` and checked against torch on the CPU: parameters, output shape, forward MACs as
FlopCounterMode's FLOPs / 2, and a training step's FLOPs and saved bytes (`module_step`). What cannot be
read per sample is refused at its node.
"""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree, forward_against_torch, step_agrees  # noqa: E402


class Rows(nn.Module):
    """An MLP over the rows of ``x.flatten(0, 1)``, viewed back with the batch in front (``then``)."""

    def __init__(self, back, dim=8, hidden=12):
        super().__init__()
        self.back = back
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):                 # x: (N, L, C)
        rows = x.flatten(0, 1)            # (N*L, C)
        rows = self.fc2(F.gelu(self.fc1(rows)) * 2)
        return self.back(rows, x) + x


class Unroll(nn.Module):
    """timm's Hiera ``Unroll``: tokens of an H x W grid reordered so that each 2 x 2 stride is folded into the
    batch, twice (``B *= 4`` each time), then given back as ``(N, H*W, C)``; a Linear after it."""

    def __init__(self, size=(8, 8), dim=6, schedule=((2, 2), (2, 2))):
        super().__init__()
        self.size, self.schedule = list(size), schedule
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):                 # x: (N, H*W, C)
        B, _, C = x.shape
        cur = self.size
        x = x.view(*([B] + cur + [C]))
        for strides in self.schedule:
            cur = [i // s for i, s in zip(cur, strides)]
            shape = [B] + sum([[i, s] for i, s in zip(cur, strides)], []) + [C]
            x = x.view(shape)
            rank = len(shape)
            x = x.permute([0] + list(range(2, rank - 1, 2)) + list(range(1, rank - 1, 2)) + [rank - 1])
            x = x.flatten(0, len(strides))
            B *= math.prod(strides)
        x = x.reshape(-1, math.prod(self.size), C)
        return self.proj(x)


class Folded(nn.Module):
    """Windows folded into the batch (``(N*4, 4, 8)``), ``then`` on them, and the batch given back."""

    def __init__(self, then):
        super().__init__()
        self.then = then
        self.fc = nn.Linear(8, 8)

    def forward(self, x):                 # x: (N, 4, 4, 8)
        w = self.fc(x.reshape(-1, 4, 8))  # (N*4, 4, 8)
        return self.then(w, x)


def _split_mix(w, x):
    a, b = w.split([3, 5], dim=-1)       # along the channels of each window
    return torch.cat([b * 2, a.sigmoid()], dim=2).reshape(x.shape[0], 4, 4, 8)


CASES = {
    "rows, viewed back": (lambda: Rows(lambda rows, x: rows.view(x.shape[0], -1, 8)), (5, 8)),
    "rows, reshape_as": (lambda: Rows(lambda rows, x: rows.reshape_as(x)), (5, 8)),
    "rows, view_as": (lambda: Rows(lambda rows, x: rows.view_as(x)), (3, 8)),
    "hiera's unroll": (lambda: Unroll(), (64, 6)),
    "hiera's unroll, 4 x 2 then 1 x 2": (lambda: Unroll(size=(8, 4), schedule=((4, 2), (1, 2))), (32, 6)),
    "split of a folded tensor": (lambda: Folded(_split_mix), (4, 4, 8)),
    "torch.split of a folded tensor": (lambda: Folded(lambda w, x: torch.cat(torch.split(w, 4, dim=1)[::-1], 1)
                                                      .reshape(x.shape[0], -1)), (4, 4, 8)),
    "a folded tensor flattened after the batch": (lambda: Folded(lambda w, x: w.flatten(1).relu()
                                                                 .view(x.shape[0], 4, 32)), (4, 4, 8)),
    "a folded tensor flattened with the batch": (lambda: Folded(lambda w, x: (w.flatten(0, 1) * 3)
                                                                .view(x.shape[0], -1)), (4, 4, 8)),
    "the fold from the sizes, (N*k) // N": (lambda: Folded(lambda w, x: w.view(x.shape[0], w.shape[0] // x.shape[0],
                                                                               -1).sum(-1)), (4, 4, 8)),
    "a dim of size 1 flattened with the batch": (lambda: Rows(lambda rows, x: rows.view(x.shape[0], 1, 8)), (1, 8)),
    "everything flattened, then viewed back": (lambda: Rows(lambda rows, x: rows.flatten().view(x.shape[0], 5, 8)),
                                               (5, 8)),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    forward_against_torch(build(), shape, batch=3)


@pytest.mark.parametrize("case", CASES)
def test_training_step_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    step_agrees(build(), shape, batch=3)


class Call(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(self, x)


REFUSED = {
    "a slice flattened with the batch (torch copies, the sample views)":
        (lambda m, x: x[:, :3].flatten(0, 1).view(x.shape[0], -1), (5, 8), "strides torch cannot view"),
    "a split along the folded dim": (lambda m, x: x.flatten(0, 1).split(2)[0].view(x.shape[0], -1), (4, 8),
                                     "dim at its default"),
    "flatten with start after end": (lambda m, x: x.flatten(1, 0), (4, 8), "start_dim cannot come after"),
    "a flatten into the batch alone": (lambda m, x: x.flatten(0, 2), (1, 1), "batch dimension alone"),
    "a folded output": (lambda m, x: x.flatten(0, 1), (4, 8), "returns a tensor"),
    "a folded tensor concatenated with a plain one":
        (lambda m, x: torch.cat([x.flatten(0, 1), x.sum(1)], 1).view(x.shape[0], -1), (4, 8), "folded alike"),
    "a folded tensor passed by keyword":
        (lambda m, x: torch.softmax(input=x.flatten(0, 1), dim=1).view(x.shape[0], -1), (4, 8), "by keyword"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_is_not_read_per_sample_is_refused_at_the_node(case):
    function, shape, message = REFUSED[case]
    with pytest.raises(SpecError, match=message) as err:
        from_module(Call(function), shape)
    assert "fx node" in str(err.value)


def test_a_module_named_flatten_on_rows_is_refused_as_a_module():
    """``self.flatten = nn.Flatten()`` on ``(N*L, C)`` rows: the module, not ``x.flatten``, refused at its node."""
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()

        def forward(self, x):             # x: (N, L, C)
            return self.flatten(x.flatten(0, 1)).view(x.shape[0], -1)

    with pytest.raises(SpecError, match=r"modules that leave that dimension alone.*|module 'flatten'") as err:
        from_module(Module(), (4, 8))
    assert "module 'flatten'" in str(err.value)


def test_torch_copies_a_sliced_batch_it_flattens():
    """Why the slice above is refused: torch's ``flatten(0, 1)`` of ``x[:, :3]`` is a copy (a new storage),
    while each sample's ``(3, 8)`` rows are a view of the sample."""
    x = torch.randn(5, 6, 8)
    assert x[:, :3].flatten(0, 1).untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    assert x[0, :3].flatten(0, 0).untyped_storage().data_ptr() == x.untyped_storage().data_ptr()


class Drawn(nn.Module):
    """``x`` of shape ``(N, *sizes)``, optionally permuted after the batch, flattened from dim 0 to ``end``, a
    Linear on the last dim, then viewed back to ``(N, ...)``."""

    def __init__(self, sizes, end, order):
        super().__init__()
        self.end, self.order = end, order
        self.fc = nn.Linear(sizes[order[-1] - 1], 4)

    def forward(self, x):
        rows = x.permute(0, *self.order).flatten(0, self.end)
        return self.fc(rows).reshape(x.shape[0], -1)


DRAWN = [(sizes, order, end) for sizes in [(2, 3), (3, 1), (1, 3), (2, 3, 4), (4, 1, 2)]
         for order in itertools.permutations(range(1, len(sizes) + 1)) for end in range(1, len(sizes))]


def test_every_flatten_of_the_batch_of_small_tensors_matches_torch_or_is_refused():
    """Every order of the dims after the batch and every end, on small sizes: exact against torch's forward
    and training step, or refused at the node (a flatten torch copies where each sample's is a view)."""
    read = 0
    for sizes, order, end in DRAWN:
        module = Drawn(sizes, end, order)
        try:
            from_module(module, sizes)
        except SpecError as err:
            assert "fx node" in str(err) and "strides torch cannot view" in str(err), (sizes, order, end)
            continue
        read += 1
        forward_against_torch(module, sizes, batch=3)
        theirs, ours = agree(module, sizes, batch=3)
        assert theirs.refused is None and ours == theirs, (sizes, order, end, theirs, ours)
    assert read >= len(DRAWN) // 2
