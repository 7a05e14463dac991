"""A position bias gathered along a later dimension of its table, ``table[:, index]`` (`PositionBias` with
``dim=1``), as LeViT's, EfficientFormer's and EfficientViT's attention compute it (their bias cache keyed by
``x.device`` too): read from torch modules and checked against torch on the CPU (output shape, parameters,
buffers, a training step's FLOPs and saved bytes, `module_step`); its counts by hand arithmetic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Network, PositionBias, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree  # noqa: E402


class LevitAttention(nn.Module):
    """2 heads over a (3, 3) grid of 9 tokens; a (2, 9) bias table gathered by a (9, 9) index buffer as
    ``table[:, index]``, cached by the input's device at inference as timm's attention does."""

    def __init__(self, cached=True):
        super().__init__()
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 5)
        self.attention_biases = nn.Parameter(torch.randn(2, 9))
        coords = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).abs()
        self.register_buffer("idxs", relative[0] * 3 + relative[1], persistent=False)
        self.cache, self.cached = {}, cached

    def biases(self, device):
        if self.training or not self.cached:
            return self.attention_biases[:, self.idxs]
        key = str(device)
        if key not in self.cache:
            self.cache[key] = self.attention_biases[:, self.idxs]
        return self.cache[key]

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 2, 12).permute(0, 2, 1, 3).split([4, 4, 4], dim=3)
        scores = (q @ k.transpose(-2, -1)) * 0.5 + self.biases(x.device)
        out = (scores.softmax(-1) @ v).transpose(1, 2)
        return self.out(out.reshape(b, n, 8))


@pytest.mark.parametrize("cached", [True, False])
def test_a_bias_gathered_along_dim_1_reads_and_trains_as_torch(cached):
    torch.manual_seed(0)
    module = LevitAttention(cached).eval()
    imported = from_module(module, (9, 8))
    module.cache.clear()  # what the trace put there
    biases = [layer for layer in imported.network.layers if isinstance(layer, PositionBias)]
    assert biases == [PositionBias(name=biases[0].name, table=(2, 9), shape=(2, 9, 9), dim=1)]
    assert imported.params == sum(p.numel() for p in module.parameters()) == 8 * 24 + 24 + 8 * 5 + 5 + 2 * 9
    assert biases[0].buffers(()) == module.idxs.numel() == 81
    out = module(torch.randn(2, 9, 8))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    theirs, ours = agree(LevitAttention(cached), (9, 8))
    if cached:  # the training step takes the other branch of self.training: refused, as for any such module
        assert theirs.refused is None and "tests self.training" in ours.refused
        return
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_timm_efficientformer_attention_reads_as_torch_counts_it():
    efficientformer = pytest.importorskip("timm.models.efficientformer")
    from torch.utils.flop_counter import FlopCounterMode

    module = efficientformer.Attention(dim=16, key_dim=4, num_heads=2, attn_ratio=2, resolution=3)
    module.eval()  # (timm's train() returns nothing)
    imported = from_module(module, (9, 16))
    biases = [layer for layer in imported.network.layers if isinstance(layer, PositionBias)]
    assert [layer.dim for layer in biases] == [1] and biases[0].table == tuple(module.attention_biases.shape)
    assert imported.params == sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counted:
        out = module(torch.randn(2, 9, 16))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    assert counted.get_total_flops() == 2 * 2 * imported.cost().totals.macs


@pytest.mark.parametrize("dtype", [torch.bool, torch.int32])
def test_an_index_other_than_int64_is_refused(dtype):
    """A PositionBias sizes its index as int64: a mask or an int32 index is refused, naming the buffer."""
    module = LevitAttention(cached=False)
    module.idxs = module.idxs.to(dtype) if dtype is torch.int32 else module.idxs > 0
    with pytest.raises(SpecError, match=r"function 'getitem' .* with the buffer 'idxs' of torch\.(bool|int32); "
                                        r"alexcost reads a gathered table's index as torch.int64 only"):
        from_module(module, (9, 8))


def test_counts_by_hand():
    """``prod(table)`` parameters; the index: one int64 per slice along ``dim`` gathered; no ops; backward:
    one add per element of ``shape`` scattered back."""
    layer = PositionBias(table=(2, 9), shape=(2, 9, 9), dim=1)
    assert layer.weight_params(()) == 2 * 9 and layer.buffers(()) == 2 * 9 * 9 // 2
    assert layer.buffer_bytes((), 4) == 81 * 8
    assert layer.backward_other_ops((), (2, 9, 9), Grads((), True, False), 3) == 2 * 9 * 9
    assert PositionBias(table=(2, 9), shape=(2, 9, 9), dim=-1).dim == 1
    with pytest.raises(SpecError, match=r"dim=2 is out of range"):
        PositionBias(table=(2, 9), shape=(2, 9, 9), dim=2)
    with pytest.raises(SpecError, match=r"rows of table \[2, 9\] \(9 elements each\) cannot make"):
        PositionBias(table=(2, 9), shape=(2, 5))
    with pytest.raises(SpecError, match=r"slices along dim 1 of table \[2, 9\] \(2 elements each\) cannot"):
        PositionBias(table=(2, 9), shape=(3, 3), dim=1)
    net = Network((2, 9, 9), [PositionBias(name="bias", table=(2, 9), shape=(2, 9, 9), dim=1)])
    assert net.cost().totals.params == 18


def test_the_torch_module_built_from_it_gathers_columns():
    from alexcost.torch_bridge.modules import BUILDERS

    built = BUILDERS[PositionBias](PositionBias(table=(2, 9), shape=(2, 9, 9), dim=1), None)
    assert tuple(built().shape) == (2, 9, 9) and built.index.numel() == 81
