"""Per-kind counts against formulas written out here, fvcore's own test cases as a regression
table, the engine's bookkeeping, and what the engine refuses.

Shapes, parameters and MACs are also checked against torch and fvcore (test_layers_torch.py);
the ``other_ops`` conventions have no external reference, so they are checked here
against the per-element formulas of docs/conventions.md, and against brute force.
"""

from __future__ import annotations

from math import prod

import pytest
from hypothesis import given, strategies as st

from alexcost import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, Dropout, Flatten, Layer, Linear, LocalResponseNorm,
                      MaxPool2d, Network, ReLU, Sigmoid, Softmax, SpecError, Tanh, preset)
from alexcost.layers.windows import adaptive_window_total, window_positions
from alexcost.render.report import render
from alexcost.specs.specfile import network_from_dict


def one(layer, input_shape, batch=1):
    return Network(input_shape, [layer]).cost(batch=batch).layers[0]


def test_conv_counts_by_hand():
    row = one(Conv2d(out_channels=8, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), groups=2), (4, 9, 7))
    h, w = (9 + 2 - 3) // 2 + 1, (7 + 4 - 5) // 1 + 1
    assert row.output_shape == (8, h, w)
    assert row.weight_params == 8 * (4 // 2) * 3 * 5 and row.bias_params == 8
    assert row.macs == 8 * h * w * (4 // 2) * 3 * 5
    assert row.bias_adds == 8 * h * w and row.other_ops == 0
    assert row.flops == 2 * row.macs + row.bias_adds


def test_conv_same_and_valid_padding():
    same = one(Conv2d(out_channels=3, kernel_size=4, padding="same", dilation=2), (2, 10, 11))
    assert same.output_shape == (3, 10, 11)
    valid = one(Conv2d(out_channels=3, kernel_size=4, padding="valid", dilation=2, bias=False), (2, 10, 11))
    assert valid.output_shape == (3, 10 - 2 * 3, 11 - 2 * 3) and valid.bias_adds == 0


def test_linear_counts_by_hand():
    row = one(Linear(out_features=7), (12,), batch=3)
    assert (row.weight_params, row.bias_params) == (12 * 7, 7)
    assert row.macs == 3 * 12 * 7 and row.bias_adds == 3 * 7


def taps_in_bounds(size, kernel, stride, pad, dilation, out):
    """Brute force: per window, the taps that land inside the input (not in the padding)."""
    return [sum(1 for j in range(kernel) if 0 <= i * stride - pad + j * dilation < size) for i in range(out)]


def test_pool_other_ops_per_output_element():
    mp = one(MaxPool2d(kernel_size=3, stride=2), (5, 13, 13))
    assert mp.output_shape == (5, 6, 6) and mp.other_ops == 5 * 6 * 6 * (3 * 3 - 1)
    ap = one(AvgPool2d(kernel_size=(2, 3), padding=1, ceil_mode=True), (4, 7, 7))
    # stride = kernel; ceil_mode: rows ceil((7 + 2 - 2)/2) + 1 = 5, but the 5th would start at
    # 8 >= 7 + 1, so 4; columns ceil((7 + 2 - 3)/3) + 1 = 3
    assert ap.output_shape == (4, 4, 3)
    rows, cols = taps_in_bounds(7, 2, 2, 1, 1, 4), taps_in_bounds(7, 3, 3, 1, 1, 3)
    assert rows == [1, 2, 2, 2] and cols == [2, 3, 2]
    assert ap.other_ops == 4 * sum(rows) * sum(cols)
    assert mp.macs == ap.macs == mp.params == ap.params == 0


def test_pool_windows_clipped_by_padding_count_what_they_read():
    """The review's case: AvgPool2d(3, 1, 1, count_include_pad=False) on 8x8 reads 484 elements,
    not 8*8*9 = 576: border windows hang over the padding."""
    ap = one(AvgPool2d(kernel_size=3, stride=1, padding=1, count_include_pad=False), (1, 8, 8))
    assert ap.other_ops == 484 == sum(taps_in_bounds(8, 3, 1, 1, 1, 8)) ** 2
    mp = one(MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=2), (2, 9, 10))
    c, h, w = mp.output_shape
    comparisons = sum(a * b - 1 for a in taps_in_bounds(9, 3, 2, 1, 2, h) for b in taps_in_bounds(10, 3, 2, 1, 2, w))
    assert mp.other_ops == c * comparisons


def test_ceil_mode_drops_a_window_starting_in_the_padding():
    # torch: ceil((5 + 2*1 - 2)/2) + 1 = 4, but the 4th window would start at 6 >= 5 + 1: dropped
    assert window_positions(5, 2, 2, pad=1, ceil_mode=True) == 3
    assert window_positions(6, 3, 2, ceil_mode=True) == 3 and window_positions(6, 3, 2) == 2


@given(st.integers(1, 60), st.integers(1, 60))
def test_adaptive_window_total_is_brute_force_sum(size, out):
    brute = sum(-(-(i + 1) * size // out) - (i * size // out) for i in range(out))
    assert adaptive_window_total(size, out) == brute


def test_adaptive_avg_pool():
    row = one(AdaptiveAvgPool2d(output_size=(6, None)), (3, 13, 9))
    assert row.output_shape == (3, 6, 9)
    # windows along H: 13 + 6 - gcd(13, 6) = 18 elements; along W each window is 1 wide
    assert row.other_ops == 3 * 18 * 9


def test_elementwise_other_ops():
    x = (4, 5, 6)
    n = prod(x)
    assert one(ReLU(), x).other_ops == n
    assert one(Tanh(), x).other_ops == n and one(Sigmoid(), x).other_ops == n
    assert one(Dropout(p=0.3), x).other_ops == 0
    assert one(Softmax(dim=1), x).other_ops == 3 * n
    assert one(LocalResponseNorm(size=5), x).other_ops == n * (5 + 4)


@pytest.mark.parametrize("start,end,expected", [
    (1, -1, (4 * 5 * 6,)), (2, -1, (4, 5 * 6)), (1, 2, (4 * 5, 6)), (-2, -1, (4, 5 * 6)), (3, 3, (4, 5, 6)),
])
def test_flatten_dims_like_torch(start, end, expected):
    assert one(Flatten(start_dim=start, end_dim=end), (4, 5, 6)).output_shape == expected


def test_default_names_and_shapes():
    net = Network([3, 8, 8], [Conv2d(out_channels=4, kernel_size=3), ReLU(name="act"), Flatten(),
                              Linear(out_features=2)])
    assert net.names == ("conv2d0", "act", "flatten2", "linear3")
    assert net.shapes == ((3, 8, 8), (4, 6, 6), (4, 6, 6), (4 * 6 * 6,), (2,))
    assert net.output_shape == (2,) and len(net) == 4 and net.input_shape == (3, 8, 8)


def test_layers_are_frozen_and_normalised():
    conv = Conv2d(out_channels=4, kernel_size=3)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (0, 0)
    assert conv == Conv2d(out_channels=4, kernel_size=[3, 3], stride=1)
    with pytest.raises(Exception):
        conv.out_channels = 5
    assert MaxPool2d(kernel_size=3).stride == (3, 3)  # stride defaults to kernel_size, as in torch


def test_batch_scaling_and_totals_are_sums():
    net = Network((3, 16, 16), [Conv2d(out_channels=4, kernel_size=3), ReLU(), MaxPool2d(kernel_size=2),
                                Flatten(), Linear(out_features=3)])
    one_, many = net.cost(), net.cost(batch=5, dtype="bfloat16")
    for a, b in zip(one_.layers, many.layers):
        assert (b.macs, b.bias_adds, b.other_ops) == (5 * a.macs, 5 * a.bias_adds, 5 * a.other_ops)
        assert b.params == a.params and b.weight_bytes == 2 * a.params
    for cost in (one_, many):
        for field in ("params", "macs", "bias_adds", "other_ops", "flops", "forward", "output_bytes"):
            assert getattr(cost.totals, field) == sum(getattr(r, field) for r in cost.layers)
        assert cost.split["conv"].params == cost.layers[0].params
        assert cost.split["fc"].macs == cost.layers[-1].macs


def test_bad_batch_and_dtype():
    net = Network((4,), [Linear(out_features=2)])
    with pytest.raises(SpecError, match="batch must be positive"):
        net.cost(batch=0)
    with pytest.raises(SpecError, match="unknown dtype 'float7'"):
        net.cost(dtype="float7")


def test_network_rejects_non_layers():
    with pytest.raises(SpecError, match=r"layers\[1\] must be an alexcost Layer, got dict"):
        Network((4,), [ReLU(), {"type": "ReLU"}])


def test_absurd_sizes_are_symbolic():
    """10^9 channels: exact ints, nothing allocated; a weight past torch's int64 limit is refused."""
    row = one(Conv2d(out_channels=10**9, kernel_size=1), (10**9, 1, 1), batch=10**6)
    assert row.params == 10**18 + 10**9 and row.macs == 10**6 * 10**18
    with pytest.raises(SpecError, match="the weight would hold 10{24} elements, more than torch's int64 limit"):
        one(Conv2d(out_channels=10**12, kernel_size=1), (10**12, 1, 1))


def test_a_layer_without_output_shape_is_a_programming_error():
    class Broken(Layer):
        pass

    with pytest.raises(NotImplementedError):
        Network((3,), [Broken()])


def test_a_row_is_an_ordinary_record_of_the_counts_by_hand():
    """Network.cost's rows are LayerCost records made by their one constructor: a row equals the
    record built here from counts worked out by hand, and cannot be changed."""
    from alexcost import LayerCost

    conv = Conv2d(out_channels=4, kernel_size=3)
    row = Network((3, 16, 16), [conv]).cost(batch=2, dtype="float16").layers[0]
    positions = 14 * 14
    assert row == LayerCost(0, "conv2d0", conv, (3, 16, 16), (4, 14, 14), 4 * 3 * 3 * 3, 4,
                            2 * 4 * positions * 3 * 3 * 3, 2 * 4 * positions, 0, batch=2, itemsize=2)
    assert row.new_storage and row.inputs is None and row.output_bytes == 2 * 4 * positions * 2
    with pytest.raises(AttributeError):
        row.macs = 0


def test_totals_without_rows_equal_the_sums_of_the_rows():
    """cost().totals comes from the network's per-sample counts without building a row per layer;
    it must equal the sums over the rows, for the whole network and each group, at any batch."""
    from alexcost import Totals, preset

    for name in ("seed", "paper", "torchvision"):
        for batch, dtype in ((1, "float32"), (7, "bfloat16")):
            cost = preset(name).cost(batch=batch, dtype=dtype)
            totals, split = cost.totals, cost.split
            assert "layers" not in cost.__dict__  # nothing built yet
            size = cost.layers[0].itemsize
            assert totals == Totals.of(cost.layers, size)
            for group in ("conv", "fc"):
                assert split[group] == Totals.of([r for r in cost.layers if r.group == group], size)


# == fvcore's own test cases =======================================================================
# fvcore's own test cases as a regression table.
#
# The conv and linear cases of fvcore's ``tests/test_flop_count.py`` (facebookresearch/fvcore,
# read at commit 017141c42f50a0328182c1fd42b1de80c3a58efe) that alexcost supports, re-expressed
# as alexcost specs. Each expected number is fvcore's own formula from that file (``gt_flop``
# times 1e9, since fvcore's test divides by 1e9). Left out: Conv1d/Conv3d and transposed
# convolutions (not alexcost layer kinds), matmul/bmm/einsum/batchnorm (no layer kind), and
# Linear on a 3-D input is checked below.

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


# == cost objects and refusals, against torch's behaviour ==========================================
# Regression tests for the review's engine findings (issue 12, A.7 and B.1-B.2), each against
# torch's own behaviour or hand arithmetic.

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
