"""The batch API for architecture search, and what layers remember between networks."""

from __future__ import annotations

import random

import pytest

from alexcost import Conv2d, Network, ReLU, network_from_dict
from alexcost.engine.network import forget_rules
from alexcost.render.search import table as search_table
from alexcost.search import evaluate


def candidates(n: int, seed: int = 0) -> list[dict]:
    """Random 20-layer candidates from a small search space; some are invalid (pooling to nothing)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        layers = []
        for _ in range(20):
            kind = rng.choice(["conv", "conv", "bn", "relu", "pool"])
            if kind == "conv":
                layers.append({"type": "Conv2d", "out_channels": rng.choice([8, 16, 32]),
                               "kernel_size": rng.choice([1, 3, [3, 5]]), "padding": "same"})
            elif kind == "bn":
                layers.append({"type": "BatchNorm2d"})
            elif kind == "relu":
                layers.append({"type": "ReLU", "inplace": rng.random() < 0.5})
            else:
                layers.append({"type": "MaxPool2d", "kernel_size": 2})
        layers += [{"type": "AdaptiveAvgPool2d", "output_size": 1}, {"type": "Flatten"},
                   {"type": "Linear", "out_features": 10}]
        out.append({"input_shape": [3, 32, 32], "layers": layers})
    return out


@pytest.mark.parametrize("batch, dtype", [(1, "float32"), (4, "bfloat16")])
def test_every_row_equals_the_network_built_on_its_own(batch, dtype):
    specs = candidates(300) + ["not a spec", {"input_shape": [3, 8, 8]}, {"input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": [1, [2]]}]}]
    results = evaluate(specs, batch=batch, dtype=dtype)
    assert len(results.rows) == len(specs) and results.valid and results.invalid
    for spec, row in zip(specs, results.rows):
        try:
            network = network_from_dict(spec if isinstance(spec, dict) else {})
        except Exception as err:  # noqa: BLE001 - the error evaluate reports must be this one
            assert not row.ok and row.error.endswith(str(err).split(": ", 1)[-1])
            continue
        totals = network.cost(batch=batch, dtype=dtype).totals
        assert row.ok, row.error
        assert (row.params, row.macs, row.flops, row.activation_bytes) == (
            totals.params, totals.macs, totals.flops, totals.stored_bytes)
        assert row.output_shape == network.output_shape == (10,)
    assert "Output size is too small" in " ".join(r.error for r in results.invalid)
    table = search_table(results, 2)
    assert table.splitlines()[0].split()[:3] == ["#", "name", "params"] and len(table.splitlines()) == 4
    assert str(results) == (f"{len(specs)} candidates, {len(results.valid)} valid, {len(results.invalid)} invalid "
                            f"(batch {batch}, {dtype})")


def test_built_networks_are_accepted_too():
    net = Network((3, 8, 8), [Conv2d(out_channels=4, kernel_size=3), ReLU()], name="mine")
    (row,) = evaluate([net], batch=2).rows
    assert row.name == "mine" and row.macs == 2 * 4 * 6 * 6 * 3 * 3 * 3 and row.params == 4 * 27 + 4


def test_layers_remember_rules_per_input_and_forget_on_request(monkeypatch):
    """A layer object reused by many networks is checked and counted once per input shape; what it
    remembers changes nothing about it as a value, and forget_rules() drops it."""
    conv = Conv2d(out_channels=4, kernel_size=3)
    first = Network((3, 8, 8), [conv]).cost().totals.macs
    assert conv == Conv2d(out_channels=4, kernel_size=3) and hash(conv) == hash(Conv2d(out_channels=4, kernel_size=3))
    assert Network((3, 10, 10), [conv]).cost().totals.macs == 4 * 8 * 8 * 27  # another input: computed anew
    honest = Conv2d.macs
    patched = type(monkeypatch).__mro__[1]()  # pytest's own MonkeyPatch: it does not call forget_rules
    patched.setattr(Conv2d, "macs", lambda self, x, y: honest(self, x, y) + 1)
    try:
        assert Network((3, 8, 8), [conv]).cost().totals.macs == first  # remembered
        forget_rules()
        assert Network((3, 8, 8), [conv]).cost().totals.macs == first + 1  # recomputed under the patch
    finally:
        patched.undo()
        forget_rules()
    assert Network((3, 8, 8), [conv]).cost().totals.macs == first
