"""Tensors made from constants: ``torch.zeros``, ``torch.arange`` and the like in forward(), fx's own
constants (a plain tensor attribute, a buffer's view fx computed while tracing: Swin's shift mask, EVA's
rotary tables) and a ``torch.fx.wrap`` function of constants (timm's ``_build_grid``). Each is a `Constant`:
no parameters, no buffers, no ops, its elements made once per forward pass; what is computed from it alone
runs once per pass. Checked against torch on the CPU (FlopCounterMode's forward and backward FLOPs, the
bytes autograd keeps, the parameters), and by hand; the sine, cosine and negation read on the way too."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn

from alexcost import Constant, Cos, Network, Scalar, Sin, SpecError
from alexcost.torch_bridge import from_module
from module_step import Around, Call, forward_against_torch, read_as_torch_runs_it, refused_at_the_node, step_agrees

TOKENS, WIDTH = 5, 8


class Masked(nn.Module):
    """A mask held as a plain tensor attribute (fx keeps it as a constant, ``_tensor_constant0``), added to a
    projection's output, and multiplied in (so autograd keeps it: a tensor of its own, no parameter)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.mask = torch.randn(TOKENS, WIDTH)  # not registered: neither a parameter nor a buffer

    def forward(self, x):
        return self.proj(x) * self.mask + self.mask


@pytest.mark.parametrize("batch", [1, 3])
def test_an_fx_constant_is_neither_a_parameter_nor_a_buffer_and_is_made_once_per_pass(batch):
    cost = forward_against_torch(Masked(), (TOKENS, WIDTH), batch)
    rows = [r for r in cost.layers if isinstance(r.layer, Constant)]
    assert [r.output_shape for r in rows] == [(TOKENS, WIDTH)]       # one tensor, read by two nodes
    assert (cost.totals.params, cost.totals.buffers) == (WIDTH * WIDTH + WIDTH, 0)
    assert cost.totals.other_ops == batch * 2 * TOKENS * WIDTH        # the product and the sum, per sample
    # the constant once; the projection, the product and the sum per sample
    assert cost.totals.output_elements == TOKENS * WIDTH + batch * 3 * TOKENS * WIDTH


@pytest.mark.parametrize("batch", [2, 3])
def test_an_fx_constant_kept_for_the_backward_pass_is_torch_s_bytes(batch):
    step_agrees(Masked(), (TOKENS, WIDTH), batch)  # torch counts the mask Mul keeps: not a parameter or buffer


def test_a_constant_network_is_counted_once_and_holds_nothing():
    from alexcost import Mul

    net = Network((3, 4), [Constant(name="table", shape=(3, 4)), Sin(name="s", inputs=("table",)),
                           Mul(inputs=("input", "s"))])
    assert net.once == (False, True, False)
    for batch in (1, 5):
        totals = net.cost(batch).totals
        assert (totals.params, totals.buffers) == (0, 0)
        assert totals.other_ops == 12 + batch * 12                   # the sine once, the product per sample
        assert totals.output_elements == 12 + 12 + batch * 12       # the constant, its sine, the product


