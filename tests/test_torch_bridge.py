"""The torch bridge, both ways: Network -> nn.Sequential, and nn.Module -> Network (traced with torch.fx).

Expected values come from torch (``numel``, real output shapes, FlopCounterMode) or from
hand arithmetic written out below. The torchvision zoo is in test_zoo.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections import OrderedDict

import pytest
from hypothesis import given

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import PRESETS, SpecError, preset  # noqa: E402
from alexcost.torch_bridge import from_module, to_module  # noqa: E402
from strategies import dag_graphs  # noqa: E402


def _torch_flops(module, x):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def _agrees_with_torch(module, input_shape, batch=2):
    """Read ``module`` and check it against a real forward pass: parameters, MACs, output shape."""
    imported = from_module(module, input_shape)
    training = module.training
    module.eval()
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        out = module(x)
    flops = _torch_flops(module, x)
    module.train(training)
    cost = imported.cost(batch)
    assert cost.totals.params == imported.params == sum(p.numel() for p in module.parameters())
    assert 2 * cost.totals.macs == flops
    assert (batch, *imported.network.output_shape) == tuple(out.shape)
    return imported


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_to_module_names_children_as_layers_and_runs(name):
    network = preset(name)
    module = to_module(network).eval()
    assert [n for n, _ in module.named_children()] == list(network.names)
    for m, layer in zip(module.children(), network.layers):  # torch.nn's own class, or the merge alexcost builds
        kind = type(layer).__name__
        assert type(m).__name__ == {"Add": "Elementwise", "Cat": "Concatenate"}.get(kind, kind)
        assert kind in ("Add", "Cat") or type(m) is getattr(torch.nn, kind)
    with torch.no_grad():
        out = module(torch.randn(2, *network.input_shape))
    assert tuple(out.shape) == (2, *network.output_shape)
    assert sum(p.numel() for p in module.parameters()) == network.cost().totals.params


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_torch(name):
    network = preset(name)
    imported = from_module(to_module(network), network.input_shape)
    back = imported.network
    assert back.names == network.names
    assert back.shapes == network.shapes
    for a, b in zip(back.cost(3).layers, network.cost(3).layers):
        assert (a.type, a.params, a.macs, a.bias_adds, a.other_ops) == (b.type, b.params, b.macs, b.bias_adds,
                                                                         b.other_ops)
    assert imported.reused == {}
    assert imported.frozen == 0


def test_to_module_on_a_device():
    network = preset("seed")
    module = to_module(network, device="meta")  # no memory: shows the weights are made where asked
    assert {p.device.type for p in module.parameters()} == {"meta"}


def test_nested_sequential_paths_and_names():
    module = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        head=nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(8 * 4 * 4, 10)))))
    imported = from_module(module, (3, 8, 8))
    assert imported.paths == ("features.0", "features.1", "features.2", "head.0", "head.1.0")
    assert imported.network.names == ("features_0", "features_1", "features_2", "head_0", "head_1_0")
    assert imported.network.output_shape == (10,)
    # hand arithmetic: conv 8*8*8*3*3*3 MACs, linear 128*10
    assert imported.cost().totals.macs == 8 * 8 * 8 * 3 * 3 * 3 + 128 * 10
    assert imported.params == sum(p.numel() for p in module.parameters())


def test_unsupported_module_is_named_by_path_and_class():
    module = nn.Sequential(OrderedDict(features=nn.Sequential(nn.Conv2d(3, 4, 3), nn.PixelShuffle(2)),
                                       head=nn.Linear(4, 2)))
    with pytest.raises(SpecError, match=r"module 'features\.1' \(PixelShuffle\) \(fx node 'features_1'\): is not "
                                        r"supported: alexcost has no layer kind for torch\.nn\.PixelShuffle"):
        from_module(module, (3, 8, 8))


def test_slicing_the_batch_is_refused_by_node():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(x) + x[1:, :, 1:-1, 1:-1]

    with pytest.raises(SpecError, match=r"function 'getitem' in module '0' \(Block\) \(fx node 'getitem'\): "
                                        r"indexes the batch dimension"):
        from_module(nn.Sequential(Block()), (3, 8, 8))


def test_bare_leaf_module():
    imported = from_module(nn.Conv2d(3, 5, 3, stride=2), (3, 9, 9))
    assert imported.paths == ("",)
    assert imported.network.output_shape == (5, 4, 4)
    assert imported.params == 5 * 3 * 3 * 3 + 5


def test_shape_error_names_the_module():
    module = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(4, 8, 3))
    with pytest.raises(SpecError, match=r"module '1' \(Conv2d\) on input \[8, 6, 6\]"):
        from_module(module, (3, 8, 8))
    with pytest.raises(RuntimeError, match=r"Given groups=1, weight of size \[8, 4, 3, 3\], expected input"):
        module(torch.randn(1, 3, 8, 8))
    with pytest.raises(SpecError, match=r"module '0' \(MaxPool2d\).*return_indices"):
        from_module(nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (3, 8, 8))


def test_a_replaced_weight_is_read_as_torch_uses_it():
    """Module surgery: torch's forward convolves with the weight it holds, whatever kernel_size says."""
    conv = nn.Conv2d(3, 4, 3)
    conv.weight = nn.Parameter(torch.zeros(4, 3, 2, 2))  # a 2x2 kernel now
    imported = _agrees_with_torch(nn.Sequential(conv), (3, 8, 8))
    assert imported.network.output_shape == (4, 7, 7)
    conv = nn.Conv2d(4, 8, 3)
    conv.weight = nn.Parameter(torch.randn(8, 4, 9, 1))  # as many elements as (8, 4, 3, 3), another shape
    assert _agrees_with_torch(nn.Sequential(conv), (4, 9, 9)).network.output_shape == (8, 1, 9)
    linear = nn.Linear(6, 4)
    linear.weight = nn.Parameter(torch.randn(8, 3))
    linear.bias = nn.Parameter(torch.randn(8))
    assert _agrees_with_torch(nn.Sequential(nn.Flatten(), linear), (3,)).network.output_shape == (8,)


