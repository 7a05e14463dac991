"""torchvision's video building blocks read by from_module, and their training steps, against torch.

The blocks of R3D, R(2+1)D and S3D, read at small inputs: parameters, FlopCounterMode's FLOPs, the
output shape, fvcore's count of every convolution; the networks read from them trained against a
real step in torch (what autograd keeps, the backward FLOPs); LayerNorm over the channels of a
channels-last video tensor, as the video transformers normalise.
"""

from __future__ import annotations

import importlib

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

video_resnet = importlib.import_module("torchvision.models.video.resnet")
video_s3d = importlib.import_module("torchvision.models.video.s3d")  # the package's s3d is the builder

from alexcost import Conv3d, LayerNorm, Linear, MaxPool3d, Network, Permute  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402

from torch_reference import check_training, torch_reads  # noqa: E402


def assert_reads_as_torch(module, x):
    """from_module's reading against torch's forward pass and fvcore's count per convolution."""
    from fvcore.nn import FlopCountAnalysis

    imported = from_module(module, x)
    inp = torch.randn(1, *x)
    shape, flops, params, _ = torch_reads(module, inp)
    cost = imported.cost()
    assert ((1, *imported.network.output_shape), 2 * cost.totals.macs, cost.totals.params) == (shape, flops, params)
    analysis = FlopCountAnalysis(module, (inp,))
    analysis.unsupported_ops_warnings(False)
    by_module = analysis.by_module()
    for row, path in zip(cost.layers, imported.paths):
        if row.type == "Conv3d":
            assert row.macs == by_module[path], path
    return imported


@pytest.mark.parametrize("build, x", [
    (lambda: video_resnet.BasicBlock(8, 8, video_resnet.Conv3DSimple), (8, 4, 6, 6)),
    (lambda: video_resnet.BasicBlock(8, 16, video_resnet.Conv2Plus1D, stride=2, downsample=torch.nn.Sequential(
        torch.nn.Conv3d(8, 16, 1, stride=2, bias=False), torch.nn.BatchNorm3d(16))), (8, 4, 6, 6)),
    (lambda: video_resnet.Bottleneck(16, 4, video_resnet.Conv3DNoTemporal), (16, 2, 5, 5)),
    (lambda: video_s3d.SepInceptionBlock3D(16, 4, 4, 8, 2, 4, 4, torch.nn.BatchNorm3d), (16, 3, 5, 5)),
    (lambda: video_resnet.R2Plus1dStem(), (3, 2, 16, 16)),
], ids=["r3d block", "r(2+1)d block", "mc3 bottleneck", "s3d inception", "r(2+1)d stem"])
@pytest.mark.slow
def test_video_blocks_read_and_train_as_torch(build, x):
    torch.manual_seed(0)
    module = build().eval()
    imported = assert_reads_as_torch(module, x)
    check_training(imported.network, batch=2)


def test_layer_norm_over_the_channels_of_a_video_tensor():
    """As the video transformers normalise: (C, D, H, W) to channels-last, LayerNorm and a Linear over
    C, back to channels-first, then a 3-D convolution and pooling."""
    net = Network((6, 2, 4, 4), [Permute(dims=(0, 2, 3, 4, 1)), LayerNorm(normalized_shape=6), Linear(out_features=6),
                                 Permute(dims=(0, 4, 1, 2, 3)), Conv3d(out_channels=4, kernel_size=(1, 3, 3)),
                                 MaxPool3d(kernel_size=(1, 2, 2))], name="video-ln")
    step = check_training(net, batch=2)     # torch's saved tensors, layer by layer, and backward FLOPs
    assert [r.type for r in step.layers][1:3] == ["LayerNorm", "Linear"]
