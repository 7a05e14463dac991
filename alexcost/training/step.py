"""Training: what one step of SGD costs, derived without running it (no torch).

A step is a forward pass in training mode, the backward pass from the network's output
(the loss is outside the network: its own work and memory are not counted), and the
optimizer's update. Every count is an exact integer for the whole batch.

Conventions (each kind's rules live in its class, see `alexcost.layers`):

* Gradients flow only where torch computes them. The network input needs none; a tensor
  computed only from frozen layers (``frozen=``) needs none; a frozen layer computes no
  weight or bias gradient. A layer whose output never reaches the network's output runs
  no backward pass, and what it kept is freed when the forward pass ends.
* ``backward_macs``: the multiply-accumulates of the gradient with respect to a layer's
  input (``grad_input_macs``) plus those with respect to its weight (``grad_weight_macs``);
  each equals the forward MACs for Conv2d and Linear. ``torch_backward_flops`` is what
  ``torch.utils.flop_counter.FlopCounterMode`` counts: 2 per backward MAC, except that
  torch 2.14 counts a grouped convolution's weight gradient ``groups`` times (a counting
  bug; the work is not done). ``train_flops`` = 2 x (forward + backward MACs).
* ``backward_other_ops``: elementwise work of the backward pass (pooling, LRN,
  activations, dropout, normalisation, bias gradients, broadcast sums), per the kinds'
  documented rules, plus one add per element where a tensor read by several layers sums
  their gradients. FlopCounterMode counts none of it.
* ``saved_bytes``: the bytes of the distinct storages autograd keeps for the backward pass
  (what ``torch.autograd.graph.saved_tensors_hooks`` sees, each storage once), parameters
  and buffers excluded. Views and in-place layers share their input's storage; a storage
  kept by several layers counts for the first of them. The rules differ by backend
  (``device``): dropout keeps a bool mask on CUDA and a mask at the dtype on the CPU;
  normalisation statistics are float32 on CUDA for 16-bit dtypes.
* Model state: ``weight_bytes`` (every parameter), ``grad_bytes`` (every parameter that
  receives a gradient), ``optimizer_bytes`` (what torch's optimizer state holds after a
  step: none for SGD, one momentum buffer per parameter for SGD with momentum, two moments
  per parameter plus one float32 step counter per parameter tensor for Adam).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple
from math import ceil, prod

from ..layers import arguments as check
from ..layers import strides as st
from ..engine.cost import DTYPE_BYTES, NetworkCost, dtype_bytes
from ..errors import SpecError, describe_layer
from ..layers import Grads, Layer, TrainContext
from ..layers.base import reads_a_parameter
from ..engine.network import _EPOCH
from ..engine.storage import PARAMETER, contiguous_new, contiguous_plan, trace
from .schedule import DEFAULT_EPOCHS, DEFAULT_IMAGES, Schedule

DEVICES = ("cuda", "cpu")
"""The torch backends whose saved-tensor rules alexcost knows; ``cuda`` is the default (training runs on GPUs)."""

OPTIMIZERS = {
    "sgd": "SGD without momentum: no state",
    "momentum": "SGD with momentum (the paper's: 0.9, weight decay 0.0005): one buffer per parameter",
    "adam": "Adam: two moments per parameter and a float32 step counter per parameter tensor",
}
"""The optimizers whose state alexcost sizes, as torch.optim keeps it."""

NETWORK_INPUT = -1
INPUT_STORAGE = ("input",)

MEMORY_LEFT_OUT = (
    "the caching allocator's rounding (blocks of 512 bytes, segments of 2 MiB) and fragmentation",
    "cuDNN and cuBLAS workspaces, and temporaries inside an op that autograd does not keep",
    "the CUDA context (a few hundred MB per process, outside torch's allocator)",
    "the loss, the data loader's buffers, and the optimizer's temporaries during its update",
    "an extra buffer while two gradients of one tensor are summed (the sum is counted in place)",
)
"""What the step-memory model does not count."""


class SavedTensor(NamedTuple):
    """One tensor a layer keeps, resolved to its storage: ``bytes`` is the whole storage's size;
    ``kept_by`` names the first layer that keeps the same storage (None: this layer)."""

    what: str
    bytes: int
    storage: tuple
    kept_by: str | None = None
    caveat: str = ""


class LayerTraining(NamedTuple):
    """One layer's part of a training step (counts for the whole batch).

    ``grads`` says which gradients its backward pass computes (None: it runs none).
    ``saved_bytes`` counts the storages this layer is the first to keep; ``saved`` lists
    everything it keeps, shared or not.
    """

    index: int
    name: str
    type: str
    group: str
    forward_macs: int
    grad_input_macs: int
    grad_weight_macs: int
    torch_backward_flops: int
    backward_other_ops: int
    train_other_ops: int
    saved_bytes: int
    saved: tuple
    params: int
    trainable_params: int
    grad_tensors: int
    grads: Grads | None

    @property
    def backward_macs(self) -> int:
        return self.grad_input_macs + self.grad_weight_macs

    @property
    def runs_backward(self) -> bool:
        return self.grads is not None

    @property
    def train_flops(self) -> int:
        """2 x (forward + backward MACs): what FlopCounterMode would count without its grouped-conv slip."""
        return 2 * (self.forward_macs + self.backward_macs)


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


def _total(attr: str) -> property:
    """The sum of a per-layer count over every layer."""
    return property(lambda self: sum(getattr(r, attr) for r in self.layers), doc=f"Total {attr} of the step.")


@dataclass(frozen=True)
class TrainingCost:
    """A training step of ``batch`` samples: the totals, the model state, and (made on first use,
    as `NetworkCost` makes its rows) every layer's part, the memory model and its notes."""

    model: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    device: str
    optimizer: str
    frozen: tuple[str, ...]
    forward_macs: int
    backward_macs: int
    saved_bytes: int
    params: int
    trainable_params: int
    weight_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    buffer_bytes: int
    network: object = field(default=None, repr=False, compare=False)

    grad_input_macs = _total("grad_input_macs")
    grad_weight_macs = _total("grad_weight_macs")
    torch_backward_flops = _total("torch_backward_flops")
    backward_other_ops = _total("backward_other_ops")
    train_other_ops = _total("train_other_ops")

    @cached_property
    def _detail(self) -> tuple:
        return _walk(self.network, self.batch, self.dtype, self.device, self.optimizer,
                     _frozen_indices(self.network, self.frozen) if self.frozen else (), True)

    @property
    def layers(self) -> tuple[LayerTraining, ...]:
        return self._detail.layers

    @property
    def memory(self) -> StepMemory:
        return self._detail.memory

    @property
    def notes(self) -> tuple[str, ...]:
        return self._detail.notes

    @property
    def train_flops(self) -> int:
        """2 x (forward + backward MACs) for the batch."""
        return 2 * (self.forward_macs + self.backward_macs)

    @cached_property
    def forward(self) -> NetworkCost:
        """The forward pass's records (`Network.cost`) at the same batch and dtype."""
        return self.network.cost(self.batch, self.dtype)

    def __getitem__(self, name: str) -> LayerTraining:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def schedule(self, images: int = None, epochs: int = None) -> "Schedule":
        """The whole training run: ``images`` per epoch (AlexNet's 1.2M by default) for ``epochs``."""
        return Schedule.of(self, DEFAULT_IMAGES if images is None else images,
                           DEFAULT_EPOCHS if epochs is None else epochs)

    def __str__(self) -> str:
        from ..render.training import render

        return render(self)


