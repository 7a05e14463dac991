"""A model of a training step's peak memory, from the walk's records (see `StepMemory`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .layout import Layout

MEMORY_LEFT_OUT = (
    "the caching allocator's rounding (blocks of 512 bytes, segments of 2 MiB) and fragmentation",
    "cuDNN and cuBLAS workspaces, and temporaries inside an op that autograd does not keep",
    "the CUDA context (a few hundred MB per process, outside torch's allocator)",
    "the loss, the data loader's buffers, and the optimizer's temporaries during its update",
    "an extra buffer while two gradients of one tensor are summed (the sum is counted in place)",
)
"""What the step-memory model does not count."""


@dataclass(frozen=True)
class StepMemory:
    """A model of a training step's peak memory, in bytes (see `MEMORY_LEFT_OUT`).

    Resident all step: weights, buffers, optimizer state and the input batch. The forward
    pass adds each layer's new tensors, frees each once no later layer reads it and autograd
    does not keep it, and ends holding ``saved`` plus the output. The backward pass walks
    the layers in reverse: the gradients of activations live from the layer that makes them
    to the one that consumes them, each layer's kept tensors are freed after the last layer
    that needs them, and parameter gradients accumulate until the optimizer's update.
    """

    weights: int
    buffers: int
    optimizer: int
    grads: int
    saved: int
    input: int
    forward_peak: int
    backward_peak: int
    peak_phase: str
    timeline: tuple[tuple[str, str, int], ...] = ()
    """``(pass, layer, bytes)`` at each layer's high point, forward then backward (the backward
    pass from the last layer back), beyond the resident bytes; the input batch included."""

    @property
    def resident(self) -> int:
        return self.weights + self.buffers + self.optimizer

    @property
    def update_peak(self) -> int:
        """During the optimizer's update: parameters, gradients and state (and the input batch)."""
        return self.resident + self.grads + self.input

    @property
    def peak(self) -> int:
        return max(self.resident + self.forward_peak, self.resident + self.backward_peak, self.update_peak)

    def to_dict(self) -> dict:
        return {"weights": self.weights, "buffers": self.buffers, "optimizer": self.optimizer, "grads": self.grads,
                "saved": self.saved, "input": self.input, "forward_peak": self.resident + self.forward_peak,
                "backward_peak": self.resident + self.backward_peak, "update_peak": self.update_peak,
                "peak": self.peak, "peak_phase": self.peak_phase, "left_out": list(MEMORY_LEFT_OUT)}


class _Lifetimes(NamedTuple):
    """When a step's storages are made and freed."""

    allocates: list   # per layer: elements of the new storages its outputs take
    transient: list   # (storage, layer after which nothing reads it, elements), for storages that may be freed
    outputs: dict     # the network output's storages (not the input's) -> elements
    passes: list      # per layer: is its input's gradient its output's, viewed (no new memory)?


def _lifetimes(network, lay: Layout) -> _Lifetimes:
    storage, elements, weights = lay.storage, lay.elements, lay.weights
    made_by, allocates, last_read = {}, [], {}
    for i, (ins, outs) in enumerate(zip(lay.ins, lay.outs)):
        new = 0
        for v in outs:
            made_by[v] = i
            if storage[v] == v and v not in weights:
                new += elements[v]
        allocates.append(new)
        for v in ins:
            last_read[storage[v]] = i
    outputs = {storage[v]: elements[storage[v]] for v in lay.outs[-1] if storage[v] != 0 and storage[v] not in weights}
    transient = [(s, max(i, made_by[s]), elements[s]) for s, i in last_read.items()
                 if s != 0 and s not in weights and s not in outputs]
    passes = [bool(ins) and not type(layer).multi_output and not facts.inplace and storage[outs[0]] == storage[ins[0]]
              for layer, ins, outs, facts in zip(network.layers, lay.ins, lay.outs, lay.facts)]
    return _Lifetimes(allocates, transient, outputs, passes)


def step_memory(network, lay: Layout, walked, itemsize: int, state: int) -> StepMemory:
    """Walk the forward pass, then the backward pass, summing live bytes (see `StepMemory`).
    ``walked``: the walk's records (`alexcost.training.walk.Walked`, with detail); ``state``: the
    optimizer's bytes."""
    life, kept = _lifetimes(network, lay), walked.kept
    input_bytes = lay.elements[0] * itemsize
    free_after = [0] * len(network.layers)  # bytes nothing needs once layer i's forward pass is done
    for storage, i, count in life.transient:
        if storage not in kept:
            free_after[i] += count * itemsize
    total = peak = 0
    timeline = []
    for row, alloc, new, free in zip(walked.layers, life.allocates, walked.made, free_after):
        total += alloc * itemsize + new
        timeline.append(("forward", row.name, total + input_bytes))
        if total > peak:
            peak = total
        total -= free
    saved = sum(size for _, size, _ in kept.values())
    # what the forward pass leaves: the output, and what live layers keep (dead layers' values go at its end)
    held = saved - kept.get(0, (0, 0, 0))[1]
    held += sum(count for s, count in life.outputs.items() if s not in kept) * itemsize
    release = [0] * len(network.layers)
    for s, (i, size, _) in kept.items():
        if s not in life.outputs and s != 0:
            release[i] += size
    backward_peak = _backward_peak(lay, walked.layers, life.passes, release, held, itemsize, timeline, input_bytes)
    weights, buffers, grads = walked.params * itemsize, walked.buffer_bytes, walked.grad_bytes
    resident = weights + buffers + state
    phase = max((resident + peak + input_bytes, "forward pass"),
                (resident + backward_peak + input_bytes, "backward pass"),
                (resident + grads + input_bytes, "optimizer update"))[1]
    return StepMemory(weights, buffers, state, grads, saved, input_bytes, peak + input_bytes,
                      backward_peak + input_bytes, phase, tuple(timeline))


def _backward_peak(lay: Layout, rows, passes: list, release: list, held: int, itemsize: int, timeline: list,
                   input_bytes: int) -> int:
    """The backward pass's peak: what the forward pass left (``held``), the activations' gradients
    alive at each layer, and the parameters' gradients made so far (each layer's high point added
    to ``timeline``)."""
    elements, weights, ins, outs = lay.elements, lay.weights, lay.ins, lay.outs
    grad_live = {v: elements[v] * itemsize for v in outs[-1]}
    grad_total = sum(grad_live.values())
    param_grads = 0
    peak = held + grad_total
    for i in range(len(rows) - 1, -1, -1):
        r = rows[i]
        if r.grads is None:
            continue
        param_grads += r.trainable_params * itemsize
        new = 0
        for v, needed in zip(ins[i], r.grads.inputs):
            if needed and v not in grad_live and v not in weights:
                size = 0 if passes[i] else elements[v] * itemsize
                grad_live[v] = size
                new += size
        now = held + grad_total + new + param_grads
        timeline.append(("backward", r.name, now + input_bytes))
        if now > peak:
            peak = now
        for v in outs[i]:
            grad_total -= grad_live.pop(v, 0)
        grad_total += new
        held -= release[i]
    return peak
