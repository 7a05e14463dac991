"""Permutes that move the batch and selections that put it back, against torch on the CPU.

timm's attention splits its projection into queries, keys and values with
``qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)`` then ``qkv.unbind(0)`` (or ``qkv[0]``, ...): the
permute moves the batch to dim 1, the selection of dim 0 puts it in front again. Each module below is
read by ``from_module``; its output shape and parameters are torch's, its forward MACs are
FlopCounterMode's FLOPs / 2 (attention as matrix products: torch's math backend), and a training
step's backward FLOPs and saved bytes are those of a real CPU step (`module_step`). A batch-moving
permute used any other way stays refused at the permute, as before. ``torch.stack(xs)`` puts the batch at
dim 1 too, and ``.sum(0)`` or ``.mean(0)`` puts it back (timm's ensembles); stacks after the batch are
plain. Small timm models of these kinds are compared as ``benchmarks/timm_survey.py`` compares them.
"""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import Chunk, Permute, SpecError, Slice, Squeeze  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import (alexcost_step, attention_step_agrees, forward_against_torch,  # noqa: E402
                         torch_attention_step, torch_step)


def attend(q, k, v, fused):
    """Attention over the last two dims: F.scaled_dot_product_attention, or written out without a scale."""
    if fused:
        return F.scaled_dot_product_attention(q, k, v)
    return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v


class Unbound(nn.Module):
    """timm's Attention: ``permute(2, 0, 3, 1, 4)`` then ``unbind(0)`` (the method, or ``torch.unbind``), or
    unpacked (``q, k, v = qkv``, which fx traces as ``qkv[0]``, ``qkv[1]``, ``qkv[2]``)."""

    def __init__(self, dim=16, heads=2, fused=True, how="method"):
        super().__init__()
        self.heads, self.fused, self.how = heads, fused, how
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.how == "unpacked":
            q, k, v = qkv
        else:
            q, k, v = torch.unbind(qkv, dim=0) if self.how == "function" else qkv.unbind(0)
        return self.proj(attend(q, k, v, self.fused).transpose(1, 2).reshape(b, n, c))


class Indexed(nn.Module):
    """``qkv[0], qkv[1], qkv[2]`` (CaiT, CoaT), one of them read twice and one by a negative index."""

    def __init__(self, dim=12, heads=3):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = attend(qkv[0], qkv[1], qkv[-1], fused=False) + qkv[0]
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class KeyValue(nn.Module):
    """PVT v2: queries with the batch kept in front, keys and values from ``permute(2, 0, 3, 1, 4)``."""

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.heads = heads
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)
        kv = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        return self.proj(attend(q, k, v, fused=True).transpose(1, 2).reshape(b, n, c))


