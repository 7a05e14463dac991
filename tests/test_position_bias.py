"""A relative position bias gathered from its table by a fixed index (`PositionBias`), as MaxViT's attention
computes it, and ``torch.swapaxes``: read from torch modules and checked against torch on the CPU (output
shape, parameters, a training step's FLOPs and saved bytes, `module_step`); what stays refused.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import PositionBias, SpecError, Transpose  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree, relative_position_index  # noqa: E402


class RelativeAttention(nn.Module):
    """Scores of 2 heads over a (4, 4) window of 16 tokens, plus a bias gathered from a (49, 2) table by a
    (16, 16) index buffer, then viewed, permuted, copied and unsqueezed as torchvision's MaxViT does."""

    def __init__(self, combine=lambda scores, bias: scores + bias, swap=False):
        super().__init__()
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 5)
        self.table = nn.Parameter(torch.randn(49, 2))
        self.register_buffer("index", relative_position_index(4))
        self.combine, self.swap = combine, swap

    def bias(self):
        rows = self.table[self.index.view(-1)].view(16, 16, -1)
        return rows.permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 2, 12).permute(0, 2, 1, 3).chunk(3, dim=-1)   # (b, 2, 16, 4) each
        scores = self.combine(torch.einsum("bhid,bhjd->bhij", q * 0.5, k), self.bias())
        out = scores.softmax(-1) @ v
        out = torch.swapaxes(out, 1, 2) if self.swap else out.transpose(1, 2)
        return self.out(out.reshape(b, n, 8))


@pytest.mark.parametrize("swap", [False, True])
def test_a_gathered_position_bias_reads_and_trains_as_torch(swap):
    torch.manual_seed(0)
    module = RelativeAttention(swap=swap).eval()
    imported = from_module(module, (16, 8))
    biases = [layer for layer in imported.network.layers if isinstance(layer, PositionBias)]
    assert biases == [PositionBias(name=biases[0].name, table=(49, 2), shape=(1, 2, 16, 16))]
    assert imported.params == sum(p.numel() for p in module.parameters()) == 8 * 24 + 24 + 8 * 5 + 5 + 49 * 2
    assert sum(isinstance(layer, Transpose) for layer in imported.network.layers) == 2   # k's, then the heads'
    out = module(torch.randn(2, 16, 8))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    theirs, ours = agree(RelativeAttention(swap=swap), (16, 8))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_counts_by_hand():
    """The table's elements are its parameters; the index, one int64 per row gathered, its buffer; the
    gradient is scattered back into the table, one add per element gathered."""
    layer = PositionBias(table=(49, 2), shape=(1, 2, 16, 16))
    assert layer.output_shape(()) == (1, 2, 16, 16)
    assert layer.weight_params(()) == 49 * 2 and layer.other_ops((), layer.shape) == 0
    assert layer.buffers(()) == 16 * 16 and layer.buffer_bytes((), 4) == 16 * 16 * 8
    assert layer.backward_other_ops((), layer.shape, Grads((), True, False), 4) == 2 * 16 * 16
    assert layer.backward_other_ops((), layer.shape, Grads((), False, False), 4) == 0
    with pytest.raises(SpecError, match=r"rows of table \[49, 3\] \(3 elements each\) cannot make a tensor"):
        PositionBias(table=(49, 3), shape=(1, 2, 16, 16))


@pytest.mark.parametrize("combine, message", [
    (lambda scores, bias: scores * bias, r"function 'mul' .* multiplies by the parameter 'table' gathered by an "
                                         r"index; alexcost reads a gathered table only as an operand of \+"),
    (lambda scores, bias: scores + bias.sum(), r"method 'sum'|function 'sum'"),
])
def test_other_uses_of_a_gathered_table_are_refused(combine, message):
    with pytest.raises(SpecError, match=message):
        from_module(RelativeAttention(combine), (16, 8))


def test_a_table_indexed_by_other_than_an_integer_buffer_is_refused():
    class ByFloats(RelativeAttention):
        def __init__(self):
            super().__init__()
            self.register_buffer("weights", torch.ones(4))

        def bias(self):
            return self.table[self.weights].view(1, 2, 1, 1)

    with pytest.raises(SpecError, match=r"indexes the parameter 'table' with the buffer 'weights'; alexcost reads a "
                                        r"parameter indexed by an integer buffer only"):
        from_module(ByFloats(), (16, 8))


@pytest.mark.skipif(__import__("os").environ.get("ALEXCOST_ZOO") != "all",
                    reason="ALEXCOST_ZOO=all runs torchvision's maxvit_t training step (about 25 s on a CPU)")
def test_maxvit_training_step_matches_torch():
    """torchvision's maxvit_t at 224 x 224, batch 2, in training mode (stochastic depth on): forward and
    backward FLOPs and the bytes autograd keeps, as torch's."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    theirs, ours = agree(torchvision.models.maxvit_t(), (3, 224, 224), batch=2)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs
