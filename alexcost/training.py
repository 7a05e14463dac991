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
from math import ceil, prod

from . import arguments as check
from . import strides as st
from .cost import DTYPE_BYTES, NetworkCost, dtype_bytes
from .errors import SpecError, describe_layer
from .layers import Grads, TrainContext
from .storage import PARAMETER, trace

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


def _value_key(i: int, k: int | None):
    return (i, k)


@dataclass(frozen=True)
class SavedTensor:
    """One tensor a layer keeps, resolved to its storage: ``bytes`` is the whole storage's size;
    ``kept_by`` names the first layer that keeps the same storage (None: this layer)."""

    what: str
    bytes: int
    storage: tuple
    kept_by: str | None = None
    caveat: str = ""


@dataclass(frozen=True)
class LayerTraining:
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
    saved: tuple[SavedTensor, ...]
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
    """A training step of ``batch`` samples: every layer's part, the model state and the memory model."""

    model: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    device: str
    optimizer: str
    frozen: tuple[str, ...]
    forward: NetworkCost = field(repr=False)
    layers: tuple[LayerTraining, ...]
    weight_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    buffer_bytes: int
    memory: StepMemory
    notes: tuple[str, ...] = ()
    network: object = field(default=None, repr=False, compare=False)

    forward_macs = _total("forward_macs")
    backward_macs = _total("backward_macs")
    grad_input_macs = _total("grad_input_macs")
    grad_weight_macs = _total("grad_weight_macs")
    saved_bytes = _total("saved_bytes")
    torch_backward_flops = _total("torch_backward_flops")
    backward_other_ops = _total("backward_other_ops")
    train_other_ops = _total("train_other_ops")
    params = _total("params")
    trainable_params = _total("trainable_params")

    @property
    def train_flops(self) -> int:
        """2 x (forward + backward MACs) for the batch."""
        return 2 * (self.forward_macs + self.backward_macs)

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


def _storages(network, plan, batch: int) -> dict:
    """The storage each value lives in during a training step: inference's plan, except that a
    layer which copies in training (dropout) starts a storage of its own, and views of it follow."""
    store = {(NETWORK_INPUT, None): INPUT_STORAGE}
    for i, layer in enumerate(network.layers):
        kind = type(layer)
        keys = range(len(plan[i])) if kind.multi_output else (None,)
        for (storage, strides), k in zip(plan[i], keys):
            if kind.arity == 0:
                store[(i, k)] = (PARAMETER, i)
            elif layer.train_copies():
                j, jk = network.sources[i][0]
                source_strides = _strides_of(plan, j, jk, network, batch)
                if not st.is_dense((batch, *network.input_shapes[i]), source_strides):
                    raise SpecError("in training this layer copies a tensor that is not dense; alexcost does "
                                    "not follow the new tensor's strides").at(
                        describe_layer(i, network.names[i], kind.__name__))
                store[(i, k)] = (i, k)
            elif storage == i:
                store[(i, k)] = (i, k)
            else:
                j, jk = network.sources[i][0]
                store[(i, k)] = store[(j, jk)]
    return store


def _strides_of(plan, j: int, k: int | None, network, batch: int):
    if j == NETWORK_INPUT:
        return st.contiguous((batch, *network.input_shape))
    return plan[j][0 if k is None else k][1]


def _storage_bytes(network, key, batch: int, itemsize: int) -> int:
    if key == INPUT_STORAGE:
        return batch * prod(network.input_shape) * itemsize
    i, k = key
    y = network.output_shapes[i]
    return batch * prod(y if k is None else y[k]) * itemsize


