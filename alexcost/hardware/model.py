"""A pass or a training step on one or several GPUs: the time model's expected time beside its
bound, the step's memory per GPU, and a training run's days beside published ones (no torch).

The caller gives the static counts (`alexcost.engine.cost.LayerCost` rows and, for training,
the records of `alexcost.training.training_cost`); nothing here costs a network itself.

* Several GPUs, ``split="data"``: each GPU runs ``batch / gpus`` samples (the caller gives the
  counts of that share), and a whole iteration sums the gradients by a ring all-reduce:
  ``2*(gpus - 1)/gpus`` times the gradient bytes over each GPU's link.
* ``split="model"``: Krizhevsky's split of AlexNet (a chain whose grouped convolutions have one
  group per GPU): every layer's kernels are shared out among the GPUs; a layer that reads every
  channel (a convolution that is not grouped, a Linear layer, a Softmax) first receives the part
  of its input the other GPUs hold, and in the backward pass sends back their part of its
  input's gradient.

`forward_bound` and `backward_bound` give the plain roofline of one layer's forward and backward
pass in training (``alexcost time --training`` sets measured times beside them).
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import SpecError
from .catalog import GPU, gpu
from .kernels import UPDATE, Kernel, fusion, network_kernels, shared, update_kernels
from .timemodel import (MODES, PHASES, Coefficients, LayerTime, Timer, bound_seconds, check_choice, layer_times,
                        total_seconds)

REFERENCES = {
    "paper": {"gpu": "gtx580", "gpus": 2, "days": (5, 6), "batch": 128, "images": 1_200_000, "epochs": 90,
              "source": "Krizhevsky, Sutskever & Hinton (2012): roughly 90 cycles through the 1.2 million "
                        "training images, which took five to six days on two NVIDIA GTX 580 3GB GPUs"},
}
"""Published training runs to set a prediction beside, by model name."""

SPLITS = ("auto", "data", "model")
MASTER_BYTES = {"float32": 4, "tf32": 4, "amp": 4, "float16": 2, "bfloat16": 2}
"""Bytes per element of the weights the optimizer updates (mixed precision keeps FP32 master weights)."""


# -- the plain roofline of one layer in training ------------------------------------------------

def forward_bound(row, tr, peaks):
    """The forward pass of one layer in training (``row``: its LayerCost, ``tr``: its LayerTraining), as a
    `alexcost.hardware.roofline.Bound` on ``peaks``."""
    from .roofline import Bound

    flops = 2 * row.macs + row.bias_adds + tr.train_other_ops
    if flops == 0:
        return Bound.of(0, 0, peaks)
    made = sum(t.bytes for t in tr.saved if t.storage[0] == "new")
    return Bound.of(flops, row.input_bytes + row.weight_bytes + row.output_bytes + made, peaks)


def backward_bound(row, tr, peaks):
    """The backward pass of one layer: gradients of input and weights from the output's gradient."""
    from .roofline import Bound

    flops = 2 * tr.backward_macs + tr.backward_other_ops
    if tr.grads is None or flops == 0:
        return Bound.of(0, 0, peaks)
    nbytes = row.output_bytes + sum(t.bytes for t in tr.saved)
    if any(tr.grads.inputs):
        nbytes += row.input_bytes + (row.weight_bytes if row.params else 0)
    if tr.grads.params:
        nbytes += row.weight_bytes
    return Bound.of(flops, nbytes, peaks)


# -- splitting over GPUs ---------------------------------------------------------------------------

def _dense(layer, gpus: int) -> bool:
    """Does the layer read every channel of its input (so, split across GPUs, it needs the others' part)?"""
    kind = type(layer).__name__
    if kind == "Conv2d":
        return layer.groups % gpus != 0
    return kind in ("Linear", "Softmax")


