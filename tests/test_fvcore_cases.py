"""fvcore's own test cases as a regression table.

The conv and linear cases of fvcore's ``tests/test_flop_count.py`` (facebookresearch/fvcore,
read at commit 017141c42f50a0328182c1fd42b1de80c3a58efe) that alexcost supports, re-expressed
as alexcost specs. Each expected number is fvcore's own formula from that file (``gt_flop``
times 1e9, since fvcore's test divides by 1e9). Left out: Conv1d/Conv3d and transposed
convolutions (not alexcost layer kinds), matmul/bmm/einsum/batchnorm (no layer kind), and
Linear on a 3-D input is checked below.
"""

from __future__ import annotations

import pytest

from alexcost import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, Network, Sigmoid, SpecError
from alexcost.specs.specfile import network_from_dict

# (fvcore's case, batch, input_dim, output_dim, spatial_dim, kernel_size, padding, stride, groups)
CONV_CASES = [
    ("2d convolution", 5, 10, 3, 15, 3, 1, 1, 1),
    ("2d convolution with spatial change", 2, 10, 6, 20, 3, 1, 2, 1),
    ("group convolution", 5, 16, 8, 15, 5, 2, 1, 4),
    ("depthwise convolution (group = output_dim)", 5, 16, 8, 15, 3, 1, 1, 8),
]


def fvcore_conv_gt(batch, input_dim, output_dim, spatial_dim, kernel_size, padding, stride, group_size):
    """fvcore's ``_test_conv`` expectation for conv_dim 2, untransposed."""
    spatial_size = ((spatial_dim + 2 * padding) - kernel_size) // stride + 1
    return batch * input_dim * output_dim * kernel_size**2 * spatial_size**2 // group_size


def _conv_network(input_dim, output_dim, spatial_dim, kernel_size, padding, stride, groups):
    # fvcore's ConvNet: nn.Conv2d(input_dim, output_dim, kernel_size, stride, padding, groups=groups_num)
    return network_from_dict({"input_shape": [input_dim, spatial_dim, spatial_dim], "layers": [
        {"type": "Conv2d", "name": "conv", "in_channels": input_dim, "out_channels": output_dim,
         "kernel_size": kernel_size, "stride": stride, "padding": padding, "groups": groups}]})


@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_fvcore_conv_cases(case):
    _, batch, input_dim, output_dim, spatial_dim, kernel_size, padding, stride, groups = case
    network = _conv_network(input_dim, output_dim, spatial_dim, kernel_size, padding, stride, groups)
    gt = fvcore_conv_gt(batch, input_dim, output_dim, spatial_dim, kernel_size, padding, stride, groups)
    assert network.cost(batch=batch).totals.macs == gt


@pytest.mark.parametrize("batch, input_dim, output_dim", [(5, 8, 4), (5, 10, 20)], ids=["test_nn", "test_linear"])
def test_fvcore_linear_cases(batch, input_dim, output_dim):
    network = Network((input_dim,), [Linear(out_features=output_dim)])
    assert network.cost(batch=batch).totals.macs == batch * input_dim * output_dim  # fvcore's gt_flop


def test_linear_on_a_3d_input():
    # fvcore's test_linear "with extra dimension": x of (batch_size, extra_dim, input_dim),
    # gt_flop = batch_size * input_dim * extra_dim * output_dim
    batch_size, input_dim, output_dim, extra_dim = 5, 10, 20, 5
    cost = Network((extra_dim, input_dim), [Linear(out_features=output_dim)]).cost(batch=batch_size)
    assert cost.totals.macs == batch_size * input_dim * extra_dim * output_dim
    assert cost.output_shape == (extra_dim, output_dim)


def three_net(input_dim=2, conv_dim=5, spatial_dim=10, linear_dim=3):
    """fvcore's ThreeNet: conv 1x1, AdaptiveAvgPool2d((1, 1)), flatten, linear1, linear2."""
    return Network((input_dim, spatial_dim, spatial_dim), [
        Conv2d(name="conv", out_channels=conv_dim, kernel_size=1, stride=1),
        AdaptiveAvgPool2d(name="pool", output_size=(1, 1)), Flatten(name="flatten"),
        Linear(name="linear1", out_features=linear_dim), Linear(name="linear2", out_features=1)])


def test_fvcore_three_net_by_module():
    from alexcost.torch_run.verify import fvcore_expected

    batch_size, input_dim, conv_dim, spatial_dim, linear_dim = 4, 2, 5, 10, 3
    flop1 = batch_size * conv_dim * input_dim * spatial_dim * spatial_dim
    gt = {"conv": flop1, "linear1": batch_size * conv_dim * linear_dim, "linear2": batch_size * linear_dim * 1,
          "pool": flop1 // input_dim}  # fvcore's test_flop_counter_class
    cost = three_net(input_dim, conv_dim, spatial_dim, linear_dim).cost(batch=batch_size)
    for name in ("conv", "linear1", "linear2"):
        assert cost[name].macs == gt[name]
    assert cost["pool"].macs == 0  # alexcost: pooling has no MACs ...
    assert fvcore_expected(cost["pool"]) == gt["pool"]  # ... but knows fvcore counts its input elements
    assert cost["pool"].other_ops == gt["pool"]  # a 10x10 window per channel: the same number here
    # fvcore's test_threeNet: adaptive_avg_pool2d = 2e-6 GFLOP
    assert sum(fvcore_expected(r) for r in cost.layers) - cost.totals.macs == 2000


def test_fvcore_cases_still_hold_for_fvcore():
    """The same cases through fvcore itself, on alexcost's torch modules (guards the table)."""
    torch = pytest.importorskip("torch")
    from fvcore.nn import FlopCountAnalysis

    from alexcost.torch_bridge import to_module

    for _, batch, *args in CONV_CASES:
        module = to_module(_conv_network(*args))
        analysis = FlopCountAnalysis(module, torch.randn(batch, args[0], args[2], args[2]))
        assert analysis.total() == fvcore_conv_gt(batch, *args)
    module = to_module(three_net())
    analysis = FlopCountAnalysis(module, torch.randn(4, 2, 10, 10))
    assert dict(analysis.by_module()) == {"": 4000 + 2000 + 60 + 12, "conv": 4000, "pool": 2000, "flatten": 0,
                                          "linear1": 60, "linear2": 12}


def test_fvcore_skip_ops_case():
    """fvcore's test_skip_ops: Linear(5, 4) + Sigmoid at batch 10 skips one aten::sigmoid."""
    pytest.importorskip("torch")
    from alexcost.torch_run.verify import verify_network

    network = Network((5,), [Linear(name="conv", out_features=4), Sigmoid(name="sigmoid")])
    result = verify_network(network, device="cpu", batch=10)
    assert result.ok, result.problems
    linear, sigmoid = result.layers
    assert linear.fvcore == 10 * 5 * 4
    assert sigmoid.fvcore_unsupported == ("aten::sigmoid",)
    assert sigmoid.other_ops == 10 * 4  # alexcost: one op per element
