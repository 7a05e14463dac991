"""The torch bridge, both ways: Network -> nn.Sequential, and nn.Module -> Network.

Expected values come from torch (``numel``, real output shapes, FlopCounterMode) or from
hand arithmetic written out below.
"""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import PRESETS, SpecError, preset  # noqa: E402
from alexcost.torch_bridge import from_module, to_module  # noqa: E402


def _torch_flops(module, x):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", list(PRESETS))
def test_to_module_names_children_as_layers_and_runs(name):
    network = preset(name)
    module = to_module(network).eval()
    assert [n for n, _ in module.named_children()] == list(network.names)
    assert [type(m).__name__ for m in module.children()] == [type(layer).__name__ for layer in network.layers]
    with torch.no_grad():
        out = module(torch.randn(2, *network.input_shape))
    assert tuple(out.shape) == (2, *network.output_shape)
    assert sum(p.numel() for p in module.parameters()) == network.cost().totals.params


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
    module = nn.Sequential(OrderedDict(features=nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2)),
                                       head=nn.Linear(4, 2)))
    with pytest.raises(SpecError, match=r"module 'features\.1' \(Upsample\) \(fx node 'features_1'\): is not "
                                        r"supported: alexcost has no layer kind for torch\.nn\.Upsample"):
        from_module(module, (3, 8, 8))


def test_slicing_a_tensor_is_refused_by_node():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(x) + x[..., 1:-1, 1:-1]

    with pytest.raises(SpecError, match=r"function 'getitem' in module '0' \(Block\) \(fx node 'getitem'\): "
                                        r"indexes or slices a tensor of shape \[N, 3, 8, 8\]"):
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
    with pytest.raises(SpecError, match=r"module '0' \(MaxPool2d\).*return_indices"):
        from_module(nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (3, 8, 8))


def test_a_replaced_weight_is_caught():
    conv = nn.Conv2d(3, 4, 3)
    conv.weight = nn.Parameter(torch.zeros(4, 3, 2, 2))  # not what Conv2d(3, 4, 3) computes with
    with pytest.raises(SpecError, match=r"module '0' \(Conv2d\).*weight has 48 elements.* 108"):
        from_module(nn.Sequential(conv), (3, 8, 8))


def test_module_used_twice_counts_params_once_and_macs_twice():
    c, h, w, k = 4, 6, 6, 3
    conv = nn.Conv2d(c, c, k, padding=1)
    module = nn.Sequential(conv, nn.ReLU(), conv)
    imported = from_module(module, (c, h, w))
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
    from alexcost.crosscheck import verify_module

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
    code = ("import sys, alexcost, alexcost.torch_bridge, alexcost.crosscheck, alexcost_cli.verify; "
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
