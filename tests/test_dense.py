"""The dense kinds (Conv1d, Conv3d, ConvTranspose2d, the 3-D pools, BatchNorm1d/3d, GroupNorm,
InstanceNorm2d, Upsample, Pad) against torch on the CPU.

Each kind, drawn at random with valid arguments (constructively, small tensors), against the torch.nn
module or functional call of the same arguments: the output shape, the parameters and buffers
(``numel``), FlopCounterMode's FLOPs; the pools' other ops against the taps counted one by one here;
refusals against torch's own (alexcost refuses exactly what torch refuses, for Pad and Upsample).
Training steps against a real one (torch's saved tensors, backward FLOPs, gradients); from_module on
the functional calls and the torch.nn modules (padding modules included) against torch.
"""

from __future__ import annotations

import math
import warnings
from math import prod

import pytest
from hypothesis import given, strategies as st

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional


from alexcost import (AdaptiveAvgPool3d, AvgPool3d, BatchNorm1d, BatchNorm3d, Contiguous, Conv1d,  # noqa: E402
                      Conv2d, Conv3d, ConvTranspose2d, Flatten, GroupNorm, InstanceNorm2d, Linear, MaxPool3d,
                      Network, Pad, Permute, ReLU, SpecError, Upsample)
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.torch_run.verify_training import measure_training  # noqa: E402
from alexcost.training import training_cost  # noqa: E402
from strategies import dense_networks  # noqa: E402
from torch_reference import check_training, torch_reads  # noqa: E402


def fails_in_torch(call) -> bool:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except (RuntimeError, ValueError, NotImplementedError, TypeError):
        return True
    return False


def refused_as_in_torch(module, inp, make, x) -> bool:
    """Does torch refuse ``module(inp)``? Then alexcost must refuse the layer ``make()`` on ``x`` too."""
    if not fails_in_torch(lambda: module(inp)):
        return False
    with pytest.raises(SpecError):
        Network(x, [make()])
    return True


def one_layer(layer, x, batch=2) -> tuple:
    """alexcost on ``layer`` read on per-sample ``x``: output shape, FLOPs torch counts, params, buffers."""
    cost = Network(x, [layer]).cost(batch=batch)
    row = cost.layers[0]
    return (batch, *row.output_shape), batch * layer.torch_flops(x, row.output_shape), row.params, row.buffers


# -- convolutions ---------------------------------------------------------------------------------

@st.composite
def convolutions(draw):
    """A Conv1d or Conv3d and an input it fits: per spatial dimension a kernel, dilation and padding
    bounded by the size; a padding mode's own bounds (reflect pads less than the size)."""
    dims = draw(st.sampled_from([1, 3]))
    groups = draw(st.sampled_from([1, 2]))
    c = groups * draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    same = draw(st.booleans())
    sizes, kernels, dilations, pads = [], [], [], []
    for _ in range(dims):
        size = draw(st.integers(2, 6))
        d = draw(st.integers(1, 2))
        k = draw(st.integers(1, min(3, (size - 1) // d + 1)))
        p = (d * (k - 1) + 1) // 2 if same else draw(st.integers(0, min(2, size - 1)))
        sizes.append(size), kernels.append(k), dilations.append(d), pads.append(p)
    args = dict(out_channels=groups * draw(st.integers(1, 2)), kernel_size=tuple(kernels), dilation=tuple(dilations),
                groups=groups, bias=draw(st.booleans()), padding_mode=mode,
                padding="same" if same else tuple(pads), stride=1 if same else draw(st.integers(1, 2)))
    return {1: Conv1d, 3: Conv3d}[dims], args, (c, *sizes)


@pytest.mark.slow
@given(convolutions())
def test_conv1d_and_conv3d_match_torch(drawn):
    kind, args, x = drawn
    module = getattr(nn, kind.__name__)(x[0], **args)
    inp = torch.randn(2, *x)
    if refused_as_in_torch(module, inp, lambda: kind(**args), x):
        return
    assert one_layer(kind(**args), x) == torch_reads(module, inp)


@st.composite
def transposed(draw):
    groups = draw(st.sampled_from([1, 2]))
    stride, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (draw(st.integers(1, 2)),
                                                                            draw(st.integers(1, 2)))
    args = dict(out_channels=groups * draw(st.integers(1, 2)), groups=groups, bias=draw(st.booleans()),
                kernel_size=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), stride=stride, dilation=dilation,
                padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
                output_padding=tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)))
    return args, (groups * draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))


