"""torchvision's MViT read by from_module: its fx-wrapped helpers (``_unsqueeze``, ``_squeeze``,
``_add_shortcut``, ``_add_rel_pos``), ``torch.tensor_split``, its 1-D class token, its query/key/value pooling
with the heads folded into the batch, and a whole multiscale block, each on a small module checked against
torch on the CPU (output shape, parameters, FlopCounterMode's FLOPs of a forward pass and of a training step,
the bytes autograd keeps; fvcore's count per module); what stays refused, at the node.
"""

from __future__ import annotations

import importlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
nn = torch.nn
M = importlib.import_module("torchvision.models.video.mvit")

from math import prod  # noqa: E402

from alexcost import Add, Network, PositionBias, SliceAdd, Split, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.training import training_cost  # noqa: E402
from module_step import alexcost_step, forward_against_torch, refused_at_the_node, step_agrees  # noqa: E402


class Lifted(nn.Module):
    """``_unsqueeze`` a (L, C) sample to (1, L, C), a linear layer, ``_squeeze`` back, as MViT's Pool does for
    an input without heads; ``rank`` is the rank ``_unsqueeze`` targets."""

    def __init__(self, rank=4):
        super().__init__()
        self.fc, self.rank = nn.Linear(6, 5), rank

    def forward(self, x):
        x, dim = M._unsqueeze(x, self.rank, 1)
        return M._squeeze(self.fc(x), self.rank, 1, dim)


@pytest.mark.parametrize("rank, out", [(4, (7, 5)), (3, (7, 5))], ids=["added and dropped", "already that rank"])
def test_unsqueeze_and_squeeze_read_as_torch(rank, out):
    cost = forward_against_torch(Lifted(rank), (7, 6), batch=2)
    assert cost.totals.macs == 2 * 7 * 6 * 5          # per sample, the linear layer's
    imported = from_module(Lifted(rank), (7, 6))
    assert imported.network.output_shape == out
    kinds = [type(layer).__name__ for layer in imported.network.layers]
    assert kinds == (["Unsqueeze", "Linear", "Squeeze"] if rank == 4 else ["Linear"])
    step_agrees(Lifted(rank), (7, 6))


def test_unsqueeze_of_another_rank_is_refused_as_torchvision_raises():
    with pytest.raises(ValueError, match="Unsupported input dimension"):
        Lifted(5)(torch.randn(2, 7, 6))
    refused_at_the_node(lambda x: M._unsqueeze(x, 5, 1)[0], (7, 6),
                        r"function '_unsqueeze' .*Unsupported input dimension: a tensor of shape \[N, 7, 6\]")


class Splitting(nn.Module):
    """``torch.tensor_split`` along the tokens, each piece through a layer, concatenated back."""

    def __init__(self, how, count, method=False):
        super().__init__()
        self.fc, self.how, self.count, self.method = nn.Linear(4, 4), how, count, method

    def forward(self, x):
        pieces = x.tensor_split(self.how, dim=2) if self.method else torch.tensor_split(x, self.how, dim=2)
        return torch.cat([self.fc(pieces[i]) for i in range(self.count)], dim=2)


@pytest.mark.parametrize("how, sizes, method", [
    ((1,), (1, 8), False), ([2, 5], (2, 3, 4), True), (4, (3, 2, 2, 2), False), (3, (3, 3, 3), True),
], ids=["class token", "indices", "uneven sections", "even sections"])
def test_tensor_split_is_a_split_read_as_torch(how, sizes, method):
    module = Splitting(how, len(sizes), method)
    with torch.no_grad():
        pieces = torch.tensor_split(torch.randn(2, 3, 9, 4), how, dim=2)
    assert tuple(p.shape[2] for p in pieces) == sizes     # torch's pieces, the sizes alexcost is given
    imported = from_module(module, (3, 9, 4))
    splits = [layer for layer in imported.network.layers if isinstance(layer, Split)]
    assert [(s.split_size_or_sections, s.dim) for s in splits] == [(sizes, 2)]
    forward_against_torch(module, (3, 9, 4), batch=2)
    step_agrees(Splitting(how, len(sizes), method), (3, 9, 4))