# -- the engine ---------------------------------------------------------------------------

def _frozen_indices(network, frozen) -> set[int]:
    if isinstance(frozen, str):
        frozen = (frozen,)
    index = {name: i for i, name in enumerate(network.names)}
    out = set()
    for name in frozen:
        i = index.get(name)
        if i is None:
            raise SpecError(f"frozen names {name!r}, which is not a layer of {network.name!r}")
        row = network.layers[i]
        x = network.input_shapes[i]
        if not row.weight_params(x) + row.bias_params(x):
            raise SpecError(f"frozen names {name!r} ({type(row).__name__}), which has no parameters to freeze")
        out.add(i)
    return out


class _Structure(NamedTuple):
    """What a training step's analysis needs of a network at one batch size, computed once."""

    store: dict       # value (layer, output) -> the storage it lives in during training
    ins: tuple        # per layer: the values it reads
    outs: tuple       # per layer: the values it makes
    strides: tuple    # per layer: its inputs' batched strides (None for a parameter)
    alive: tuple      # per layer: does its output reach the network's output?
    elements: dict    # value or storage -> its elements for the whole batch
    last_read: dict   # storage -> the last layer that reads a value living in it
    fan: tuple        # per layer: elements summed where its outputs have several live readers
    inplace: tuple    # per layer: does it write into its input in training?
    writes: bool      # does any layer write in place?
    passes: tuple     # per layer: is its input's gradient its output's, viewed (no new memory)?
    allocates: tuple  # per layer: elements of the new storages its outputs take
    transient: tuple  # (storage, layer after which nothing reads it, elements), for storages that may be freed
    outputs: dict     # the network output's storages (not the input's) -> elements
    contexts: dict    # (itemsize, dtype, device) -> each layer's TrainContext
    memo: dict        # what a layer's rules gave for some gradients and context (they are pure)
    custom: tuple     # per layer: (refuses some training, own backward MACs)
    facts: tuple      # per layer, one sample: (weight params, bias params, MACs, has buffers)


