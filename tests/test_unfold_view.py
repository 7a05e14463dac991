"""``x.unfold(dim, size, step)`` (the `UnfoldView` kind): the windows along one dimension, a view.

timm's halo attention takes overlapping windows of its keys and values with ``kv.unfold(2, win, block)``.
Windows that overlap share the input's elements; a reshape that merges them makes a copy, as torch does.
Each module is read by ``from_module`` and checked against torch on the CPU: parameters, output shape,
forward MACs (FlopCounterMode), and a training step's FLOPs and saved bytes (`module_step`).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Network, UnfoldView  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from module_step import Around, forward_and_step_agree, refused_at_the_node  # noqa: E402

CASES = {  # each on a (3, 6) sample, back to (3, 6)
    "overlapping windows, summed": lambda y: torch.cat([y.unfold(2, 3, 1).sum(-1), y[..., :2]], -1),
    "overlapping windows, reshaped (a copy)": lambda y: y.unfold(1, 2, 1).reshape(y.shape[0], -1)[:, :18]
    .view(y.shape[0], 3, 6) * y,
    "windows side by side, transposed": lambda y: y.unfold(-1, 2, 2).transpose(2, 3).reshape(y.shape[0], 3, 6),
    "two dims, as halo attention": lambda y: y.view(y.shape[0], 3, 2, 3).unfold(2, 2, 1).unfold(3, 2, 1)
    .reshape(y.shape[0], 3, -1)[..., :6].contiguous() + y,
}


@pytest.mark.parametrize("case", CASES)
def test_forward_and_training_step_match_torch(case):
    forward_and_step_agree(lambda: Around(CASES[case]), (3, 6))


def test_counts_by_hand():
    """(4, 10) in windows of 4, 3 apart, along its last dim: (4, 3, 4), a view (no ops, no storage); its
    gradient, 48 elements added back per sample."""
    layer = UnfoldView(dim=2, size=4, step=3)
    net = Network((4, 10), [layer])
    assert net.output_shape == (4, 3, 4)
    row = net.cost(batch=2).layers[0]
    assert row.other_ops == 0
    assert layer.backward_other_ops((4, 10), (4, 3, 4), Grads((True,), False, False), 2) == 2 * 48


@pytest.mark.parametrize("call, message", [
    (lambda y: y.unfold(0, 1, 1), r"dim=0 is the batch dimension"),
    (lambda y: y.unfold(2, 7, 1), r"maximum size for tensor at dimension 2 is 6 but size is 7"),
])
def test_other_unfolds_are_refused(call, message):
    refused_at_the_node(call, (3, 6), message)


def test_the_torch_module_built_for_timing_computes_the_same():
    from alexcost.torch_bridge.modules import BUILDERS

    x = torch.rand(2, 3, 8)
    assert torch.equal(BUILDERS[UnfoldView](UnfoldView(dim=2, size=3, step=2), None)(x), x.unfold(2, 3, 2))
