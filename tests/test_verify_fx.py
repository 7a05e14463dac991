"""verify on modules read through torch.fx: layers that are function calls (``torch.cat``, ``+``),
parameters read by ``get_attr``, a module called twice, each observed node by node.

The imported networks here are written by hand beside the module (``imported``, the interface
`from_module` returns), so these tests check the verify side on its own. Expected numbers are
hand arithmetic or what fvcore and torch report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import prod

import pytest

torch = pytest.importorskip("torch")
fx = pytest.importorskip("torch.fx")
nn = torch.nn

from alexcost import (Add, AdaptiveAvgPool2d, Cat, Chunk, Conv2d, Flatten, Linear, Mul, Network,  # noqa: E402
                      Parameter, ReLU, Sigmoid)
from alexcost.torch_run.verify import render, verify_imported  # noqa: E402


@dataclass(frozen=True)
class Imported:
    """What `from_module` returns for a traced module (the fields verify reads)."""

    network: Network
    paths: tuple
    first_use: tuple
    weight_params: tuple
    bias_params: tuple
    frozen_params: tuple
    unused: dict
    graph_module: object
    fx_nodes: tuple
    folds: dict = field(default_factory=dict)  # nothing folded into the batch
    fvcore_calls: tuple = ()

    def cost(self, batch=1, dtype="float32"):
        return replace(self.network.cost(batch, dtype), params=tuple(zip(self.weight_params, self.bias_params)),
                       unused_params=sum(self.unused.values()))


def imported(module, input_shape, layers):
    """``layers``: (fx node name, alexcost layer) per layer, in the graph's order. Paths: the module
    path of a module call or a parameter, ``parent:node`` for a function call."""
    gm = fx.symbolic_trace(module)
    nodes = {n.name: n for n in gm.graph.nodes}
    network = Network(input_shape, [layer for _, layer in layers], name=type(module).__name__)
    paths, first, seen = [], [], {}
    for i, (node, _) in enumerate(layers):
        n = nodes[node]
        paths.append(n.target if n.op in ("call_module", "get_attr") else f":{node}")
        first.append(seen.setdefault(paths[-1], i) if n.op == "call_module" else i)
    cost = network.cost()
    weight = tuple(r.weight_params if first[i] == i else 0 for i, r in enumerate(cost.layers))
    bias = tuple(r.bias_params if first[i] == i else 0 for i, r in enumerate(cost.layers))
    return Imported(network, tuple(paths), tuple(first), weight, bias, (0,) * len(layers), {}, gm,
                    tuple(node for node, _ in layers))


# -- the modules ------------------------------------------------------------------------------------

class Residual(nn.Module):
    """conv -> relu -> conv, plus the input (``y + x``), then relu."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1, self.relu, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(self.relu(self.conv1(x))) + x)


def residual_layers(c=4):
    return [("conv1", Conv2d(name="conv1", out_channels=c, kernel_size=3, padding=1)), ("relu", ReLU(name="relu")),
            ("conv2", Conv2d(name="conv2", out_channels=c, kernel_size=3, padding=1)),
            ("add", Add(name="add", inputs=("conv2", "input"))), ("relu_1", ReLU(name="relu_1"))]


class Shuffle(nn.Module):
    """ShuffleNet-like: split the channels, a conv on one half, concatenate, a layer scale, a head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.gamma = nn.Parameter(torch.full((4, 1, 1), 0.5))
        self.pool, self.fc = nn.AdaptiveAvgPool2d(2), nn.Linear(16, 3)

    def forward(self, x):
        a, b = x.chunk(2, 1)
        y = torch.cat([self.conv(b), a], 1) * self.gamma
        return self.fc(torch.flatten(self.pool(y), 1))


SHUFFLE_LAYERS = [("chunk", Chunk(name="chunk", chunks=2, dim=1)),
                  ("conv", Conv2d(name="conv", out_channels=2, kernel_size=1, inputs=("chunk.1",))),
                  ("cat", Cat(name="cat", dim=1, inputs=("conv", "chunk.0"))),
                  ("gamma", Parameter(name="gamma", shape=(4, 1, 1))),
                  ("mul", Mul(name="mul", inputs=("cat", "gamma"))),
                  ("pool", AdaptiveAvgPool2d(name="pool", output_size=2)), ("flatten", Flatten(name="flatten")),
                  ("fc", Linear(name="fc", out_features=3))]


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc(pool(x))), the product broadcast over H and W; the same conv called twice."""

    def __init__(self, c=4):
        super().__init__()
        self.pool, self.squeeze = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        s = torch.sigmoid(self.squeeze(torch.relu(self.squeeze(self.pool(x)))))
        return x * s