def _trace(network, batch: int):
    """`alexcost.engine.storage.trace`, without torch's stride rules where `contiguous_plan` plans the
    network: every tensor is then contiguous (tests/test_training_fastpath.py checks it)."""
    new = contiguous_plan(network)
    if new is None:
        return trace(network, batch)
    where, out = [-1] * (len(new) + 1), []  # per layer, its output's storage; index -1: the input
    for i, (layer, refs, y, fresh) in enumerate(zip(network.layers, network.sources, network.output_shapes, new)):
        if not refs:  # a Parameter: its weight
            where[i] = None
            out.append((((PARAMETER, i), st.contiguous(y)),))
            continue
        where[i] = i if fresh else where[refs[0][0]]
        if where[i] is None:  # a view of a weight (Network refuses an in-place merge into one): trace's rule
            return trace(network, batch)
        out.append(((where[i], st.contiguous((batch, *y))),))
    return out


def _structure(network, batch: int) -> _Structure:
    """The storages of a training step (inference's plan, except that a layer which copies in
    training, dropout, starts a storage of its own that views of it follow) and what does not
    change with the options, cached on the network (as `Network.storage` caches its plan)."""
    cache = network.__dict__.get("_training_structure")
    if cache is None:
        cache = {}
        object.__setattr__(network, "_training_structure", cache)
    hit = cache.get(batch)
    if hit is not None:
        return hit
    plan = _trace(network, batch)
    layers, sources = network.layers, network.sources
    n = len(layers)
    strides_of = {(NETWORK_INPUT, None): st.contiguous((batch, *network.input_shape))}
    store = {(NETWORK_INPUT, None): INPUT_STORAGE}
    elements = {INPUT_STORAGE: batch * prod(network.input_shape), (NETWORK_INPUT, None): batch * prod(network.input_shape)}
    ins, outs, in_strides, readers, inplace, passes, custom, facts = [], [], [], {}, [], [], [], []
    for i, layer in enumerate(layers):
        kind = type(layer)
        y = network.output_shapes[i]
        keys = tuple((i, k) for k in range(len(y))) if kind.multi_output else ((i, None),)
        refs = sources[i]
        ins.append(refs)
        outs.append(keys)
        in_strides.append(tuple(None if store[ref][0] == PARAMETER else strides_of[ref] for ref in refs))
        for ref in refs:
            readers.setdefault(ref, []).append(i)
        copies = kind.arity != 0 and layer.train_copies()
        if copies and not st.is_dense((batch, *network.input_shapes[i]), strides_of[refs[0]]):
            raise SpecError("in training this layer copies a tensor that is not dense; alexcost does not "
                            "follow the new tensor's strides").at(describe_layer(i, network.names[i], kind.__name__))
        for (storage, strides), key in zip(plan[i], keys):
            strides_of[key] = strides
            elements[key] = batch * prod(y if key[1] is None else y[key[1]])
            if kind.arity == 0:
                store[key] = (PARAMETER, i)
            elif copies or storage == i:
                store[key] = key
                elements[key] = batch * prod(y if key[1] is None else y[key[1]])
            else:
                store[key] = store[refs[0]]
        writes = layer.train_inplace()
        inplace.append(writes)
        passes.append(bool(refs) and not kind.multi_output and not writes and store[keys[0]] == store[refs[0]])
        custom.append((kind.check_training is not Layer.check_training, kind.backward_macs is not Layer.backward_macs))
        x = network.input_shapes[i]
        facts.append((layer.weight_params(x), layer.bias_params(x), layer.macs(x, y),
                      kind.buffers is not Layer.buffers))
    alive = [False] * n
    alive[-1] = True
    for i in range(n - 1, -1, -1):
        if alive[i]:
            for j, _ in sources[i]:
                if j != NETWORK_INPUT:
                    alive[j] = True
    last_read, fan = {}, []
    for key, rs in readers.items():
        storage = store[key]
        if rs[-1] > last_read.get(storage, -1):
            last_read[storage] = rs[-1]
    for i in range(n):
        extra = 0
        for key in outs[i]:
            live = sum(alive[j] for j in readers.get(key, ()))
            if live > 1:
                extra += (live - 1) * elements[key]
        fan.append(extra)
    allocates = tuple(sum(elements[key] for key in outs[i] if store[key] == key) for i in range(n))
    outputs = {store[key]: elements[store[key]] for key in outs[-1]
               if store[key] != INPUT_STORAGE and store[key][0] != PARAMETER}
    transient = tuple((s, max(i, s[0]), elements[s]) for s, i in last_read.items()
                      if s != INPUT_STORAGE and s[0] != PARAMETER and s not in outputs)
    result = _Structure(store, tuple(ins), tuple(outs), tuple(in_strides), tuple(alive), elements, last_read,
                        tuple(fan), tuple(inplace), any(inplace),
                        tuple(passes), allocates, transient, outputs, {}, {}, tuple(custom), tuple(facts))
    if len(cache) < 16:
        cache[batch] = result
    return result


