"""Computations on parameters and buffers alone run once per forward pass, whatever the batch: a relative
position MLP on a buffer of coordinates, a learned gate through a sigmoid. Checked against torch on the CPU
(FlopCounterMode's forward and backward FLOPs and the bytes autograd keeps), and by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from alexcost import Buffer, Mul, Network, Parameter, Sigmoid, SpecError
from alexcost.torch_bridge import from_module
from module_step import attention_step_agrees, forward_against_torch, refused_at_the_node, step_agrees

TOKENS, WIDTH, HIDDEN = 5, 8, 16


class RelativeBias(nn.Module):
    """Tokens (N, T, T, C): a Linear, plus a bias an MLP computes from a buffer of coordinates (timm's
    relative position MLP, Swin V2's), scaled by 16·sigmoid, times a learned gate sigmoid(alpha)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("coords", torch.randn(1, TOKENS, TOKENS, 2))
        self.mlp = nn.Sequential(nn.Linear(2, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, WIDTH, bias=False))
        self.alpha = nn.Parameter(torch.randn(WIDTH))
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        bias = 16 * torch.sigmoid(self.mlp(self.coords))
        return (self.proj(x) + bias) * torch.sigmoid(self.alpha)


SHAPE = (TOKENS, TOKENS, WIDTH)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_computation_on_a_buffer_is_counted_once_per_pass_as_torch_runs_it(batch):
    cost = forward_against_torch(RelativeBias(), SHAPE, batch)
    t = TOKENS * TOKENS
    per_pass = t * 2 * HIDDEN + t * HIDDEN * WIDTH          # the MLP on the coordinates
    per_sample = t * WIDTH * WIDTH                         # the projection
    assert cost.totals.macs == batch * per_sample + per_pass
    rows = {r.name: r for r in cost.layers}
    assert rows["mlp_0"].per_pass and rows["mlp_0"].macs == t * 2 * HIDDEN and rows["mlp_0"].batch == 1
    assert not rows["proj"].per_pass and rows["proj"].macs == batch * per_sample
    # sigmoid, times 16 (once: T·T·C each), sigmoid of the gate (once: C); the ReLU (once: T·T·HIDDEN)
    once_ops = 2 * t * WIDTH + WIDTH + t * HIDDEN
    per_sample_ops = 2 * t * WIDTH                         # + bias, * gate
    assert cost.totals.other_ops == batch * per_sample_ops + once_ops
    assert cost.totals.buffers == t * 2


@pytest.mark.parametrize("batch", [2, 3])
def test_a_training_step_with_a_per_pass_computation_agrees_with_torch(batch):
    step_agrees(RelativeBias(), SHAPE, batch)


def test_a_network_of_layers_that_read_only_a_parameter_runs_them_once_per_pass():
    net = Network((4, 5, 6), [Parameter(name="alpha", shape=(4, 1, 1)), Sigmoid(name="gate"),
                              Mul(inputs=("input", "gate"))])
    assert net.once == (False, True, False)
    for batch in (1, 7):
        totals = net.cost(batch).totals
        assert totals.other_ops == 4 + batch * 4 * 5 * 6   # the sigmoid once; the product per sample
        assert totals.output_elements == 4 + 4 + batch * 4 * 5 * 6


def test_a_buffer_is_not_a_parameter_and_gets_no_gradient():
    net = Network((3,), [Buffer(name="scale", shape=(3,)), Mul(inputs=("input", "scale"))])
    totals = net.cost(2).totals
    assert (totals.params, totals.buffers, totals.other_ops) == (0, 3, 2 * 3)


class TableMax(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, 4, 3))

    def forward(self, x):
        return x + self.table.amax(dim=1, keepdim=True)


class InPlace(nn.Module):
    """Swin V2's position MLP has a ReLU(inplace=True): a write in place into what was computed once."""

    def __init__(self, into_the_parameter=False):
        super().__init__()
        self.gate, self.into = nn.Parameter(torch.randn(3)), into_the_parameter

    def forward(self, x):
        if self.into:
            return x * self.gate.mul_(3)
        g = self.gate * 2
        torch.relu_(g)
        return x * g


def test_a_write_in_place_into_a_per_pass_tensor_is_read_as_torch_runs_it():
    cost = forward_against_torch(InPlace(), (3,), batch=2)
    assert cost.totals.other_ops == 3 + 3 + 2 * 3      # times 2, the ReLU (once), the product per sample
    step_agrees(InPlace(), (3,), 2)


def test_what_a_per_pass_tensor_cannot_be_read_through_is_refused_naming_the_node():
    with pytest.raises(SpecError, match=r"'amax'.*reads the parameter 'table'.*not through this call, whose "
                                        r"arguments number dimensions from the batch's"):
        from_module(TableMax(), (4, 3))
    with pytest.raises(SpecError, match=r"'mul_'.*writes in place into a parameter or buffer of the module"):
        from_module(InPlace(into_the_parameter=True), (3,))


class Standardised(nn.Module):
    """A fixed per-channel scale and shift held as buffers (timm's CSATv2 stem), then a convolution."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.randn(3, 1, 1))
        self.register_buffer("std", torch.rand(3, 1, 1) + 0.5)
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv((x - self.mean) / self.std)


def test_a_buffer_as_an_operand_of_arithmetic_is_counted_as_torch_runs_it():
    cost = forward_against_torch(Standardised(), (3, 6, 6), batch=2)
    assert cost.totals.buffers == 2 * 3
    assert cost.totals.other_ops == 2 * (2 * 3 * 6 * 6)     # a subtract and a divide per input element
    step_agrees(Standardised(), (3, 6, 6), 2)


WINDOW, HEADS = 3, 2


def _relative_index(window: int):
    """Swin's relative position index for a window of ``window`` × ``window`` tokens."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class PositionMlpAttention(nn.Module):
    """Scores (N, heads, T, T) plus a bias an MLP computes once per pass from a table of coordinates, gathered
    by the relative position index, viewed, permuted, copied, scaled: Swin V2's and timm's RelPosMlp."""

    def __init__(self):
        super().__init__()
        span = 2 * WINDOW - 1
        self.register_buffer("coords", torch.randn(1, span, span, 2))
        self.register_buffer("index", _relative_index(WINDOW))
        self.mlp = nn.Sequential(nn.Linear(2, HIDDEN), nn.ReLU(inplace=True), nn.Linear(HIDDEN, HEADS, bias=False))

    def forward(self, scores):
        t = WINDOW * WINDOW
        table = self.mlp(self.coords).view(-1, HEADS)
        bias = table[self.index.view(-1)].view(t, t, -1)
        bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        return torch.softmax(scores + 16 * torch.sigmoid(bias), dim=-1)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_position_mlp_gathered_viewed_and_permuted_once_per_pass_agrees_with_torch(batch):
    t, span = WINDOW * WINDOW, 2 * WINDOW - 1
    shape = (HEADS, t, t)
    cost = forward_against_torch(PositionMlpAttention(), shape, batch)
    assert cost.totals.macs == span * span * (2 * HIDDEN + HIDDEN * HEADS)     # the MLP, once
    assert cost.totals.buffers == span * span * 2 + t * t                   # the table, the index
    step_agrees(PositionMlpAttention(), shape, max(batch, 2))


class Sliced(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(4, 6))

    def forward(self, x):
        return x * torch.sigmoid(self.table)[1:3, ::2]


def test_a_constant_slice_of_a_per_pass_tensor_agrees_with_torch():
    forward_against_torch(Sliced(), (2, 3), batch=2)
    step_agrees(Sliced(), (2, 3), 2)


class BiasedAttention(nn.Module):
    """Attention whose mask is a position bias computed once per pass (timm's relative position MLP), or a
    fixed buffer."""

    def __init__(self, fixed=False, rank=4):
        super().__init__()
        self.fixed, self.rank = fixed, rank
        t = WINDOW * WINDOW
        self.register_buffer("coords", torch.randn(1, t, t, 2))
        self.register_buffer("bias", torch.randn((1, HEADS, t, t)[4 - rank:]))
        self.mlp = nn.Linear(2, HEADS)
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        q, k, v = self.proj(x).unbind(1)
        if self.fixed:
            return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=self.bias)
        mask = self.mlp(self.coords).permute(0, 3, 1, 2)
        mask = mask if self.rank == 4 else mask[0]   # (heads, T, T): broadcast from the right
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("rank", [4, 3])
def test_attention_with_a_mask_computed_once_per_pass_agrees_with_torch(rank):
    t = WINDOW * WINDOW
    shape = (3, HEADS, t, 4)
    cost = forward_against_torch(BiasedAttention(rank=rank), shape, batch=2)
    per_sample = 3 * HEADS * t * 4 * 4 + HEADS * t * t * (4 + 4)        # the projection; q·k and ·v
    assert cost.totals.macs == t * t * 2 * HEADS + 2 * per_sample        # the MLP once
    if rank == 4:
        attention_step_agrees(BiasedAttention(fixed=True, rank=rank), shape, 2)
    else:  # torch keeps more than the mask; alexcost does not say what
        from alexcost.training import training_cost
        with pytest.raises(SpecError, match=r"a mask of 3 dimensions, computed from parameters alone, on scores of 4"):
            training_cost(from_module(BiasedAttention(fixed=True, rank=rank), shape), 2, device="cpu")
    with pytest.raises(SpecError, match=r"with a mask that requires grad"):
        from alexcost.training import training_cost
        training_cost(from_module(BiasedAttention(), shape), 2, device="cpu")


class QueryValueBias(nn.Module):
    """BEiT's and EVA's attention projection: a bias concatenated once per pass from the query's and the
    value's learned biases and a zero buffer for the keys, given to F.linear."""

    def __init__(self, width=WIDTH):
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.randn(width)), nn.Parameter(torch.randn(width))
        self.register_buffer("k_bias", torch.zeros(width), persistent=False)

    def forward(self, x):
        bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        return nn.functional.linear(x, weight=self.qkv.weight, bias=bias)


