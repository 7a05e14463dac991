"""verify where fx nodes and layers do not pair one to one: one torch call making several layers
(``torch.einsum``: Transpose + Matmul; ``torch.stack``: Unsqueeze per tensor + Cat), several calls making
one layer (a position bias gathered, viewed and permuted from its table; torchvision's whole window
attention), and ``x.expand_as(y)`` reading ``y`` for its shape only. Each group is compared on its sums;
a wrong count still fails. Expected numbers are hand arithmetic, torch's FlopCounterMode or fvcore.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Matmul  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.torch_run.measure import FVCORE_DEPRECATION, measure_graph  # noqa: E402
from alexcost.torch_run.reconcile import fvcore_einsum, reconcile  # noqa: E402
from alexcost.torch_run.verify import render, verify_module  # noqa: E402
from module_step import relative_position_index  # noqa: E402


class Mixed(nn.Module):
    """Two heads over 16 tokens of 8: scores by einsum plus a bias gathered from a (49, 2) table as MaxViT
    does, an output projection, a sum expanded back with ``expand_as``, and both stacked."""

    def __init__(self):
        super().__init__()
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, 5)
        self.table = nn.Parameter(torch.randn(49, 2))
        self.register_buffer("index", relative_position_index(4))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 2, 12).permute(0, 2, 1, 3).chunk(3, dim=-1)
        bias = self.table[self.index.view(-1)].view(16, 16, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        scores = torch.einsum("bhid,bhjd->bhij", q, k) + bias
        y = self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, 8))
        s = y.sum(1, keepdim=True).expand_as(y)
        return torch.stack([y, s], dim=1)


B = 3  # batch


def _by_name(result):
    return {c.name: c for c in result.layers}


def test_groups_of_nodes_and_layers_agree_with_torch():
    torch.manual_seed(0)
    module = Mixed().eval()
    result = verify_module(module, (16, 8), batch=B)
    assert result.ok, result.problems
    layers = _by_name(result)
    # einsum: one call, two layers; the measurement is the Matmul's (the last), the Transpose holds none
    assert (layers["transpose"].type, layers["einsum"].type) == ("Transpose", "Matmul")
    assert layers["transpose"].torch is None and layers["transpose"].measured_shape is None
    assert layers["einsum"].torch == 2 * B * 2 * 16 * 16 * 4  # 2 per MAC: b, heads, i, j, d
    assert layers["einsum"].measured_shape == (2, 16, 16)
    # the position bias: gather, view, permute, contiguous, unsqueeze, one layer owning the table
    assert layers["table"].type == "PositionBias" and layers["table"].measured_params == 49 * 2
    # stack: Unsqueeze per tensor, then Cat holding the call's output
    assert [layers[n].type for n in ("stack", "stack_2", "stack_3")] == ["Unsqueeze", "Unsqueeze", "Cat"]
    assert layers["stack_3"].measured_shape == (2, 16, 5) and layers["stack"].measured_shape is None
    # expand_as reads y for its shape only
    assert layers["expand_as"].measured_shape == (16, 5)
    # bias adds: one per output element of each linear, seen in the aten ops that add the bias
    assert layers["qkv"].measured_bias_adds == B * 16 * 24 and layers["out"].measured_bias_adds == B * 16 * 5
    assert result.measured_params == sum(p.numel() for p in module.parameters())
    assert layers["stack_2"].measured_with == ("stack", "stack_2", "stack_3") and layers["qkv"].measured_with == ()
    text = render(result, "table")
    assert "ok (measured with einsum: one torch call)" in text and "ok (the sum over 3 layers: one torch call)" in text
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.randn(B, 16, 8))
    assert result.torch_total == counter.get_total_flops() == 2 * B * (16 * 8 * 24 + 2 * 2 * 16 * 16 * 4 + 16 * 8 * 5)


def test_a_wrong_count_in_a_group_is_a_mismatch(monkeypatch):
    """The Matmul kind made to declare one FLOP too many: the einsum group's sum disagrees with torch."""
    module = Mixed().eval()
    right = Matmul.torch_flops
    monkeypatch.setattr(Matmul, "torch_flops", lambda self, x, y: right(self, x, y) + 1)
    result = verify_module(module, (16, 8), batch=B)
    assert not result.ok
    flops = 2 * B * 2 * 16 * 16 * 4
    assert (f"einsum: FLOPs: alexcost {flops + B:,} (the sum over transpose, einsum: one torch call), "
            f"torch's counter {flops:,}") in result.problems
    assert "MISMATCH einsum" in render(result, "table")