def training_cost(network, batch: int = 1, dtype: str = "float32", *, device: str = "cuda",
                  optimizer: str = "momentum", frozen=()) -> TrainingCost:
    """One training step of ``network`` on ``batch`` samples at ``dtype``: backward counts,
    saved bytes, model state and the memory model, with torch's ``device`` backend rules
    (``"cuda"`` or ``"cpu"``). ``frozen`` names layers whose parameters get no gradient."""
    batch = check.integer(batch, "batch")
    device = check.choice(device, "device", DEVICES)
    optimizer = check.choice(optimizer, "optimizer", tuple(OPTIMIZERS))
    itemsize = dtype_bytes(dtype)
    cold = _frozen_indices(network, frozen)
    cost = network.cost(batch, dtype)
    plan = trace(network, batch)
    store = _storages(network, plan, batch)
    layers, names, sources = network.layers, network.names, network.sources
    n = len(layers)

    alive = [False] * n
    alive[-1] = True
    for i in range(n - 1, -1, -1):
        if alive[i]:
            for j, _ in sources[i]:
                if j != NETWORK_INPUT:
                    alive[j] = True

    req = {(NETWORK_INPUT, None): False}
    version: dict = {}
    multiview: dict = {(NETWORK_INPUT, None): False}
    kept: list[tuple[int, tuple, int, object]] = []  # (layer, storage, version when kept, item)
    rows, readers = [], {}
    grad_bytes = grad_tensors_total = 0
    for i, layer in enumerate(layers):
        kind = type(layer)
        row = cost.layers[i]
        x, y = network.input_shapes[i], network.output_shapes[i]
        where = describe_layer(i, names[i], kind.__name__)
        in_keys = [(j, k) for j, k in sources[i]]
        in_req = tuple(req[key] for key in in_keys)
        trainable = i not in cold and row.params > 0
        node = any(in_req) or trainable
        out_keys = [(i, k) for k in (range(len(y)) if kind.multi_output else (None,))]
        for key in out_keys:
            req[key] = node
            viewed = store[key] != key and kind.arity != 0
            multiview[key] = viewed and (kind.multi_output or multiview.get(in_keys[0], False))
        for key in in_keys:
            readers.setdefault(key, []).append(i)

        saved_items = ()
        grads = Grads(in_req, trainable)
        try:
            layer.check_training(x, batch)
        except SpecError as err:
            raise err.at(where) from None
        if node and kind.arity != 0:
            ctx = TrainContext(batch, itemsize, dtype, device,
                               tuple(None if isinstance(store[key], tuple) and store[key][0] == PARAMETER
                                     else _strides_of(plan, key[0], key[1], network, batch) for key in in_keys))
            try:
                saved_items = layer.saved_tensors(x, y, grads, ctx)
            except SpecError as err:
                raise err.at(where) from None
        inplace = layer.train_inplace()
        if inplace and node and multiview.get(in_keys[0]):
            raise SpecError("torch refuses to modify in place a view returned by a Chunk or Split (a function "
                            "that returns several views) when it requires grad; make the layer not in place"
                            ).at(where)
        resolved = []
        for m, item in enumerate(saved_items):
            if item.ref == "new":
                key = ("new", i, m)
            elif item.ref == "input":
                key = store[in_keys[item.index]]
            else:
                key = store[out_keys[item.index]]
            if key[0] == PARAMETER:
                continue
            resolved.append((key, item))
        for key, item in resolved:
            if item.ref == "input":
                kept.append((i, key, version.get(key, 0), item))
        if inplace:
            target = store[out_keys[0]]
            version[target] = version.get(target, 0) + 1
            version[("by", target)] = i
        for key, item in resolved:
            if item.ref != "input":
                kept.append((i, key, version.get(key, 0), item))
        rows.append((i, grads if node else None, trainable, resolved))

    if not any(req[(n - 1, k)] for k in (range(len(network.output_shapes[-1]))
                                         if type(layers[-1]).multi_output else (None,))):
        raise SpecError(f"{network.name!r}: its output does not require grad (every parameter it reads is frozen, "
                        f"or it has none), so a training step has no backward pass")
    # a tensor kept for the backward pass and then modified in place: torch's backward fails
    for i, key, seen, item in kept:
        if alive[i] and version.get(key, 0) != seen:
            j = version[("by", key)]
            raise SpecError(f"{describe_layer(j, names[j], type(layers[j]).__name__)} modifies in place a tensor "
                            f"that {names[i]!r} ({type(layers[i]).__name__}) keeps for the backward pass; "
                            f"torch's backward would fail (one of the variables needed for gradient computation "
                            f"has been modified by an inplace operation): make it not in place")

    owner: dict = {}
    out = []
    notes = []
    for i, grads, trainable, resolved in rows:
        layer, row = layers[i], cost.layers[i]
        x, y = network.input_shapes[i], network.output_shapes[i]
        runs = grads is not None and alive[i]
        saved, own = [], 0
        for key, item in resolved if alive[i] else ():
            size = item.bytes if key[0] == "new" else _storage_bytes(network, key, batch, itemsize)
            if key not in owner:
                owner[key] = i
                own += size
            first = owner[key]
            saved.append(SavedTensor(item.what, size, key, None if first == i else names[first], item.caveat))
            if item.caveat and item.caveat not in notes:
                notes.append(item.caveat)
        gin = gw = tflops = bops = 0
        if runs:
            inputs_only = Grads(grads.inputs, False)
            params_only = Grads(tuple(False for _ in grads.inputs), trainable)
            gin = batch * layer.backward_macs(x, y, inputs_only)
            gw = batch * layer.backward_macs(x, y, params_only)
            tflops = batch * layer.torch_backward_flops(x, y, grads)
            bops = layer.backward_other_ops(x, y, grads, batch)
        fan = 0
        for k in (range(len(y)) if type(layer).multi_output else (None,)):
            r = [j for j in readers.get((i, k), ()) if alive[j]]
            if req[(i, k)] and len(r) > 1:
                fan += (len(r) - 1) * batch * prod(y if k is None else y[k])
        gets_grad = trainable and alive[i]
        tensors = (layer.weight_params(x) > 0) + (layer.bias_params(x) > 0) if gets_grad else 0
        grad_bytes += row.params * itemsize if gets_grad else 0
        grad_tensors_total += tensors
        out.append(LayerTraining(i, names[i], row.type, row.group, row.macs, gin, gw, tflops, bops + fan,
                                 batch * layer.train_other_ops(x, y), own, tuple(saved), row.params,
                                 row.params if gets_grad else 0, tensors, grads if runs else None))
    weights = cost.totals.params * itemsize
    state = {"sgd": 0, "momentum": grad_bytes, "adam": 2 * grad_bytes + 4 * grad_tensors_total}[optimizer]
    buffers = cost.totals.buffer_bytes
    memory = _step_memory(network, out, store, readers, alive, batch, itemsize, weights, buffers, state, grad_bytes)
    return TrainingCost(network.name, network.input_shape, batch, dtype, device, optimizer,
                        tuple(names[i] for i in sorted(cold)), cost, tuple(out), weights, grad_bytes, state, buffers,
                        memory, tuple(notes), network)


