"""timm's building blocks and small timm models read by from_module, against torch on the CPU.

Sizes fx leaves symbolic (timm's ``Conv2dSame`` and ``pad_same``: padding computed from the input
size with ``math.ceil`` and ``max``) are read at the input shape given, so their arithmetic is
constants; a parameter reshaped before use (layer scale, ``x * self.gamma.view(1, -1, 1, 1)``) is
that parameter, counted once. Expected values: torch's FlopCounterMode on a real forward pass,
``sum(p.numel())``, the output torch returns, a real CPU training step (tests/module_step.py), and
TensorFlow's SAME padding written out as a formula. What still cannot be read is refused with one
SpecError naming the node: control flow on the batch size or on data, weight standardisation.
"""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import Conv2d, Pad, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree, counted_attention, same  # noqa: E402

from timm.layers import Conv2dSame, StdConv2d  # noqa: E402


def torch_counts(module, shape, batch=2):
    """FlopCounterMode's total for one forward pass of ``batch`` samples, and the output's per-sample shape."""
    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.randn(batch, *shape))
    return counter.get_total_flops(), tuple(y.shape[1:])


def assert_exact(module, shape, batch=2):
    """from_module's forward count, parameters and output shape equal torch's."""
    flops, out = torch_counts(module, shape, batch)
    imported = from_module(module, shape)
    net = imported.network
    rows = imported.cost(batch=batch).layers  # a row run once per pass has batch 1
    ours = sum(r.batch * r.layer.torch_flops(r.input_shape, r.output_shape) for r in rows)
    assert ours == flops
    assert 2 * imported.cost(batch=batch).totals.macs == flops  # convolutions and Linear only: 2 FLOPs per MAC
    assert imported.params == sum(p.numel() for p in module.parameters())
    assert tuple(net.output_shape) == out
    return imported


def same_padding(size, k, s, d=1):
    """TensorFlow's SAME padding along one side of ``size`` (timm's get_same_padding)."""
    return max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)


@pytest.mark.parametrize("size,k,s,d", [(15, 3, 2, 1), (16, 3, 2, 1), (17, 5, 2, 1), (9, 3, 1, 2), (8, 1, 2, 1)])
def test_conv2d_same_pads_as_tensorflow(size, k, s, d):
    module = nn.Sequential(Conv2dSame(3, 8, k, stride=s, dilation=d), nn.ReLU())
    imported = assert_exact(module, (3, size, size))
    pads = [layer for layer in imported.network.layers if isinstance(layer, Pad)]
    total = same_padding(size, k, s, d)
    expected = (total // 2, total - total // 2) * 2
    assert [p.pad for p in pads] == [expected]
    conv = next(layer for layer in imported.network.layers if isinstance(layer, Conv2d))
    assert conv.stride == (s, s) and conv.dilation == (d, d) and conv.padding == (0, 0)


def test_conv2d_same_on_a_rectangle():
    module = Conv2dSame(2, 4, (3, 5), stride=(2, 3))
    imported = assert_exact(module, (2, 11, 20))
    pad = next(layer for layer in imported.network.layers if isinstance(layer, Pad))
    h, w = same_padding(11, 3, 2), same_padding(20, 5, 3)
    assert pad.pad == (w // 2, w - w // 2, h // 2, h - h // 2)


class SizeArithmetic(nn.Module):
    """Python arithmetic and a branch on a sample's sizes: padded up to a multiple of 4."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)

    def forward(self, x):
        h, w = x.shape[-2:]
        extra = (4 - w % 4) % 4
        if extra > 0:
            x = nn.functional.pad(x, (0, extra, 0, (4 - h % 4) % 4))
        return self.conv(x).flatten(1)


@pytest.mark.parametrize("side", [8, 10, 13])
def test_branches_on_sample_sizes_read_at_the_input_shape(side):
    imported = assert_exact(SizeArithmetic(), (3, side, side))
    pads = [layer for layer in imported.network.layers if isinstance(layer, Pad)]
    assert [p.pad for p in pads] == ([] if side % 4 == 0 else [(0, (4 - side % 4) % 4) * 2])


class BatchBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.size(0) > 1:  # the batch size: alexcost never fixes it
            x = x * 2
        return self.conv(x)


class DataBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y.relu() if y.mean() > 0 else y


@pytest.mark.parametrize("module,where", [(BatchBranch, "BatchBranch"), (DataBranch, "DataBranch")])
def test_branches_on_batch_or_data_stay_refused(module, where):
    with pytest.raises(SpecError, match=rf"module '\(root\)' \({where}\): its forward\(\) branches on a traced value"):
        from_module(module(), (3, 8, 8))


class LayerScale(nn.Module):
    """timm's ConvNeXt block end: a depthwise convolution, then ``x * gamma.view(1, -1, 1, 1)``."""

    def __init__(self, c=4, method="view"):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))
        self.method = method

    def forward(self, x):
        shortcut = x
        x = self.conv(x)
        gamma = getattr(self.gamma, self.method)(1, -1, 1, 1)
        return shortcut + x.mul(gamma)


@pytest.mark.parametrize("method", ["view", "reshape"])
def test_layer_scale_counts_the_parameter_once(method):
    module = LayerScale(method=method)
    imported = assert_exact(module, (4, 5, 5))
    assert imported.params == 4 * 9 + 4 + 4  # depthwise weight, its bias, gamma
    theirs, ours = agree(module, (4, 5, 5))
    assert theirs.refused is None and same(theirs, ours), (theirs, ours)