def test_a_measurement_that_differs_from_the_group_is_a_mismatch():
    """The group's measured parameters, FLOPs and bias adds each changed by one: each is reported."""
    from dataclasses import replace

    module = Mixed().eval()
    imported = from_module(module, (16, 8))
    measured = measure_graph(imported, module, torch.randn(1, 16, 8), use_fvcore=False)
    cost = imported.cost()
    assert reconcile(cost, measured, imported.first_use).ok
    cat = imported.network.names.index("stack_3")
    bump = lambda values: tuple(v + 1 if i == cat else v for i, v in enumerate(values))  # noqa: E731
    for field in ("params", "torch_flops", "bias_adds"):
        result = reconcile(cost, replace(measured, **{field: bump(getattr(measured, field))}), imported.first_use)
        assert [p for p in result.problems if p.startswith("stack_3")], field
        assert "the sum over stack, stack_2, stack_3: one torch call" in " ".join(result.problems)


@pytest.mark.parametrize("equation, a, b", [
    ("bhid,bhjd->bhij", (2, 3, 7, 5), (2, 3, 11, 5)),
    ("bhid,bhjd->bhij", (1, 64, 49, 32), (1, 64, 49, 32)),
    ("abc,abd->acd", (4, 9, 6), (4, 9, 13)),  # fvcore's special case: exact
    ("nqc,nkc->nqk", (3, 17, 8), (3, 19, 8)),
])
def test_fvcore_counts_einsum_as_its_rule_says(equation, a, b):
    """fvcore counts an einsum through numpy's printed FLOPs, rounded to 4 significant digits."""
    fvcore = pytest.importorskip("fvcore.nn")

    class Einsum(nn.Module):
        def forward(self, x, y):
            return torch.einsum(equation, x, y)

    sizes = dict(zip(equation.split("->")[0].replace(",", ""), (*a, *b)))
    macs = 1
    for size in sizes.values():
        macs *= size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FVCORE_DEPRECATION)
        analysis = fvcore.FlopCountAnalysis(Einsum(), (torch.randn(a), torch.randn(b)))
        analysis.unsupported_ops_warnings(False)
        counted = analysis.total()
    assert fvcore_einsum(equation, macs) == counted
    assert abs(counted - macs) <= macs / 1000  # rounded, never far


def test_swin_t_verifies_at_a_small_input():
    """Window attention read as one layer from two calls (its position bias, then the attention),
    and the patch merging's pad, slices and cat from one call."""
    models = pytest.importorskip("torchvision.models")
    module = models.swin_t(weights=None).eval()
    result = verify_module(module, (3, 112, 112))
    assert result.ok, result.problems[:5]
    attention = [c for c in result.layers if c.type == "WindowAttention"]
    assert len(attention) == 12
    first = attention[0]  # 28 * 28 tokens of 96 channels: qkv's bias (3 * 96) and proj's (96) per token
    assert first.measured_bias_adds == 28 * 28 * (3 * 96 + 96)
    table = (2 * 7 - 1) ** 2 * 3
    assert first.measured_params == 3 * 96 * 96 + 3 * 96 + 96 * 96 + 96 + table
    assert result.measured_params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, shape, options", [
    ("maxvit_t", (3, 224, 224), {}),  # its only input size
    ("vit_b_16", (3, 32, 32), {"image_size": 32}),  # 2 * 2 patches and the class token
])
def test_torchvision_transformers_verify(name, shape, options):
    """maxvit_t: position biases gathered from their tables, einsums (fvcore rounds their count);
    vit_b_16: the class token expanded to the batch and concatenated."""
    models = pytest.importorskip("torchvision.models")
    module = getattr(models, name)(weights=None, **options).eval()
    result = verify_module(module, shape)
    assert result.ok, result.problems[:5]
    assert result.measured_params == sum(p.numel() for p in module.parameters())


class Unbound(nn.Module):
    """timm's attention: qkv permuted, then unbound into q, k and v (read as a Chunk, a Squeeze and a Permute
    per tensor, all made at the permute), each through its own module."""

    def __init__(self):
        super().__init__()
        self.qkv, self.q_norm, self.k_norm = nn.Linear(8, 24), nn.Identity(), nn.Identity()

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_an_unbind_after_a_permute_is_measured_with_it():
    module = Unbound().eval()
    result = verify_module(module, (6, 8), batch=B)
    assert result.ok, result.problems
    layers = _by_name(result)
    assert layers["q_norm"].measured_shape == (2, 6, 4)
    last = [c for c in result.layers if c.measured_with and c.measured_with[-1] == c.name]
    assert len(last) == 1 and last[0].measured_shape == (2, 6, 4)  # v: the unbind's last item
    assert result.torch_total == 2 * B * (6 * 8 * 24 + 2 * 2 * 6 * 6 * 4)  # qkv; q k^T and attn v per head
