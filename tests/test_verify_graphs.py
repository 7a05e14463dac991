"""verify on graph networks: residual, squeeze-and-excitation, inception-like and ShuffleNet-like
blocks, a layer-scale Parameter, and random graphs drawn constructively (hypothesis).

`verify_network` runs `to_module`'s Graph and compares every layer with torch and fvcore;
the expected numbers here are hand arithmetic. The forward computation line must always be
true arithmetic: `equation` parses it and checks it.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given, strategies as st

torch = pytest.importorskip("torch")

from alexcost import (Add, AdaptiveAvgPool2d, BatchNorm2d, Cat, Chunk, Contiguous, Conv2d, Flatten,  # noqa: E402
                      Linear, MaxPool2d, Mul, Network, Parameter, ReLU, Reshape, Sigmoid, Transpose)
from alexcost.torch_run.verify import explain_forward, measure, reconcile, render, verify_network  # noqa: E402
from alexcost.torch_bridge import to_module  # noqa: E402


# -- the equation check ----------------------------------------------------------------------------

NUMBER_OR_SIGN = re.compile(r"-?\d[\d,]*|[-+*=]")


def equation(line: str) -> list[list[int]]:
    """The values of the sides of each equation in ``line`` (equations split by ``;``).

    Parenthesised notes and anything after the first ``: `` outside them are words, not
    arithmetic; every number and sign left is part of an equation."""
    text = line
    while re.search(r"\([^()]*\)", text):  # notes may nest: "(a, ... z (7 layers): ...)"
        text = re.sub(r"\([^()]*\)", "", text)
    text = text.split(": ")[0]
    values = []
    for part in text.split(";"):
        tokens = NUMBER_OR_SIGN.findall(part)
        sides = " ".join(tokens).replace(",", "").split("=")
        values.append([eval(side, {"__builtins__": {}}) for side in sides])  # noqa: S307 - digits and + - * only
    return values


def assert_adds_up(line: str) -> None:
    for sides in equation(line):
        assert len(sides) >= 2 and len(set(sides)) == 1, (sides, line)


def test_the_equation_parser_catches_false_arithmetic():
    assert_adds_up("a 7 - b 2 = 5 = 3 bias adds (conv1: x) + 2 MACs (conv2)")
    # the old line for a padding='same' conv: 7,168 - 0 = 7,168 holds, but it called the 7,168 the
    # bias adds, which were 256; the new line names every term, so a wrong term breaks the equation
    with pytest.raises(AssertionError):
        assert_adds_up("7,168 - fvcore's total 0 = 7,168 = 256 bias adds (conv: fvcore counts none)")
    with pytest.raises(AssertionError):
        assert_adds_up("F 10 = 4 MACs + 5 bias adds; T 8 = 2 * 4")


# -- hand-written graphs ---------------------------------------------------------------------------

def conv(name, out, k=3, **kw):
    return Conv2d(name=name, out_channels=out, kernel_size=k, padding=k // 2, **kw)


RESIDUAL = Network((4, 6, 6), [conv("conv1", 4), ReLU(name="relu1"), conv("conv2", 4),
                               Add(name="add", inputs=("conv2", "input")), ReLU(name="relu2")], name="residual")
SE = Network((4, 5, 5), [conv("conv", 4), AdaptiveAvgPool2d(name="squeeze", output_size=1),
                         conv("fc1", 2, k=1), ReLU(name="relu"), conv("fc2", 4, k=1), Sigmoid(name="gate"),
                         Mul(name="excite", inputs=("conv", "gate"))], name="se")
INCEPTION = Network((3, 5, 5), [conv("b1", 2, k=1, inputs=("input",)), conv("b3", 4, inputs=("input",)),
                                MaxPool2d(name="pool", kernel_size=3, stride=1, padding=1, inputs=("input",)),
                                Cat(name="cat", dim=1, inputs=("b1", "b3", "pool"))], name="inception")
SHUFFLE = Network((4, 3, 3), [Chunk(name="split", chunks=2, dim=1),
                              conv("branch", 2, k=1, inputs=("split.1",)),
                              Cat(name="cat", dim=1, inputs=("split.0", "branch")),
                              Reshape(name="groups", shape=(2, 2, 3, 3)), Transpose(name="swap", dim0=1, dim1=2),
                              Contiguous(name="copy"), Reshape(name="back", shape=(4, 3, 3))], name="shuffle")
SCALE = Network((4, 3, 3), [conv("conv", 4, bias=False), BatchNorm2d(name="bn"),
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

@st.composite
def graphs(draw):
    """A chain of blocks, each valid by construction: convs, residual adds onto an earlier node of the
    same shape, concatenated branches, squeeze-and-excitation, channel shuffles, a layer scale, pooling."""
    c, side = draw(st.sampled_from([2, 4])), draw(st.integers(2, 4))
    layers, shapes, current = [], {"input": (c, side, side)}, "input"

    def put(layer):
        reads = layer.inputs or (current,)
        x = tuple(shapes[r] for r in reads) if len(reads) > 1 else shapes[reads[0]]
        layers.append(layer)
        y = layer.output_shape(x if type(layer).arity != 0 else ())
        if type(layer).multi_output:
            for k, s in enumerate(y):
                shapes[f"{layer.name}.{k}"] = s
        else:
            shapes[layer.name] = y
        return layer.name

    for b in range(draw(st.integers(1, 4))):
        c, h, _ = shapes[current]
        block = draw(st.sampled_from(["conv", "residual", "concat", "se", "shuffle", "scale", "pool"]))
        p = f"b{b}"
        if block == "conv":
            k = draw(st.sampled_from([1, 3]))
            padding = draw(st.sampled_from([k // 2, "same"]))
            current = put(Conv2d(name=f"{p}conv", out_channels=draw(st.sampled_from([2, 4])), kernel_size=k,
                                 padding=padding, bias=draw(st.booleans()), inputs=(current,)))
            if draw(st.booleans()):
                current = put(ReLU(name=f"{p}relu", inputs=(current,)))
        elif block == "residual":
            skip = draw(st.sampled_from([n for n, s in shapes.items() if s == (c, h, h)]))
            body = put(conv(f"{p}conv", c, inputs=(current,)))
            current = put(Add(name=f"{p}add", inputs=(body, skip)))
        elif block == "concat":
            a = put(conv(f"{p}a", draw(st.sampled_from([1, 2])), k=1, inputs=(current,)))
            other = draw(st.sampled_from([current, put(conv(f"{p}b", 2, inputs=(current,)))]))
            current = put(Cat(name=f"{p}cat", dim=1, inputs=(a, other)))
        elif block == "se":
            pool = put(AdaptiveAvgPool2d(name=f"{p}pool", output_size=1, inputs=(current,)))
            gate = put(Sigmoid(name=f"{p}gate", inputs=(put(conv(f"{p}fc", c, k=1, inputs=(pool,))),)))
            current = put(Mul(name=f"{p}mul", inputs=(current, gate)))
        elif block == "shuffle" and c % 2 == 0:
            if draw(st.booleans()):
                parts = put(Chunk(name=f"{p}chunk", chunks=2, dim=1, inputs=(current,)))
                current = put(Cat(name=f"{p}cat", dim=1, inputs=(f"{parts}.1", f"{parts}.0")))
            else:
                g = put(Reshape(name=f"{p}groups", shape=(2, c // 2, h, h), inputs=(current,)))
                t = put(Transpose(name=f"{p}swap", dim0=1, dim1=2, inputs=(g,)))
                current = put(Reshape(name=f"{p}back", shape=(c, h, h), inputs=(put(Contiguous(name=f"{p}copy",
                                                                                          inputs=(t,))),)))
        elif block == "scale":
            gamma = put(Parameter(name=f"{p}gamma", shape=draw(st.sampled_from([(c, 1, 1), (1, h, h)]))))
            current = put(Mul(name=f"{p}scale", inputs=(current, gamma)))
        elif block == "pool" and h >= 2:
            current = put(MaxPool2d(name=f"{p}pool", kernel_size=2, inputs=(current,)))
    if draw(st.booleans()):
        current = put(Linear(name="fc", out_features=3, inputs=(put(Flatten(name="flat", inputs=(current,))),)))
    if not layers:
        put(ReLU(name="relu"))
    return Network(shapes["input"], layers, name="random")


@given(graphs(), st.integers(1, 2), st.integers(-3, 3), st.integers(-3, 3))
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