def _refuse(err: SpecError, network, i: int) -> SpecError:
    return err.at(describe_layer(i, network.names[i], type(network.layers[i]).__name__))


def training_cost(network, batch: int = 1, dtype: str = "float32", *, device: str = "cuda",
                  optimizer: str = "momentum", frozen=()) -> TrainingCost:
    """One training step of ``network`` on ``batch`` samples at ``dtype``: backward counts,
    saved bytes, model state and the memory model, with torch's ``device`` backend rules
    (``"cuda"`` or ``"cpu"``). ``frozen`` names layers whose parameters get no gradient.

    The totals are derived at once (refusing, with one `SpecError`, a step torch would fail);
    the per-layer records and the memory model on first use of ``layers`` or ``memory``."""
    batch = check.integer(batch, "batch")
    if device not in DEVICES:
        check.choice(device, "device", DEVICES)
    if optimizer not in OPTIMIZERS:
        check.choice(optimizer, "optimizer", tuple(OPTIMIZERS))
    cold = _frozen_indices(network, frozen) if frozen else ()
    if batch > 1:
        network._check_batch(batch)  # the engine's int64 bound, as Network.cost checks it
    # kept on the network (immutable), as its forward sums are; rules changed at run time: forget_rules
    key = (_EPOCH[0], batch, dtype, device, optimizer, tuple(sorted(cold)))
    cache = network.__dict__.get("_training_totals")
    t = cache.get(key) if cache is not None else None
    if t is None:
        t = _fast_totals(network, batch, dtype, device, optimizer, cold)
        if t is None:
            t = _walk(network, batch, dtype, device, optimizer, cold, False)
        if cache is None:
            cache = {}
            object.__setattr__(network, "_training_totals", cache)
        if len(cache) < 16:
            cache[key] = t
    return TrainingCost(network.name, network.input_shape, batch, dtype, device, optimizer,
                        tuple(network.names[i] for i in sorted(cold)), *t, network)


# -- the fast path: the totals of a network whose tensors all stay contiguous ----------------

TRAIN_MEMO_SIZE = 64
"""Entries a layer remembers of its training rules' results (input shapes, options and gradients)."""

_ONE = {True: (True,), False: (False,)}

_OPTIONS: dict = {}
"""Each ``(batch, itemsize, dtype, device)`` seen: a small int naming it in what layers remember
(from the `MAX_OPTIONS`-th on, the tuple itself)."""
MAX_OPTIONS = 4096


def _train_memo(layer) -> dict:
    """What ``layer`` remembers of its training rules. Its rules are pure functions of its
    arguments, its input and the options, so a network built afresh from the same layer objects
    skips calling them again; `alexcost.engine.network.forget_rules` (which bumps the epoch read here)
    drops every memo at once. Only the fast path reads it: every input it saw was contiguous."""
    memo = layer.__dict__.get("_train_memo")
    if memo is None or memo[0] != _EPOCH[0]:
        memo = (_EPOCH[0], {})
        object.__setattr__(layer, "_train_memo", memo)
    return memo[1]