class Windows(nn.Module):
    """Twins' locally grouped attention: ``permute(3, 0, 1, 4, 2, 5)`` over (windows, tokens) per sample."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):                            # x: (N, windows, tokens, dim)
        b, w, t, c = x.shape
        qkv = self.qkv(x).reshape(b, w, t, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]             # (N, windows, heads, tokens, head dim)
        return self.proj(attend(q, k, v, fused=False).transpose(2, 3).reshape(b, w, t, c))


class Channels(nn.Module):
    """Visformer: a 1x1 convolution's channels as (3, heads, head dim), ``permute(1, 0, 2, 4, 3)``."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Conv2d(dim, 3 * dim, 1, bias=False), nn.Conv2d(dim, dim, 1)

    def forward(self, x):                            # x: (N, dim, h, w)
        b, c, h, w = x.shape
        qkv = self.qkv(x).reshape(b, 3, self.heads, c // self.heads, -1).permute(1, 0, 2, 4, 3)
        q, k, v = qkv[0], qkv[1], qkv[2]             # (N, heads, h*w, head dim)
        y = attend(q, k, v, fused=False).permute(0, 1, 3, 2).reshape(b, -1, h, w)
        return self.proj(y)


class Nested(nn.Module):
    """NesT: ``permute(3, 0, 4, 1, 2, 5)`` then ``unbind(0)``: the heads before the blocks."""

    def __init__(self, dim=12, heads=3):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):                            # x: (N, blocks, tokens, dim)
        b, t, n, c = x.shape
        qkv = self.qkv(x).reshape(b, t, n, 3, self.heads, c // self.heads).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv.unbind(0)                      # (N, heads, blocks, tokens, head dim)
        return self.proj(attend(q, k, v, fused=False).permute(0, 2, 3, 4, 1).reshape(b, t, n, c))


class Pieces(nn.Module):
    """``x.unbind(d)`` of a tensor whose batch is in front: the views along ``d``."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):                            # x: (N, 2, 3, 6)
        a, b = self.fc(x).unbind(1)
        c = torch.unbind(a, dim=-2)
        return torch.cat([b, c[0].unsqueeze(1), c[2].unsqueeze(1)], dim=1)


CASES = {
    "unbind": (lambda: Unbound(), (6, 16)),
    "unbind written out": (lambda: Unbound(fused=False), (5, 16)),
    "torch.unbind": (lambda: Unbound(how="function"), (4, 16)),
    "unpacked": (lambda: Unbound(how="unpacked"), (3, 16)),
    "indexing": (Indexed, (5, 12)),
    "keys and values": (KeyValue, (7, 16)),
    "windows (3, 0, 1, 4, 2, 5)": (Windows, (3, 4, 16)),
    "channels (1, 0, 2, 4, 3)": (Channels, (16, 3, 4)),
    "nested (3, 0, 4, 1, 2, 5)": (Nested, (2, 4, 12)),
    "unbind of other dims": (Pieces, (2, 3, 6)),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    forward_against_torch(build(), shape, batch=2)


@pytest.mark.parametrize("case", CASES)
def test_training_step_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    attention_step_agrees(build(), shape)


def test_what_each_selection_is_per_sample():
    """Per sample, ``permute(2, 0, 3, 1, 4)`` of an (L, 3, H, D) sample then ``[i]`` is ``x[:, :, i]`` then
    (H, L, D): a Slice and a Permute (0, 2, 1, 3); ``unbind(0)`` is the three pieces of one of a Chunk along
    dim 2, each squeezed, then the same Permute."""
    layers = from_module(Indexed(dim=12, heads=3).eval(), (5, 12)).network.layers
    assert [s.index for s in layers if isinstance(s, Slice)] == [((None, None, None), i) for i in (0, 1, -1, 0)]
    assert [p.dims for p in layers if isinstance(p, Permute)] == [(0, 2, 1, 3)] * 4

    imported = from_module(Unbound(dim=16, heads=2).eval(), (6, 16))
    net = imported.network
    shapes = dict(zip((layer.name for layer in net.layers), net.output_shapes))
    chunk, = (layer for layer in net.layers if isinstance(layer, Chunk))
    assert (chunk.chunks, chunk.dim) == (3, 2) and shapes[chunk.name] == ((6, 1, 2, 8),) * 3
    assert [s.dim for s in net.layers if isinstance(s, Squeeze)] == [(2,)] * 3
    permutes = [p for p in net.layers if isinstance(p, Permute)]
    assert [p.dims for p in permutes] == [(0, 2, 1, 3)] * 3
    assert [shapes[p.name] for p in permutes] == [(2, 6, 8)] * 3  # (H, L, D): heads 2, tokens 6, 16 / 2


class Used(nn.Module):
    """``permute(*dims)`` of an (N, 4, 3, 2, 8) tensor, then ``use`` of it."""

    def __init__(self, use, dims=(2, 0, 3, 1, 4)):
        super().__init__()
        self.fc, self.use, self.dims = nn.Linear(8, 24), use, dims

    def forward(self, x):                            # x: (N, 4, 8)
        b, n, c = x.shape
        return self.use(self.fc(x).reshape(b, n, 3, 2, 4).permute(*self.dims))


@pytest.mark.parametrize("use, dims", [
    (lambda qkv: qkv, (2, 0, 3, 1, 4)),                                    # returned as it is
    (lambda qkv: qkv[0] + qkv.sum(0), (2, 0, 3, 1, 4)),                    # one use besides the selections
    (lambda qkv: qkv.unbind(1)[0], (2, 0, 3, 1, 4)),                       # not dim 0
    (lambda qkv: qkv[0:2][0], (2, 0, 3, 1, 4)),                            # a slice of dim 0
    (lambda qkv: qkv[0, :, 1], (2, 0, 3, 1, 4)),                           # a tuple index
    (lambda qkv: qkv[0], (2, 3, 0, 1, 4)),                                 # the batch lands at dim 1 of qkv[0]
    (lambda qkv: qkv.unbind(0)[1], (1, 3, 0, 2, 4)),                       # the same, through unbind
])
def test_other_uses_of_a_batch_moving_permute_are_refused_at_the_permute(use, dims):
    torch.manual_seed(0)
    module = Used(use, dims).eval()
    module(torch.randn(2, 4, 8))  # torch runs it
    with pytest.raises(SpecError, match=r"method 'permute' .*\(fx node 'permute'\): dims=\[.*\] moves the batch "
                                        r"dimension; alexcost analyses each sample on its own"):
        from_module(module, (4, 8))


class Written(nn.Module):
    """A write in place around the selections of a batch-moving permute: ``order`` says where."""

    def __init__(self, order):
        super().__init__()
        self.fc, self.order = nn.Linear(8, 24), order

    def forward(self, x):                            # x: (N, 4, 8)
        b, n, c = x.shape
        y = self.fc(x).reshape(b, n, 3, 2, 4)
        qkv = y.permute(2, 0, 3, 1, 4)
        if self.order == "base, then unbind":
            y.relu_()
        q, k, v = qkv.unbind(0) if self.order != "select, then it" else (qkv[0], qkv[1], qkv[2])
        if self.order in ("unbind, then it", "select, then it"):
            q.relu_()
        if self.order == "unbind, then base":
            y.relu_()
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v


@pytest.mark.parametrize("order, trains, reads", [
    ("base, then unbind", True, True),
    ("unbind, then it", False, True),
    ("unbind, then base", False, False),
    ("select, then it", True, False),
])
def test_writes_in_place_are_read_as_torch_runs_them_or_refused(order, trains, reads):
    """torch trains a write into the base before ``unbind``, and into a selection ``qkv[i]``; it refuses to
    train a write into an output of ``unbind`` (a view of several), or into its base before an output is
    used. alexcost counts the step where torch trains it and refuses it where torch does; it refuses to
    read at all a write into a base that a Chunk sliced before (as for ``chunk``), and a write into a
    Slice whose base is read again (as for ``x[:, 0]``)."""
    torch.manual_seed(0)
    module = Written(order)
    theirs, ours = torch_step(module, (4, 8)), alexcost_step(module, (4, 8))
    assert (theirs.refused is None) is trains, theirs
    if trains and reads:
        assert ours == theirs
    else:
        assert re.search(r"several views|a view made by Slice, whose base is read again", ours.refused or ""), ours
    if not reads:
        with pytest.raises(SpecError, match=r"fx node 'relu_'.*writes in place into a"):
            from_module(module, (4, 8))
        return
    with torch.no_grad(), FlopCounterMode(display=False) as counter:  # the forward pass, as torch runs it
        out = module.eval()(torch.randn(2, 4, 8))
    imported = from_module(module, (4, 8))
    assert 2 * imported.cost(batch=2).totals.macs == counter.get_total_flops()
    assert (2, *imported.network.output_shape) == tuple(out.shape)


def test_unbind_of_the_batch_is_refused():
    class Module(nn.Module):
        def forward(self, x):
            return x.unbind(0)[0]

    with pytest.raises(SpecError, match=r"method 'unbind' .*unbinds the batch dimension"):
        from_module(Module(), (4, 8))


# -- stacks: before the batch and reduced away again, or after it --------------------------------------

class Stacked(nn.Module):
    """Two or three branches stacked: ``use`` of the list of branch outputs (N, 3, 6)."""

    def __init__(self, use):
        super().__init__()
        self.a, self.b, self.c, self.use = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 4), use

    def forward(self, x):                            # x: (N, 3, 6)
        return self.use(self, x, [self.a(x), self.b(x)])


def _written_after(m, x, ys):
    """A stack copies: a write into an input afterwards does not reach it (but the later read of that input)."""
    s = torch.stack(ys)
    ys[0].relu_()
    return s.sum(0) + ys[0]


STACKS = {  # timm's ensembles (ViT's parallel blocks, CrossViT's heads), CoaT's, and others
    "stack then sum(dim=0)": lambda m, x, ys: x + torch.stack(ys).sum(dim=0),
    "torch.mean of stack(dim=0)": lambda m, x, ys: torch.mean(torch.stack(ys, dim=0), dim=0),
    "stack then mean(0), sum(-4)": lambda m, x, ys: torch.stack(ys).mean(0) + torch.stack([x, x, x]).sum(-4),
    "sum(0, keepdim=False), torch.sum": lambda m, x, ys: torch.stack(ys).sum(0, keepdim=False)
    + torch.sum(torch.stack(ys), 0),
    "an input written after the stack": _written_after,
    "stack(dim=1)": lambda m, x, ys: m.c(torch.stack([ys[0][:, 0], ys[1][:, 1]], dim=1)),
    "stack(dim=-1)": lambda m, x, ys: torch.stack(ys, -1).flatten(2),
    "stack of transposed tensors, flattened": lambda m, x, ys: torch.stack([y.transpose(-1, -2) for y in ys], 1)
    .sigmoid().flatten(1),
    "stack of one": lambda m, x, ys: torch.stack(ys[:1], 1),
}


@pytest.mark.parametrize("case", STACKS)
def test_stacks_match_torch(case):
    """Forward FLOPs, parameters and output shape, then a training step, against torch."""
    torch.manual_seed(0)
    module = Stacked(STACKS[case])
    imported = from_module(module, (3, 6))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(torch.randn(2, 3, 6))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in module.parameters())
    assert 2 * imported.cost(batch=2).totals.macs == counter.get_total_flops()
    theirs, ours = torch_step(module, (3, 6)), alexcost_step(module, (3, 6))
    assert theirs.refused is None and ours == theirs, (theirs, ours)


def test_a_reduced_stack_is_summed_per_sample_over_its_dim_1():
    """Per sample, ``torch.stack(ys).sum(0)`` is the (2, 3, 6) stack of the samples reduced over its first
    dim: a Sum over dim 1 of the batched tensor, of ``2 * 3 * 6 - 3 * 6`` adds per sample."""
    from alexcost import Cat, Sum

    imported = from_module(Stacked(STACKS["stack then sum(dim=0)"]), (3, 6))
    net = imported.network
    rows = {row.name: row for row in imported.cost(batch=1).layers}
    cat, = (layer for layer in net.layers if isinstance(layer, Cat))
    total, = (layer for layer in net.layers if isinstance(layer, Sum))
    assert cat.dim == 1 and total.dim == (1,)
    assert rows[total.name].other_ops == 2 * 3 * 6 - 3 * 6


@pytest.mark.parametrize("use, message", [
    (lambda m, x, ys: torch.stack(ys), r"stacks before the batch dimension \(dim=0\), and is used otherwise"),
    (lambda m, x, ys: torch.stack(ys)[0], r"stacks before the batch dimension"),
    (lambda m, x, ys: torch.stack(ys).sum(0, keepdim=True)[0], r"stacks before the batch dimension"),
    (lambda m, x, ys: torch.stack(ys).sum(1)[0], r"stacks before the batch dimension"),
    (lambda m, x, ys: torch.stack([ys[0], m.c(x)]).sum(0), r"stack expects each tensor to be equal size"),
])
def test_other_stacks_are_refused_at_the_stack(use, message):
    with pytest.raises(SpecError, match=r"function 'stack' .*\(fx node 'stack'\): " + message):
        from_module(Stacked(use), (3, 6))


# -- timm's models of these kinds ---------------------------------------------------------------------

TIMM = {  # name: (timm.create_model's arguments, input size)
    "deit_tiny_patch16_224": ({"img_size": 32}, 32),
    "pvt_v2_b0": ({}, 64),
    "twins_svt_small": ({"depths": (1, 1, 1, 1)}, 64),
    "vit_small_resnet26d_224": ({"img_size": 64}, 64),
    "vit_small_patch16_18x2_224": ({"img_size": 32, "depth": 2}, 32),  # torch.stack(...).sum(dim=0)
    "skresnet18": ({}, 32),  # torch.stack(..., dim=1)
}


@pytest.mark.parametrize("name", TIMM)
def test_timm_models_read_exactly(name):
    """As the timm survey compares them: built on the meta device (torch's shape functions count the same
    FLOPs, attention's included), FlopCounterMode's total, the parameters and the output against alexcost's."""
    timm = pytest.importorskip("timm")
    from zoo_cases import assert_exact

    kwargs, size = TIMM[name]
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
    assert_exact(model, size, name)


@pytest.mark.parametrize("name, kwargs, shape", [
    ("deit_tiny_patch16_224", {"img_size": 32, "depth": 2}, (3, 32, 32)),
    ("pvt_v2_b0", {"depths": (1, 1, 1, 1)}, (3, 64, 64)),
    ("vit_small_patch16_18x2_224", {"img_size": 32, "depth": 1}, (3, 32, 32)),
])
def test_timm_training_step_matches_torch(name, kwargs, shape):
    """A real CPU training step of a shallow timm model: forward and backward FLOPs, saved bytes."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs)
    theirs, ours = torch_attention_step(model, shape), alexcost_step(model, shape)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs
