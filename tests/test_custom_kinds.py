"""A user's own layer kind, through the public API only, checked against torch; and the torch
module class or function it reads (``register_layer(..., reads=...)``)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from math import prod
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from alexcost import Conv2d, LAYER_KINDS, Layer, Network, ReLU, SpecError, network_from_dict, register_layer  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class GroupNorm(Layer):
    """Group norm: 2*C parameters, 7 ops per element; fvcore counts 5 per element with affine."""

    num_groups: int
    num_channels: int | None = None
    eps: float = 1e-5
    affine: bool = True

    def output_shape(self, x):
        if self.num_channels not in (None, x[0]):
            raise SpecError(f"expected num_channels={self.num_channels}, got {x[0]} channels")
        if x[0] % self.num_groups:
            raise SpecError(f"num_channels must be divisible by num_groups, got {x[0]} and {self.num_groups}")
        return x

    def weight_params(self, x):
        return x[0] if self.affine else 0

    def bias_params(self, x):
        return x[0] if self.affine else 0

    def other_ops(self, x, y):
        return 7 * prod(y)

    def fvcore_count(self, x, y):
        return prod(x) * (5 if self.affine else 4)

    def torch_args(self, x):
        return {**self.args(), "num_channels": x[0]}


@pytest.fixture
def registered():
    builtin = LAYER_KINDS["GroupNorm"]
    register_layer(GroupNorm, replace=True)  # alexcost ships a GroupNorm: this one takes its name
    yield GroupNorm
    LAYER_KINDS["GroupNorm"] = builtin


def test_custom_kind_counts_and_spec(registered):
    net = network_from_dict({"input_shape": [3, 10, 10], "layers": [
        {"type": "Conv2d", "out_channels": 6, "kernel_size": 3},
        {"type": "GroupNorm", "num_groups": 2, "affine": False},
        {"type": "GroupNorm", "num_groups": 3, "name": "gn"},
    ]})
    rows = net.cost(batch=2).layers
    assert rows[1].params == 0 and rows[2].params == 2 * 6
    assert rows[2].other_ops == 7 * 2 * 6 * 8 * 8


def test_custom_kind_matches_torch(registered):
    torch = pytest.importorskip("torch")
    from alexcost.torch_bridge import to_module

    net = Network((3, 10, 10), [Conv2d(out_channels=6, kernel_size=3), GroupNorm(name="gn", num_groups=3), ReLU()])
    module = to_module(net).eval()
    assert isinstance(module.gn, torch.nn.GroupNorm)
    assert sum(p.numel() for p in module.gn.parameters()) == net.cost()["gn"].params
    assert tuple(module(torch.randn(1, 3, 10, 10)).shape[1:]) == net.output_shape


def test_registry_rules(registered):
    with pytest.raises(ValueError, match="already registered"):
        @register_layer
        @dataclass(frozen=True, kw_only=True)
        class GroupNorm(Layer):  # noqa: F811 - a second class under a taken name
            def output_shape(self, x):
                return x
    with pytest.raises(TypeError):
        register_layer(dict)


def test_custom_shape_is_checked():
    @dataclass(frozen=True, kw_only=True)
    class Vanish(Layer):
        def output_shape(self, x):
            return (0,)

    with pytest.raises(SpecError, match=r"layers\[0\] 'vanish0' \(Vanish\) on input \[3\]: .*must be positive"):
        Network((3,), [Vanish()])


def test_unregistered_kind_has_no_torch_module():
    pytest.importorskip("torch")

    @dataclass(frozen=True, kw_only=True)
    class Mystery(Layer):
        def output_shape(self, x):
            return x

    from alexcost.torch_bridge import to_module

    with pytest.raises(SpecError, match="Mystery has no torch.nn counterpart; define torch_module"):
        to_module(Network((3,), [Mystery()]))

    @dataclass(frozen=True, kw_only=True)
    class Doubled(Layer):
        """A custom kind that says its own torch module."""

        def output_shape(self, x):
            return x

        def torch_module(self, x):
            import torch

            return torch.nn.Linear(x[0], x[0])

    module = to_module(Network((3,), [Doubled(name="twice")]))
    assert type(module.twice).__name__ == "Linear" and module.twice.in_features == 3


# == what a registered kind reads from torch =======================================================
# A kind registered in Python names the torch module class or function it reads
# (``register_layer(..., reads=...)``), and ``from_module`` reads it; the torch side builds that class
# back for ``to_module``. Expected counts come from torch's own parameters and arithmetic here.

nn, F = torch.nn, torch.nn.functional


EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "prelu_net.py"
"""The docs' PReLU kind (num_parameters weights, 2 ops per element), loaded afresh for each test."""


