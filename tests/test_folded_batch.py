"""Windows and heads folded into the batch (``(N*k, ...)`` tensors), read from torch modules against torch.

Window attention partitions each sample into ``k`` windows with ``view(-1, w, w, C)``, attends within
each, and puts them back with a view whose first size is the batch again. Each module below is read by
``from_module``; its output shape and parameters are torch's, its forward MACs FlopCounterMode's FLOPs / 2
(attention as matrix products), and a training step's backward FLOPs and saved bytes those of a real CPU
step (`module_step`). What alexcost does not read on a folded tensor is refused at its node.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, alexcost_step, attention_step_agrees, step_agrees, torch_attention_step  # noqa: E402
from module_step import forward_against_torch as shared_forward_against_torch  # noqa: E402


def partition(x, w):
    """timm's ``window_partition``: (B, H, W, C) to (B*nW, w, w, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, w, w, C)


def reverse(windows, w, H, W):
    """timm's ``window_reverse``: (B*nW, w, w, C) to (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // w, W // w, w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


class WindowAttention(nn.Module):
    """timm's Swin window attention, written out: qkv by reshape/permute/unbind on (B*nW, N, C), scores by
    matmul with a bias parameter, softmax, and the heads merged back; ``fused``: F.scaled_dot_product_attention."""

    def __init__(self, dim=16, heads=2, window=2, fused=False):
        super().__init__()
        self.heads, self.window, self.fused = heads, window, fused
        self.scale = (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.randn(1, heads, window * window, window * window))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = self.softmax(attn + self.bias)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B_, N, -1)
        return self.proj(x)


class SwinBlock(nn.Module):
    """A Swin block without shift: norm, partition, window attention, reverse, residual, MLP."""

    def __init__(self, dim=16, heads=2, window=2, fused=False):
        super().__init__()
        self.window = window
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, fused)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):                 # x: (N, H, W, C)
        B, H, W, C = x.shape
        w = self.window
        windows = partition(self.norm1(x), w).view(-1, w * w, C)
        windows = self.attn(windows).view(-1, w, w, C)
        x = x + reverse(windows, w, H, W)
        return x + self.mlp(self.norm2(x))


class Heads(nn.Module):
    """Heads folded into the batch by a view of (N, L, h, d) permuted: (N*h, L, d), then bmm-style matmul."""

    def __init__(self, dim=12, heads=3, fused=False):
        super().__init__()
        self.heads, self.qkv, self.proj, self.fused = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), fused

    def forward(self, x):                 # x: (N, L, C)
        B, L, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.view(B, L, self.heads, -1).transpose(1, 2).reshape(-1, L, C // self.heads) for t in (q, k, v))
        if self.fused:                    # on (N*h, L, d): three dimensions, as torch's kernel takes them
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v
        out = out.view(B, self.heads, L, -1).transpose(1, 2).reshape(B, L, C)
        return self.proj(out)


CASES = {
    "window attention": (lambda: WindowAttention(), (4, 16)),  # the input itself is (N, 4, 16): no fold
    "swin block": (lambda: SwinBlock(), (4, 6, 16)),
    "swin block, fused": (lambda: SwinBlock(fused=True), (4, 6, 16)),
    "swin block, window 3": (lambda: SwinBlock(dim=8, heads=4, window=3), (6, 3, 8)),
    "heads in the batch": (lambda: Heads(), (5, 12)),
    "heads in the batch, attention of three dims": (lambda: Heads(fused=True), (5, 12)),
}


def forward_against_torch(module, shape):
    """At a batch of two: the windows of two samples folded together, as torch folds them."""
    return shared_forward_against_torch(module, shape, batch=2)


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    forward_against_torch(build(), shape)


@pytest.mark.parametrize("case", [c for c in CASES if "fused" not in c and "attention of" not in c])
def test_training_step_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    attention_step_agrees(build(), shape)


@pytest.mark.parametrize("build, shape", [(lambda: SwinBlock(fused=True), (4, 6, 16)),
                                          (lambda: Heads(fused=True), (5, 12))])
def test_training_step_of_attention_on_folded_tensors_is_refused(build, shape):
    """F.scaled_dot_product_attention on (N*k, ...): torch runs it (its forward is read exactly, above), but
    what autograd keeps for its kernel there is not what it keeps per sample: the step is refused."""
    torch.manual_seed(0)
    module = build()
    theirs, ours = torch_attention_step(module, shape), alexcost_step(module, shape)
    assert theirs.refused is None
    assert ours.refused is not None and "folded" in ours.refused




@pytest.mark.parametrize("config", [
    dict(img_size=56, depths=(1, 1), num_heads=(2, 4), embed_dim=32),
    dict(img_size=32, window_size=4, patch_size=2, depths=(1, 1, 1), num_heads=(1, 2, 2), embed_dim=16),
])
def test_timm_swin_without_shift_matches_torch(config):
    """timm's Swin, one block a stage (no shifted windows): window partition, attention, reverse."""
    timm = pytest.importorskip("timm")
    module = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, **config)
    size = config["img_size"]
    forward_against_torch(module, (3, size, size))