@pytest.mark.parametrize("function, message", [
    (lambda x: torch.tensor_split(x, (1,), dim=0)[1], "splits the batch dimension"),
    (lambda x: torch.tensor_split(x, (3, 2), dim=1)[0], r"leaves an empty piece or indices that do not rise"),
    (lambda x: torch.tensor_split(x, (0,), dim=1)[1], r"leaves an empty piece"),
    (lambda x: torch.tensor_split(x, 0, dim=1)[0], "number of sections must be larger than 0"),
])
def test_tensor_split_refusals_name_the_node(function, message):
    refused_at_the_node(function, (5, 4), rf"function 'tensor_split' .*{message}")


class ClassToken(nn.Module):
    """MViT's positional encoding with relative position embeddings: a (C,) class token expanded over the
    batch, unsqueezed and concatenated before the tokens; then a linear layer."""

    def __init__(self):
        super().__init__()
        self.pos = M.PositionalEncoding(6, (2, 2), 2, rel_pos_embed=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.pos(x))


def test_a_one_dimensional_class_token_reads_and_trains_as_torch():
    cost = forward_against_torch(ClassToken(), (8, 6), batch=2)
    assert cost.totals.params == 6 + 6 * 3 + 3         # the token's elements, once, and the linear layer's
    assert cost.totals.macs == 2 * (8 + 1) * 6 * 3      # 2 samples of 8 tokens and the class token
    step_agrees(ClassToken(), (8, 6))


class Pooled(nn.Module):
    """torchvision's MViT ``Pool`` (a depthwise Conv3d and a LayerNorm) on (heads, 1 + T*H*W, d) samples,
    the heads folded into the batch around the convolution, at a fixed (T, H, W)."""

    def __init__(self, thw=(2, 4, 4), stride=(1, 2, 2)):
        super().__init__()
        self.thw = thw
        self.pool = M.Pool(nn.Conv3d(4, 4, 3, stride=stride, padding=1, groups=4, bias=False), nn.LayerNorm(4))

    def forward(self, x):
        return self.pool(x, self.thw)[0]


def test_pooling_one_head_reads_and_trains_as_torch():
    """One head: the (N*1, d, T, H, W) tensor the convolution reads is the batch itself."""
    shape = (1, 1 + 2 * 4 * 4, 4)
    imported = from_module(Pooled(), shape)
    assert imported.network.output_shape == (1, 1 + 2 * 2 * 2, 4)
    cost = forward_against_torch(Pooled(), shape, batch=2)
    assert cost.totals.macs == 2 * 4 * (2 * 2 * 2) * 27   # 2 samples: 4 channels, 8 outputs each, 3x3x3 taps
    step_agrees(Pooled(), shape)


def test_pooling_several_heads_folded_into_the_batch_reads_and_trains_as_torch():
    """Two heads fold into the batch (N*2) before the Conv3d: per sample, the convolution on each head's rows."""
    shape = (2, 1 + 2 * 4 * 4, 4)
    imported = from_module(Pooled(), shape)
    assert imported.network.output_shape == (2, 1 + 2 * 2 * 2, 4)
    cost = forward_against_torch(Pooled(), shape, batch=2)
    assert cost.totals.macs == 2 * 2 * 4 * (2 * 2 * 2) * 27   # 2 samples of 2 heads: 4 channels, 8 outputs, 27 taps
    assert cost.totals.params == 4 * 27 + 2 * 4               # the convolution's and the norm's weights, once
    step_agrees(Pooled(), shape)


class Block(nn.Module):
    """torchvision's ``MultiscaleBlock`` at a fixed (T, H, W): query and key/value pooling, a residual from the
    pooled query added in place (``_add_shortcut`` with the class token), a projection to more channels."""

    def __init__(self, thw=(2, 4, 4), with_cls=True, rel_pos=False, heads=1, stride_kv=(1, 2, 2)):
        super().__init__()
        self.thw = thw
        config = M.MSBlockConfig(heads, 8, 16, [3, 3, 3], [3, 3, 3], [1, 2, 2], [*stride_kv])
        self.block = M.MultiscaleBlock([*thw], config, residual_pool=True, residual_with_cls_embed=with_cls,
                                       rel_pos_embed=rel_pos, proj_after_attn=True)

    def forward(self, x):
        return self.block(x, self.thw)[0]