@pytest.fixture
def PReLU():  # noqa: N802 - the kind itself
    """The kind, unregistered: each test registers it as it needs; what it registered is undone after it."""
    before = dict(LAYER_KINDS)
    spec = importlib.util.spec_from_file_location("prelu_net_under_test", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # registers it, as the file does
    LAYER_KINDS.clear()
    LAYER_KINDS.update(before)
    module.PReLU.torch_reads = ()
    yield module.PReLU
    LAYER_KINDS.clear()
    LAYER_KINDS.update(before)
    sys.modules.pop(spec.name, None)


def read(module, shape):
    from alexcost.torch_bridge import from_module

    return from_module(module, shape)


def test_without_reads_the_module_is_refused(PReLU):
    register_layer(PReLU)
    with pytest.raises(SpecError, match=r"no layer kind for torch.nn.PReLU"):
        read(nn.Sequential(nn.Conv2d(3, 4, 1), nn.PReLU(4)), (3, 8, 8))


@pytest.mark.parametrize("reads", [nn.PReLU, "torch.nn.PReLU", (nn.PReLU, F.prelu)])
def test_a_module_class_is_read_as_the_kind(PReLU, reads):
    register_layer(PReLU, reads=reads)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.PReLU(4), nn.PReLU())
    imported = read(model, (3, 8, 8))
    layers = imported.network.layers
    assert [type(layer).__name__ for layer in layers] == ["Conv2d", "PReLU", "PReLU"]
    assert (layers[1].num_parameters, layers[2].num_parameters) == (4, 1)
    assert imported.cost().totals.params == sum(p.numel() for p in model.parameters()) == (3 + 1) * 4 + 4 + 1
    assert imported.cost().totals.other_ops == 2 * (2 * 4 * 8 * 8)


def test_a_subclass_that_changes_nothing_is_read_one_that_does_is_not(PReLU):
    register_layer(PReLU, reads=nn.PReLU)

    class Same(nn.PReLU):
        pass

    class Other(nn.PReLU):
        def forward(self, x):
            return super().forward(x) * 2

    assert type(read(nn.Sequential(Same(3)), (3, 4, 4)).network.layers[0]) is PReLU
    with pytest.raises(SpecError, match="no layer kind for"):
        read(nn.Sequential(Other(3)), (3, 4, 4))


class Functional(nn.Module):
    def __init__(self, weight=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)
        self.slope = nn.Parameter(torch.full((5,), 0.25)) if weight else None

    def forward(self, x):
        return F.prelu(self.conv(x), self.slope if self.slope is not None else torch.ones(5))


def test_a_function_is_read_as_the_kind(PReLU):
    """``F.prelu(x, weight)``: the first argument is the input, ``weight`` the layer's parameter."""
    register_layer(PReLU, reads=F.prelu)  # a builtin with no signature: (input, weight) by position
    with pytest.raises(SpecError, match="its weight has 5 elements, but PReLU with these arguments has 1"):
        read(Functional(), (3, 4, 4))  # the call gives no num_parameters: the kind's default (1) holds 1 weight
    with pytest.raises(SpecError, match="its weight is not a parameter of the module"):
        read(Functional(weight=False), (3, 4, 4))

    @dataclass(frozen=True, kw_only=True)
    class PerChannel(PReLU):
        def weight_params(self, x):
            return x[0]

    register_layer(PerChannel, reads=F.prelu)
    model = Functional()
    imported = read(model, (3, 4, 4))
    assert type(imported.network.layers[1]) is PerChannel
    assert imported.params == sum(p.numel() for p in model.parameters()) == (3 + 1) * 5 + 5


def test_a_function_argument_the_kind_lacks_is_refused(PReLU):
    register_layer(PReLU, reads=F.dropout)  # F.dropout(x, p, training, inplace): PReLU has no field 'p'

    class Drop(nn.Module):
        def forward(self, x):
            return F.dropout(x, 0.5, False)

    with pytest.raises(SpecError, match=r"has an argument 'p' that PReLU has no field for"):
        read(Drop(), (3, 4, 4))


def test_a_name_that_names_nothing_is_one_error(PReLU):
    register_layer(PReLU, reads="torch.nn.NoSuchModule")
    with pytest.raises(SpecError, match=r"layer kind PReLU reads 'torch.nn.NoSuchModule', which names nothing"):
        read(nn.Sequential(nn.ReLU()), (3, 4, 4))


def test_reads_must_name_a_class_or_function(PReLU):
    with pytest.raises(TypeError, match="reads"):
        register_layer(PReLU, reads=3)
    with pytest.raises(TypeError, match="reads"):
        register_layer(PReLU, reads=())


def test_to_module_builds_the_class_the_kind_reads(PReLU):
    from alexcost import Network
    from alexcost.torch_bridge import to_module

    register_layer(PReLU, reads="torch.nn.PReLU")
    module = to_module(Network((4, 6, 6), [PReLU(name="act", num_parameters=4)]))
    assert type(module.act) is nn.PReLU and module.act.weight.numel() == 4
    assert tuple(module(torch.randn(2, 4, 6, 6)).shape) == (2, 4, 6, 6)


def test_evaluate_takes_a_module_read_by_from_module():
    """evaluate([imported]) costs it, parameters counted once as from_module counts them."""
    from alexcost.search import evaluate

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    module = Twice()
    row = evaluate([read(module, (4, 8, 8))]).rows[0]
    assert row.ok, row.error
    assert row.params == sum(p.numel() for p in module.parameters()) == (4 * 9 + 1) * 4
    assert row.macs == 2 * 4 * 8 * 8 * 4 * 9 and row.name == "Twice"
