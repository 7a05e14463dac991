"""The rules cache stays bounded, and what it forgets is worked out again, the same."""

from __future__ import annotations

from alexcost import Network
from alexcost.engine import rules
from alexcost.layers import LAYER_KINDS
from alexcost.search import evaluate

Conv2d, ReLU = LAYER_KINDS["Conv2d"], LAYER_KINDS["ReLU"]


def _held() -> int:
    return sum(len(table) for table in rules._BY_CONFIG.values())


def test_tables_start_afresh_past_the_budget_and_count_the_same(monkeypatch):
    monkeypatch.setattr(rules, "RULES_KEPT", 7)
    rules.forget()
    conv, relu = Conv2d(out_channels=3, kernel_size=3, padding=1), ReLU()
    for size in range(2, 30):
        totals = Network((2, size, size), [conv, relu]).cost().totals
        # a 3x3 convolution, padding 1: every output element takes 2 channels * 9 taps
        assert totals.macs == 3 * size * size * 2 * 9
        assert totals.params == 3 * 2 * 9 + 3
        assert _held() < 7
    rules.forget()


def test_a_search_over_more_inputs_than_the_budget_counts_each_candidate(monkeypatch):
    monkeypatch.setattr(rules, "RULES_KEPT", 5)
    rules.forget()
    specs = [{"input_shape": [1, side, side], "layers": [
        {"type": "Conv2d", "name": "c", "out_channels": 4, "kernel_size": 3},
        {"type": "ReLU", "name": "r"}, {"type": "Flatten", "name": "f"},
        {"type": "Linear", "name": "l", "out_features": 2}]} for side in range(3, 40)]
    rows = evaluate(specs).rows
    for side, row in zip(range(3, 40), rows):
        out = (side - 2) ** 2
        assert row.macs == 4 * out * 9 + 4 * out * 2  # the convolution's taps, then the linear layer's
        assert row.params == (4 * 9 + 4) + (4 * out * 2 + 2)
    rules.forget()


def test_a_table_holds_many_input_shapes_of_one_configuration():
    """A search meets one common configuration on hundreds of input shapes: each is kept."""
    rules.forget()
    relu = ReLU()
    for side in range(1, 301):
        assert Network((3, side, side), [relu]).output_shape == (3, side, side)
    assert len(rules.of(relu).table) == 300
    rules.forget()


def test_a_storage_plan_remembered_with_the_rules_is_torchs_each_time():
    """Where each output lives (a view of its input, or storage of its own), for a network built
    twice (the second time from what the first remembered), against torch's own tensors."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    parts = x.chunk(2, 1)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    y = conv(parts[1])
    relu = torch.relu_(y)  # in place: the convolution's storage
    joined = torch.cat([parts[0], relu], 1)
    flat = joined.flatten(1)  # a contiguous tensor: a view
    base = x.untyped_storage().data_ptr()
    expected = [parts[0].untyped_storage().data_ptr() != base, y.untyped_storage().data_ptr() != base,
                relu.untyped_storage().data_ptr() != y.untyped_storage().data_ptr(),
                joined.untyped_storage().data_ptr() not in (base, y.untyped_storage().data_ptr()),
                flat.untyped_storage().data_ptr() != joined.untyped_storage().data_ptr()]
    assert expected == [False, True, False, True, False]
    spec = {"input_shape": [8, 6, 6], "layers": [
        {"type": "Chunk", "name": "parts", "chunks": 2, "dim": 1},
        {"type": "Conv2d", "name": "conv", "out_channels": 4, "kernel_size": 3, "padding": 1, "inputs": ["parts.1"]},
        {"type": "ReLU", "name": "relu", "inplace": True},
        {"type": "Cat", "name": "joined", "dim": 1, "inputs": ["parts.0", "relu"]},
        {"type": "Flatten", "name": "flat"}]}
    from alexcost import network_from_dict

    rules.forget()
    for _ in range(3):
        assert list(network_from_dict(spec).storage(2)) == expected
    rules.forget()
