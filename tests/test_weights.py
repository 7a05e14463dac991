"""Weights computed before use, and weights that are buffers: a convolution's weight standardised once per
forward pass (timm's StdConv2d, ScaledStdConv2d: ``F.batch_norm`` in training mode over the weight viewed as
(1, C_out, k)), and a convolution whose weight is a fixed filter held as a buffer (timm's BlurPool2d). Checked
against torch on the CPU (FlopCounterMode, fvcore, parameters and buffers), and by hand."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from alexcost import DynamicConv2d, Network, Parameter, SpecError, Standardize
from alexcost.torch_bridge import from_module
from alexcost.training import training_cost
from module_step import forward_against_torch, step_agrees

IN, OUT, K, SIDE = 3, 8, 3, 7


class Standardised(nn.Module):
    """A convolution whose weight is standardised per output channel before use, times a learned gain (``gain``)
    and a fixed scale, or not (timm's ScaledStdConv2d and StdConv2d, written out)."""

    def __init__(self, gain: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(OUT, IN, K, K))
        self.bias = nn.Parameter(torch.randn(OUT))
        self.gain = nn.Parameter(torch.rand(OUT, 1, 1, 1) + 0.5) if gain else None

    def forward(self, x):
        weight = F.batch_norm(self.weight.reshape(1, OUT, -1), None, None,
                              weight=(self.gain * 0.5).view(-1) if self.gain is not None else None,
                              training=True, momentum=0., eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, 1, 1)


def fvcore_total(module, shape) -> int:
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module.eval(), torch.randn(1, *shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        return int(analysis.total())


def fvcore_declared(module, shape) -> int:
    rows = from_module(module, shape).cost(1).layers
    return sum(r.layer.fvcore_count(r.input_shape, r.output_shape) for r in rows)


@pytest.mark.parametrize("gain", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_standardised_weight_is_computed_once_per_pass_and_convolved_per_sample(gain, batch):
    module = Standardised(gain)
    cost = forward_against_torch(module, (IN, SIDE, SIDE), batch)
    weight = OUT * IN * K * K
    assert cost.totals.macs == batch * OUT * SIDE * SIDE * IN * K * K
    assert cost.totals.bias_adds == batch * OUT * SIDE * SIDE
    # once per pass: the gain times the scale (C_out); per weight element the mean 1, the variance 2,
    # normalising 2, and the gain 1
    assert cost.totals.other_ops == (OUT + 6 * weight if gain else 5 * weight)
    rows = {r.type: r for r in cost.layers}
    assert rows["DynamicConv2d"].params == OUT and not rows["DynamicConv2d"].per_pass
    norm = rows["Standardize" if gain else "GroupNorm"]
    assert norm.per_pass and norm.batch == 1


@pytest.mark.parametrize("gain", [True, False])
def test_fvcore_counts_the_standardisation_as_a_batch_norm_in_training_mode(gain):
    pytest.importorskip("fvcore")
    module = Standardised(gain)
    weight = OUT * IN * K * K
    assert fvcore_total(module, (IN, SIDE, SIDE)) == fvcore_declared(module, (IN, SIDE, SIDE))
    assert fvcore_declared(module, (IN, SIDE, SIDE)) == OUT * SIDE * SIDE * IN * K * K + (5 if gain else 4) * weight


def test_timms_standardised_convolutions_read_as_torch_runs_them():
    from timm.layers import ScaledStdConv2d, StdConv2d, StdConv2dSame

    for module in (ScaledStdConv2d(IN, OUT, K, stride=2), StdConv2d(IN, OUT, K, bias=True),
                   StdConv2dSame(IN, OUT, K, stride=2)):
        cost = forward_against_torch(nn.Sequential(module, nn.ReLU()), (IN, SIDE + 2, SIDE + 2), 2)
        assert cost.totals.params == sum(p.numel() for p in module.parameters())


class Blurred(nn.Module):
    """A depthwise fixed filter held as a buffer, reflect-padded (timm's BlurPool2d)."""

    def __init__(self, channels=4):
        super().__init__()
        self.register_buffer("filt", torch.rand(channels, 1, 3, 3))
        self.proj = nn.Conv2d(channels, channels, 1)
        self.channels = channels

    def forward(self, x):
        return F.conv2d(F.pad(self.proj(x), (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=self.channels)


def test_a_convolution_by_a_buffer_counts_the_buffer_not_parameters():
    cost = forward_against_torch(Blurred(), (4, 8, 8), 2)
    assert cost.totals.buffers == 4 * 9
    assert cost.totals.params == 4 * 4 + 4                            # the projection's alone
    assert cost.totals.macs == 2 * (4 * 8 * 8 * 4 + 4 * 4 * 4 * 9)    # the projection; the blur, stride 2
    pytest.importorskip("fvcore")
    assert fvcore_total(Blurred(), (4, 8, 8)) == fvcore_declared(Blurred(), (4, 8, 8))


def timm_stack():
    from timm.layers import ScaledStdConv2d, StdConv2d, StdConv2dSame

    return nn.Sequential(nn.Conv2d(3, 3, 1), ScaledStdConv2d(3, 8, 3, stride=2), nn.ReLU(), StdConv2d(8, 4, 3),
                         StdConv2dSame(4, 4, 3, stride=2))


@pytest.mark.parametrize("build,shape", [(lambda: Standardised(True), (IN, SIDE, SIDE)),
                                         (lambda: Standardised(False), (IN, SIDE, SIDE)),
                                         (Blurred, (4, 8, 8)), (timm_stack, (3, 11, 11))])
@pytest.mark.parametrize("batch", [2, 3])
def test_a_training_step_with_a_weight_as_an_input_agrees_with_torch(build, shape, batch):
    """The gradient reaches the parameters through the standardisation: the convolution's gradient with
    respect to its weight (as many MACs as its forward pass), then the standardisation's backward, once;
    autograd keeps the standardised weight and the gain times the scale, not the parameters."""
    step_agrees(build(), shape, batch)


def test_a_standardisation_read_per_sample_derives_no_training_step():
    net = Network((4, 10), [Parameter(name="g", shape=(4,)), Standardize(inputs=("input", "g"))])
    with pytest.raises(SpecError, match=r"would take the statistics of 2"):
        training_cost(net, 2)


def test_what_a_standardisation_cannot_be_read_through_is_refused_naming_the_node():
    class Batched(nn.Module):  # the statistics of a (2, C, k) tensor: two samples, not one
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 4, 5))

        def forward(self, x):
            return x + F.batch_norm(self.w, None, None, training=True).sum()

    with pytest.raises(SpecError, match=r"'batch_norm'.*whose first size is 1 only"):
        from_module(Batched(), (4,))

    class Single(nn.Module):  # one value per channel: torch's batch norm refuses to train on it
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 1))

        def forward(self, x):
            return x * F.batch_norm(self.w.reshape(1, 4, -1), None, None, training=True).reshape_as(self.w)

    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        Single()(torch.randn(2, 4, 1))
    with pytest.raises(SpecError, match=r"'batch_norm'.*Expected more than 1 value per channel"):
        from_module(Single(), (4, 1))


def test_the_kinds_check_their_weight_input():
    with pytest.raises(SpecError, match=r"expects a weight of shape 6x3x3x3 for this input, got 6x3x3x2"):
        Network((3, 8, 8), [Parameter(name="w", shape=(6, 3, 3, 2)),
                            DynamicConv2d(out_channels=6, kernel_size=3, inputs=("input", "w"))])
    with pytest.raises(SpecError, match=r"pads with zeros only"):
        DynamicConv2d(out_channels=6, kernel_size=3, padding_mode="reflect")
    with pytest.raises(SpecError, match=r"Expected more than 1 value per channel"):
        Network((4, 1), [Parameter(name="g", shape=(4,)), Standardize(inputs=("input", "g"))])


class Transformed(nn.Module):
    """``F.linear`` by a fixed matrix held as a buffer along the last dimension (timm's CSATv2 DCT), with a bias
    or not."""

    def __init__(self, bias: bool):
        super().__init__()
        self.register_buffer("weights", torch.randn(5, 4))
        self.bias = nn.Parameter(torch.randn(5)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weights, self.bias)


@pytest.mark.parametrize("bias", [False, True])
def test_a_linear_by_a_buffer_is_a_product_by_its_transpose(bias):
    cost = forward_against_torch(Transformed(bias), (3, 6, 4), 2)
    assert cost.totals.macs == 2 * 3 * 6 * 4 * 5
    assert cost.totals.buffers == 5 * 4 and cost.totals.params == 5 * bias
    assert cost.totals.other_ops == 2 * 3 * 6 * 5 * bias              # the bias added, per output element
    assert [r.type for r in cost.layers if r.type != "Parameter"] == ["Buffer", "Transpose", "Matmul", "Add"][:3 + bias]


class Gated(nn.Module):
    """Tokens times a parameter vector (SwiftFormer's ``query @ self.w_g``), and a slice of a parameter by a number
    (a rotary table's ``freqs[0]``) as a scale."""

    def __init__(self):
        super().__init__()
        self.w_g = nn.Parameter(torch.randn(8, 1))
        self.freqs = nn.Parameter(torch.randn(2, 8))

    def forward(self, x):
        return (x @ self.w_g) * x * torch.sigmoid(self.freqs[0])


def test_a_product_by_a_parameter_and_a_parameter_sliced_by_a_number():
    cost = forward_against_torch(Gated(), (5, 8), 3)
    assert cost.totals.macs == 3 * 5 * 8
    assert cost.totals.other_ops == 8 + 3 * 2 * 5 * 8                 # the sigmoid once; two products per sample
    rows = {r.type: r for r in cost.layers}
    assert rows["Slice"].per_pass and rows["Sigmoid"].per_pass and not rows["Matmul"].per_pass