SE_LAYERS = [("pool", AdaptiveAvgPool2d(name="pool", output_size=1)),
             ("squeeze", Conv2d(name="squeeze", out_channels=4, kernel_size=1)), ("relu", ReLU(name="relu")),
             ("squeeze_1", Conv2d(name="squeeze_1", out_channels=4, kernel_size=1)),
             ("sigmoid", Sigmoid(name="sigmoid")), ("mul", Mul(name="mul", inputs=("input", "sigmoid")))]


# -- the tests --------------------------------------------------------------------------------------

def test_function_calls_are_observed_and_checked_by_fvcores_total():
    module = Residual()
    result = verify_imported(imported(module, (4, 6, 6), residual_layers()), module, batch=2)
    assert result.ok, result.problems
    checks = {c.name: c for c in result.layers}
    conv_macs = 2 * 4 * 6 * 6 * 4 * 3 * 3  # batch 2: C_out*H*W*C_in*kH*kW
    assert checks["conv1"].fvcore == conv_macs and checks["conv1"].torch == 2 * conv_macs
    assert checks["conv1"].measured_bias_adds == 2 * 4 * 6 * 6
    # torch.relu and + are function calls: seen by the interpreter, not named by fvcore's by_module
    assert [c.name for c in result.layers if c.fvcore_check == "total"] == ["add", "relu_1"]
    assert checks["add"].measured_shape == (4, 6, 6) and checks["add"].measured_other_ops == 2 * 4 * 6 * 6
    assert checks["add"].torch == 0 and checks["add"].fvcore is None
    assert result.fvcore_total == 2 * conv_macs and result.torch_total == 4 * conv_macs
    text = render(result)
    assert "Checked by fvcore's total only (its by_module names modules, not function calls or parameters): " \
           "add, relu_1" in text
    assert "ok (fvcore: checked by its total only)" in text


def test_chunk_cat_a_parameter_and_a_head():
    module = Shuffle()
    result = verify_imported(imported(module, (4, 5, 5), SHUFFLE_LAYERS), module, batch=3)
    assert result.ok, result.problems
    checks = {c.name: c for c in result.layers}
    assert checks["chunk"].measured_shape == ((2, 5, 5), (2, 5, 5))
    assert checks["gamma"].measured_shape == (4, 1, 1) and checks["gamma"].measured_params == 4
    assert checks["mul"].measured_other_ops == 3 * 4 * 5 * 5  # one multiply per output element
    assert checks["pool"].fvcore == 3 * 4 * 5 * 5  # fvcore: adaptive_avg_pool2d's input elements
    assert checks["fc"].fvcore == 3 * 16 * 3 and checks["fc"].measured_bias_adds == 3 * 3
    assert result.measured_params == 2 * 2 + 2 + 4 + 16 * 3 + 3 == result.params
    assert {c.name for c in result.layers if c.fvcore_check == "total"} == {"chunk", "cat", "gamma", "mul", "flatten"}


def test_a_module_called_twice_in_a_traced_graph():
    module = SqueezeExcite()
    result = verify_imported(imported(module, (4, 3, 3), SE_LAYERS), module, batch=2)
    assert result.ok, result.problems
    first, again = result.layers[1], result.layers[3]
    assert again.repeat_of == "squeeze" and again.measured_params == 0
    assert first.torch == again.torch == 2 * (2 * 4 * 4)  # each call: batch 2, a 1x1 conv on 1x1
    assert first.fvcore == 2 * (2 * 4 * 4)  # fvcore: both calls, filed under the first name
    assert result.layers[5].measured_other_ops == 2 * 4 * 3 * 3  # x * s broadcast over H and W