def model_split_possible(network, gpus: int) -> bool:
    """Krizhevsky's split applies: a chain with at least one convolution of exactly ``gpus`` groups,
    and every grouped convolution's groups a multiple of ``gpus``."""
    grouped = [layer.groups for layer in network.layers if type(layer).__name__ == "Conv2d" and layer.groups > 1]
    return network.is_chain and gpus > 1 and gpus in grouped and all(g % gpus == 0 for g in grouped)


def resolve_split(network, gpus: int, split: str = "auto") -> str:
    """``single`` on one GPU; else ``data`` or ``model`` (``auto``: model when `model_split_possible`)."""
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 1 <= gpus <= 1024:
        raise SpecError(f"gpus must be a whole number from 1 to 1024, got {gpus!r}")
    check_choice(split, "split", SPLITS)
    if gpus == 1:
        return "single"
    if split == "auto":
        return "model" if model_split_possible(network, gpus) else "data"
    if split == "model" and not model_split_possible(network, gpus):
        raise SpecError(f"the model split needs a chain whose grouped convolutions have {gpus} groups (one per "
                        f"GPU), as the AlexNet paper's; {network.name!r} has none: use --split data")
    return split


def per_gpu_batch(batch: int, gpus: int) -> int:
    """Each GPU's share of a data-parallel batch (the batch must split evenly)."""
    if batch % gpus:
        raise SpecError(f"data parallelism splits the batch evenly: batch {batch} is not a multiple of {gpus} GPUs")
    return batch // gpus


class Crossing(NamedTuple):
    """Bytes one step sends between the GPUs at a layer of a model split: its input's missing parts
    forward, their gradient backward (summed over the GPUs)."""

    name: str
    forward_bytes: int
    backward_bytes: int


def crossings(rows, trainings, gpus: int) -> tuple[Crossing, ...]:
    """What crosses between the GPUs of a model split: at every layer that reads all channels of an
    input the GPUs hold in parts (not the network input, which every GPU loads whole). ``trainings``:
    None for a forward pass."""
    out, split = [], False
    for i, row in enumerate(rows):
        tr = trainings[i] if trainings is not None else None
        if _dense(row.layer, gpus) and split:
            fwd = row.input_bytes * (gpus - 1)
            bwd = fwd if tr is not None and tr.grads is not None and any(tr.grads.inputs) else 0
            out.append(Crossing(row.name, fwd, bwd))
        if row.macs or row.type == "Linear":
            split = True
        if row.type == "Softmax" and _dense(row.layer, gpus):
            split = False
    return tuple(out)