@pytest.mark.slow
def test_a_multiscale_block_reads_and_trains_as_torch():
    from fvcore.nn import FlopCountAnalysis

    torch.manual_seed(0)
    shape = (1 + 2 * 4 * 4, 8)
    module = Block().eval()
    forward_against_torch(module, shape, batch=2)
    imported = from_module(module, shape)
    cost = imported.cost()
    assert imported.network.output_shape == (1 + 2 * 2 * 2, 16)
    analysis = FlopCountAnalysis(module, (torch.randn(1, *shape),))
    analysis.unsupported_ops_warnings(False)
    by_module = analysis.by_module()
    for row, path in zip(cost.layers, imported.paths):
        if row.type in ("Conv3d", "Linear"):
            assert row.macs == by_module[path], path
    step_agrees(Block(), shape)


@pytest.mark.parametrize("heads, with_cls", [(2, True), (4, False)], ids=["2 heads", "4 heads, no class token"])
def test_a_multiscale_block_of_several_heads_reads_and_trains_as_torch(heads, with_cls):
    """Pooling with the heads folded into the batch: each pooling Conv3d (8 // heads channels, depthwise, 3 x 3 x 3)
    runs on every head's rows, a `Folded` layer of k = heads rows; torch's forward FLOPs and training step."""
    from alexcost.layers import Folded

    shape = (1 + 2 * 4 * 4, 8)
    torch.manual_seed(0)
    forward_against_torch(Block(heads=heads, with_cls=with_cls).eval(), shape, batch=2)
    imported = from_module(Block(heads=heads, with_cls=with_cls), shape)
    pools = [(row.name, row.macs) for row, layer in zip(imported.cost().layers, imported.network.layers)
             if isinstance(layer, Folded)]
    d = 16 // heads                     # the output dim (16) over the heads; queries pooled 2x2 in H, W
    # each head: d channels, 2 x 2 x 2 outputs (keys, values, queries at stride 1, 2, 2 of 2 x 4 x 4), 27 MACs each
    assert [m for _, m in pools] == [heads * d * (2 * 2 * 2) * 27] * 3
    torch.manual_seed(0)
    step_agrees(Block(heads=heads, with_cls=with_cls), shape)


def test_the_shortcut_added_after_the_class_token_reads_and_trains_as_torch():
    """MViT V2's shortcut without the class token, ``x[:, :, 1:, :] += shortcut[:, :, 1:, :]``: a Slice of the
    pooled query added into the same slice of attention's output in place (a SliceAdd)."""
    shape = (1 + 2 * 4 * 4, 8)
    imported = from_module(Block(with_cls=False), shape)
    adds = [layer for layer in imported.network.layers if isinstance(layer, SliceAdd)]
    assert adds == [SliceAdd(name=adds[0].name, inputs=adds[0].inputs, index=((None, None, None), (1, None, None)))]
    cost = imported.cost()
    row = next(r for r in cost.layers if r.type == "SliceAdd")
    assert row.other_ops == 1 * (2 * 2 * 2) * 16      # one head, the 8 pooled tokens after the class token, 16 features
    forward_against_torch(Block(with_cls=False), shape, batch=2)
    step_agrees(Block(with_cls=False), shape)


def test_slice_add_counts_by_hand():
    layer = SliceAdd(index=((None, None, None), (1, None, None)))
    assert layer.output_shape(((2, 9, 4), (2, 8, 4))) == (2, 9, 4)
    assert layer.other_ops(((2, 9, 4), (2, 8, 4)), (2, 9, 4)) == 2 * 8 * 4
    assert layer.macs(((2, 9, 4), (2, 8, 4)), (2, 9, 4)) == 0
    with pytest.raises(SpecError, match=r"alexcost reads y of the slice's own shape"):
        layer.output_shape(((2, 9, 4), (2, 1, 4)))


