"""The training step's records and memory model are kept on the network, as its totals are: each
set of options gets its own, worked out by hand here, and forgetting the rules works them out again."""

from __future__ import annotations

import pytest

from alexcost import Linear, Network, ReLU, forget_rules
from alexcost.training import training_cost


def tiny() -> Network:
    """fc1: 4 -> 3 with a bias (15 parameters), ReLU, fc2: 3 -> 2 without (6)."""
    return Network((4,), [Linear(name="fc1", out_features=3), ReLU(name="relu"),
                          Linear(name="fc2", out_features=2, bias=False)])


@pytest.mark.parametrize("batch, dtype, itemsize", [(1, "float32", 4), (3, "float32", 4), (5, "float16", 2)])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_memory_is_kept_per_set_of_options(batch, dtype, itemsize, optimizer):
    net = tiny()
    step = training_cost(net, batch, dtype, optimizer=optimizer)
    memory = step.memory
    assert training_cost(net, batch, dtype, optimizer=optimizer).memory is memory  # kept on the network
    params = 15 + 6
    state = {"sgd": 0, "momentum": params * itemsize, "adam": 2 * params * itemsize + 4 * 3}[optimizer]
    assert (memory.weights, memory.grads, memory.optimizer) == (params * itemsize, params * itemsize, state)
    assert memory.input == batch * 4 * itemsize
    assert memory.update_peak == params * itemsize * 2 + state + batch * 4 * itemsize
    assert [name for phase, name, _ in memory.timeline] == ["fc1", "relu", "fc2", "fc2", "relu", "fc1"]


def test_frozen_parameters_get_their_own_memory():
    net = tiny()
    whole = training_cost(net, 2).memory
    frozen = training_cost(net, 2, frozen=["fc1.bias"]).memory
    assert whole.grads == (15 + 6) * 4 and frozen.grads == (12 + 6) * 4
    assert frozen.optimizer == frozen.grads  # momentum: one buffer per trainable parameter
    assert training_cost(net, 2, frozen=["fc1.bias"]).memory is frozen
    assert training_cost(net, 2).memory is whole


def test_records_are_kept_and_forgetting_the_rules_works_them_out_again():
    net = tiny()
    step = training_cost(net, 2)
    rows, memory = step.layers, step.memory
    again = training_cost(net, 2)
    assert again.layers is rows and again.memory is memory
    forget_rules()
    fresh = training_cost(net, 2)
    assert fresh.memory is not memory and fresh.memory == memory and fresh.layers == rows
    # fc2's backward MACs by hand: its weight's gradient (2 x 3 per sample) and its input's (3 x 2)
    assert fresh["fc2"].grad_weight_macs == 2 * 6 and fresh["fc2"].grad_input_macs == 2 * 6