class SharedScale(nn.Module):
    """One parameter read twice: as it is, and as a view."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.gamma = nn.Parameter(torch.ones(3, 1, 1))

    def forward(self, x):
        y = self.conv(x) * self.gamma
        return y + self.gamma.reshape(1, 3, 1, 1)


def test_a_parameter_and_its_view_count_once():
    module = SharedScale()
    assert_exact(module, (3, 4, 4))
    theirs, ours = agree(module, (3, 4, 4))
    assert theirs.refused is None and same(theirs, ours), (theirs, ours)


def test_a_frozen_layer_scale_is_frozen():
    module = LayerScale()
    module.gamma.requires_grad_(False)
    imported = from_module(module, (4, 5, 5))
    assert imported.frozen == 4


def test_weight_standardisation_reads_exactly():
    imported = assert_exact(nn.Sequential(StdConv2d(3, 8, 3), nn.ReLU()), (3, 8, 8))
    assert [r.per_pass for r in imported.cost(2).layers if r.type in ("GroupNorm", "DynamicConv2d")] == [True, False]


def test_a_conv2d_same_training_step_matches_torch():
    module = nn.Sequential(Conv2dSame(3, 4, 3, stride=2), nn.ReLU(), Conv2dSame(4, 4, 5, stride=2))
    theirs, ours = agree(module, (3, 9, 9))
    assert theirs.refused is None and same(theirs, ours), (theirs, ours)


@pytest.mark.parametrize("name,side", [("tf_mobilenetv3_small_minimal_100", 64), ("convnext_atto", 64)])
def test_small_timm_models_read_exactly(name, side):
    model = timm.create_model(name, pretrained=False)
    assert_exact(model, (3, side, side))


@pytest.mark.skipif(os.environ.get("ALEXCOST_ZOO") != "all", reason="ALEXCOST_ZOO=all runs the heavier timm models")
@pytest.mark.parametrize("name", ["tf_efficientnet_b0", "tf_mixnet_s", "convnext_femto", "tf_efficientnetv2_b0",
                                  "nf_resnet26", "tresnet_m", "swiftformer_xs"])
def test_timm_models_read_exactly(name):
    assert_exact(timm.create_model(name, pretrained=False), (3, 64, 64))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["maxvit_rmlp_pico_rw_256", "samvit_base_patch16_224"])
def test_timm_models_with_a_folded_batch_read_exactly(name):
    """Windows or heads folded into the batch, at 64 x 64 on meta tensors (FlopCounterMode counts the same FLOPs
    there): MaxViT's relative position MLP attention (its sizes ``x.shape[:-1] + (-1,)``), SAM's decomposed
    relative position bias (einsums of its heads, folded, with gathered tables)."""
    with torch.device("meta"):
        assert_exact(timm.create_model(name, pretrained=False, img_size=64), (3, 64, 64))


@pytest.mark.parametrize("name", [
    "eva02_tiny_patch14_224",  # fx's constants (its rotary table chunked), -x, x.to(x.dtype), type_as
    *(["swin_s3_tiny_224", "swinv2_cr_tiny_224", "swinv2_small_window8_256",  # shift masks: fx's constants
       "vit_base_patch16_sapiens2",  # a wrapped function of constants (_build_grid), sine and cosine once per pass
       "xcit_nano_12_p8_224"]  # Fourier positions: floor division, c ** t, stack, a Conv2d once per pass, repeat(B)
      if os.environ.get("ALEXCOST_ZOO") == "all" else []),
])
def test_timm_models_with_tensors_made_from_constants_read_exactly(name):
    with counted_attention():  # (attention as the matrix products FlopCounterMode counts)
        assert_exact(timm.create_model(name, pretrained=False, img_size=64), (3, 64, 64))


def test_a_meta_module_reads_as_its_cpu_twin():
    with torch.device("meta"):
        meta = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), nn.BatchNorm2d(8), Conv2dSame(8, 4, 5, stride=2))
    cpu = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), nn.BatchNorm2d(8), Conv2dSame(8, 4, 5, stride=2))
    ours, theirs = from_module(meta, (3, 19, 19)), assert_exact(cpu, (3, 19, 19))
    assert ours.network.layers == theirs.network.layers and ours.params == theirs.params


def test_the_second_trace_leaves_the_module_as_it_was():
    module = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), nn.Dropout(0.5)).train()
    before = [(m, dict(vars(m)), m.training) for m in module.modules()]
    from_module(module, (3, 9, 9))
    assert [(m, dict(vars(m)), m.training) for m in module.modules()] == before


def test_the_survey_script_writes_its_csv(tmp_path):
    import csv
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "timm_survey.py"
    out = tmp_path / "survey.csv"
    proc = subprocess.run([sys.executable, str(script), "--out", str(out), "--models", "resnet10t,test_vit"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {r["model"]: r for r in csv.DictReader(out.open())}
    assert rows["resnet10t"]["status"] == "exact"
    assert int(rows["resnet10t"]["params_torch"]) == sum(p.numel() for p in timm.create_model("resnet10t").parameters())
    assert rows["test_vit"]["status"] in ("exact", "refused")
    assert "2 models from 2 families" in proc.stdout
    proc = subprocess.run([sys.executable, str(script), "--out", str(out), "--all", "--limit", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [r["model"] for r in csv.DictReader(out.open())] == timm.list_models()[:1]
