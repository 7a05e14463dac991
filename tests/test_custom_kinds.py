"""A user's own layer kind, through the public API only, checked against torch."""

from dataclasses import dataclass
from math import prod

import pytest

from alexcost import LAYER_KINDS, Conv2d, Layer, Network, ReLU, SpecError, network_from_dict, register_layer


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