@pytest.mark.slow
@given(transposed())
def test_conv_transpose2d_matches_torch(drawn):
    args, x = drawn
    module = nn.ConvTranspose2d(x[0], **args)
    inp = torch.randn(2, *x)
    if fails_in_torch(lambda: module(inp)) or 0 in module(inp).shape:  # an output too small, or empty: refused
        with pytest.raises(SpecError, match="Output size is too small"):
            Network(x, [ConvTranspose2d(**args)])
        return
    layer = ConvTranspose2d(**args)
    assert one_layer(layer, x) == torch_reads(module, inp)
    c_out = args["out_channels"]   # every input element times its kernel, for C_out/groups outputs
    assert layer.macs(x, ()) == prod(x) * (c_out // args["groups"]) * prod(args["kernel_size"])


def test_conv_transpose2d_refuses_what_torch_refuses():
    with pytest.raises(SpecError, match="output padding must be smaller than either stride or dilation"):
        ConvTranspose2d(out_channels=2, kernel_size=3, stride=2, output_padding=2)
    with pytest.raises(SpecError, match='Only "zeros" padding mode is supported for ConvTranspose2d'):
        ConvTranspose2d(out_channels=2, kernel_size=3, padding_mode="reflect")
    with pytest.raises(SpecError, match="in_channels must be divisible by groups"):
        Network((3, 4, 4), [ConvTranspose2d(out_channels=2, kernel_size=3, groups=2)])


# -- the 3-D pools ----------------------------------------------------------------------------------

def taps_by_hand(size, kernel, stride, pad, dilation, out) -> int:
    """Over ``out`` windows along one dimension, the taps that land inside ``[0, size)``."""
    return sum(0 <= i * stride - pad + j * dilation < size for i in range(out) for j in range(kernel))


@st.composite
def pools(draw):
    kind = draw(st.sampled_from([MaxPool3d, AvgPool3d]))
    x = (draw(st.integers(1, 3)), *(draw(st.integers(1, 6)) for _ in range(3)))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    args = dict(kernel_size=kernel, stride=tuple(draw(st.integers(1, 3)) for _ in range(3)),
                padding=tuple(draw(st.integers(0, k // 2)) for k in kernel), ceil_mode=draw(st.booleans()))
    if kind is MaxPool3d:
        args["dilation"] = tuple(draw(st.integers(1, 2)) for _ in range(3))
    return kind, args, x


@given(pools())
def test_pools_3d_match_torch_and_count_the_taps_they_read(drawn):
    kind, args, x = drawn
    module = getattr(nn, kind.__name__)(**args)
    inp = torch.randn(2, *x)
    if refused_as_in_torch(module, inp, lambda: kind(**args), x):
        return
    layer = kind(**args)
    try:
        got = one_layer(layer, x)
    except SpecError as err:     # a dilated window reading only padding: torch gives -inf there
        assert "reads only padding" in str(err) and torch.isinf(module(inp)).any()
        return
    assert got == torch_reads(module, inp)
    y = got[0][1:]
    dilation = args.get("dilation", (1, 1, 1))
    taps = x[0] * prod(taps_by_hand(s, k, st_, p, d, o) for s, k, st_, p, d, o in zip(
        x[1:], args["kernel_size"], args["stride"], args["padding"], dilation, y[1:]))
    other = Network(x, [layer]).cost().totals.other_ops
    assert other == (taps - prod(y) if kind is MaxPool3d else taps)


@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7), st.tuples(*[st.one_of(st.none(), st.integers(1, 5))] * 3))
def test_adaptive_avg_pool_3d_matches_torch(d, h, w, out):
    x = (2, d, h, w)
    module = nn.AdaptiveAvgPool3d(out)
    layer = AdaptiveAvgPool3d(output_size=out)
    got = one_layer(layer, x)
    assert got == torch_reads(module, torch.randn(2, *x))
    windows = [sum(math.ceil((i + 1) * size / o) - (i * size) // o for i in range(o))
               for size, o in zip(x[1:], got[0][2:])]
    assert Network(x, [layer]).cost().totals.other_ops == 2 * prod(windows)


# -- normalisation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, module, x", [
    (BatchNorm1d(), nn.BatchNorm1d(6), (6,)), (BatchNorm1d(affine=False), nn.BatchNorm1d(6, affine=False), (6, 5)),
    (BatchNorm3d(), nn.BatchNorm3d(4), (4, 2, 3, 3)),
    (GroupNorm(num_groups=3), nn.GroupNorm(3, 6), (6, 4, 4)), (GroupNorm(num_groups=2, affine=False),
                                                               nn.GroupNorm(2, 4, affine=False), (4, 3, 2, 2)),
    (GroupNorm(num_groups=1), nn.GroupNorm(1, 5), (5, 7)), (GroupNorm(num_groups=2, bias=False),
                                                              nn.GroupNorm(2, 4, bias=False), (4, 3)),
    (BatchNorm3d(bias=False), nn.BatchNorm3d(4, bias=False), (4, 1, 2, 2)),
    (InstanceNorm2d(), nn.InstanceNorm2d(4), (4, 3, 3)), (InstanceNorm2d(affine=True), nn.InstanceNorm2d(4, affine=True),
                                                          (4, 3, 3)),
    (InstanceNorm2d(track_running_stats=True), nn.InstanceNorm2d(4, track_running_stats=True), (4, 1, 1)),
])
def test_norms_match_torch(layer, module, x):
    assert one_layer(layer, x) == torch_reads(module.eval(), torch.randn(2, *x))


@pytest.mark.parametrize("layer, x, message", [
    (BatchNorm1d(), (4, 5, 6), r"BatchNorm1d expects a \(C,\) or \(C, L\) input per sample"),
    (BatchNorm3d(), (4, 5, 6), r"BatchNorm3d expects a \(C, D, H, W\) input per sample"),
    (GroupNorm(num_groups=4), (6, 3, 3), "Expected number of channels in input to be divisible by num_groups"),
    (InstanceNorm2d(), (4, 1, 1), "Expected more than 1 spatial element when training"),
    (InstanceNorm2d(num_features=3, affine=True), (4, 3, 3), "to match num_features"),
])
def test_norms_refuse_what_torch_refuses(layer, x, message):
    with pytest.raises(SpecError, match=message):
        Network(x, [layer])
    module = {BatchNorm1d: lambda: nn.BatchNorm1d(4), BatchNorm3d: lambda: nn.BatchNorm3d(4),
              GroupNorm: lambda: nn.GroupNorm(4, 6),
              InstanceNorm2d: lambda: nn.InstanceNorm2d(layer.num_features or 4, affine=layer.affine)}[type(layer)]
    assert fails_in_torch(lambda: module().eval()(torch.randn(2, *x)))


def test_a_norm_over_the_batch_in_training_is_refused_as_torch_refuses_it():
    net = Network((4,), [BatchNorm1d()])
    with pytest.raises(SpecError, match="Expected more than 1 value per channel when training"):
        training_cost(net, 1)
    training_cost(net, 2)
    assert fails_in_torch(lambda: nn.BatchNorm1d(4).train()(torch.randn(1, 4)))


# -- Upsample and Pad: what torch takes, and what it refuses --------------------------------------------

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear")


@st.composite
def resizes(draw):
    x = (draw(st.integers(1, 3)), *(draw(st.integers(1, 6)) for _ in range(draw(st.integers(1, 3)))))
    mode = draw(st.sampled_from(MODES))
    args = {"mode": mode}
    n = draw(st.sampled_from([None, 1, len(x) - 1]))  # one number, or a list (of the right length, or of one)
    if draw(st.booleans()):
        args["size"] = draw(st.integers(1, 9)) if n is None else [draw(st.integers(1, 9)) for _ in range(n)]
    else:
        scale = lambda: draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.75]))  # noqa: E731
        args["scale_factor"] = scale() if n is None else tuple(scale() for _ in range(n))  # nn.Upsample's form
        args["recompute_scale_factor"] = draw(st.sampled_from([None, True, False]))
    if mode not in ("nearest", "nearest-exact"):
        args["align_corners"] = draw(st.sampled_from([None, True, False]))
    return args, x