def test_timm_swin_training_step_matches_torch():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    module = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, img_size=32,
                               window_size=4, patch_size=2, depths=(1, 1), num_heads=(1, 2), embed_dim=16,
                               drop_path_rate=0.0)
    theirs, ours = torch_attention_step(module, (3, 32, 32)), alexcost_step(module, (3, 32, 32))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


class Folded(nn.Module):
    """Windows folded into the batch, then ``then`` on the folded tensor ``w`` (and the input ``x``)."""

    def __init__(self, then):
        super().__init__()
        self.then = then

    def forward(self, x):                 # x: (N, 4, 4, 8)
        w = x.view(-1, 2, 2, 4, 8)        # (N, 2, 2, 4, 8): the batch in front
        w = w.reshape(-1, 4, 8)           # (N*4, 4, 8)
        return self.then(w, x)


REFUSED = {
    "a reduction over the folded dim": (lambda w, x: w.sum(0), "the batch is folded"),
    "a softmax left at its default dim": (lambda w, x: F.softmax(w), "dim=None"),
    "a transpose of the folded dim": (lambda w, x: w.transpose(0, 1), "the batch is folded"),
    "a folded and a plain tensor": (lambda w, x: w + x.view(x.size(0), 4, 4, 8)[:, 0], "folded"),
    "arithmetic on the folded size": (lambda w, x: w.view(w.shape[0] // 3, -1), "batch size"),
    "indexing the folded dim": (lambda w, x: w[0], "keeps its first dimension whole"),
    "a folded output": (lambda w, x: w * 2, "returns a tensor"),
    "a permute moving the folded dim": (lambda w, x: w.permute(1, 0, 2).sum(-1), "batch"),
    "a flatten from dim 0": (lambda w, x: torch.flatten(w), "folded"),
    "a view into a size the sample does not divide": (lambda w, x: w.view(-1, 3), "do not keep the batch"),
    "a pad of the folded dim": (lambda w, x: F.pad(w, [0, 0, 0, 0, 1, 0]), "pads a tensor whose batch is folded"),
    "an expand of the folded dim": (lambda w, x: w[:, None].expand(2, 2, -1, -1), "expands a tensor"),
    "an expand adding a dim": (lambda w, x: w.expand(2, -1, -1, -1), "expands a tensor"),
    "a reflecting pad": (lambda w, x: F.pad(w, [1, 1], mode="reflect"), "constant pad"),
    "a pad of a tensor not contiguous": (lambda w, x: F.pad(w.transpose(1, 2), [1, 1]), "where it is contiguous"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_a_folded_tensor_cannot_do_is_refused_at_the_node(case):
    then, message = REFUSED[case]
    with pytest.raises(SpecError, match=message) as err:
        from_module(Folded(then), (4, 4, 8))
    assert "fx node" in str(err.value)


def test_indexing_that_keeps_the_folded_dim_whole_reads_as_torch():
    """``w[:, 0]``, ``w[:, 1:, None]`` of (N*4, 4, 8): per sample, the same index after the fold's dim."""
    for then in (lambda w, x: w[:, 0], lambda w, x: w[:, 1:, None] * 2):
        torch.manual_seed(0)
        forward_against_torch(Folded(lambda w, x: then(w, x).reshape(x.shape[0], -1)), (4, 4, 8))
    step_agrees(Around(lambda y: (y[:, None, :, None] * 2).flatten(1, 3)), (3, 6))     # None: views, as torch's


def test_a_constant_pad_of_folded_rows_reads_and_trains_as_torch():
    """``F.pad(w, [0, 1, 1, 0])`` of (N*4, 4, 8): per sample the same pad of each of the 4 rows, (4, 5, 9);
    a training step as torch's (halo attention pads its folded logits so)."""
    cost = forward_against_torch(Folded(lambda w, x: F.pad(w, [0, 1, 1, 0]).reshape(x.shape[0], -1)), (4, 4, 8))
    assert cost.network.output_shape == (4 * 5 * 9,)
    step_agrees(Around(lambda y: F.pad(y.reshape(-1, 3, 3), [0, 0, 0, 1]).reshape(y.shape[0], -1, 6)), (3, 6))


def test_an_expand_keeping_the_folded_dim_reads_and_trains_as_torch():
    """``w[:, :, None].expand(-1, -1, 3, -1)`` of (N*4, 4, 8): per sample (4, 4, 3, 8), a view; a training step
    as torch's (halo attention tiles its folded logits so)."""
    cost = forward_against_torch(
        Folded(lambda w, x: (w[:, :, None].expand(-1, -1, 3, -1) * 2).reshape(x.shape[0], -1)), (4, 4, 8))
    assert cost.network.output_shape == (4 * 4 * 3 * 8,)
    step_agrees(Around(lambda y: (y.reshape(-1, 1, 6).expand(-1, 2, -1) * 2).reshape(y.shape[0], -1, 6)), (3, 6))


def test_folded_sizes_give_back_the_fold():
    """``x.shape[0]`` of a folded tensor given back to ``view``: the same fold (torch's shapes)."""
    class Module(nn.Module):
        def forward(self, x):                     # x: (N, 6, 4)
            w = x.reshape(-1, 2, 4)               # (N*3, 2, 4)
            w = w.view(w.shape[0], 8) * 2         # (N*3, 8)
            return w.view(-1, 24)                 # (N, 24)

    module = Module()
    imported = from_module(module, (6, 4))
    assert (5, *imported.network.output_shape) == tuple(module(torch.randn(5, 6, 4)).shape)


class SizeArithmetic(nn.Module):
    """Sizes computed from the batch: ``B * k`` folds, ``(B*k) // n`` with ``n`` dividing ``k`` refolds."""

    def forward(self, x):                             # x: (N, 6, 4)
        B = x.shape[0]
        w = x.view(B * 3, 2, 4)                       # (N*3, 2, 4)
        w = F.normalize(w, dim=-1)
        w = w.reshape(w.shape[0] // 3, 3, 8)          # (N, 3, 8)
        return w.sum(-1)


def test_sizes_computed_from_the_batch_fold_as_torch_does():
    forward_against_torch(SizeArithmetic(), (6, 4))


class Restored(nn.Module):
    """timm's MaxViT attention: the sizes before the last kept (``x.shape[:-1]``, the folded batch among them)
    and given back with another last size (``restore_shape + (-1,)``), after heads split and merged."""

    def __init__(self):
        super().__init__()
        self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)

    def forward(self, x):                             # x: (N, 4, 2, 8)
        w = x.reshape(-1, 2, 8)                       # (N*4, 2, 8)
        restore = w.shape[:-1]
        q, k, v = self.qkv(w).reshape(w.shape[0], -1, 3, 2, 4).transpose(1, 3).unbind(2)
        y = ((q @ k.transpose(-2, -1)).softmax(-1) @ v).transpose(1, 2).reshape(restore + (-1,))
        return self.proj(y).reshape(x.shape[0], -1)


def test_sizes_concatenated_keep_the_batch_as_it_was():
    torch.manual_seed(0)
    forward_against_torch(Restored(), (4, 2, 8))
    torch.manual_seed(0)
    attention_step_agrees(Restored(), (4, 2, 8))
    plain = Around(lambda y: (y.reshape(y.shape[:-1] + (2, -1)) * 2).flatten(-2))   # the batch in front
    torch.manual_seed(0)
    forward_against_torch(plain, (3, 6))
    step_agrees(plain, (3, 6))


@pytest.mark.parametrize("then, message", [
    (lambda w: w.view(w.shape[0] // 2, -1), "batch size"),        # 3 windows a sample: not divisible by 2
    (lambda w: w.view(w.shape[0] + 1, -1), "batch size"),
])
def test_sizes_that_depend_on_the_batch_stay_refused(then, message):
    class Module(nn.Module):
        def forward(self, x):
            return then(x.view(x.shape[0] * 3, 2, 4)).view(x.shape[0], -1)

    with pytest.raises(SpecError, match=message):
        from_module(Module(), (6, 4))


def test_folded_operands_of_other_ranks_are_refused():
    """(N*4, 8) + (N*4, 4, 8): torch broadcasts N*4 against 4 (it fails but for one sample); refused."""
    class Module(nn.Module):
        def forward(self, x):                     # x: (N, 4, 4, 8)
            w = x.reshape(-1, 4, 8)               # (N*4, 4, 8)
            return (w.mean(1) + w).view(x.shape[0], -1)

    with pytest.raises(SpecError, match=r"of \[2, 3\] dimensions"):
        from_module(Module(), (4, 4, 8))


class Rows(nn.Module):
    """A sample's ``k`` rows of ``(C, ...)`` folded into the batch (``(N*k, C, ...)``, as MViT folds its heads),
    ``module`` on them, and the batch unfolded again; the input scaled by a parameter first (a gradient to pass
    through the module)."""

    def __init__(self, module, k: int = 4):
        super().__init__()
        self.module, self.k = module, k
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):                         # x: (N, k*C, ...)
        x = x * self.scale
        rows = x.reshape(x.shape[0] * self.k, -1, *x.shape[2:])
        return self.module(rows).reshape(x.shape[0], -1)


ROWS = {
    "Conv2d": (lambda: nn.Conv2d(3, 5, 3, padding=1), (12, 5, 5)),
    "depthwise Conv3d": (lambda: nn.Conv3d(3, 3, 3, stride=(1, 2, 2), padding=1, groups=3, bias=False),
                         (12, 2, 5, 5)),
    "Conv1d": (lambda: nn.Conv1d(3, 6, 3, groups=3), (12, 7)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (12, 4, 6)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (12, 5, 5)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(1), (12, 4, 4)),
    "GroupNorm": (lambda: nn.GroupNorm(1, 3), (12, 4, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), (12, 4, 4)),
    "BatchNorm1d of rows of (C, L)": (lambda: nn.BatchNorm1d(3), (12, 8)),
}
"""Modules on 4 rows a sample, each of 3 channels."""


@pytest.mark.parametrize("case", ROWS)
def test_a_module_on_folded_rows_reads_and_trains_as_torch(case):
    """Per sample, the module on each of the 4 rows (a `Folded` layer): torch's output shape, parameters and
    FLOPs, and a real CPU training step's (batch norm's statistics over the N*4 rows)."""
    build, shape = ROWS[case]
    torch.manual_seed(0)
    forward_against_torch(Rows(build()), shape)
    torch.manual_seed(0)
    step_agrees(Rows(build()), shape)


def test_a_convolution_on_folded_rows_counts_k_times_one_row():
    """Conv2d(3, 5, 3, padding=1) on 4 rows of 3 x 5 x 5: 4 * (5*5*5 outputs * 3*3*3) MACs a sample,
    its (3*3*3 + 1)*5 parameters once."""
    from alexcost.layers import Folded

    imported = from_module(Rows(nn.Conv2d(3, 5, 3, padding=1)), (12, 5, 5))
    folded = [layer for layer in imported.network.layers if isinstance(layer, Folded)]
    assert [type(layer.layer).__name__ for layer in folded] == ["Conv2d"]
    cost = imported.cost()
    assert cost.totals.macs == 4 * (5 * 5 * 5) * (3 * 3 * 3)
    assert cost.totals.params == (3 * 3 * 3 + 1) * 5 + 1       # and the scale


class ChannelsLastRows(nn.Module):
    """``module`` on (N*4, 3, 5, 5) rows laid out channels-last (``order``: how the (N*4, 5, 5, 3) rows are
    permuted), as Hiera pools its windows; back to (N, 4, 5', 5', 3) as it does."""

    def __init__(self, module, order=(0, 3, 1, 2)):
        super().__init__()
        self.module, self.order, self.scale = module, order, nn.Parameter(torch.ones(3))

    def forward(self, x):                         # x: (N, 4, 5, 5, 3)
        rows = (x * self.scale).reshape(-1, 5, 5, 3).permute(*self.order)
        return self.module(rows).permute(0, 2, 3, 1).reshape(x.shape[0], -1)


@pytest.mark.parametrize("build", [lambda: nn.MaxPool2d(2), lambda: nn.Conv2d(3, 3, 1), lambda: nn.AvgPool2d(2)])
def test_a_module_on_channels_last_folded_rows_reads_and_trains_as_torch(build):
    """torch's output of a pool or convolution of channels-last rows is channels-last too: the shape,
    parameters and FLOPs torch's, and a real CPU training step's backward FLOPs and saved bytes."""
    torch.manual_seed(0)
    forward_against_torch(ChannelsLastRows(build()), (4, 5, 5, 3))
    torch.manual_seed(0)
    step_agrees(ChannelsLastRows(build()), (4, 5, 5, 3))


def test_a_module_on_folded_rows_neither_contiguous_nor_channels_last_is_refused():
    with pytest.raises(SpecError, match=r"module 'module' \(Conv2d\) .*neither contiguous nor channels-last"):
        from_module(ChannelsLastRows(nn.Conv2d(3, 3, 1), order=(0, 3, 2, 1)), (4, 5, 5, 3))


def test_modules_of_several_tensors_are_refused_on_a_folded_tensor():
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):                     # x: (N, 4, 4, 8)
            w = x.reshape(-1, 4, 8)
            return self.attn(w, w, w)[0].view(x.shape[0], -1)

    with pytest.raises(SpecError, match="modules of one tensor in and one out"):
        from_module(Module(), (4, 4, 8))


class DecomposedBias(nn.Module):
    """timm's SAM attention on a 4 x 4 grid, 2 heads of 4: the heads folded into the batch (``B * heads``), its
    decomposed relative position bias (einsums of the folded queries with tables whose index torch computes in
    the forward pass, ``[:, :, :, :, None]`` and ``[:, :, :, None, :]`` added), then attention."""

    def __init__(self):
        super().__init__()
        self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)
        self.rel_pos_h, self.rel_pos_w = nn.Parameter(torch.randn(7, 4)), nn.Parameter(torch.randn(7, 4))

    def forward(self, x):                         # x: (N, 4, 4, 8)
        from timm.models.vision_transformer_sam import get_decomposed_rel_pos_bias

        B, H, W, _ = x.shape
        qkv = self.qkv(x.reshape(B, H * W, -1)).view(B, H * W, 3, 2, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * 2, H * W, -1).unbind(0)
        bias = get_decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (H, W), (H, W))
        attn = ((q * 0.5) @ k.transpose(-2, -1) + bias).softmax(dim=-1)
        y = (attn @ v).view(B, 2, H * W, -1).transpose(1, 2).reshape(B, H * W, -1)
        return self.proj(y).view(B // 1, H, W, -1)


def test_timm_sam_decomposed_bias_on_folded_heads_matches_torch():
    """Forward: torch's FLOPs and shapes; the tables' index is no buffer of the module (torch computes it)."""
    pytest.importorskip("timm")
    torch.manual_seed(0)
    cost = forward_against_torch(DecomposedBias(), (4, 4, 8))
    assert cost.totals.buffers == sum(b.numel() for b in DecomposedBias().buffers()) == 0
    products = [row.macs for row in cost.layers if row.type == "Matmul"]
    # 2 samples of 2 heads: along H and along W (16 queries x 4 features x 4 keys), q k^T (16 x 4 x 16), P v
    assert products == [2 * 2 * 16 * 4 * 4, 2 * 2 * 16 * 4 * 4, 2 * 2 * 16 * 4 * 16, 2 * 2 * 16 * 16 * 4]
    assert alexcost_step(DecomposedBias(), (4, 4, 8)).refused is not None


def _davit():
    timm = pytest.importorskip("timm")
    return timm.create_model("davit_tiny", pretrained=False, num_classes=10, depths=(1, 1, 1, 1),
                             embed_dims=(16, 32, 64, 128), num_heads=(1, 2, 4, 8), drop_path_rate=0.0)


def test_timm_davit_matches_torch():
    """DaViT: spatial window attention (windows folded into the batch) and channel attention."""
    forward_against_torch(_davit(), (3, 64, 64))


def test_timm_davit_training_step_is_refused_at_fused_attention_on_folded_windows():
    """DaViT's windows reach F.scaled_dot_product_attention folded, as (N*k, h, L, d): what autograd keeps
    for torch's fused CPU kernel there is not read, so its training step is refused (torch runs it)."""
    torch.manual_seed(0)
    module = _davit()
    theirs, ours = torch_attention_step(module, (3, 32, 32)), alexcost_step(module, (3, 32, 32))
    assert theirs.refused is None
    assert ours.refused is not None and "folded" in ours.refused


def test_a_layer_norm_reaching_the_folded_dim_is_refused():
    """LayerNorm((4, 4, 8)) on (N*4, 4, 8) needs N*4 == 4 in torch: refused, not read per sample."""
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm((4, 4, 8))

        def forward(self, x):                     # x: (N, 4, 4, 8)
            return self.norm(x.reshape(-1, 4, 8)).view(x.shape[0], -1)

    module = Module()
    module(torch.randn(1, 4, 4, 8))  # torch runs it with one sample only
    with pytest.raises(SpecError, match="reaches the dimension the batch is folded into"):
        from_module(module, (4, 4, 8))


def test_a_folded_view_written_through_its_base_is_refused():
    class Module(nn.Module):
        def forward(self, x):                     # x: (N, 4, 4, 8)
            y = x * 2
            w = y.view(-1, 4, 8)                  # (N*4, 4, 8), a view of y
            y.relu_()                             # written in place through its base
            return (w + 1).view(x.shape[0], -1)

    with pytest.raises(SpecError, match="write in place"):
        from_module(Module(), (4, 4, 8))


# -- verify: torch runs a folded value as N*k rows of the batch ----------------------------------------

class PoolHeads(nn.Module):
    """MViT's pooling in miniature: the heads folded into the batch, (N*h, d, H, W), a Conv2d on each row."""

    def __init__(self, heads=3, d=4):
        super().__init__()
        self.heads, self.conv = heads, nn.Conv2d(d, d, 3, padding=1, stride=2)

    def forward(self, x):                 # x: (N, h*d, H, W)
        B, C, H, W = x.shape
        y = self.conv(x.reshape(B * self.heads, C // self.heads, H, W))
        return y.reshape(B, C, y.shape[-2], y.shape[-1])


VERIFIED = {**CASES, "pooled heads": (lambda: PoolHeads(), (12, 6, 6))}


@pytest.mark.parametrize("case", VERIFIED)
def test_verify_reads_folded_values_as_rows_of_the_batch(case):
    """verify compares a folded value's shape (k, ...) per sample with torch's (N*k, ...), inputs too."""
    from alexcost.torch_run.verify import verify_module

    build, shape = VERIFIED[case]
    torch.manual_seed(0)
    result = verify_module(build(), shape, batch=2)
    assert result.ok, result.problems[:5]


def test_verify_shows_a_folded_shape_per_sample_and_catches_a_wrong_fold():
    """The pooled heads: torch's (2*3, 4, 3, 3) is (3, 4, 3, 3) per sample; read with another fold, or none,
    the same shapes are a mismatch, said in torch's rows."""
    import dataclasses

    from alexcost.torch_run.verify import verify_imported

    torch.manual_seed(0)
    module = PoolHeads()
    read = from_module(module, (12, 6, 6))
    conv = next(c for c in verify_imported(read, module, batch=2).layers if c.name == "conv")
    assert conv.measured_shape == conv.shape == (3, 4, 3, 3) and conv.ok
    unfolded = verify_imported(dataclasses.replace(read, folds={}), module, batch=2)
    assert "conv: output shape: alexcost 3 * 4 * 3 * 3, torch 4 * 3 * 3 at batch 6" in unfolded.problems
    wrong = verify_imported(dataclasses.replace(read, folds={**read.folds, (1, None): 2}), module, batch=2)
    assert "conv: output shape: alexcost 3 * 4 * 3 * 3, torch 4 * 3 * 3 at batch 6, not N*2 = 4 rows" in wrong.problems
    assert "reshape_2: inputs: alexcost reads 4 * 4 * 3 * 3, torch's call read 6 * 4 * 3 * 3" in wrong.problems


def test_verify_still_catches_a_wrong_count_on_folded_rows(monkeypatch):
    """A kind that counted a folded layer on one row instead of k (torch's FLOPs 2 * 3 rows * 4*4*9 MACs per
    output element * 3*3 outputs * 2 samples) is caught by torch's counter and by fvcore, the fold read."""
    from alexcost.layers.folded import Folded
    from alexcost.torch_run.verify import verify_module

    monkeypatch.setattr(Folded, "torch_flops", lambda self, x, y: self.layer.torch_flops(x[1:], y[1:]))
    monkeypatch.setattr(Folded, "fvcore_count", lambda self, x, y: self.layer.fvcore_count(x[1:], y[1:]))
    torch.manual_seed(0)
    result = verify_module(PoolHeads(), (12, 6, 6), batch=2)
    macs = 2 * 3 * (4 * 4 * 9) * (3 * 3)
    assert f"conv: FLOPs: alexcost {2 * macs // 3:,} (Folded declares torch_flops), torch's counter {2 * macs:,}" \
        in result.problems
    assert f"conv: fvcore: alexcost {macs // 3:,} (Folded declares fvcore_count), fvcore {macs:,}" in result.problems
    assert not any("shape" in p or "inputs" in p for p in result.problems)


class SamHeads(nn.Module):
    """timm SAM's attention: qkv permuted so its 3 comes before the batch, reshaped to (3, N*h, L, d) and unbound."""

    def __init__(self, dim=12, heads=3):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):                 # x: (N, L, C)
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.heads, N, -1).unbind(0)
        x = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        return self.proj(x.view(B, self.heads, N, -1).permute(0, 2, 1, 3).reshape(B, N, -1))


@pytest.mark.parametrize("batch", [1, 2])
def test_verify_reads_sams_permuted_qkv_as_torch_holds_it(batch):
    """The permute is one torch call holding the three items, (3, N, h, L, d); alexcost splits it into a Chunk and
    a chain per item: verify compares torch's tensor with the last item's shape, stacked three times."""
    from alexcost.torch_run.verify import verify_module

    torch.manual_seed(0)
    result = verify_module(SamHeads(), (5, 12), batch=batch)
    assert result.ok, result.problems[:5]
    shapes = [c.measured_shape for c in result.layers if c.measured_shape and len(c.measured_shape) == 4]
    assert (3, 5, 4) in [s[1:] for s in shapes]  # torch's (3, N, 3 heads, 5 tokens, 4) per sample
