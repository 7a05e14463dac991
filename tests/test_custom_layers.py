"""A user's own layer kind, through the public API only, checked against torch."""

from dataclasses import dataclass
from math import prod

import pytest

from alexcost import LAYER_KINDS, Conv2d, Layer, Network, ReLU, SpecError, network_from_dict, register_layer


@dataclass(frozen=True, kw_only=True)
class BatchNorm2d(Layer):
    """Inference batch norm: 2*C parameters, 2 ops per element."""

    num_features: int | None = None
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True
    track_running_stats: bool = True

    def output_shape(self, x):
        if self.num_features not in (None, x[0]):
            raise SpecError(f"expected num_features={self.num_features}, got {x[0]} channels")
        return x

    def weight_params(self, x):
        return x[0] if self.affine else 0

    def bias_params(self, x):
        return x[0] if self.affine else 0

    def other_ops(self, x, y):
        return 2 * prod(y)

    def torch_args(self, x):
        return {**self.args(), "num_features": x[0]}


@pytest.fixture
def registered():
    register_layer(BatchNorm2d)
    yield BatchNorm2d
    del LAYER_KINDS["BatchNorm2d"]


def test_custom_kind_counts_and_spec(registered):
    net = network_from_dict({"input_shape": [3, 10, 10], "layers": [
        {"type": "Conv2d", "out_channels": 6, "kernel_size": 3},
        {"type": "BatchNorm2d", "affine": False},
        {"type": "BatchNorm2d", "name": "bn"},
    ]})
    rows = net.cost(batch=2).layers
    assert rows[1].params == 0 and rows[2].params == 2 * 6
    assert rows[2].other_ops == 2 * 2 * 6 * 8 * 8


def test_custom_kind_matches_torch(registered):
    torch = pytest.importorskip("torch")
    from alexcost.torch_bridge import to_module

    net = Network((3, 10, 10), [Conv2d(out_channels=6, kernel_size=3), BatchNorm2d(name="bn"), ReLU()])
    module = to_module(net).eval()
    assert isinstance(module.bn, torch.nn.BatchNorm2d)
    assert sum(p.numel() for p in module.bn.parameters()) == net.cost()["bn"].params
    assert tuple(module(torch.randn(1, 3, 10, 10)).shape[1:]) == net.output_shape


def test_registry_rules(registered):
    with pytest.raises(ValueError, match="already registered"):
        @register_layer
        @dataclass(frozen=True, kw_only=True)
        class BatchNorm2d(Layer):  # noqa: F811 - a second class under a taken name
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

    with pytest.raises(SpecError, match="Mystery has no torch.nn counterpart"):
        Mystery().torch_module((3,))