@given(resizes())
def test_upsample_takes_and_refuses_what_torch_does(drawn):
    args, x = drawn
    module = nn.Upsample(**args)
    inp = torch.randn(2, *x)
    if refused_as_in_torch(module, inp, lambda: Upsample(**args), x):
        return
    layer = Upsample(**args)
    assert one_layer(layer, x) == torch_reads(module, inp)
    y = one_layer(layer, x)[0][1:]
    taps = 1 if args["mode"].startswith("nearest") else (4 if args["mode"] == "bicubic" else 2) ** (len(x) - 1)
    assert Network(x, [layer]).cost().totals.other_ops == (0 if taps == 1 else (2 * taps - 1) * prod(y))


def test_upsample_refuses_what_it_cannot_count():
    with pytest.raises(SpecError, match="mode='area' is adaptive average pooling"):
        Upsample(size=2, mode="area")
    with pytest.raises(SpecError, match="align_corners option can only be set with the interpolating modes"):
        Upsample(size=2, align_corners=True)
    with pytest.raises(SpecError, match="either size or scale_factor should be defined"):
        Network((3, 4, 4), [Upsample()])
    with pytest.raises(SpecError, match="only one of size or scale_factor"):
        Upsample(size=2, scale_factor=2)


@st.composite
def pads(draw):
    x = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4))))
    pad = [draw(st.integers(-3, 4)) for _ in range(2 * draw(st.integers(1, 4)))]
    return pad, draw(st.sampled_from(["constant", "reflect", "replicate", "circular"])), x


