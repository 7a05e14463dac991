"""``x.amax(dim)`` (the `Amax` kind): its counts by hand, its reading against torch and fvcore, and Hiera.

timm's Hiera max-pools its unrolled tokens with ``x.view(B, s, -1, C).amax(dim=1)``. Each module is
read by ``from_module`` and checked against torch on the CPU: parameters, output shape, forward MACs as
FlopCounterMode's FLOPs / 2, and a training step's FLOPs and saved bytes (`module_step`).
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Amax, Network, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from module_step import alexcost_step, forward_against_torch, step_agrees, torch_attention_step  # noqa: E402


class Pool(nn.Module):
    """A Linear, then ``then`` of its output."""

    def __init__(self, then, dim=8):
        super().__init__()
        self.fc, self.then = nn.Linear(dim, dim), then

    def forward(self, x):
        return self.then(self.fc(x))


CASES = {
    "hiera's max-pool of unrolled tokens": (lambda: Pool(lambda y: y.view(y.shape[0], 4, -1, 8).amax(dim=1)), (12, 8)),
    "over two dims, kept": (lambda: Pool(lambda y: torch.amax(y, dim=(1, 2), keepdim=True) * y), (5, 8)),
    "over the last dim": (lambda: Pool(lambda y: y.amax(-1)), (5, 8)),
    "of windows folded into the batch": (lambda: Pool(lambda y: y.reshape(-1, 3, 8).amax(dim=1)
                                                      .view(y.shape[0], -1)), (6, 8)),
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


def test_counts_by_hand():
    """(6, 4, 5) reduced over its last two dims: 4 maxima of 20 elements, 19 comparisons each; backward, 3 per
    input element (compare with the maximum, count the equal ones, divide and mask); it keeps its input and
    its output (torch's AmaxBackward0 saves ``self`` and ``result``)."""
    net = Network((6, 4, 5), [Amax(dim=(2, 3))])
    cost = net.cost(batch=2)
    assert net.output_shape == (6,)
    assert cost.totals.other_ops == 2 * 6 * (4 * 5 - 1)
    y = torch.randn(2, 6, 4, 5, requires_grad=True).amax(dim=(2, 3))
    assert {"_saved_self", "_saved_result"} <= set(dir(y.grad_fn))
    layer = net.layers[0]
    assert layer.backward_other_ops((6, 4, 5), (6,), Grads((True,), False, False), 2) == 2 * 3 * 6 * 4 * 5
    assert [s.what for s in layer.saved_tensors((6, 4, 5), (6,), Grads((True,), False, False), None)] == \
        ["input", "output"]


def test_fvcore_counts_nothing_for_it():
    pytest.importorskip("fvcore")
    from fvcore.nn import FlopCountAnalysis

    module = Pool(lambda y: y.amax(-1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, torch.randn(1, 5, 8))
        analysis.unsupported_ops_warnings(False)
        total = int(analysis.total())
    net = from_module(module, (5, 8)).network
    ours = sum(layer.fvcore_count(x, y) for layer, x, y in zip(net.layers, net.input_shapes, net.output_shapes))
    assert total == ours == 5 * 8 * 8  # the Linear's MACs alone


@pytest.mark.parametrize("then, message", [
    (lambda y: y.amax() * y, "every dimension"),
    (lambda y: y.amax(dim=0), "batch"),
    (lambda y: y.reshape(-1, 8).amax(0), "folded"),
])
def test_a_maximum_over_the_batch_is_refused(then, message):
    with pytest.raises(SpecError, match=message) as err:
        from_module(Pool(then), (5, 8))
    assert "fx node" in str(err.value) or "amax" in str(err.value).lower()


def _hiera(mask_unit_attn=(True, True, False, False)):
    hiera = pytest.importorskip("timm.models.hiera")
    return hiera.Hiera(img_size=(64, 64), num_classes=10, embed_dim=16, num_heads=1, stages=(1, 1, 1, 1),
                       q_pool=2, mask_unit_size=(4, 4), mask_unit_attn=mask_unit_attn, drop_path_rate=0.0)


def test_timm_hiera_matches_torch():
    """Hiera: tokens unrolled (strides folded into the batch and out again), mask-unit attention, max-pools."""
    forward_against_torch(_hiera(), (3, 64, 64), batch=2)


def test_timm_hiera_training_step_matches_torch():
    """With global attention throughout (its mask-unit attention attends over 5-dimensional tensors, whose
    training step is read elsewhere); attention's FLOPs on torch's math backend, as alexcost counts them."""
    torch.manual_seed(0)
    module = _hiera(mask_unit_attn=(False, False, False, False))
    theirs, ours = torch_attention_step(module, (3, 64, 64)), alexcost_step(module, (3, 64, 64))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs
