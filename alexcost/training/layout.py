"""Where a training step's tensors live: every value (the network input, each layer's outputs),
the storage it lives in, its size, and which layers' outputs reach the network's output.

The storages are inference's (`alexcost.engine.storage`), except that a layer which copies in
training (dropout applying its mask) starts a storage of its own, which views of it follow.
Values are numbered: 0 is the network input, then each layer's outputs in order. A storage is
named by the value that allocated it.
"""

from __future__ import annotations

from math import prod
from typing import NamedTuple

from ..engine import rules
from ..engine.storage import trace
from ..errors import SpecError, describe_layer
from ..layers import strides as st

INPUT_KEY = ("input",)
"""The network input's storage, as `alexcost.training.SavedTensor.storage` names it."""


class Layout(NamedTuple):
    """A training step's values and storages, for one network and batch size."""

    ins: tuple        # per layer: the values it reads
    outs: tuple       # per layer: the values it makes
    storage: list     # per value: the value whose storage it lives in
    elements: list    # per value: its elements, for the whole batch (a weight's, a per-pass output's: its own)
    weights: frozenset  # the values that are a Parameter's weight (not an activation)
    facts: tuple      # per layer: its `alexcost.engine.rules.TrainFacts`
    strides: tuple    # per layer: its inputs' batched strides; None where every input is contiguous
    alive: tuple      # per layer: does its output reach the network's output?
    writes: bool      # does some layer write into its input 0 in training?
    several: bool     # does some layer return several outputs?


def layout(network, batch: int) -> Layout:
    """The `Layout` of a step of ``batch`` samples, worked out once per network (see `Network.derived`)."""
    derived = network.derived()
    found = derived.get(("training layout", batch))
    if found is None:
        found = derived[("training layout", batch)] = _layout(network, batch)
    return found


def _layout(network, batch: int) -> Layout:
    plan = network.contiguous_plan()
    traced = None if plan is not None else trace(network, batch)
    first = [0]  # per layer, shifted by one: its first value (first[0]: the network input's)
    storage, elements, weights = [0], [batch * prod(network.input_shape)], []
    ins, outs, facts, writes, several, once = [], [], [], False, False, network.once
    for i, (layer, r, x, y, refs) in enumerate(zip(network.layers, network.layer_rules(), network.input_shapes,
                                                  network.output_shapes, network.sources)):
        multi, source = type(layer).multi_output, not refs  # (a Parameter reads nothing: its output is its weight)
        train = r.train or rules.train_facts(layer, r, x)
        reads = tuple([first[j + 1] + (k or 0) for j, k in refs]) if len(refs) != 1 else \
            (first[refs[0][0] + 1] + (refs[0][1] or 0),)
        v = len(storage)
        first.append(v)
        for k, s in enumerate(y if multi else (y,)):
            own = source or train.copies or (plan[i] if traced is None else traced[i][k][0] == i)
            storage.append(v + k if own else storage[reads[0]])
            elements.append(prod(s) if source or once[i] else batch * prod(s))
        if source and getattr(type(layer), "held", True):  # (a Constant is made by the pass: an activation's)
            weights.append(v)
        writes, several = writes or train.inplace, several or multi
        ins.append(reads)
        outs.append((v,) if len(storage) == v + 1 else tuple(range(v, len(storage))))
        facts.append(train)
    strides = tuple(_strides(network, traced, i, batch, f.copies) for i, f in enumerate(facts)) \
        if traced is not None else (None,) * len(facts)
    return Layout(tuple(ins), tuple(outs), storage, elements, frozenset(weights), tuple(facts), strides,
                  _alive(network, facts), writes, several)


def storage_keys(network, lay: Layout) -> list:
    """Per value, its name as a storage in `alexcost.training.SavedTensor.storage`: `INPUT_KEY` for
    the network input, else ``(layer, output index)`` (output index None for a single output)."""
    keys = [INPUT_KEY]
    for i, (layer, made) in enumerate(zip(network.layers, lay.outs)):
        keys += [(i, k if type(layer).multi_output else None) for k in range(len(made))]
    return keys


def _strides(network, traced, i: int, batch: int, copies: bool) -> tuple:
    """Layer ``i``'s inputs' batched strides, from the stride trace (None for a weight)."""
    if network.once[i]:  # its inputs' full strides, as one sample's (see `alexcost.engine.storage.trace`)
        shapes = network.input_shapes[i] if type(network.layers[i]).arity != 1 else (network.input_shapes[i],)
        return tuple((prod(s), *traced[j][k or 0][1]) for s, (j, k) in zip(shapes, network.sources[i]))
    out = tuple(st.contiguous((batch, *network.input_shape)) if j < 0 else
                None if type(network.layers[j]).arity == 0 else traced[j][k or 0][1]
                for j, k in network.sources[i])  # (a weight's view: its strides)
    if copies and not st.is_dense((batch, *network.input_shapes[i]), out[0]):
        raise SpecError("in training this layer copies a tensor that is not dense; alexcost does not follow the "
                        "new tensor's strides").at(describe_layer(i, network.names[i], type(network.layers[i]).__name__))
    return out


def _alive(network, facts: list) -> tuple[bool, ...]:
    """Per layer: does some path lead from its output to the last layer's, along which a gradient
    can flow? A layer run with grad mode off (``network.modes.no_grad``) passes none back, unless it
    writes in place (torch keeps the written tensor's history)."""
    sources = network.sources
    off = set(network.modes.no_grad)
    if network.is_chain and not off:
        return (True,) * len(sources)
    if off:
        off = {i for i, name in enumerate(network.names) if name in off and not facts[i].inplace}
    alive = [False] * len(sources)
    alive[-1] = True
    for i in range(len(sources) - 1, -1, -1):
        if alive[i] and i not in off:
            for j, _ in sources[i]:
                if j >= 0:
                    alive[j] = True
    return tuple(alive)


def fan(network, lay: Layout) -> list[int]:
    """Per layer: the gradient elements summed where one of its outputs has several live readers
    (one add per element for every reader past the first; a layer reading a value twice counts twice)."""
    readers = [0] * len(lay.storage)
    for ins, alive in zip(lay.ins, lay.alive):
        if alive:
            for v in ins:
                readers[v] += 1
    return [sum((readers[v] - 1) * lay.elements[v] for v in outs if readers[v] > 1) for outs in lay.outs]