@given(pads())
def test_pad_takes_and_refuses_what_torch_does(drawn):
    """Every mode, every rank, negative pads that crop: alexcost refuses exactly what torch refuses (and
    a pad that would reach the batch dimension or leave an empty one), and gives torch's shape."""
    pad, mode, x = drawn
    inp = torch.randn(2, *x)
    refused = fails_in_torch(lambda: F.pad(inp, pad, mode))
    if not refused:
        shape = tuple(F.pad(inp, pad, mode).shape)
        # refused too: the batch dimension, an empty output, and a circular crop deeper than the dimension
        # (torch's result there depends on how it copies: alexcost cannot say what it reads)
        deep = mode == "circular" and any(size + min(b, 0) + min(a, 0) < 0 for size, b, a in zip(
            reversed(x), pad[::2], pad[1::2]))
        refused = len(pad) // 2 > len(x) or 0 in shape or deep
    if refused:
        with pytest.raises(SpecError):
            Network(x, [Pad(pad=pad, mode=mode)])
        return
    assert one_layer(Pad(pad=pad, mode=mode), x) == (shape, 0, 0, 0)


def test_a_pad_refuses_a_value_in_another_mode():
    with pytest.raises(SpecError, match='Padding mode "reflect" doesn\'t take in value argument'):
        Pad(pad=(1, 1), mode="reflect", value=1.0)
    with pytest.raises(SpecError, match="pads the batch dimension"):
        Network((3, 4), [Pad(pad=(1, 1, 1, 1, 1, 1))])


# -- training steps against torch -----------------------------------------------------------------------


def test_training_dense_kinds_2d():
    net = Network((3, 6, 7), [Conv2d(out_channels=4, kernel_size=3), Upsample(scale_factor=2, mode="bilinear"),
                              ConvTranspose2d(out_channels=4, kernel_size=3, stride=2, padding=1, output_padding=1,
                                              groups=2),
                              Pad(pad=(1, 2, 0, 1), mode="reflect"), GroupNorm(num_groups=2),
                              InstanceNorm2d(affine=True), Upsample(size=(5, 9), mode="bicubic", align_corners=True),
                              Pad(pad=(1, 1, 1, 1), mode="circular"), Pad(pad=(-1, 0, 2, 0), value=0.5),
                              InstanceNorm2d(track_running_stats=True), Flatten(), Linear(out_features=2)], name="d2")
    static = check_training(net)
    # the reflect pad keeps its input (torch's reflection backward reads it): 4 x 4 x 5 after the convolution,
    # 8 x 10 upsampled, then (8 - 1)*2 - 2 + 2 + 1 + 1 = 16 by (10 - 1)*2 - 2 + 2 + 1 + 1 = 20 transposed
    n, f = 2, 4
    assert static.layers[3].saved_bytes == f * n * 4 * 16 * 20
    assert static.layers[6].saved_bytes == 0  # interpolation keeps nothing: its backward needs the sizes alone


def test_training_video_kinds():
    net = Network((3, 4, 6, 6), [Conv3d(out_channels=4, kernel_size=3, padding=1, padding_mode="replicate"),
                                 BatchNorm3d(), ReLU(inplace=True), MaxPool3d(kernel_size=2, ceil_mode=True),
                                 Conv3d(out_channels=4, kernel_size=(1, 3, 3), padding="same", groups=2),
                                 Upsample(scale_factor=(1, 2, 2), mode="trilinear"), AvgPool3d(kernel_size=2, padding=1),
                                 Pad(pad=(1, 0, 0, 1, 1, 1), mode="replicate"), AdaptiveAvgPool3d(output_size=(1, 2, 2)),
                                 AdaptiveAvgPool3d(output_size=1), Flatten(), Linear(out_features=2)], name="video")
    check_training(net)
    check_training(net, batch=1, frozen=("conv3d0",))


def test_training_one_dimensional_kinds():
    net = Network((3, 8), [Conv1d(out_channels=4, kernel_size=3, padding=1, padding_mode="circular"), BatchNorm1d(),
                           Pad(pad=(2, 1), mode="reflect"), Upsample(scale_factor=1.5, mode="linear"),
                           Upsample(size=7), GroupNorm(num_groups=4, affine=False), Flatten(), BatchNorm1d(),
                           Linear(out_features=2)], name="one")
    check_training(net)


def test_training_norms_of_permuted_inputs():
    """A channels-last input (a permuted view made dense): GroupNorm keeps it as it is; InstanceNorm2d
    keeps the contiguous copy torch makes first; every format kind writes channels-last."""
    to_last = [Permute(dims=(0, 2, 3, 1)), Contiguous(), Permute(dims=(0, 3, 1, 2))]
    net = Network((4, 5, 6), [*to_last, GroupNorm(num_groups=2), *to_last, InstanceNorm2d(affine=True),
                              *to_last, Pad(pad=(1, 1, 1, 1), mode="replicate"), Upsample(scale_factor=2),
                              ConvTranspose2d(out_channels=2, kernel_size=2), Flatten(), Linear(out_features=2)],
                  name="permuted")
    static = check_training(net)
    n, f = 2, 4
    assert static.layers[7].saved_bytes == f * (n * 4 * 5 * 6 + 3 * n * 4)   # a copy, the statistics, the weight


def test_training_a_video_layout_5d_channels_last():
    """NDHWC storage (a permuted 5-D view made dense): convolution, max pooling and batch norm keep it."""
    net = Network((3, 2, 4, 4), [Permute(dims=(0, 2, 3, 4, 1)), Contiguous(), Permute(dims=(0, 4, 1, 2, 3)),
                                 Conv3d(out_channels=4, kernel_size=1), BatchNorm3d(), MaxPool3d(kernel_size=(1, 2, 2)),
                                 Flatten(), Linear(out_features=2)], name="ndhwc")
    check_training(net)
    strides = net.cost(batch=2).layers  # Flatten of a channels-last tensor copies: a new tensor
    assert strides[6].new_storage


# -- from_module: the functional calls and the modules ---------------------------------------------------

