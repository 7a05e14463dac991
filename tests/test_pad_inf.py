"""Padding with -inf before a max pool (the "same" max pooling of TensorFlow-ported models), read from torch
modules and written to spec files: a training step against torch on the CPU (`module_step`), the padded
values torch's module built back from the network holds, and the spec round trip in JSON and TOML.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from alexcost import Pad, SpecError, dumps_spec, load_spec  # noqa: E402
from alexcost.torch_bridge import from_module, to_module  # noqa: E402
from module_step import agree  # noqa: E402


class SamePool(nn.Module):
    """A convolution, then max pooling with padding computed from the input size and filled with -inf
    (as TensorFlow's "SAME" pooling), then a projection."""

    def __init__(self, kernel=3, stride=2):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3), nn.LazyLinear(5)
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        y = self.conv(x)
        pads = []
        for size in (y.shape[-1], y.shape[-2]):
            total = max((-(-size // self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        y = F.pad(y, pads, value=-float("inf"))
        return self.head(F.max_pool2d(y, self.kernel, self.stride))


@pytest.mark.parametrize("kernel, stride", [(3, 2), (2, 2), (3, 1)])
def test_training_step_matches_torch(kernel, stride):
    torch.manual_seed(0)
    module = SamePool(kernel, stride)
    module(torch.randn(1, 3, 9, 9))  # the projection's size
    theirs, ours = agree(module, (3, 9, 9))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_the_pad_reads_minus_infinity_and_torch_gets_it_back():
    torch.manual_seed(0)
    module = SamePool()
    module(torch.randn(1, 3, 8, 8))
    imported = from_module(module.eval(), (3, 8, 8))
    pad = next(layer for layer in imported.network.layers if isinstance(layer, Pad))
    assert pad.value == "-inf" and pad.pad == (0, 1, 0, 1)   # 6 wide, stride 2, kernel 3: 1 more, after
    built = to_module(imported.network)
    outputs = {}
    for name, child in built.named_children():
        child.register_forward_hook(lambda m, args, out, name=name: outputs.__setitem__(name, out))
    built(torch.randn(2, 3, 8, 8))
    padded = next(out for name, out in outputs.items() if name == imported.network.names[1])
    assert padded.shape == (2, 4, 7, 7) and padded[:, :, -1].eq(-math.inf).all()


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_the_spec_round_trip_keeps_it(fmt, tmp_path):
    torch.manual_seed(0)
    module = SamePool()
    module(torch.randn(1, 3, 8, 8))
    imported = from_module(module.eval(), (3, 8, 8))
    text = dumps_spec(imported, fmt)
    assert '"-inf"' in text
    path = tmp_path / f"same.{fmt}"
    path.write_text(text)
    loaded = load_spec(path)
    assert loaded.layers == imported.network.layers
    assert loaded.cost(2).totals == imported.network.cost(2).totals


@pytest.mark.parametrize("value", [float("inf"), "inf"])
def test_plus_infinity_is_read_too(value):
    assert Pad(pad=(1, 1), value=value).value == "inf"


@pytest.mark.parametrize("value, message", [
    (float("nan"), r"value must be finite, got nan"),
    ("Infinity", r'value must be a number, "inf" or "-inf"'),
])
def test_other_values_are_refused(value, message):
    with pytest.raises(SpecError, match=message):
        Pad(pad=(1, 1), value=value)


def test_an_infinite_fill_in_another_mode_is_refused():
    with pytest.raises(SpecError, match="doesn't take in value argument"):
        Pad(pad=(1, 1), mode="reflect", value="-inf")