def _step_memory(network, rows, store, readers, alive, batch, itemsize, weights, buffers, state, grads) -> StepMemory:
    """Walk the forward pass, then the backward pass, summing live bytes (see `StepMemory`)."""
    n = len(rows)
    size = {}

    def bytes_of(key):
        if key not in size:
            size[key] = _storage_bytes(network, key, batch, itemsize)
        return size[key]

    last_read = {}
    for key, rs in readers.items():
        last_read[store[key]] = max(last_read.get(store[key], -1), *rs)
    out_keys = {store[(n - 1, k)] for k in (range(len(network.output_shapes[-1]))
                                             if type(network.layers[-1]).multi_output else (None,))}
    kept = {}  # storage -> bytes, for every storage a live layer keeps
    last_user = {}  # storage -> the earliest-run layer that keeps it (the last to need it in backward)
    for r in rows:
        for t in r.saved:
            kept[t.storage] = t.bytes
            last_user[t.storage] = min(last_user.get(t.storage, r.index), r.index)
    input_bytes = bytes_of(INPUT_STORAGE)

    # forward: new storages live until their last reader, unless kept or returned
    live: dict = {}
    fwd_peak = 0
    for i in range(n):
        for key in {store[(i, k)] for k in (range(len(network.output_shapes[i]))
                                          if type(network.layers[i]).multi_output else (None,))}:
            if key[0] == i and key not in live:
                live[key] = bytes_of(key)
        for t in rows[i].saved:
            if t.storage[0] == "new":
                live[t.storage] = t.bytes
        fwd_peak = max(fwd_peak, sum(live.values()))
        for key in [k for k in live if k in last_read and last_read[k] <= i and k not in kept
                    and k not in out_keys]:
            del live[key]
    # values nothing reads (a dead layer's) and what dead layers kept go when the forward pass returns
    live = {k: v for k, v in live.items() if k in out_keys or k in kept}

    # backward: reverse order; gradients of activations, then kept tensors freed
    last = network.output_shapes[-1]
    grad_live = {(n - 1, k): batch * prod(last if k is None else last[k]) * itemsize
                 for k in (range(len(last)) if type(network.layers[-1]).multi_output else (None,))}
    param_grads = 0
    bwd_peak = sum(live.values()) + sum(grad_live.values())
    for r in reversed(rows):
        i = r.index
        if r.grads is None:
            continue
        layer = network.layers[i]
        kind = type(layer)
        param_grads += r.trainable_params * itemsize
        new_grads = {}
        in_keys = network.sources[i]
        passes = (not kind.multi_output and not layer.train_inplace() and in_keys
                  and store[(i, None)] == store[in_keys[0]])
        for (j, k), needed in zip(in_keys, r.grads.inputs):
            if not needed or (j, k) in grad_live or (j != NETWORK_INPUT and type(network.layers[j]).arity == 0):
                continue
            x = network.shapes[0] if j == NETWORK_INPUT else (network.output_shapes[j] if k is None
                                                                 else network.output_shapes[j][k])
            new_grads[(j, k)] = 0 if passes else batch * prod(x) * itemsize
        bwd_peak = max(bwd_peak, sum(live.values()) + sum(grad_live.values()) + sum(new_grads.values())
                       + param_grads)
        for k in (range(len(network.output_shapes[i])) if kind.multi_output else (None,)):
            grad_live.pop((i, k), None)
        grad_live.update(new_grads)
        for key in [k for k in live if k in last_user and last_user[k] == i and k not in out_keys]:
            del live[key]
    saved = sum(kept.values())
    resident = weights + buffers + state
    phase = max((resident + fwd_peak + input_bytes, "forward pass"), (resident + bwd_peak + input_bytes, "backward pass"),
                (resident + grads + input_bytes, "optimizer update"))[1]
    return StepMemory(weights, buffers, state, grads, saved, input_bytes, fwd_peak + input_bytes,
                      bwd_peak + input_bytes, phase)