def _model_split(kernels, rows, gpus: int) -> list[Kernel]:
    """Each GPU's kernels in a model split: its share of every kernel, and a layer that reads every
    channel reads the part of its input the others made too."""
    extra = [row.input_bytes * (gpus - 1) // gpus if _dense(row.layer, gpus) else 0 for row in rows]
    out = []
    for k in kernels:
        k = shared(k, gpus)
        if k.layer >= 0 and extra[k.layer] and k.bytes and k.stage in ("forward", "backward"):
            k = k._replace(bytes=k.bytes + extra[k.layer])
        out.append(k)
    return out


# -- the estimate ---------------------------------------------------------------------------------

class Estimate(NamedTuple):
    """The expected time of a `Plan` (one ``phase`` of ``batch`` samples of ``model`` on ``gpus`` of
    ``gpu``), per layer and in all, beside its bound (milliseconds)."""

    plan: "Plan"
    layers: tuple[LayerTime, ...]
    update_ms: float
    update_bound_ms: float
    communication_ms: float
    coefficients: Coefficients

    model = property(lambda self: self.plan.model)
    gpu = property(lambda self: self.plan.gpu)
    gpus = property(lambda self: self.plan.gpus)
    split = property(lambda self: self.plan.split)
    batch = property(lambda self: self.plan.batch)
    dtype = property(lambda self: self.plan.dtype)
    phase = property(lambda self: self.plan.phase)
    mode = property(lambda self: self.plan.mode)
    crossings = property(lambda self: self.plan.crossings)

    @property
    def layers_ms(self) -> float:
        return sum(r.expected_ms for r in self.layers)

    @property
    def expected_ms(self) -> float:
        return self.layers_ms + self.update_ms + self.communication_ms

    @property
    def bound_ms(self) -> float:
        return sum(r.bound_ms for r in self.layers) + self.update_bound_ms + self.communication_ms

    @property
    def forward_ms(self) -> float:
        return sum(r.forward_ms for r in self.layers)

    @property
    def backward_ms(self) -> float:
        return sum(r.backward_ms for r in self.layers)

    def to_dict(self) -> dict:
        """The JSON contract of ``alexcost predict``: ``model``, ``gpu``, ``gpus``, ``batch``, ``dtype``,
        ``phase``, ``expected_ms``, ``bound_ms`` and ``layers`` (each with ``name``, ``expected_ms``,
        ``bound_ms``, ``limited_by``), and what else explains them."""
        c = self.gpu
        return {"model": self.model, "gpu": c.key, "gpus": self.gpus, "batch": self.batch, "dtype": self.dtype,
                "phase": self.phase, "mode": self.mode, "split": self.split, "expected_ms": self.expected_ms,
                "bound_ms": self.bound_ms, "forward_ms": self.forward_ms, "backward_ms": self.backward_ms,
                "update_ms": self.update_ms, "communication_ms": self.communication_ms, "anchored": False,
                "gpu_name": c.name, "math_unit": c.unit(self.dtype), "peak_flops": c.peak(self.dtype),
                "bandwidth_bytes_per_s": c.bandwidth,
                "crossings": [{"layer": x.name, "forward_bytes": x.forward_bytes, "backward_bytes": x.backward_bytes}
                              for x in self.crossings],
                "layers": [r.to_dict() for r in self.layers],
                "coefficients": self.coefficients.summary()}


class Plan(NamedTuple):
    """What the time model times, before any coefficient: each GPU's kernels for the expected time,
    the kernels of the bound (every fusion rule applied), the optimizer's update and the bytes each
    GPU receives over its link."""

    model: str
    gpu: GPU
    gpus: int
    split: str
    batch: int
    dtype: str
    phase: str
    mode: str
    rows: tuple
    kernels: tuple
    bound_kernels: tuple
    update: tuple
    link_bytes: float
    crossings: tuple


def plan(rows, trainings=None, *, model: str, gpu_key: str, batch: int, dtype: str = "float32",
         phase: str = "forward", mode: str = "eager", gpus: int = 1, split: str = "single",
         optimizer: str = "momentum") -> Plan:
    """The kernels of ``phase`` for ``rows`` (the cost records of the batch one GPU runs: the whole batch
    on one GPU or in a model split, one GPU's share in data parallelism) and, for ``train_step`` and
    ``train_iteration``, ``trainings`` (their `LayerTraining` records, in the same order). ``split`` is
    `resolve_split`'s answer."""
    check_choice(phase, "phase", PHASES)
    check_choice(mode, "mode", MODES)
    check_choice(optimizer, "optimizer", tuple(UPDATE))
    card = gpu(gpu_key)
    card.unit(dtype)  # refuses a dtype the card cannot run
    training = phase != "forward"
    if training and trainings is None:
        raise SpecError(f"phase {phase} needs the training step's records")
    trs = trainings if training else None
    fused = fusion(rows, training) if mode == "graph" and not training else frozenset()
    kernels = network_kernels(rows, trs, fused=fused, amp=dtype == "amp")
    bound_kernels = network_kernels(rows, trs, fused=fusion(rows, training))
    cross = crossings(rows, trs, gpus) if split == "model" else ()
    if split == "model":
        kernels, bound_kernels = _model_split(kernels, rows, gpus), _model_split(bound_kernels, rows, gpus)
    update, link = [], 0.0
    if phase == "train_iteration":
        master = MASTER_BYTES.get(dtype, 4)
        update = update_kernels(rows, trs, optimizer, master)
        if split == "model":
            update = [shared(k, gpus) for k in update]
        if split == "data":
            link = 2 * (gpus - 1) / gpus * sum(tr.trainable_params for tr in trs) * master
    if cross:
        link += sum(x.forward_bytes + (x.backward_bytes if training else 0) for x in cross) / gpus
    return Plan(model, card, gpus, split, batch, dtype, phase, mode, tuple(rows), tuple(kernels),
                tuple(bound_kernels), tuple(update), link, cross)


def timed(p: Plan, coefficients=None) -> Estimate:
    """A plan's expected time and bound with ``coefficients`` (default: the shipped ones)."""
    timer = Timer(p.gpu, p.dtype, p.mode, coefficients)
    layers = layer_times(p.rows, p.kernels, p.bound_kernels, timer)
    communication_ms = p.link_bytes / p.gpu.link * 1e3
    return Estimate(p, layers, total_seconds(p.update, timer) * 1e3, bound_seconds(p.update, timer) * 1e3,
                    communication_ms, timer.c)


def expected_ms(p: Plan, coefficients=None) -> float:
    """The plan's whole expected time, as `timed` gives it, without the per-layer records."""
    timer = Timer(p.gpu, p.dtype, p.mode, coefficients)
    return (total_seconds(p.kernels, timer) + total_seconds(p.update, timer)) * 1e3 + p.link_bytes / p.gpu.link * 1e3


def estimate(rows, trainings=None, *, coefficients=None, **how) -> Estimate:
    """`timed` of `plan` (same arguments)."""
    return timed(plan(rows, trainings, **how), coefficients)


# -- a training step on a GPU (``alexcost train --gpu``) ---------------------------------------------

class Prediction(NamedTuple):
    """A training step of ``batch`` samples on ``gpus`` GPUs: the time model's whole iteration (update
    and communication included) and its bound, and the step's memory on each GPU."""

    estimate: Estimate
    optimizer: str
    memory_per_gpu: int
    params_per_gpu: int
    macs_per_gpu: int

    gpu = property(lambda self: self.estimate.gpu)
    gpus = property(lambda self: self.estimate.gpus)
    split = property(lambda self: self.estimate.split)
    dtype = property(lambda self: self.estimate.dtype)
    batch = property(lambda self: self.estimate.batch)
    mode = property(lambda self: self.estimate.mode)
    layers = property(lambda self: self.estimate.layers)
    crossings = property(lambda self: self.estimate.crossings)
    update_ms = property(lambda self: self.estimate.update_ms)
    communication_ms = property(lambda self: self.estimate.communication_ms)
    step_ms = property(lambda self: self.estimate.expected_ms)
    bound_ms = property(lambda self: self.estimate.bound_ms)

    @property
    def compute_ms(self) -> float:
        return self.step_ms - self.communication_ms

    @property
    def fits(self) -> bool:
        return self.memory_per_gpu <= self.gpu.memory

    def days(self, schedule) -> float:
        """Days for the schedule's images and epochs: ``images*epochs/batch`` steps of ``step_ms``."""
        return schedule.samples / self.batch * self.step_ms / 1e3 / 86_400

    def bound_days(self, schedule) -> float:
        return schedule.samples / self.batch * self.bound_ms / 1e3 / 86_400

    def to_dict(self, schedule=None) -> dict:
        e = self.estimate
        out = {"gpu": self.gpu.to_dict(), "gpus": self.gpus, "split": self.split, "dtype": self.dtype,
               "mode": self.mode, "peak_flops": self.gpu.peak(self.dtype), "step_ms": self.step_ms,
               "bound_ms": self.bound_ms, "compute_ms": self.compute_ms, "forward_ms": e.forward_ms,
               "backward_ms": e.backward_ms, "update_ms": self.update_ms, "communication_ms": self.communication_ms,
               "memory_per_gpu": self.memory_per_gpu, "fits": self.fits, "params_per_gpu": self.params_per_gpu,
               "macs_per_gpu": self.macs_per_gpu,
               "crossings": [{"layer": c.name, "forward_bytes": c.forward_bytes, "backward_bytes": c.backward_bytes}
                             for c in self.crossings],
               "layers": [r.to_dict() for r in self.layers], "coefficients": e.coefficients.summary()}
        if schedule is not None:
            out["days"] = self.days(schedule)
            out["bound_days"] = self.bound_days(schedule)
        return out


def _memory_model_split(training, gpus: int, dense: set) -> int:
    """Per GPU: its share of weights, gradients, state and kept tensors; the input batch whole; a
    tensor a layer that reads every channel keeps, whole (its own part and the part it received)."""
    m = training.memory
    whole = m.input
    shared_bytes = 0
    seen = set()
    for tr in training.layers:
        for t in tr.saved:
            if t.storage in seen or t.storage == ("input",):
                continue
            seen.add(t.storage)
            if tr.name in dense and t.storage[0] != "new":
                whole += t.bytes
            else:
                shared_bytes += t.bytes
    rest = m.peak - m.input - m.saved
    return rest // gpus + shared_bytes // gpus + whole


def predict(training, gpu_key: str, gpus: int = 1, split: str = "auto", network=None, per_gpu=None,
            mode: str = "eager") -> Prediction:
    """A whole training iteration of ``training`` (a `alexcost.training.TrainingCost`) on ``gpus`` of the
    catalog's ``gpu_key``, by the time model. ``split``: ``"data"``, ``"model"`` or ``"auto"`` (model when
    `model_split_possible`, else data); data parallelism needs ``per_gpu``, the training cost of one
    GPU's share of the batch (``training_cost(network, batch // gpus, ...)``)."""
    card = gpu(gpu_key)
    net = network if network is not None else training.network
    how = resolve_split(net, gpus, split)
    per = training
    if how == "data":
        share = per_gpu_batch(training.batch, gpus)
        if per_gpu is None or per_gpu.batch != share:
            raise SpecError(f"data parallelism on {gpus} GPUs needs the training cost of {share} samples")
        per = per_gpu
    e = estimate(per.forward.layers, per.layers, model=training.model, gpu_key=card.key, batch=training.batch,
                 dtype=training.dtype, phase="train_iteration", mode=mode, gpus=gpus, split=how,
                 optimizer=training.optimizer)
    if how == "model":
        memory = _memory_model_split(training, gpus, {c.name for c in e.crossings})
        return Prediction(e, training.optimizer, memory, training.params // gpus, training.forward_macs // gpus)
    if how == "data":
        return Prediction(e, training.optimizer, per.memory.peak, per.params, per.forward_macs)
    return Prediction(e, training.optimizer, training.memory.peak, training.params, training.forward_macs)


def reference(model: str) -> dict | None:
    """The published training run of ``model``, if alexcost has one (the paper's AlexNet)."""
    return REFERENCES.get(model)


def against_reference(prediction: Prediction, schedule, ref: dict) -> dict:
    """The predicted days beside the published ones, and the bound's days."""
    return {"published_days": list(ref["days"]), "predicted_days": prediction.days(schedule),
            "bound_days": prediction.bound_days(schedule), "source": ref["source"],
            "same_setup": prediction.gpu.key == ref["gpu"] and prediction.gpus == ref["gpus"]
            and prediction.batch == ref["batch"]}


def per_layer_split(training, gpus: int) -> list[dict]:
    """Per layer of a model split: parameters and MACs on each GPU."""
    return [{"name": tr.name, "params": row.params // gpus, "macs": row.macs // gpus}
            for row, tr in zip(training.forward.layers, training.layers) if row.params or row.macs]
