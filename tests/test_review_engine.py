"""Regression tests for the review's engine findings (issue 12, A.7 and B.1-B.2), each against
torch's own behaviour or hand arithmetic."""

from __future__ import annotations

import pytest

from alexcost import AdaptiveAvgPool2d, Conv2d, Linear, Network, Softmax, SpecError, preset
from alexcost.render.report import render

INT64_MAX = 2**63 - 1


def test_str_of_a_cost_is_a_summary_the_table_is_rendered_and_repr_stays_short():
    """A cost record renders nothing itself: ``str`` is one line of its totals (the seed's
    published figures), the table comes from the renderer, which the CLI prints."""
    cost = preset("seed").cost()
    seed_forward, conv_bias_adds = 1_135_906_176, 96 * 55 * 55 + 256 * 27 * 27 + 2 * 384 * 13 * 13 + 256 * 13 * 13
    t = cost.totals
    assert str(cost) == (f"seed: 23 layers, batch 1, float32: 62,369,152 parameters, "
                         f"{seed_forward - conv_bias_adds:,} MACs, {2 * t.macs + t.bias_adds + t.other_ops:,} FLOPs")
    assert render(cost, "table").startswith("Size / Operation") and "62,369,152 = 62.4 million" in render(cost)
    assert repr(cost) == ("NetworkCost(model='seed', batch=1, dtype='float32', layers=23, "
                          "params=62,369,152, macs=1,135,256,096)")
    assert len(repr(preset("resnet50").cost())) < 150 and len(repr(preset("resnet50"))) < 150
    assert repr(preset("seed")) == "Network('seed', input [3, 227, 227], 23 layers, chain)"


@pytest.mark.parametrize("layers, x, message", [
    ([Conv2d(out_channels=1, kernel_size=1, padding=2**62)], (1, 1, 1), "the padded input .* int64 limit"),
    ([Conv2d(out_channels=2**62, kernel_size=1)], (2, 1, 1), "the weight would hold .* int64 limit"),
    ([AdaptiveAvgPool2d(output_size=2**40)], (1, 4, 4), "holds more than 9223372036854775807 elements"),
    ([Linear(out_features=2**62)], (4,), "the weight would hold 18446744073709551616 elements"),
])
def test_sizes_past_torchs_int64_limit_are_refused(layers, x, message):
    """torch indexes with int64: a padded size, a weight or an output past 2**63 - 1 cannot exist."""
    with pytest.raises(SpecError, match=message):
        Network(x, layers)
    # one step inside the limit is accepted, and counted exactly
    assert Network((1, 4, 4), [AdaptiveAvgPool2d(output_size=(2**31, 2**31 - 1))]).output_shape == (
        1, 2**31, 2**31 - 1)


def test_softmax_without_dim_on_a_rank_2_sample_is_refused_as_torch_would_mix_samples():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    # torch's legacy rule: no dim on a 3-D tensor (a batch of rank-2 samples) means dim 0, the batch
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        assert F._get_softmax_dim("softmax", 3, 5) == 0 and F._get_softmax_dim("softmax", 4, 5) == 1
    with pytest.raises(SpecError, match="dim=None on a \\(C, L\\) sample makes torch normalise"):
        Network((4, 6), [Softmax()])
    assert Network((4, 6, 2), [Softmax()]).output_shape == (4, 6, 2)  # dim 1 of a 4-D batch: fine
    assert Network((4,), [Softmax()]).output_shape == (4,)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        dim = F._get_softmax_dim("softmax", 2, 5)
    assert torch.softmax(torch.zeros(2, 4), dim=dim).sum().item() == 2
