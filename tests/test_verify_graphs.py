"""verify on graph networks: residual, squeeze-and-excitation, inception-like and ShuffleNet-like
blocks, a layer-scale Parameter, and random graphs drawn constructively (hypothesis).

`verify_network` runs `to_module`'s Graph and compares every layer with torch and fvcore;
the expected numbers here are hand arithmetic. The forward computation line must always be
true arithmetic: `equation` parses it and checks it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, strategies as st

torch = pytest.importorskip("torch")

from alexcost import (Add, AdaptiveAvgPool2d, BatchNorm2d, Cat, Chunk, Contiguous, Flatten, Linear, MaxPool2d, Mul,  # noqa: E402
                      Network, Parameter, ReLU, Reshape, Sigmoid, Transpose)
from alexcost.torch_run.verify import explain_forward, measure, reconcile, render, verify_network  # noqa: E402
from alexcost.torch_bridge import to_module  # noqa: E402
from strategies import block_graphs, padded_conv  # noqa: E402
from printed_sums import assert_adds_up  # noqa: E402


# -- the equation check ----------------------------------------------------------------------------


def test_the_equation_parser_catches_false_arithmetic():
    assert_adds_up("a 7 - b 2 = 5 = 3 bias adds (conv1: x) + 2 MACs (conv2)")
    # the old line for a padding='same' conv: 7,168 - 0 = 7,168 holds, but it called the 7,168 the
    # bias adds, which were 256; the new line names every term, so a wrong term breaks the equation
    with pytest.raises(AssertionError):
        assert_adds_up("7,168 - fvcore's total 0 = 7,168 = 256 bias adds (conv: fvcore counts none)")
    with pytest.raises(AssertionError):
        assert_adds_up("F 10 = 4 MACs + 5 bias adds; T 8 = 2 * 4")


# -- hand-written graphs ---------------------------------------------------------------------------


RESIDUAL = Network((4, 6, 6), [padded_conv("conv1", 4), ReLU(name="relu1"), padded_conv("conv2", 4),
                               Add(name="add", inputs=("conv2", "input")), ReLU(name="relu2")], name="residual")
SE = Network((4, 5, 5), [padded_conv("conv", 4), AdaptiveAvgPool2d(name="squeeze", output_size=1),
                         padded_conv("fc1", 2, k=1), ReLU(name="relu"), padded_conv("fc2", 4, k=1), Sigmoid(name="gate"),
                         Mul(name="excite", inputs=("conv", "gate"))], name="se")
INCEPTION = Network((3, 5, 5), [padded_conv("b1", 2, k=1, inputs=("input",)), padded_conv("b3", 4, inputs=("input",)),
                                MaxPool2d(name="pool", kernel_size=3, stride=1, padding=1, inputs=("input",)),
                                Cat(name="cat", dim=1, inputs=("b1", "b3", "pool"))], name="inception")
SHUFFLE = Network((4, 3, 3), [Chunk(name="split", chunks=2, dim=1),
                              padded_conv("branch", 2, k=1, inputs=("split.1",)),
                              Cat(name="cat", dim=1, inputs=("split.0", "branch")),
                              Reshape(name="groups", shape=(2, 2, 3, 3)), Transpose(name="swap", dim0=1, dim1=2),
                              Contiguous(name="copy"), Reshape(name="back", shape=(4, 3, 3))], name="shuffle")
SCALE = Network((4, 3, 3), [padded_conv("conv", 4, bias=False), BatchNorm2d(name="bn"),
                            Parameter(name="gamma", shape=(4, 1, 1)), Mul(name="scale", inputs=("bn", "gamma")),
                            Add(name="add", inputs=("scale", "input")), Flatten(name="flat"),
                            Linear(name="fc", out_features=5)], name="layer-scale")


def _checks(network, batch):
    result = verify_network(network, device="cpu", batch=batch)
    assert result.ok, result.problems
    assert_adds_up(explain_forward(result))
    assert all(c.fvcore_check == "layer" for c in result.layers)  # to_module: every layer is a module
    return {c.name: c for c in result.layers}, result


def test_residual_block():
    c, result = _checks(RESIDUAL, 2)
    macs = 2 * 4 * 6 * 6 * 4 * 3 * 3
    assert c["conv1"].torch == 2 * macs and c["conv2"].fvcore == macs
    assert c["add"].measured_shape == (4, 6, 6) and c["add"].measured_other_ops == 2 * 4 * 6 * 6
    assert c["conv2"].measured_bias_adds == 2 * 4 * 6 * 6 and c["relu1"].measured_bias_adds == 0
    assert result.torch_total == 4 * macs and result.fvcore_total == 2 * macs


def test_squeeze_and_excitation_broadcasts_the_gate():
    c, result = _checks(SE, 3)
    assert c["gate"].measured_shape == (4, 1, 1)
    assert c["excite"].measured_other_ops == 3 * 4 * 5 * 5  # (4,5,5) * (4,1,1): one multiply per output
    assert c["squeeze"].fvcore == 3 * 4 * 5 * 5  # fvcore: the pool's input elements
    assert c["fc1"].fvcore == 3 * 2 * 4 and c["fc2"].fvcore == 3 * 4 * 2


def test_inception_concatenates_three_branches():
    c, _ = _checks(INCEPTION, 1)
    assert c["cat"].measured_shape == (2 + 4 + 3, 5, 5) and c["cat"].measured_other_ops == 0
    # 3x3 max pooling, stride 1, padding 1 on 5x5: the windows read 3*3 taps inside, fewer at the border
    taps_per_side = 2 + 3 * 3 + 2  # positions 0 and 4 read 2 taps, 1..3 read 3
    assert c["pool"].measured_other_ops == 3 * taps_per_side ** 2 - 3 * 5 * 5


def test_shufflenet_chunk_transpose_contiguous_reshape():
    c, _ = _checks(SHUFFLE, 2)
    assert c["split"].measured_shape == ((2, 3, 3), (2, 3, 3))
    assert c["swap"].measured_shape == (2, 2, 3, 3) and c["back"].measured_shape == (4, 3, 3)
    assert c["branch"].torch == 2 * (2 * 2 * 3 * 3 * 2)


def test_parameter_layer_scale():
    c, result = _checks(SCALE, 2)
    assert c["gamma"].measured_shape == (4, 1, 1) and c["gamma"].measured_params == 4
    assert c["gamma"].measured_other_ops == 0 and c["scale"].measured_other_ops == 2 * 4 * 3 * 3
    assert c["bn"].fvcore == 2 * 2 * 4 * 3 * 3  # fvcore: 2 per input element with affine, in eval mode
    assert c["conv"].measured_bias_adds == 0 and c["fc"].measured_bias_adds == 2 * 5
    assert result.measured_params == 4 * 4 * 9 + 2 * 4 + 4 + (36 + 1) * 5 == result.params
    text = render(result)
    assert "  gamma    Parameter    4 * 1 * 1" in text


# -- random graphs ----------------------------------------------------------------------------------


@pytest.mark.slow
@given(block_graphs(), st.integers(1, 2), st.integers(-3, 3), st.integers(-3, 3))
def test_random_graphs_verify_and_every_printed_sum_adds_up(network, batch, fv_delta, torch_delta):
    cost = network.cost(batch)
    module = to_module(network).eval()
    x = torch.randn(batch, *network.input_shape)
    measured = measure(module, network.names, x, device="cpu")
    result = reconcile(cost, measured)
    assert result.ok, result.problems
    for c, row in zip(result.layers, cost.layers):
        assert (c.measured_bias_adds, c.measured_other_ops) == (row.bias_adds, row.other_ops), c.name
    assert_adds_up(explain_forward(result))
    # a mismatching total: the line still adds up, with the difference named
    wrong = reconcile(cost, replace(measured, fvcore_total=measured.fvcore_total + fv_delta))
    assert_adds_up(explain_forward(wrong))
    assert wrong.ok is (fv_delta == 0)
    skipped = replace(measured, fvcore=None, fvcore_total=None, torch_total=measured.torch_total + torch_delta)
    assert_adds_up(explain_forward(reconcile(cost, skipped)))