def test_a_bias_concatenated_once_per_pass_and_added_by_linear_agrees_with_torch():
    cost = forward_against_torch(QueryValueBias(), (TOKENS, WIDTH), batch=2)
    assert cost.totals.macs == 2 * TOKENS * WIDTH * 3 * WIDTH
    assert cost.totals.other_ops == 2 * TOKENS * 3 * WIDTH          # the bias, added per output element
    step_agrees(QueryValueBias(), (TOKENS, WIDTH), 2)


class SoftmaxPadded(nn.Module):
    """Learned weights through a softmax over their first dimension (EfficientViM), padded in front with a
    constant (a class token's place in a position bias), added to the activations."""

    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return x + nn.functional.pad(torch.softmax(self.weights, dim=0), (1, 0))


def test_a_softmax_and_a_constant_pad_of_a_per_pass_tensor_agree_with_torch():
    cost = forward_against_torch(SoftmaxPadded(), (3, 5), batch=2)
    assert cost.totals.other_ops == 3 * 3 * 4 + 2 * 3 * 5     # the softmax's 3 per element, once; the add
    step_agrees(SoftmaxPadded(), (3, 5), 2)


class LogitScale(nn.Module):
    """Scores times a learned scale through exp, once per pass (Swin V2's logit scale, unclamped), and the
    scores' own exp per sample."""

    def __init__(self):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.randn(HEADS, 1, 1))

    def forward(self, x):
        return torch.exp(x) * self.logit_scale.exp()


def test_exp_per_sample_and_once_per_pass_agrees_with_torch():
    cost = forward_against_torch(LogitScale(), (HEADS, 3, 3), batch=2)
    assert cost.totals.other_ops == 2 * HEADS * 9 + HEADS + 2 * HEADS * 9   # exp per sample, exp once, product
    step_agrees(LogitScale(), (HEADS, 3, 3), 2)


class Transposed(nn.Module):
    """A per-pass tensor transposed, then viewed (torch refuses: not contiguous) or reshaped (a copy)."""

    def __init__(self, view):
        super().__init__()
        self.table, self.view = nn.Parameter(torch.randn(4, 3)), view

    def forward(self, x):
        t = torch.sigmoid(self.table).permute(1, 0)
        return x * (t.view(12) if self.view else t.reshape(12))


def test_a_view_torch_cannot_make_of_a_per_pass_tensor_is_refused_and_a_reshape_copies():
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        Transposed(view=True)(torch.randn(2, 12))
    with pytest.raises(SpecError, match=r"view size is not compatible"):
        from_module(Transposed(view=True), (12,))
    forward_against_torch(Transposed(view=False), (12,), batch=2)
    step_agrees(Transposed(view=False), (12,), 2)


class PerHeadBias(nn.Module):
    """EfficientViT's cascaded attention: a bias table gathered by a fixed index, then sliced per head, each
    slice added to that head's scores; and NaFlexViT's position table permuted whole, then converted."""

    def __init__(self):
        super().__init__()
        t = WINDOW * WINDOW
        self.biases = nn.Parameter(torch.randn(HEADS, 2 * WINDOW - 1))
        self.register_buffer("idxs", torch.randint(0, 2 * WINDOW - 1, (t, t)))
        self.table = nn.Parameter(torch.randn(1, t, HEADS))

    def forward(self, x):
        ab = self.biases[:, self.idxs]                                  # (heads, T, T), gathered
        heads = [x[:, i] + ab[i] for i in range(HEADS)]
        return torch.stack(heads, 1) + self.table.permute(0, 2, 1).unsqueeze(-1).float()


def test_a_gathered_table_sliced_per_head_and_a_parameter_permuted_whole_agree_with_torch():
    t = WINDOW * WINDOW
    cost = forward_against_torch(PerHeadBias(), (HEADS, t, t), batch=2)
    assert cost.totals.other_ops == 2 * (HEADS * t * t + HEADS * t * t)    # the per-head adds, the last add
    step_agrees(PerHeadBias(), (HEADS, t, t), 2)


class IntegerOperand(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.arange(3))
        self.proj = nn.Linear(3, 3)

    def forward(self, x):
        return self.proj(x) * self.steps


def test_a_buffer_of_another_dtype_as_an_operand_is_refused():
    with pytest.raises(SpecError, match=r"reads the buffer 'steps' of torch.int64 as an operand; alexcost reads a "
                                        r"buffer of the module's parameters' dtype only"):
        from_module(IntegerOperand(), (3,))


class ResizedPositions(nn.Module):
    """A position embedding resized by F.interpolate once per pass (SAM 2's Hiera), added to the tokens."""

    def __init__(self, mode):
        super().__init__()
        self.pos_embed, self.mode = nn.Parameter(torch.randn(1, 4, 3, 3)), mode

    def forward(self, x):
        return x + nn.functional.interpolate(self.pos_embed, size=(6, 6), mode=self.mode)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_a_position_embedding_interpolated_once_per_pass_agrees_with_torch(mode):
    cost = forward_against_torch(ResizedPositions(mode), (4, 6, 6), batch=2)
    rows = {r.type: r for r in cost.layers}
    assert rows["Upsample"].per_pass and rows["Add"].other_ops == 2 * 4 * 6 * 6
    step_agrees(ResizedPositions(mode), (4, 6, 6), 2)