def test_a_network_that_misreads_the_module_fails():
    """The imported network says the pool reads the conv's output (3x3); the module pools the
    input (6x6). The outputs agree; fvcore, torch's shapes and the other ops do not."""
    class Misread(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(2, 2, 2, stride=2), nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return self.pool(x) + self.conv(x).sum(dim=(2, 3), keepdim=True)

    module = Misread()
    layers = [("conv", Conv2d(name="conv", out_channels=2, kernel_size=2, stride=2)),
              ("pool", AdaptiveAvgPool2d(name="pool", output_size=1))]
    result = verify_imported(imported(module, (2, 6, 6), layers), module)
    pool = result.layers[1]
    assert not result.ok and pool.measured_shape == (2, 1, 1)
    assert pool.other_ops == 2 * 3 * 3 and pool.measured_other_ops == 2 * 6 * 6
    assert any(p.startswith("pool: other ops: alexcost 18, AdaptiveAvgPool2d's formula on the shapes torch ran "
                            "(1 * 2 * 6 * 6 -> 1 * 2 * 1 * 1) 72") for p in result.problems)
    assert "pool: fvcore: alexcost 18 (AdaptiveAvgPool2d declares fvcore_count), fvcore 72" in result.problems


def test_the_users_module_and_graph_are_left_as_they_were():
    module = Residual().train()
    imp = imported(module, (4, 4, 4), residual_layers())
    imp.graph_module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    assert verify_imported(imp, module).ok
    assert module.training and all(m.training for m in module.modules()) and imp.graph_module.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def test_parameters_no_layer_reads_are_in_the_total():
    module = Residual()
    module.spare = nn.Linear(3, 3)  # never called by forward: torch counts its 12 parameters
    imp = imported(module, (4, 4, 4), residual_layers())
    assert not verify_imported(imp, module).ok  # the imported network says nothing of them
    fixed = replace(imp, unused={"spare": 3 * 3 + 3})
    result = verify_imported(fixed, module)
    assert result.ok, result.problems
    assert result.measured_params == sum(p.numel() for p in module.parameters()) == result.params
    assert prod((3, 3)) + 3 == 12


# -- through from_module ------------------------------------------------------------------------------

class Functional(nn.Module):
    """A convolution and a layer norm as function calls on the module's own parameters, and a residual."""

    def __init__(self):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(3, 3, 3, 3)), nn.Parameter(torch.randn(3))
        self.ln_weight, self.ln_bias = nn.Parameter(torch.ones(5)), nn.Parameter(torch.zeros(5))

    def forward(self, x):
        y = torch.nn.functional.conv2d(x, self.weight, self.bias, padding=1)
        return torch.nn.functional.layer_norm(y, (5,), self.ln_weight, self.ln_bias) + x


def test_function_calls_own_the_parameters_they_read():
    from alexcost.torch_run.verify import verify_module

    result = verify_module(Functional(), (3, 4, 5), batch=2)
    assert result.ok, result.problems
    conv, norm, add = result.layers
    assert (conv.type, norm.type, add.type) == ("Conv2d", "LayerNorm", "Add")
    assert conv.measured_params == 3 * 3 * 3 * 3 + 3 and norm.measured_params == 5 + 5
    assert conv.measured_bias_adds == 2 * 3 * 4 * 5  # a function call reading a parameter named bias
    assert norm.measured_bias_adds == 0  # no convolution or matrix product: alexcost counts its bias in other_ops
    assert {c.fvcore_check for c in result.layers} == {"total"}
    # fvcore: the conv's MACs and layer_norm's 5 per input element with the affine part
    assert result.fvcore_total == 2 * 3 * 4 * 5 * 3 * 3 * 3 + 5 * 2 * 3 * 4 * 5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2_x0_5"])
def test_torchvision_models_verify(name):
    """torchvision's own definitions (residual adds, channel shuffles), through from_module."""
    models = pytest.importorskip("torchvision.models")
    from alexcost.torch_run.verify import verify_module

    module = getattr(models, name)(weights=None)
    result = verify_module(module, (3, 32, 32))
    assert result.ok, result.problems[:5]
    assert result.measured_params == sum(p.numel() for p in module.parameters()) == result.params
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len([c for c in result.layers if c.type == "Conv2d"]) == len(convs)