def _facts(layer, x, y) -> tuple:
    """One sample's facts about a layer that the options do not change: ``(how its output is
    stored: "weight", "new", "view" or None where only strides can tell; params, weight and bias
    tensors, MACs, output elements, writes into input 0 in training, the results for each
    options and gradients: a dict)``."""
    if type(layer).arity == 0:
        how = "weight"
    else:
        new = contiguous_new(layer)
        if new is None:  # several outputs, or a view whose strides only the general walk follows
            return None, 0, 0, 0, 0, False, {}
        how = "new" if new or layer.train_copies() else "view"
    weight, bias = layer.weight_params(x), layer.bias_params(x)
    return how, weight + bias, (weight > 0) + (bias > 0), layer.macs(x, y), prod(y), layer.train_inplace(), {}


def _results(layer, x, y, in_req: tuple, trainable: bool, options: tuple, kinds: tuple, macs: int) -> tuple:
    """What a layer's training rules give for these gradients and options: ``(bytes of the new
    tensors it keeps, the values it keeps (k: input k, -1: its output), its backward MACs for one
    sample, its buffers' bytes)``. ``kinds``: per input, is it a weight (a Parameter's output)?"""
    kind = type(layer)
    batch, itemsize, dtype, device = options
    grads = Grads(in_req, trainable)
    node = trainable or True in in_req
    if kind.check_training is not Layer.check_training:
        layer.check_training(x, batch)
    items = ()
    if node and kind.arity != 0:
        shapes = (x,) if kind.arity == 1 else x
        strides = tuple(None if weight else st.contiguous((batch, *s)) for s, weight in zip(shapes, kinds))
        items = layer.saved_tensors(x, y, grads, TrainContext(batch, itemsize, dtype, device, strides))
    new = sum(item.elements * item.itemsize for item in items if item.ref == "new")
    kept = tuple(item.index if item.ref == "input" else -1 for item in items if item.ref != "new")
    backward = 0
    if node and (macs or kind.backward_macs is not Layer.backward_macs):
        backward = layer.backward_macs(x, y, grads)
        if trainable:  # as the general walk asks, which splits the two (and refuses what either refuses)
            layer.backward_macs(x, y, Grads((False,) * len(in_req), True))
    buffers = layer.buffer_bytes(x, itemsize) if kind.buffers is not Layer.buffers else 0
    return new, kept, backward, buffers


class _Fallback(Exception):
    """The fast path met something only the general walk follows or reports (it raises the same error there)."""


def _fast_totals(network, batch: int, dtype: str, device: str, optimizer: str, cold):
    """`_walk`'s totals without strides, for a network whose tensors all stay contiguous (each
    layer's `contiguous_new`): each layer's `TrainContext` then holds its inputs' contiguous
    strides, and what its rules give is remembered by the layer (`_train_memo`). None where the
    network needs the general walk (a view that may not be contiguous, several outputs, or a
    step the general walk refuses, or any error: the general walk raises it, or does not call
    the rule that raised, e.g. a dead layer's backward_macs)."""
    try:
        return _fast_walk(network, batch, dtype, device, optimizer, cold)
    except Exception:  # noqa: BLE001 (a refusal, or a rule the general walk may not call: it decides)
        return None


