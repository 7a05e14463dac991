"""``x.var(dim)`` (the `Var` kind) and ``torch.sqrt`` (`Sqrt`): counts by hand, against torch, and timm's EvoNorm.

timm's EvoNorm2dS0 divides by a group standard deviation,
``x.float().var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(eps).sqrt().to(x.dtype)``. Each module is
read by ``from_module`` and checked against torch on the CPU: parameters, output shape, forward MACs
(FlopCounterMode), and a training step's FLOPs and saved bytes (`module_step`).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Network, Sqrt, Var  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import (Around, forward_against_torch, forward_and_step_agree, refused_at_the_node,  # noqa: E402
                         step_agrees)

CASES = {
    "unbiased, over the last dim": lambda y: y.var(-1, keepdim=True) + y,
    "biased, kept": lambda y: y * torch.var(y, dim=1, unbiased=False, keepdim=True),
    "a correction of 2": lambda y: y.var(dim=-1, correction=2).unsqueeze(-1) * y,
    "its square root": lambda y: y / y.var(-1, keepdim=True).add(1e-5).sqrt(),
    "torch.sqrt of an activation": lambda y: torch.sqrt(y * y),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_and_training_step_match_torch(case):
    forward_and_step_agree(lambda: Around(CASES[case]), (3, 6))


def test_evonorm_matches_torch():
    """EvoNorm2dS0 (groups of 4 channels) after a convolution: the group variance, its root, the sigmoid gate."""
    evo_norm = pytest.importorskip("timm.layers.evo_norm")

    def build():
        return nn.Sequential(nn.Conv2d(3, 16, 3), evo_norm.EvoNorm2dS0(16, group_size=4))

    torch.manual_seed(0)
    module = build()
    imported = from_module(module, (3, 8, 8))
    assert [type(layer).__name__ for layer in imported.network.layers].count("Var") == 1
    forward_against_torch(module, (3, 8, 8), batch=2)
    torch.manual_seed(0)
    step_agrees(build(), (3, 8, 8), batch=2)


def test_counts_by_hand():
    """(6, 4, 5) reduced over its last two dims: the mean (120 ops), a subtract and a square per element (240),
    6 sums of 20 elements (19 adds each) and 6 divides: 480 in all; backward 4 per input element. A square
    root: one op per element, backward 2."""
    x = (6, 4, 5)
    var = Var(dim=(2, 3), correction=0)
    y = var.output_shape(x)
    assert y == (6,)
    assert var.other_ops(x, y) == 120 + 2 * 120 + 6 * 19 + 6
    grads = Grads((True,), False, False)
    assert var.backward_other_ops(x, y, grads, 3) == 3 * 4 * 120
    assert Network(x, [Var(dim=2, keepdim=True)]).output_shape == (6, 1, 5)
    root = Sqrt()
    assert root.other_ops(x, x) == 120 and root.backward_other_ops(x, x, grads, 3) == 3 * 2 * 120


@pytest.mark.parametrize("call, message", [
    (lambda y: y.var(), r"reduces every dimension, the batch's too"),
    (lambda y: y.var(0), r"dim 0 is the batch dimension|batch"),
])
def test_a_variance_over_the_batch_is_refused(call, message):
    refused_at_the_node(call, (3, 6), message)


def test_timm_resnetv2_evos_reads_exactly():
    """timm's ResNetV2 with EvoNorm (one block a stage), as the timm survey compares it: on the meta device."""
    timm = pytest.importorskip("timm")
    from zoo_cases import assert_exact

    with torch.device("meta"):
        model = timm.create_model("resnetv2_50d_evos", pretrained=False, layers=(1, 1, 1, 1), num_classes=10).eval()
    assert_exact(model, 32, "resnetv2_50d_evos")


def test_the_torch_modules_built_for_timing_compute_the_same():
    from alexcost.torch_bridge.modules import BUILDERS

    x = torch.rand(2, 3, 4, 5)
    assert torch.equal(BUILDERS[Sqrt](Sqrt(), None)(x), torch.sqrt(x))
    built = BUILDERS[Var](Var(dim=(2, 3), correction=0, keepdim=True), None)
    assert torch.equal(built(x), x.var(dim=(2, 3), unbiased=False, keepdim=True))
