"""Per-kind counts against formulas written out here; the engine's bookkeeping.

Shapes, parameters and MACs are also checked against torch and fvcore (test_properties.py);
the ``other_ops`` conventions have no external reference, so they are checked here
against the per-element formulas of docs/conventions.md, and against brute force.
"""

from math import prod

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alexcost import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, Dropout, Flatten, Layer, Linear, LocalResponseNorm,
                      MaxPool2d, Network, ReLU, Sigmoid, Softmax, SpecError, Tanh)
from alexcost.layers.windows import adaptive_window_total, window_positions


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