# -- the schedule ---------------------------------------------------------------------------

DEFAULT_IMAGES = 1_200_000
"""ImageNet's training set as the AlexNet paper rounds it (1,281,167 images in ILSVRC-2012)."""
DEFAULT_EPOCHS = 90
"""The paper's "roughly 90 cycles through the training set"."""
PFS_DAY = 10**15 * 86_400
"""A petaflop/s-day: 10^15 operations a second for a day (OpenAI's unit)."""
OPENAI = {"pfs_days": 0.0054, "forward_macs": 750_000_000, "images": 1_200_000, "epochs": 90,
          "source": "OpenAI, \"AI and Compute\" (2018), appendix: 1.2M images x 90 epochs x forward "
                    "multiply-adds x 2 (FLOPs per multiply-add) x 3 (forward and backward)"}
"""OpenAI's published estimate for AlexNet and the inputs of its formula."""


@dataclass(frozen=True)
class Schedule:
    """``images`` per epoch for ``epochs`` epochs in steps of ``batch``: exact training FLOPs (2 x
    the forward and backward MACs of every image), petaflop/s-days, and OpenAI's rule beside them."""

    images: int
    epochs: int
    batch: int
    forward_macs_per_image: int
    backward_macs_per_image: int

    @classmethod
    def of(cls, training: TrainingCost, images: int, epochs: int) -> "Schedule":
        images = check.integer(images, "images")
        epochs = check.integer(epochs, "epochs")
        return cls(images, epochs, training.batch, training.forward_macs // training.batch,
                   training.backward_macs // training.batch)

    @property
    def samples(self) -> int:
        return self.images * self.epochs

    @property
    def steps(self) -> int:
        """Optimizer steps: ``ceil(images / batch)`` per epoch (the last batch of an epoch may be short)."""
        return ceil(self.images / self.batch) * self.epochs

    @property
    def train_flops(self) -> int:
        return 2 * (self.forward_macs_per_image + self.backward_macs_per_image) * self.samples

    @property
    def pfs_days(self) -> float:
        return self.train_flops / PFS_DAY

    @property
    def rule_flops(self) -> int:
        """OpenAI's rule on alexcost's exact forward MACs: forward MACs x 2 x 3 per image."""
        return 6 * self.forward_macs_per_image * self.samples

    @property
    def rule_pfs_days(self) -> float:
        return self.rule_flops / PFS_DAY

    def to_dict(self) -> dict:
        quoted = 6 * OPENAI["forward_macs"] * OPENAI["images"] * OPENAI["epochs"]
        return {"images": self.images, "epochs": self.epochs, "steps": self.steps,
                "forward_macs_per_image": self.forward_macs_per_image,
                "backward_macs_per_image": self.backward_macs_per_image,
                "train_flops": self.train_flops, "pfs_days": self.pfs_days,
                "openai": {"published_pfs_days": OPENAI["pfs_days"], "forward_macs": OPENAI["forward_macs"],
                           "formula_flops": quoted, "formula_pfs_days": quoted / PFS_DAY,
                           "rule_on_exact_forward_flops": self.rule_flops,
                           "rule_on_exact_forward_pfs_days": self.rule_pfs_days, "source": OPENAI["source"]}}


# -- rendering ------------------------------------------------------------------------------

def layer_dict(r: LayerTraining) -> dict:
    return {"name": r.name, "type": r.type, "forward_macs": r.forward_macs, "backward_macs": r.backward_macs,
            "grad_input_macs": r.grad_input_macs, "grad_weight_macs": r.grad_weight_macs,
            "torch_backward_flops": r.torch_backward_flops, "train_other_ops": r.train_other_ops,
            "backward_other_ops": r.backward_other_ops, "saved_bytes": r.saved_bytes,
            "saved": [{"what": t.what, "bytes": t.bytes, **({"kept_by": t.kept_by} if t.kept_by else {}),
                       **({"caveat": t.caveat} if t.caveat else {})} for t in r.saved],
            "params": r.params, "trainable_params": r.trainable_params, "runs_backward": r.runs_backward}


def to_dict(t: TrainingCost, schedule: Schedule | None = None, prediction=None) -> dict:
    """The step, the schedule and (given a `alexcost.hardware.Prediction`) the hardware, as
    plain data: ``alexcost train --format json``."""
    schedule = schedule or t.schedule()
    out = {
        "model": t.model, "input_shape": list(t.input_shape), "batch": t.batch, "dtype": t.dtype,
        "device": t.device, "optimizer": t.optimizer, "frozen": list(t.frozen),
        "layers": [layer_dict(r) for r in t.layers],
        "totals": {"forward_macs": t.forward_macs, "backward_macs": t.backward_macs,
                   "grad_input_macs": t.grad_input_macs, "grad_weight_macs": t.grad_weight_macs,
                   "torch_backward_flops": t.torch_backward_flops, "train_flops": t.train_flops,
                   "train_other_ops": t.train_other_ops, "backward_other_ops": t.backward_other_ops,
                   "saved_bytes": t.saved_bytes, "params": t.params, "trainable_params": t.trainable_params,
                   "weight_bytes": t.weight_bytes, "grad_bytes": t.grad_bytes,
                   "optimizer_bytes": t.optimizer_bytes, "buffer_bytes": t.buffer_bytes,
                   "peak_bytes": t.memory.peak},
        "memory": t.memory.to_dict(),
        "schedule": schedule.to_dict(),
        "notes": list(t.notes),
    }
    if prediction is not None:
        from . import hardware

        out["hardware"] = hardware.to_dict(prediction, t, schedule)
    return out


def render(t: TrainingCost, schedule: Schedule | None = None, style: str = "simple", prediction=None) -> str:
    """The step as text: per layer, totals, memory, the schedule and (given a prediction) the
    hardware (``style="pipe"``: Markdown tables)."""
    from .report import bytes_text, commas
    from .textable import render_table

    schedule = schedule or t.schedule()
    headers = ("#", "layer", "type", "fwd MACs", "bwd MACs", "grad input", "grad weight", "torch bwd FLOPs",
               "bwd other ops", "saved", "kept")
    rows = []
    for r in t.layers:
        kept = ", ".join(f"{s.what}" + (f" (= {s.kept_by})" if s.kept_by else "") for s in r.saved)
        rows.append([str(r.index), r.name, r.type, commas(r.forward_macs), commas(r.backward_macs),
                     commas(r.grad_input_macs), commas(r.grad_weight_macs), commas(r.torch_backward_flops),
                     commas(r.backward_other_ops), commas(r.saved_bytes), kept or ("-" if r.runs_backward else
                                                                                   "no backward")])
    rows.append(["", "total", "", commas(t.forward_macs), commas(t.backward_macs), commas(t.grad_input_macs),
                 commas(t.grad_weight_macs), commas(t.torch_backward_flops), commas(t.backward_other_ops),
                 commas(t.saved_bytes), ""])
    m = t.memory
    frozen = f", frozen: {', '.join(t.frozen)}" if t.frozen else ""
    state = {"sgd": "SGD state", "momentum": "momentum buffers", "adam": "Adam moments"}[t.optimizer]
    ratio = f" (backward / forward {t.backward_macs / t.forward_macs:.3f})" if t.forward_macs else ""
    out = [f"alexcost train: {t.model}, batch {t.batch}, {t.dtype}, optimizer {t.optimizer}{frozen}; kept tensors "
           f"as torch keeps them on {t.device.upper() if t.device == 'cuda' else 'the CPU'}", "",
           render_table(headers, rows, ("right", "left", "left", *["right"] * 7, "left"), style), "",
           f"step: {commas(t.forward_macs)} forward + {commas(t.backward_macs)} backward MACs = "
           f"{commas(t.train_flops)} FLOPs{ratio}",
           f"memory: weights {bytes_text(t.weight_bytes)}, gradients {bytes_text(t.grad_bytes)}, {state} "
           f"{bytes_text(t.optimizer_bytes)}, kept for backward {bytes_text(t.saved_bytes)}, input {bytes_text(m.input)}",
           f"peak (model): {bytes_text(m.peak)}, in the {m.peak_phase} (forward {bytes_text(m.resident + m.forward_peak)},"
           f" backward {bytes_text(m.resident + m.backward_peak)}, update {bytes_text(m.update_peak)}); not counted: "
           f"allocator rounding, workspaces, the CUDA context, the loss",
           f"schedule: {commas(schedule.images)} images x {schedule.epochs} epochs, {commas(schedule.steps)} steps: "
           f"{schedule.train_flops:.4g} FLOPs = {schedule.pfs_days:.5f} petaflop/s-days",
           f"OpenAI's estimate for AlexNet: {OPENAI['pfs_days']} petaflop/s-days; their rule (forward MACs x 2 x 3) "
           f"on these forward MACs: {schedule.rule_pfs_days:.5f}"]
    out += [f"note: {note}" for note in t.notes]
    text = "\n".join(out) + "\n"
    if prediction is not None:
        from . import hardware

        text += "\n" + hardware.render(prediction, t, schedule, style)
    return text


CSV_FIELDS = ("name", "type", "forward_macs", "backward_macs", "grad_input_macs", "grad_weight_macs",
              "torch_backward_flops", "train_other_ops", "backward_other_ops", "saved_bytes", "params",
              "trainable_params")


def to_csv(t: TrainingCost) -> str:
    """One row per layer and a ``total`` row, exact integers."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in t.layers:
        writer.writerow([r.name, r.type] + [getattr(r, f) for f in CSV_FIELDS[2:]])
    writer.writerow(["total", ""] + [getattr(t, f) for f in CSV_FIELDS[2:]])
    return buffer.getvalue()