@pytest.mark.parametrize("stride_kv", [(1, 2, 2), (1, 4, 4)], ids=["keys as the queries", "fewer keys"])
def test_the_decomposed_relative_position_bias_reads_as_torch(stride_kv):
    """MViT V2's ``_add_rel_pos``: its three products with the gathered tables are FlopCounterMode's FLOPs
    (``forward_against_torch``), each table counted once; a training step is refused, at the first table."""
    shape = (1 + 2 * 4 * 4, 8)
    module = Block(rel_pos=True, with_cls=False, stride_kv=stride_kv)
    forward_against_torch(module, shape, batch=2)
    imported = from_module(module, shape)
    q, k = (2, 2, 2), (2, 4 // stride_kv[1], 4 // stride_kv[2])
    biases = [layer for layer in imported.network.layers if isinstance(layer, PositionBias)]
    # each table (2 * max(q, k) - 1 rows of 16 features) gathered for q x k positions, transposed to (q, 16, k)
    assert [(b.table, b.shape, b.index_buffer) for b in biases] == [
        ((2 * max(a, c) - 1, 16), (a, 16, c), False) for a, c in zip(q, k)]    # T's, H's, W's
    products = [row.macs for row in imported.cost().layers if row.type == "Matmul"]
    # the scores (1 head, the class token and q's positions by the class token and k's, 16 features), the
    # products along H, W and T (each query position by 16 features by that axis's key positions), P V
    assert products == [(1 + prod(q)) * 16 * (1 + prod(k)), prod(q) * 16 * k[1], prod(q) * 16 * k[2],
                        prod(q) * 16 * k[0], (1 + prod(q)) * (1 + prod(k)) * 16]
    message = r"'block_attn_rel_pos_t' \(PositionBias\): PositionBias with index_buffer=False"
    assert alexcost_step(Block(rel_pos=True, with_cls=False, stride_kv=stride_kv), shape).refused is not None
    with pytest.raises(SpecError, match=message):
        training_cost(imported, 2, device="cpu")


def test_a_table_torchvision_would_interpolate_is_refused():
    module = Block(rel_pos=True)
    module.thw = (2, 6, 6)          # read at another size than the block was built for: 5 rows wanted, 3 held
    with pytest.raises(SpecError, match=r"function '_add_rel_pos' .*rel_pos_h .* is not \(5, 16\): torchvision "
                                        r"interpolates it"):
        from_module(module, (1 + 2 * 6 * 6, 8))


def test_a_position_bias_whose_index_is_computed_refuses_a_training_step():
    """``index_buffer=False``: no buffer; autograd keeps the computed index (torch's step measures it), which
    alexcost does not count for a layer with no input: the training step is refused, naming the layer."""
    from alexcost.torch_run.verify_training import measure_training

    net = Network((4, 6, 8), [PositionBias(name="bias", table=(12, 8), shape=(4, 6, 8), index_buffer=False),
                              Add(inputs=("input", "bias"))])
    assert net.cost().totals.buffers == 0
    assert measure_training(net, device="cpu", batch=2).saved_total == 4 * 6 * 8 // 8 * 8   # an int64 per row
    with pytest.raises(SpecError, match=r"'bias' \(PositionBias\): PositionBias with index_buffer=False"):
        training_cost(net, 2, device="cpu")


def _mvit(heads: int):
    """mvit_v2_s's kind of network on 4 frames of 32 x 32 (MViT fixes its input size when built): query pooling,
    key and value pooling, the relative position bias, the shortcut after the class token, a projection."""
    configs = [M.MSBlockConfig(1, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 4, 4]),
               M.MSBlockConfig(heads, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 2, 2])]
    return M.MViT((32, 32), 4, configs, residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True,
                  proj_after_attn=True, num_classes=10).eval()


@pytest.mark.slow
def test_mvit_v2_of_one_head_per_block_reads_exactly():
    """The whole network against torch and fvcore, as the zoo's models are checked."""
    from zoo_cases import assert_exact

    torch.manual_seed(0)
    assert_exact(_mvit(1), (3, 4, 32, 32), "mvit")


