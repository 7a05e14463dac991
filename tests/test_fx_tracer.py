"""alexcost's fx Tracer makes torch.fx's own graph.

The tracer answers fx's ``create_arg`` directly for the common arguments (a proxy, a plain
number, string or None, a tuple or list of them) and copies the module stack and scope
without ``copy.copy``'s generic path. Each graph here is compared, node by node (name, op,
target, arguments, keyword arguments, ``nn_module_stack``), with the graph of the same tracer
running torch.fx's own ``create_arg`` and plain ``OrderedDict`` / ``Scope`` records.
"""

from __future__ import annotations

import collections
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.fx.node import map_aggregate  # noqa: E402

from alexcost.torch_bridge.trace import _Tracer  # noqa: E402


def _fx_own_tracer():
    fast = type(_Tracer.make(set()))

    class FxOwn(fast):
        create_arg = torch.fx.Tracer.create_arg  # fx's answer for every argument

        def __init__(self, aliases, worlds=None):
            super().__init__(aliases, worlds)
            self.module_stack, self.scope = collections.OrderedDict(), torch.fx.proxy.Scope("", None)

    return fast, FxOwn


def _nodes(graph) -> list:
    def plain(value):
        if isinstance(value, torch.fx.Node):
            return ("node", value.name)
        return (type(value).__name__, repr(value))

    out = []
    for node in graph.nodes:
        target = node.target if isinstance(node.target, str) else repr(node.target)
        stack = node.meta.get("nn_module_stack")
        out.append((node.name, node.op, target, map_aggregate(node.args, plain), map_aggregate(node.kwargs, plain),
                    None if stack is None else (type(stack), list(stack.items()))))
    return out


class Mixed(nn.Module):
    """Arguments of every sort fx lowers: tuples, lists, slices, None, floats, strings, keyword
    dicts, a tensor constant, a buffer and a parameter read directly, a module called twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.scale = nn.Parameter(torch.ones(1, 8, 1, 1))
        self.register_buffer("shift", torch.zeros(1, 8, 1, 1))
        self.table = torch.arange(4.0)

    def forward(self, x):
        y = self.act(self.conv(x))
        y = y * self.scale + self.shift
        y = F.interpolate(y, scale_factor=2.0, mode="nearest")
        y = F.pad(y, [1, 1, 2, 2], mode="constant", value=0.5)
        y = y[:, 0:4, ::2, None]
        y = torch.cat((y, y), dim=1).flatten(1)
        y = self.act(y)
        return y.reshape(y.shape[0], -1) + self.table.sum()


def _traced(tracer, model):
    before = set(model.__dict__)
    try:
        return tracer(set()).trace(model)
    finally:
        for key in set(model.__dict__) - before:  # the constants fx stowed on the module
            del model.__dict__[key]


@pytest.mark.parametrize("name", ["mixed", "resnet18", "mobilenet_v3_small", "vit_b_16", "convnext_tiny"])
def test_tracer_gives_fx_own_graph(name):
    torch.manual_seed(0)
    if name == "mixed":
        model = Mixed().eval()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = torchvision.models.get_model(name, weights=None).eval()
    fast, fx_own = _fx_own_tracer()
    ours, theirs = _traced(fast, model), _traced(fx_own, model)
    assert len(list(ours.nodes)) > 10
    assert _nodes(ours) == _nodes(theirs)


class _Recorded(nn.Module):
    """A module whose ``training`` is a property: every assignment goes through its setter."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    @property
    def training(self):
        return self.__dict__.get("_mode", True)

    @training.setter
    def training(self, value):
        self.__dict__.setdefault("assigned", []).append(value if type(value) is bool else "flag")
        self.__dict__["_mode"] = value

    def forward(self, x):
        return torch.relu(self.conv(x))


def test_training_flags_set_and_restored_as_assignments_do():
    from alexcost.torch_bridge import from_module

    recorded = _Recorded()
    model = nn.Sequential(nn.Sequential(recorded, nn.ReLU()), nn.Conv2d(4, 4, 1))
    model.train()
    model[1].eval()
    recorded.assigned.clear()
    before = {name: (m.training, set(m.__dict__)) for name, m in model.named_modules()}
    imported = from_module(model, (3, 8, 8))
    assert imported.network.output_shape == (4, 8, 8)
    assert {name: (m.training, set(m.__dict__)) for name, m in model.named_modules()} == before
    assert type(recorded.training) is bool and recorded.training is True
    assert recorded.assigned == ["flag", True]  # the property's setter saw the trace's flag, then the restore