def test_a_replaced_weight_torch_refuses_is_refused():
    conv = nn.Conv2d(4, 8, 3)
    conv.weight = nn.Parameter(torch.randn(4, 8, 3, 3))  # as many elements, the channels swapped
    with pytest.raises(RuntimeError, match=r"expected input\[2, 4, 9, 9\] to have 8 channels, but got 4"):
        conv(torch.randn(2, 4, 9, 9))
    with pytest.raises(SpecError, match=r"module '0' \(Conv2d\) on input \[4, 9, 9\].*Given groups=1, weight of "
                                        r"size \[4, 8, 3, 3\], expected input\[N, 4, 9, 9\] to have 8 channels"):
        from_module(nn.Sequential(conv), (4, 9, 9))
    norm = nn.LayerNorm(6)
    norm.weight = nn.Parameter(torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="Expected weight to be of same shape as normalized_shape"):
        norm(torch.randn(1, 2, 6))
    with pytest.raises(SpecError, match=r"module '0' \(LayerNorm\).*weight has shape \[2, 3\].*\[6\]"):
        from_module(nn.Sequential(norm), (2, 6))


@pytest.mark.parametrize("mode, padding", [("reflect", 1), ("replicate", 2), ("circular", 1), ("reflect", "same")])
def test_padding_mode_reads_the_padding_torch_applies(mode, padding):
    """With a padding mode other than zeros, torch pads by what it computed when the module was
    made: changing ``padding`` afterwards changes nothing it runs."""
    kernel = 4 if padding == "same" else 3
    conv = nn.Conv2d(4, 4, kernel, padding=padding, padding_mode=mode)
    conv.padding = (3, 0)
    imported = _agrees_with_torch(nn.Sequential(conv), (4, 7, 7))
    side = 7 if padding == "same" else 7 + 2 * padding - 2
    assert imported.network.output_shape == (4, side, side)
    assert imported.cost().layers[0].macs == 4 * side * side * 4 * kernel * kernel