class Fourier(nn.Module):
    """A sine and cosine position table made in forward() from ``torch.arange`` (xcit's and DeepSeek's
    pattern): integer positions converted to float32, times a buffer of frequencies (other ranks: torch
    broadcasts the whole tensors), sine and cosine concatenated, then split in two and applied to the
    tokens as rotary embeddings are (``x * cos + rot(x) * sin``, ``rot`` a negation and a concatenation)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("bands", torch.rand(WIDTH // 2))
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        positions = torch.arange(x.shape[1]).to(torch.float32)[:, None]  # (T, 1): sizes from the input's
        angles = positions * self.bands                                   # (T, W/2)
        table = torch.cat([angles.sin(), angles.cos()], dim=-1)           # (T, W)
        sin, cos = table.chunk(2, -1)
        sin, cos = torch.cat([sin, sin], -1), torch.cat([cos, cos], -1)
        y = self.proj(x)
        half = WIDTH // 2
        rotated = torch.cat([-y[..., half:], y[..., :half]], dim=-1)
        return (y * cos + rotated * sin).to(dtype=x.dtype).type_as(y)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_position_table_made_from_arange_runs_once_per_pass(batch):
    cost = forward_against_torch(Fourier(), (TOKENS, WIDTH), batch)
    t, half = TOKENS, WIDTH // 2
    once = t * half + 2 * t * half                   # positions times the bands; the sine and the cosine
    per_sample = t * half + 3 * t * WIDTH            # the negation; two products and a sum
    assert cost.totals.other_ops == once + batch * per_sample
    assert cost.totals.buffers == half and cost.totals.params == WIDTH * WIDTH + WIDTH
    rows = [r for r in cost.layers if isinstance(r.layer, Constant)]
    assert [r.output_shape for r in rows] == [(t,)]                   # the positions, made once


@pytest.mark.parametrize("batch", [2, 3])
def test_a_position_table_made_from_arange_trains_as_torch_does(batch):
    step_agrees(Fourier(), (TOKENS, WIDTH), batch)


@pytest.mark.parametrize("function,kind,backward", [(torch.sin, Sin, 2), (torch.cos, Cos, 3)])
def test_sine_and_cosine_of_activations_train_as_torch_does(function, kind, backward):
    imported = read_as_torch_runs_it(lambda: Around(function), (6,), batch=3)
    layer = next(layer for layer in imported.network.layers if isinstance(layer, kind))
    assert layer.other_ops((6,), (6,)) == 6 and layer.backward_ops_per_element == backward


def test_a_negation_is_a_product_by_minus_one_and_trains_as_torch_does():
    imported = read_as_torch_runs_it(lambda: Around(lambda y: -y), (6,), batch=2)
    assert [(layer.op, layer.value) for layer in imported.network.layers if isinstance(layer, Scalar)] == [("mul", -1)]


@torch.fx.wrap
def _grid(side: int, dtype=torch.float32):  # (fx records it where its side comes from the input's sizes)
    """A coordinate grid made from constants alone, kept whole by fx (as timm's ``_build_grid``)."""
    t = torch.linspace(-1.0, 1.0, steps=side)
    return torch.stack(torch.meshgrid(t, t, indexing="ij"), dim=-1).to(dtype=dtype)


@torch.fx.wrap
def _products(side: int):
    """A table of constants made with a matrix product: FLOPs torch counts in every forward pass."""
    t = torch.ones(side, side)
    return t @ t


class Gridded(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, WIDTH)

    def forward(self, x):
        return x + self.proj(_grid(x.shape[1]))


def test_a_wrapped_function_of_constants_is_the_tensor_it_returns():
    cost = forward_against_torch(Gridded(), (4, 4, WIDTH), batch=2)
    rows = {type(r.layer).__name__: r for r in cost.layers}
    assert rows["Constant"].output_shape == (4, 4, 2) and rows["Linear"].per_pass
    assert cost.totals.macs == 16 * 2 * WIDTH                        # the projection once, whatever the batch
    step_agrees(Gridded(), (4, 4, WIDTH), 2)


def test_sizes_alexcost_does_not_fix_are_refused_naming_the_node():
    refused_at_the_node(lambda x: x + torch.zeros(x.shape[0], 3), (3,), r"'zeros'.*depends on the batch size")
    refused_at_the_node(lambda x: x + torch.zeros(x.shape[1], requires_grad=True), (3,), r"'zeros'.*requires_grad")
    refused_at_the_node(lambda x: x * torch.arange(x.shape[1]), (3,), r"torch.int64 as an operand")
    refused_at_the_node(lambda x: x + torch.ones(3).exp(), (3,), r"fx computed while tracing")
    refused_at_the_node(lambda x: x * (x.dtype == torch.float32), (3,), r"mul of a tensor and True")
    with pytest.raises(SpecError, match=r"'_grid'.*no layer kind"):
        from_module(Around(lambda y: y + _grid(y)), (6,))   # a tensor given to a wrapped function: not constants
    refused_at_the_node(lambda x: x + _products(x.shape[1]), (4, 4), r"'_products'.* computes 128 FLOPs inside")


def test_a_constant_converted_to_an_activations_dtype_is_a_float32_constant():
    """``torch.ones(3).to(x.dtype)`` in a float32 module: a float32 constant added once per sample."""
    cost = forward_against_torch(Call(lambda x: x + torch.ones(x.shape[1]).to(x.dtype)), (3,), batch=2)
    assert "Constant" in {type(r.layer).__name__ for r in cost.layers}
    assert cost.totals.other_ops == 2 * 3                            # one add per element of the batch