def _fast_walk(network, batch, dtype, device, optimizer, cold):
    """`_fast_totals`' walk: storages, requires-grad and versions in lists indexed by layer;
    raises `_Fallback` where the general walk must decide."""
    itemsize = dtype_bytes(dtype)
    layers, sources, xs, ys = network.layers, network.sources, network.input_shapes, network.output_shapes
    n = len(layers)
    # lists of n + 1: index -1 (the network input's source index) is the input's slot
    alive = [True] * (n + 1)
    if not network.is_chain:
        alive = [False] * (n + 1)
        alive[n - 1] = True
        for i in range(n - 1, -1, -1):
            if alive[i]:
                for j, _ in sources[i]:
                    alive[j] = True
    storage = [-1] * (n + 1)  # per value: the layer whose output's storage it lives in (-1: the input, None: a weight)
    elements = [0] * (n + 1)  # per value, the whole batch's elements
    elements[-1] = batch * prod(network.input_shape)
    req = [False] * (n + 1)
    version = [0] * (n + 1)
    # per storage, once some live layer keeps it (counted once, for the first): 1 + its version then
    # (versions only grow, so a later keeper's is no lower: it was modified after a keep iff it ends higher)
    seen = [0] * (n + 1)
    wrote = False
    options = (batch, itemsize, dtype, device)
    code = _OPTIONS.get(options)
    if code is None:
        code = _OPTIONS[options] = len(_OPTIONS) if len(_OPTIONS) < MAX_OPTIONS else options
    epoch = _EPOCH[0]
    one = _ONE
    grad_bytes = grad_tensors = all_params = trainable_params = buffer_bytes = all_macs = backward = saved_total = 0
    for i in range(n):
        layer, refs, x = layers[i], sources[i], xs[i]
        memo = layer.__dict__.get("_train_memo")
        memo = memo[1] if memo is not None and memo[0] == epoch else _train_memo(layer)
        if len(refs) > 1 and reads_a_parameter(x):
            memo = {}
        facts = memo.get(x)
        if facts is None:
            facts = _facts(layer, x, ys[i])
            if len(memo) < TRAIN_MEMO_SIZE:
                memo[x] = facts
        how, params, tensors, macs, count, inplace, results = facts
        if how == "view":
            s = storage[i] = storage[refs[0][0]]
        elif how == "new":
            s = storage[i] = i
        elif how == "weight":
            s = storage[i] = None
        else:
            raise _Fallback
        elements[i] = batch * count
        all_params += params
        all_macs += macs
        trainable = params > 0 and i not in cold
        if len(refs) == 1:
            needs = req[refs[0][0]]
            in_req = one[needs]
            key = (code, 2 * needs + trainable) if type(code) is tuple else 4 * code + 2 * needs + trainable
        else:
            in_req = tuple([req[j] for j, _ in refs])
            needs = True in in_req
            key = (code, in_req, trainable)
        node = req[i] = trainable or needs
        found = results.get(key)
        if found is None:
            found = _results(layer, x, ys[i], in_req, trainable, options,
                             tuple(storage[j] is None for j, _ in refs), macs)
            if len(results) < TRAIN_MEMO_SIZE:
                results[key] = found
        new, keeps, bwd, buffers = found
        buffer_bytes += buffers
        live = alive[i]
        if live:
            saved_total += new
            backward += batch * bwd
            if trainable:
                grad_bytes += params * itemsize
                grad_tensors += tensors
                trainable_params += params
        for k in keeps:
            t = storage[refs[k][0]] if k >= 0 else s
            if t is None:
                continue
            if live and not seen[t]:
                seen[t] = 1 + version[t] + (k < 0 and inplace)
                saved_total += elements[t] * itemsize
        if inplace:
            if s is None:
                raise _Fallback
            version[s] += 1
            wrote = True
    if not req[n - 1]:
        raise _Fallback
    if wrote:  # kept for the backward pass, then modified in place: the general walk says which
        for t, first in enumerate(seen):
            if first and version[t] != first - 1:
                raise _Fallback
    state = {"sgd": 0, "momentum": grad_bytes, "adam": 2 * grad_bytes + 4 * grad_tensors}[optimizer]
    return (batch * all_macs, backward, saved_total, all_params, trainable_params, all_params * itemsize, grad_bytes,
            state, buffer_bytes)


class _Detail(NamedTuple):
    layers: tuple
    memory: StepMemory
    notes: tuple


def _walk(network, batch: int, dtype: str, device: str, optimizer: str, cold, detail: bool):
    """One pass over the layers in run order. Without ``detail``: the totals ``(forward MACs,
    backward MACs, saved bytes, params, trainable params, weight, gradient, optimizer and buffer
    bytes)``; with it, every layer's `LayerTraining`, the memory model and the notes (`_Detail`)."""
    itemsize = dtype_bytes(dtype)
    shape = _structure(network, batch)
    store, alive, custom, facts = shape.store, shape.alive, shape.custom, shape.facts
    layers, names, xs, ys = network.layers, network.names, network.input_shapes, network.output_shapes
    n = len(layers)
    req = {(NETWORK_INPUT, None): False}
    version: dict = {}
    bumped_by: dict = {}
    multiview: dict = {}
    kept = []  # (layer, storage, version when kept), for the in-place check
    watch = shape.writes  # only a layer writing in place can break what others keep
    grads_of: dict = {}
    owner: dict = {}  # storage -> the first layer that keeps it
    kept_bytes: dict = {}
    made = [0] * n  # bytes of the new tensors each layer keeps
    out, notes = [], []
    elements, fan, ins, outs = shape.elements, shape.fan, shape.ins, shape.outs
    memo = shape.memo  # what each layer's (pure) rules gave for these gradients and this context
    contexts = shape.contexts.get((itemsize, dtype, device))
    if contexts is None:
        contexts = shape.contexts[(itemsize, dtype, device)] = tuple(
            TrainContext(batch, itemsize, dtype, device, strides) for strides in shape.strides)
    grad_bytes = grad_tensors = all_params = trainable_params = buffer_bytes = all_macs = backward = saved_total = 0
    for i in range(n):
        layer, refs, keys = layers[i], ins[i], outs[i]
        weight, bias, macs, buffered = facts[i]
        in_req = (req[refs[0]],) if len(refs) == 1 else tuple([req[ref] for ref in refs])
        params = weight + bias
        all_params += params
        all_macs += macs
        if buffered:
            buffer_bytes += layer.buffer_bytes(xs[i], itemsize)
        trainable = params > 0 and i not in cold
        node = trainable or True in in_req
        for key in keys:
            req[key] = node
            if watch and store[key] != key and refs:  # a view of input 0 (or the same tensor): its lineage
                multiview[key] = type(layer).multi_output or multiview.get(refs[0], False)
        grads = grads_of.get((in_req, trainable))
        if grads is None:
            grads = grads_of[(in_req, trainable)] = Grads(in_req, trainable)
        items = ()
        if custom[i][0] or (node and refs):
            memo_key = (i, grads, itemsize, dtype, device)
            items = memo.get(memo_key)
            if items is None:
                try:
                    if custom[i][0]:
                        layer.check_training(xs[i], batch)
                    items = layer.saved_tensors(xs[i], ys[i], grads, contexts[i]) if node and refs else ()
                except SpecError as err:
                    raise _refuse(err, network, i) from None
                memo[memo_key] = items
        inplace = shape.inplace[i]
        if inplace and node and multiview.get(refs[0]):
            raise _refuse(SpecError("torch refuses to modify in place a view returned by a Chunk or Split (a "
                                    "function that returns several views) when it requires grad; make the layer "
                                    "not in place"), network, i)
        live = alive[i]
        saved, own = [], 0
        for m, item in enumerate(items):
            ref = item.ref
            if ref == "new":
                key, size = ("new", i, m), item.elements * item.itemsize
            else:
                key = store[refs[item.index]] if ref == "input" else store[keys[item.index]]
                if key[0] == PARAMETER:
                    continue
                size = elements[key] * itemsize
                if watch and (ref == "input" or not inplace):
                    kept.append((i, key, version.get(key, 0)))
            if live:
                first = owner.get(key)
                if first is None:
                    owner[key] = first = i
                    kept_bytes[key] = size
                    own += size
                    if ref == "new":
                        made[i] += size
                if detail:
                    saved.append(SavedTensor(item.what, size, key, None if first == i else names[first], item.caveat))
                    if item.caveat and item.caveat not in notes:
                        notes.append(item.caveat)
        saved_total += own
        if inplace:
            target = store[keys[0]]
            version[target] = version.get(target, 0) + 1
            bumped_by[target] = i
            if watch:
                for key, item in ((store[keys[item.index]], item) for item in items if item.ref == "output"):
                    kept.append((i, key, version[key]))
        gin = gw = tflops = bops = 0
        runs = node and live
        if runs and (macs or custom[i][1]):
            x, y = xs[i], ys[i]
            found = memo.get((i, grads))
            if found is None:
                both = layer.backward_macs(x, y, grads)
                weights_only = layer.backward_macs(x, y, Grads((False,) * len(in_req), True)) if trainable else 0
                found = memo[(i, grads)] = (both - weights_only, weights_only)
            gin, gw = batch * found[0], batch * found[1]
            backward += gin + gw
            if detail:
                tflops = batch * layer.torch_backward_flops(x, y, grads)
        tensors = 0
        if trainable and live:
            tensors = (weight > 0) + (bias > 0)
            grad_bytes += params * itemsize
            grad_tensors += tensors
            trainable_params += params
        if detail:
            x, y = xs[i], ys[i]
            if runs:
                bops = layer.backward_other_ops(x, y, grads, batch) + fan[i]
            out.append(LayerTraining(i, names[i], type(layer).__name__, layer.group, batch * macs, gin, gw, tflops,
                                     bops, batch * layer.train_other_ops(x, y), own, tuple(saved), params,
                                     params if trainable and live else 0, tensors, grads if runs else None))

    if not any(req[key] for key in outs[-1]):
        raise SpecError(f"{network.name!r}: its output does not require grad (every parameter it reads is frozen, "
                        f"or it has none), so a training step has no backward pass")
    for i, key, seen in kept:  # kept for the backward pass, then modified in place: torch's backward fails
        if alive[i] and version.get(key, 0) != seen:
            j = bumped_by[key]
            raise SpecError(f"{describe_layer(j, names[j], type(layers[j]).__name__)} modifies in place a tensor "
                            f"that {names[i]!r} ({type(layers[i]).__name__}) keeps for the backward pass; "
                            f"torch's backward would fail (one of the variables needed for gradient computation "
                            f"has been modified by an inplace operation): make it not in place")
    weights = all_params * itemsize
    state = {"sgd": 0, "momentum": grad_bytes, "adam": 2 * grad_bytes + 4 * grad_tensors}[optimizer]
    if not detail:
        return (batch * all_macs, backward, saved_total, all_params, trainable_params, weights, grad_bytes, state,
                buffer_bytes)
    memory = _step_memory(shape, out, owner, kept_bytes, made, itemsize, weights, buffer_bytes, state, grad_bytes)
    return _Detail(tuple(out), memory, tuple(notes))


def _step_memory(shape: _Structure, rows, owner: dict, kept: dict, made: list, itemsize: int, weights: int,
                 buffers: int, state: int, grads: int) -> StepMemory:
    """Walk the forward pass, then the backward pass, summing live bytes (see `StepMemory`).
    ``owner``: each kept storage's first keeper, the last layer whose backward pass needs it;
    ``kept``: its bytes; ``made[i]``: the bytes of new tensors layer ``i`` keeps."""
    store, elements, outs, ins, passes = shape.store, shape.elements, shape.outs, shape.ins, shape.passes
    n = len(rows)
    input_bytes = elements[INPUT_STORAGE] * itemsize
    free_after = [0] * n  # bytes nothing needs once layer i's forward pass is done
    for storage, i, count in shape.transient:
        if storage not in kept:
            free_after[i] += count * itemsize
    total = peak = 0
    timeline = []
    for row, alloc, new, free in zip(rows, shape.allocates, made, free_after):
        total += alloc * itemsize + new
        timeline.append(("forward", row.name, total + input_bytes))
        if total > peak:
            peak = total
        total -= free
    # what the forward pass leaves: the output, and what live layers keep (dead layers' values go at its end)
    outputs = shape.outputs
    held = sum(kept.values()) - kept.get(INPUT_STORAGE, 0)
    held += sum(count for s, count in outputs.items() if s not in kept) * itemsize
    release = [0] * n
    for s, i in owner.items():
        if s not in outputs and s != INPUT_STORAGE:
            release[i] += kept[s]
    grad_live = {key: elements[key] * itemsize for key in outs[-1]}
    grad_total = sum(grad_live.values())
    param_grads = 0
    backward_peak = held + grad_total
    for i in range(n - 1, -1, -1):
        r = rows[i]
        if r.grads is None:
            continue
        param_grads += r.trainable_params * itemsize
        new = 0
        for ref, needed in zip(ins[i], r.grads.inputs):
            if needed and ref not in grad_live and store[ref][0] != PARAMETER:
                size = 0 if passes[i] else elements[ref] * itemsize
                grad_live[ref] = size
                new += size
        now = held + grad_total + new + param_grads
        timeline.append(("backward", r.name, now + input_bytes))
        if now > backward_peak:
            backward_peak = now
        for key in outs[i]:
            grad_total -= grad_live.pop(key, 0)
        grad_total += new
        held -= release[i]
    resident = weights + buffers + state
    phase = max((resident + peak + input_bytes, "forward pass"),
                (resident + backward_peak + input_bytes, "backward pass"),
                (resident + grads + input_bytes, "optimizer update"))[1]
    return StepMemory(weights, buffers, state, grads, sum(kept.values()), input_bytes, peak + input_bytes,
                      backward_peak + input_bytes, phase, tuple(timeline))