def test_module_used_twice_counts_params_once_and_macs_twice():
    c, h, w, k = 4, 6, 6, 3
    conv = nn.Conv2d(c, c, k, padding=1)
    module = nn.Sequential(conv, nn.ReLU(), conv)
    imported = from_module(module, (c, h, w))
    assert imported.paths == ("0", "1", "2")  # named where the container holds it, call by call
    assert imported.first_use == (0, 1, 0)
    assert imported.reused == {"0": 2}
    cost = imported.cost()
    assert cost.totals.params == c * c * k * k + c == sum(p.numel() for p in module.parameters())
    assert [r.params for r in cost.layers] == [c * c * k * k + c, 0, 0]
    assert cost.totals.macs == 2 * (c * h * w * c * k * k)
    assert 2 * cost.totals.macs == _torch_flops(module, torch.randn(1, c, h, w))


def test_tied_weights_count_once():
    first, second = nn.Linear(6, 6), nn.Linear(6, 6)
    second.weight = first.weight
    module = nn.Sequential(first, nn.Tanh(), second)
    imported = from_module(module, (6,))
    assert imported.params == sum(p.numel() for p in module.parameters()) == 36 + 6 + 6
    assert imported.cost().layers[2].weight_params == 0
    assert imported.cost().layers[2].bias_params == 6


def test_frozen_parameters_are_reported_apart():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    module[0].requires_grad_(False)
    module[3].bias.requires_grad_(False)
    imported = from_module(module, (3, 8, 8))
    assert imported.frozen == sum(p.numel() for p in module.parameters() if not p.requires_grad)
    assert imported.trainable == sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert imported.frozen_params == (4 * 3 * 3 * 3 + 4, 0, 0, 5)


def _snapshot(module):
    """Everything about a module that an analysis could leave changed."""
    from torch.nn.modules import module as torch_module

    state = []
    for name, m in module.named_modules(remove_duplicate=False):
        state.append((name, type(m), sorted(vars(m)), m.training, dict(m._forward_hooks),
                      dict(m._forward_pre_hooks), dict(m._backward_hooks), sorted(m._buffers),
                      sorted(m._parameters)))
    params = [(n, p.requires_grad, p.detach().clone()) for n, p in module.named_parameters()]
    hooks = (len(torch_module._global_forward_hooks), len(torch_module._global_forward_pre_hooks))
    return state, params, hooks


def _same(a, b):
    (sa, pa, ha), (sb, pb, hb) = a, b
    assert sa == sb
    assert ha == hb
    assert [(n, g) for n, g, _ in pa] == [(n, g) for n, g, _ in pb]
    assert all(torch.equal(x, y) for (_, _, x), (_, _, y) in zip(pa, pb))


def test_nothing_is_left_on_the_users_module():
    from alexcost.torch_run.verify import verify_module

    conv = nn.Conv2d(3, 3, 3, padding=1)
    module = nn.Sequential(conv, nn.ReLU(), nn.Dropout(0.5), conv, nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                           nn.Linear(12, 4)).train()
    module[6].weight.requires_grad_(False)
    before = _snapshot(module)
    from_module(module, (3, 8, 8))
    _same(before, _snapshot(module))
    result = verify_module(module, (3, 8, 8), batch=2)
    _same(before, _snapshot(module))
    assert module.training  # put back in training mode
    assert result.ok, result.problems


def test_the_static_path_never_imports_torch():
    code = ("import sys, alexcost, alexcost.torch_bridge, alexcost.torch_run.verify, alexcost_cli.verify; "
            "bad = [m for m in ('torch', 'fvcore') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["forward", "training", "to", "eval"])
def test_layer_named_like_an_nn_module_attribute(tmp_path, name):
    """`report` accepts any name; torch does not: verify says so in one line, no KeyError."""
    from click.testing import CliRunner

    from alexcost_cli.main import cli

    spec = tmp_path / "s.json"
    spec.write_text('{"input_shape": [3, 8, 8], "layers": [{"type": "ReLU", "name": "%s"}]}' % name)
    result = CliRunner().invoke(cli, ["verify", "--spec", str(spec)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"error: layers[0] '{name}' (ReLU): torch cannot name a module '{name}': "
                                     "nn.Module has an attribute of that name; rename the layer")


# -- any nn.Module, read through torch.fx ------------------------------------------------------------

class Residual(nn.Module):
    """A small residual block: conv-bn-relu, conv-bn, plus the input, relu."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class ResidualNet(nn.Module):
    def __init__(self, c=4, classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.block = Residual(c)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.block(self.stem(x))
        return self.head(torch.flatten(x.mean((2, 3), keepdim=True), 1))


def test_a_residual_network_is_read_as_a_graph():
    c, h, w, classes = 4, 6, 6, 5
    module = ResidualNet(c, classes).train()
    before = _snapshot(module)
    from_module(module, (3, h, w))
    _same(before, _snapshot(module))  # training flags restored, nothing added
    imported = _agrees_with_torch(module, (3, h, w))
    assert imported.paths == ("stem", "block.conv1", "block.bn1", "block:relu", "block.conv2", "block.bn2",
                              "block:add", "block:relu", ":mean", ":flatten", "head")
    assert imported.network.names == ("stem", "block_conv1", "block_bn1", "block_relu", "block_conv2",
                                      "block_bn2", "block_add", "block_relu_2", "mean", "flatten", "head")
    assert imported.network.inputs_of(6) == ("block_bn2", "stem")
    assert not imported.network.is_chain
    # hand arithmetic: the stem, two 3x3 convs without bias, the head
    assert imported.cost().totals.macs == c * h * w * 3 * 9 + 2 * (c * h * w * c * 9) + c * classes
    assert imported.first_use == tuple(range(11))
    assert imported.fx_nodes[6] == "add"
    assert imported.unused == {}


def test_the_graph_module_runs_the_users_code():
    module = ResidualNet().eval()
    imported = from_module(module, (3, 6, 6))
    gm = imported.graph_module
    assert isinstance(gm, torch.fx.GraphModule)
    assert gm.get_submodule("block.conv1") is module.block.conv1  # the user's own modules and parameters
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(gm(x), module(x))
    nodes = {n.name for n in gm.graph.nodes}
    assert set(imported.fx_nodes) <= nodes


def test_numpy_scalars_as_constructor_arguments():
    np = pytest.importorskip("numpy")
    module = nn.Sequential(nn.Conv2d(np.int64(3), np.int64(8), np.int64(3), stride=np.int32(2)),
                           nn.BatchNorm2d(np.int64(8), eps=np.float64(1e-3), momentum=np.float32(0.5)),
                           nn.LeakyReLU(np.float64(0.2)), nn.Flatten(), nn.Dropout(np.float64(0.25)),
                           nn.Linear(np.int64(8 * 4 * 4), np.int64(10)))
    imported = _agrees_with_torch(module, (3, 9, 9))
    assert imported.network.layers[1].eps == 1e-3 and type(imported.network.layers[1].eps) is float


def test_parameters_of_a_container_are_counted():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.scale = nn.Parameter(torch.ones(4, 1, 1))     # read by forward: a Parameter layer
            self.spare = nn.Parameter(torch.ones(7, 3))        # never read: unused, still torch's
            self.spare.requires_grad_(False)

        def forward(self, x):
            return self.scale * self.conv(x)

    module = nn.Sequential(Scaled())
    module.register_parameter("extra", nn.Parameter(torch.zeros(2)))  # on the outer container
    imported = _agrees_with_torch(module, (3, 8, 8))
    assert imported.paths == ("0.conv", "0:scale", "0:mul")
    assert [type(layer).__name__ for layer in imported.network.layers] == ["Conv2d", "Parameter", "Mul"]
    assert imported.weight_params[1] == 4
    assert imported.unused == {"0": 7 * 3, "": 2}
    assert imported.cost().totals.unused_params == 7 * 3 + 2
    assert imported.frozen == 7 * 3
    assert imported.trainable == sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_deep_nesting_and_names_torch_allows():
    depth = 150  # more than the old reader took; torch (and its flop counter) run this deep
    module = nn.ReLU()
    for _ in range(depth):
        module = nn.Sequential(module)
    imported = _agrees_with_torch(module, (3, 4))
    assert imported.paths == (".".join(["0"] * depth),)
    odd = nn.Sequential()
    for name in (" ", "\t", "input", "a-b", "layer name", "\u00e9"):
        odd.add_module(name, nn.ReLU())
    imported = _agrees_with_torch(odd, (3, 4))
    assert imported.paths == (" ", "\t", "input", "a-b", "layer name", "\u00e9")
    names = imported.network.names
    assert len(set(names)) == len(names) and "input" not in names
    assert all(n.strip() and n.isprintable() and "." not in n for n in names)


def test_a_forward_pre_hook_is_refused():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    handle = module[0].register_forward_pre_hook(lambda m, args: (args[0][..., 1:, 1:],))  # crops the input
    try:
        with pytest.raises(SpecError, match=r"module '0' \(Conv2d\) has 1 forward pre-hook\(s\)"):
            from_module(module, (3, 8, 8))
    finally:
        handle.remove()
    handle = module.register_forward_hook(lambda m, args, out: out[:, :2])
    try:
        with pytest.raises(SpecError, match=r"module '\(root\)' \(Sequential\) has 1 forward hook\(s\)"):
            from_module(module, (3, 8, 8))
    finally:
        handle.remove()
    _agrees_with_torch(module, (3, 8, 8))  # without hooks it reads


@pytest.mark.parametrize("kind", ["forward_hook", "forward_pre_hook"])
def test_global_hooks_are_refused(kind):
    from torch.nn.modules import module as torch_module

    handle = getattr(torch_module, f"register_module_{kind}")(lambda *args: None)
    try:
        with pytest.raises(SpecError, match=f"torch has 1 global forward {kind.split('_')[1]}"):
            from_module(nn.ReLU(), (3,))
    finally:
        handle.remove()


def test_control_flow_on_the_data_is_refused_with_its_line():
    class Gate(nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # depends on the values
                return x
            return -x

    module = nn.Sequential(nn.Conv2d(3, 3, 1), Gate())
    module.train()
    with pytest.raises(SpecError, match=r"module '1' \(Gate\): its forward\(\) branches on a traced value .*"
                                        r"test_torch_bridge\.py:\d+: if x\.sum\(\) > 0:"):
        from_module(module, (3, 4, 4))
    assert all(m.training for m in module.modules())  # flags restored on the way out


def test_subclasses_of_known_modules():
    class MyConv(nn.Conv2d):
        pass

    class Stack(nn.Sequential):
        pass

    class Activated(nn.Conv2d):  # overrides forward: traced through, its F.conv2d and relu read one by one
        def forward(self, x):
            return torch.relu(super().forward(x))

    imported = _agrees_with_torch(Stack(MyConv(3, 4, 3), nn.ReLU(), Activated(4, 2, 1)), (3, 8, 8))
    assert [type(layer).__name__ for layer in imported.network.layers] == ["Conv2d", "ReLU", "Conv2d", "ReLU"]
    assert imported.paths == ("0", "1", "2:conv2d", "2:relu")
    imported = from_module(MyConv(3, 5, 3, stride=2), (3, 9, 9))
    assert imported.paths == ("",) and imported.network.output_shape == (5, 4, 4)


def test_functional_calls_on_parameters():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 3, 3, 3))
            self.b = nn.Parameter(torch.randn(6))
            self.gamma, self.beta = nn.Parameter(torch.ones(6)), nn.Parameter(torch.zeros(6))
            self.register_buffer("mean", torch.zeros(6))
            self.register_buffer("var", torch.ones(6))
            self.ln_w, self.ln_b = nn.Parameter(torch.ones(6)), nn.Parameter(torch.zeros(6))
            self.fc = nn.Parameter(torch.randn(4, 6))

        def forward(self, x):
            x = F.conv2d(x, self.w, self.b, stride=2, padding=1)
            x = F.batch_norm(x, self.mean, self.var, self.gamma, self.beta, False, 0.1, 1e-5)
            x = F.layer_norm(x.permute(0, 2, 3, 1), (6,), self.ln_w, self.ln_b)
            return F.linear(x, self.fc)

    F = torch.nn.functional
    imported = _agrees_with_torch(Functional(), (3, 8, 8))
    assert [type(layer).__name__ for layer in imported.network.layers] == ["Conv2d", "BatchNorm2d", "Permute",
                                                                          "LayerNorm", "Linear"]
    assert imported.weight_params == (6 * 3 * 3 * 3, 6, 0, 6, 4 * 6)


def test_channel_shuffle_sizes_are_evaluated():
    class Shuffle(nn.Module):
        def forward(self, x):
            b, c, h, w = x.size()
            groups = math.gcd(c, 2)  # fx records math functions of traced sizes: evaluated
            x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)
            left, right = x.chunk(2, dim=1)
            return torch.cat((left, F.relu(right, inplace=True)), 1)

    F = torch.nn.functional
    imported = _agrees_with_torch(nn.Sequential(nn.Conv2d(3, 8, 1), Shuffle()), (3, 4, 4))
    assert [type(layer).__name__ for layer in imported.network.layers] == [
        "Conv2d", "View", "Transpose", "Contiguous", "View", "Chunk", "ReLU", "Cat"]
    assert imported.network.layers[1].shape == (2, 4, 4, 4)


@pytest.mark.parametrize("forward, message", [
    (lambda self, x: x * x.size(0), r"function 'mul' .* its argument 'other' depends on the batch size"),
    (lambda self, x: x.view(-1), r"method 'view' .* do not keep the batch as the first dimension"),
    (lambda self, x: x.view(1, -1), r"method 'view' .* do not keep the batch"),
    (lambda self, x: x.mean(), r"method 'mean' .* averages over every dimension, the batch's too"),
    (lambda self, x: x + self.p.view(1, -1, 1, 1),
     r"function 'add' .* a parameter of shape \[1, 3, 1, 1\] has more dimensions than the batched input \[N, 3, 4\]"),
    (lambda self, x: torch.cumsum(x, 1),
     r"function 'cumsum' in module '\(root\)' \(Net\) \(fx node 'cumsum'\): alexcost has no layer kind "
     r"for torch\..*cumsum"),
    (lambda self, x: (x, x), r"forward\(\) returns tuple of 2 values"),
    (lambda self, x: x.expand(2, 3, 4), r"method 'expand' .* expands to \[2, 3, 4\]; alexcost keeps the batch"),
    (lambda self, x: x[1:], r"function 'getitem' .* indexes the batch dimension"),
    (lambda self, x: x[:, self.buf.long()], r"method 'long' .* no layer kind for the tensor method long\(\)"),
])
def test_what_has_no_kind_is_refused_naming_the_node(forward, message):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.ones(3))
            self.register_buffer("buf", torch.ones(3, 4))

    Net.forward = forward
    with pytest.raises(SpecError, match=message):
        from_module(Net(), (3, 4))


def test_refused_module_setups():
    conv = nn.Conv2d(3, 3, 1)
    conv.forward = lambda x: x  # replaced on the instance: torch would run it, fx would not
    with pytest.raises(SpecError, match=r"module '0' \(Conv2d\) has its forward replaced on the instance"):
        from_module(nn.Sequential(conv), (3, 4, 4))
    with pytest.raises(SpecError, match=r"module '0' \(LazyConv2d\) has an uninitialized 'weight'"):
        from_module(nn.Sequential(nn.LazyConv2d(3, 1)), (3, 4, 4))
    weighted = torch.nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 3, 1))
    with pytest.raises(SpecError, match=r"module '0' \(ParametrizedConv2d\) has parametrized tensors \(weight\)"):
        from_module(nn.Sequential(weighted), (3, 4, 4))

    class Loose(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = [nn.Conv2d(3, 3, 1)]  # a plain list: not a submodule

        def forward(self, x):
            return self.convs[0](x)
    with pytest.raises(SpecError, match=r"torch\.fx cannot trace its forward\(\) without data: NameError: "
                                        r"module is not installed as a submodule"):
        from_module(Loose(), (3, 4, 4))

    class Two(nn.Module):
        def forward(self, x, y):
            return x + y
    with pytest.raises(SpecError, match=r"forward\(\) needs an argument 'y' besides its input"):
        from_module(Two(), (3,))


def test_forward_arguments_with_defaults_keep_them():
    class Optional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, twice=False, scale=None):
            x = self.fc(x)
            return self.fc(x) if twice else x

    imported = _agrees_with_torch(Optional(), (4,))
    assert imported.paths == ("fc",)


def test_the_output_is_the_last_layer():
    class Late(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 2)

        def forward(self, x):
            y = self.a(x)
            self.b(x)  # runs, its result unused: torch counts it, so does alexcost
            return y

    imported = _agrees_with_torch(Late(), (4,))
    assert imported.paths == ("b", "a") and imported.network.output_shape == (3,)

    class Same(nn.Module):
        def forward(self, x):
            return x
    imported = _agrees_with_torch(Same(), (4,))
    assert imported.paths == (":output",)


def test_tensor_constants_are_not_left_on_the_module():
    class Offset(nn.Module):
        def forward(self, x):
            return x + torch.ones(3)  # fx stows the constant away on the root module while tracing

    module = Offset()
    before = _snapshot(module)
    with pytest.raises(SpecError, match=r"reads the constant '_tensor_constant0', which fx computed while tracing"):
        from_module(module, (3,))
    _same(before, _snapshot(module))
    assert not hasattr(module, "_tensor_constant0")


def test_graphs_from_to_module_come_back():
    from alexcost import Add, Cat, Chunk, Conv2d, Mul, Network, Parameter, ReLU

    network = Network((4, 6, 6), [
        Conv2d(name="conv", out_channels=4, kernel_size=3, padding=1),
        ReLU(name="relu"),
        Add(name="add", inputs=("relu", "input")),
        Chunk(name="halves", chunks=2, dim=1),
        Cat(name="cat", dim=1, inputs=("halves.1", "halves.0")),
        Parameter(name="scale", shape=(4, 1, 1)),
        Mul(name="mul", inputs=("cat", "scale"))])
    module = to_module(network)
    imported = _agrees_with_torch(module, network.input_shape)
    assert imported.network.names == network.names
    assert imported.network.sources == network.sources
    assert [r.params for r in imported.cost().layers] == [r.params for r in network.cost().layers]


# -- random graphs, through to_module and back -------------------------------------------------------


@pytest.mark.slow
@given(dag_graphs())
def test_random_graphs_come_back_with_torchs_counts(network):
    imported = _agrees_with_torch(to_module(network), network.input_shape)
    ours, theirs = imported.cost(2), network.cost(2)
    assert [(r.type, r.params, r.macs, r.bias_adds, r.other_ops, r.input_shape, r.output_shape)
            for r in ours.layers] == [(r.type, r.params, r.macs, r.bias_adds, r.other_ops, r.input_shape,
                                       r.output_shape) for r in theirs.layers]


def test_in_place_operators_stay_in_place():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.gate = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            out = self.conv(x)
            out += x          # torch adds into out's storage; fx alone would trace out + x
            out *= self.gate(x).sigmoid()
            return out

    module = InPlace().eval()
    imported = _agrees_with_torch(module, (3, 4, 4))
    assert imported.paths == ("conv", ":add", "gate", ":sigmoid", ":mul")
    assert [(type(layer).__name__, getattr(layer, "inplace", None)) for layer in imported.network.layers] == [
        ("Conv2d", None), ("Add", True), ("Conv2d", None), ("Sigmoid", None), ("Mul", True)]
    assert [row.new_storage for row in imported.cost().layers] == [True, False, True, True, False]
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(imported.graph_module(x), module(x))


# -- what an eval-mode trace cannot see of a training step ---------------------------------------------

class _TwoConvs(nn.Module):
    """The issue's two 3x3 convolution blocks on (4, 8, 8); ``body`` is the forward."""

    def __init__(self, body):
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def _checkpoint_reentrant(self, x):
    from torch.utils.checkpoint import checkpoint

    return self.c2(checkpoint(self.c1, x, use_reentrant=True))


def _autocast(self, x):
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        y = self.c1(x)
    return self.c2(y.float())


def _plain(self, x):
    return self.c2(self.c1(x))


@pytest.mark.parametrize("body, says", [
    (_checkpoint_reentrant, "fx node 'c1'.*torch.utils.checkpoint"),
    (_autocast, "fx node 'c1'.*autocast \\(bfloat16 on cpu\\)")], ids=lambda v: getattr(v, "__name__", ""))
def test_modes_alexcost_does_not_model_are_refused_at_their_node(body, says):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reentrant checkpoint: "None of the inputs have requires_grad=True"
        for mode in ("train", "eval"):
            module = getattr(_TwoConvs(body), mode)()
            with pytest.raises(SpecError, match=says + ".*does not read this one"):
                from_module(module, (4, 8, 8))
            assert module.training == (mode == "train")


def test_the_callers_grad_mode_does_not_matter():
    with torch.no_grad():  # the caller's mode is not the forward's change
        imported = from_module(_TwoConvs(_plain), (4, 8, 8))
        assert imported.network.names == ("c1", "c2") and not imported.network.modes
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


def _branches(self, x):
    if self.training:
        x = self.c1(x)
    return self.c2(x)


def test_a_training_branch_is_refused_in_training_mode_and_noted_in_eval_mode():
    module = _TwoConvs(_branches)
    x = torch.randn(1, 4, 8, 8)
    assert _torch_flops(module.train(), x) == 2 * _torch_flops(module.eval(), x)  # two convolutions, or one
    module.train()
    with pytest.raises(SpecError, match=r"module '\(root\)' \(_TwoConvs\): its forward\(\) tests self.training "
                                        r"\(at .*test_torch_bridge.py:\d+: if self.training:\), and it is in "
                                        r"training mode.*call .eval\(\)"):
        from_module(module, (4, 8, 8))
    assert module.training and module.c1.training
    imported = from_module(module.eval(), (4, 8, 8))
    assert imported.network.names == ("c2",)  # what eval mode runs
    assert len(imported.eval_branches) == 1 and "tests self.training (at " in imported.eval_branches[0]
    assert not module.training


def test_dropout_given_self_training_is_no_branch():
    F = torch.nn.functional

    class Drop(_TwoConvs):
        def forward(self, x):
            return F.dropout(self.c1(x), 0.5, self.training)

    imported = from_module(Drop(None).train(), (4, 8, 8))
    assert [type(layer).__name__ for layer in imported.network.layers] == ["Conv2d", "Dropout"]
    assert imported.eval_branches == ()
    node = next(n for n in imported.graph_module.graph.nodes if n.op == "call_function")
    assert node.kwargs.get("training", node.args[2] if len(node.args) > 2 else None) is False


def test_grad_mode_tests_are_refused():
    class Asks(_TwoConvs):
        def forward(self, x):
            if torch.is_grad_enabled():
                x = self.c1(x)
            return self.c2(x)

    real = torch.is_grad_enabled
    with pytest.raises(SpecError, match=r"asks torch.is_grad_enabled\(\) \(at .*if torch.is_grad_enabled\(\):\)"):
        from_module(Asks(None).eval(), (4, 8, 8))
    assert torch.is_grad_enabled is real  # put back


@pytest.mark.slow
@pytest.mark.parametrize("wrap, says", [
    (lambda m: torch.jit.trace(m, torch.randn(1, 3, 4, 4)), "TorchScript module.*pass the eager module"),
    (lambda m: torch.jit.script(m), "TorchScript module.*pass the eager module"),
    (lambda m: torch.compile(m), "compiled with torch.compile.*pass module._orig_mod"),
    (lambda m: nn.Sequential(torch.jit.script(m)), r"module '0' \(RecursiveScriptModule\) is a TorchScript")])
def test_wrappers_say_what_to_pass_instead(wrap, says):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = wrap(nn.Conv2d(3, 3, 1))
    with pytest.raises(SpecError, match=says):
        from_module(wrapped, (3, 4, 4))


def test_an_invalid_view_is_refused_at_its_node_in_torchs_words():
    class Transposed(nn.Module):
        def forward(self, x):
            return x.transpose(2, 3).view(x.size(0), -1)

    with pytest.raises(RuntimeError, match=r"view size is not compatible .* Use .reshape\(...\) instead"):
        Transposed()(torch.randn(2, 3, 4, 5))
    with pytest.raises(SpecError, match=r"method 'view' in module '\(root\)' \(Transposed\) \(fx node 'view'\): "
                                        r"view size is not compatible with input tensor's size and stride \(at least "
                                        r"one dimension spans across two contiguous subspaces\). Use .reshape\(...\) "
                                        r"instead."):
        from_module(Transposed(), (3, 4, 5))

    class Reshaped(nn.Module):  # the same with reshape, or a view torch can make: read
        def forward(self, x):
            return x.transpose(2, 3).reshape(x.size(0), -1) + x.view(x.size(0), -1)

    assert _agrees_with_torch(Reshaped(), (3, 4, 5)).network.output_shape == (60,)