class Dense(nn.Module):
    """Every functional call of the dense kinds, with sizes computed from the input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.w3 = nn.Parameter(torch.randn(4, 2, 1, 3, 3))
        self.wt = nn.Parameter(torch.randn(4, 3, 2, 2))
        self.bt = nn.Parameter(torch.randn(6))
        self.w1 = nn.Parameter(torch.randn(4, 6, 3))
        self.gw, self.gb = nn.Parameter(torch.ones(6)), nn.Parameter(torch.zeros(6))
        self.register_buffer("mean", torch.zeros(6))
        self.register_buffer("var", torch.ones(6))

    def forward(self, x):
        h, w = x.shape[-2:]
        y = self.conv(x)
        v = F.conv3d(y.view(y.size(0), 4, 1, h, w), self.w3, padding=(0, 1, 1), groups=2)
        v = F.max_pool3d(v, (1, 2, 2))
        v = F.avg_pool3d(v, (1, 1, 1))
        v = F.adaptive_avg_pool3d(v, (1, h, w))
        y = v.flatten(1, 2)
        y = F.conv_transpose2d(y, self.wt, self.bt, stride=2, groups=2)
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        y = F.pad(y, (1, 1, 2, 0), mode="reflect")
        y = F.group_norm(y, 3, self.gw, self.gb)
        y = F.instance_norm(y, self.mean, self.var, use_input_stats=False)
        y = F.batch_norm(y.mean(3), self.mean, self.var, self.gw, self.gb)
        return F.conv1d(y, self.w1)


class Modules(nn.Module):
    """torch.nn's modules of the dense kinds, the padding modules (traced through to F.pad) among them."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ReflectionPad2d((1, 0, 2, 1)), nn.Conv2d(3, 4, 3), nn.ReplicationPad2d(1), nn.ConstantPad2d(1, 0.5),
            nn.ZeroPad2d((0, 1, 0, 1)), nn.CircularPad2d(1), nn.UpsamplingBilinear2d(scale_factor=2),
            nn.UpsamplingNearest2d(size=(9, 10)), nn.GroupNorm(2, 4), nn.InstanceNorm2d(4, affine=True),
            nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), nn.Upsample(scale_factor=0.5))

    def forward(self, x):
        y = self.layers(x)
        return F.interpolate(y.reshape(y.size(0), 2, 1, 9, 10), scale_factor=(2, 1, 1))


@pytest.mark.parametrize("model, x", [(Dense, (3, 5, 6)), (Modules, (3, 6, 7))])
def test_from_module_reads_the_calls_and_modules_exactly(model, x):
    torch.manual_seed(0)
    module = model().eval()
    imported = from_module(module, x)
    shape, flops, params, _ = torch_reads(module, torch.randn(1, *x))
    cost = imported.cost()
    assert (1, *imported.network.output_shape) == shape
    assert 2 * cost.totals.macs == flops and cost.totals.params == params == imported.params


def test_from_module_names_the_padding_modules_it_traces_through():
    imported = from_module(Modules().eval(), (3, 6, 7))
    kinds = [(type(layer).__name__, getattr(layer, "mode", None)) for layer in imported.network.layers[:6]]
    assert kinds == [("Pad", "reflect"), ("Conv2d", None), ("Pad", "replicate"), ("Pad", "constant"),
                     ("ZeroPad2d", None), ("Pad", "circular")]
    assert imported.network.names[:3] == ("layers_0", "layers_1", "layers_2")
    assert imported.network.layers[3].value == 0.5