@pytest.mark.slow
def test_mvit_v2_pooling_several_heads_reads_exactly():
    """Two heads in the second block, pooled on the heads folded into the batch: against torch and fvcore."""
    from zoo_cases import assert_exact

    torch.manual_seed(0)
    assert_exact(_mvit(2), (3, 4, 32, 32), "mvit")


def test_a_matmul_with_a_parameter_operand_counts_as_torch_and_refuses_a_training_step():
    """``x @ w`` with ``w`` a parameter broadcast over the batch: FlopCounterMode's FLOPs, torch's output shape;
    what autograd keeps for it is not modelled (refused)."""
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost import Matmul, Parameter

    net = Network((3, 5, 6), [Parameter(name="w", shape=(3, 6, 7)), Matmul(inputs=("input", "w"))])
    x, w = torch.randn(2, 3, 5, 6), torch.randn(3, 6, 7)
    with FlopCounterMode(display=False) as counter:
        out = torch.matmul(x, w)
    assert (2, *net.output_shape) == tuple(out.shape)
    assert 2 * net.cost(batch=2).totals.macs == counter.get_total_flops() == 2 * 2 * 3 * 5 * 6 * 7
    with pytest.raises(SpecError, match=r"Matmul with a parameter operand: alexcost does not count what autograd"):
        training_cost(net, 2, device="cpu")
    both = Network((5, 7), [Parameter(name="a", shape=(5, 6)), Parameter(name="b", shape=(6, 7)),
                            Matmul(name="ab", inputs=("a", "b")), Add(inputs=("input", "ab"))])
    assert both.once == (False, False, True, False)   # two parameters: a product once per pass
    assert both.cost(batch=4).totals.macs == 5 * 6 * 7


@pytest.mark.slow
def test_the_first_block_of_mvit_v2_s_reads_as_torch_counts_it():
    """mvit_v2_s's first block at its own size (8 x 56 x 56 tokens after the class token, keys pooled to
    8 x 7 x 7), on meta tensors: parameters, FlopCounterMode's FLOPs and the output shape."""
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = torchvision.models.get_model("mvit_v2_s", weights=None).eval()

    class First(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = model.blocks[0]

        def forward(self, x):
            return self.block(x, (8, 56, 56))[0]

    module = First()
    shape = (1 + 8 * 56 * 56, 96)
    imported = from_module(module, shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.empty(1, *shape, device="meta"))
    cost = imported.cost()
    assert cost.totals.params == sum(p.numel() for p in module.parameters())
    assert 2 * cost.totals.macs == counter.get_total_flops()
    assert (1, *imported.network.output_shape) == tuple(out.shape)


@pytest.mark.parametrize("heads", [1, 2])
def test_verify_agrees_on_mvit_v2_folded_heads_included(heads):
    """verify on the network at batch 2: the pooled heads folded into the batch ((N*h, ...) rows), the items of
    ``unbind`` (one torch call, three layers), the class token read through ``expand``/``unsqueeze``, a helper
    returning ``(tensor, dims)``, and the relative position bias's einsums inside ``_add_rel_pos``, which fvcore
    counts with its einsum handle (numpy's rounded count) and its matmul as the matmul's MACs."""
    import dataclasses

    from alexcost.torch_bridge import from_module
    from alexcost.torch_run.verify import verify_imported

    torch.manual_seed(0)
    module = _mvit(heads)
    read = from_module(module, (3, 4, 32, 32))
    result = verify_imported(read, module, batch=2)
    assert result.ok, result.problems[:5]
    assert len(read.fvcore_calls) == 3 * 2  # two einsums and a matmul per block
    # Without what fvcore counts inside the helper, the three products are 0 to fvcore: its total disagrees.
    blind = verify_imported(dataclasses.replace(read, fvcore_calls=()), module, batch=2)
    assert [p for p in blind.problems if p.startswith("total: alexcost expects fvcore")] and len(blind.problems) == 1