class Segmenter(nn.Module):
    """A forward that returns a dict of one tensor, as torchvision's segmentation models do."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, stride=2, padding=1)

    def forward(self, x):
        return {"out": F.interpolate(self.conv(x), size=x.shape[-2:], mode="bilinear")}


def test_a_dict_of_one_output_is_the_output():
    imported = from_module(Segmenter(), (3, 8, 8))
    assert imported.network.output_shape == (2, 8, 8)
    assert type(imported.network.layers[-1]).__name__ == "Upsample"


@pytest.mark.parametrize("forward, message", [
    (lambda self, x: F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True),
     r"function 'interpolate' .* antialias=True is not read by alexcost"),
    (lambda self, x: F.interpolate(x, scale_factor=0.5, mode="area"), r"mode='area' is adaptive average pooling"),
    (lambda self, x: F.pad(x, (1, 1, 1, 1, 1, 1, 1, 1)), r"function 'pad' .* pads the batch dimension"),
    (lambda self, x: F.instance_norm(x, self.m, self.v), r"function 'instance_norm' .*\(use_input_stats=True with running_mean\)"),
    (lambda self, x: F.group_norm(x, 1, None, self.w), r"function 'group_norm' .* a bias without a weight"),
    (lambda self, x: {"out": x, "aux": x}, r"forward\(\) returns dict of 2 values"),
])
def test_what_it_cannot_count_is_refused_by_node(forward, message):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))
            self.register_buffer("m", torch.zeros(3))
            self.register_buffer("v", torch.ones(3))

    Net.forward = forward
    with pytest.raises(SpecError, match=message):
        from_module(Net(), (3, 6, 6))


def test_a_convolution_padded_unevenly_by_its_mode_is_refused():
    conv = nn.Conv3d(2, 2, (2, 3, 3), padding="same", padding_mode="reflect")
    imported = from_module(nn.Sequential(conv), (2, 4, 5, 5))     # 'same' with an even kernel: read as torch pads
    assert imported.network.layers[0].padding == "same"
    conv._reversed_padding_repeated_twice = [1, 1, 0, 1, 1, 1]
    with pytest.raises(SpecError, match=r"pads by \(1, 1, 0, 1, 1, 1\) \(before, after per spatial dimension\)"):
        from_module(nn.Sequential(conv), (2, 4, 5, 5))


# -- random networks of the dense and video kinds, trained in torch --------------------------------------


@pytest.mark.slow
@given(dense_networks())
def test_random_dense_networks_train_as_torch_does(drawn):
    network, batch = drawn
    try:
        training_cost(network, batch, device="cpu")
    except SpecError as err:     # what torch refuses in training (batch norm over one value per channel)
        assert "Expected more than 1" in str(err), str(err)
        assert fails_in_torch(lambda: measure_training(network, device="cpu", batch=batch))
        return
    check_training(network, batch)


# -- spec files -------------------------------------------------------------------------------------------

def test_spec_files_hold_the_dense_kinds_and_the_schema_takes_them():
    """Every dense kind in a spec file: written, read back as the same network (JSON and TOML), valid
    by the published JSON Schema."""
    import json
    from pathlib import Path

    from alexcost import dumps_spec, network_from_dict, network_to_dict
    from alexcost.specs.specfile import parse_text

    jsonschema = pytest.importorskip("jsonschema")
    video = Network((3, 4, 8, 8), [Conv3d(out_channels=4, kernel_size=(1, 3, 3), padding="same"), BatchNorm3d(),
                                   MaxPool3d(kernel_size=2, ceil_mode=True), AvgPool3d(kernel_size=(1, 2, 2)),
                                   Upsample(scale_factor=(1.0, 2.0, 2.0), mode="trilinear", align_corners=False),
                                   Pad(pad=[1, 1, 0, 0, 1, 0], mode="replicate"),
                                   AdaptiveAvgPool3d(output_size=(1, 3, 2)), Flatten(), BatchNorm1d(bias=False),
                                   Linear(out_features=4)], name="video")
    dense = Network((3, 8, 8), [ConvTranspose2d(out_channels=4, kernel_size=3, stride=2, output_padding=1),
                                GroupNorm(num_groups=2), InstanceNorm2d(affine=True), Upsample(size=5),
                                Flatten(start_dim=2), Pad(pad=(1, 1), mode="circular", value=None),
                                Conv1d(out_channels=2, kernel_size=3, padding="valid")], name="dense")
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "spec.schema.json").read_text())
    for net in (video, dense):
        data = network_to_dict(net)
        jsonschema.validate(data, schema)
        args = [layer.args() for layer in net.layers]
        assert [layer.args() for layer in network_from_dict(data).layers] == args
        for fmt in ("json", "toml"):
            again = network_from_dict(parse_text(dumps_spec(net, fmt), fmt))
            assert [layer.args() for layer in again.layers] == args and again.cost().totals == net.cost().totals
