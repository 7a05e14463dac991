"""GPUs from their spec sheets, and roofline predictions of a training step on them (no torch).

The catalog holds each GPU's peak arithmetic rates (FP32; TF32, FP16 and BF16 where
its tensor cores have them, dense, without the sparsity the sheets also quote), its
memory bandwidth and size, and the link between two of them, with the sheet they come
from. Memory sizes are the sheets' GB read as GiB (GPU memory comes in powers of two).

A prediction is a roofline lower bound (`alexcost.hardware.roofline.Bound`: the larger of FLOPs
over the peak rate and bytes over the bandwidth), per layer, for the forward and the
backward pass of a training step, plus the optimizer's update and, on several GPUs,
the communication. It is what the GPU could do at best; the measured time of a real
step over it is the utilisation a framework reaches.

* Forward: FLOPs ``2*macs + bias_adds + train_other_ops``; bytes: input, weights and
  output, plus the tensors autograd keeps that the layer makes (masks, indices).
* Backward: FLOPs ``2*backward_macs + backward_other_ops``; bytes: the output's gradient
  and the kept tensors read, the input's gradient written (and the weights read for
  it), the weight gradients written. A layer with no backward work moves nothing.
* Update: per parameter that gets a gradient, SGD reads the weight and gradient and
  writes the weight (2 FLOPs); with momentum and weight decay it also reads and writes
  the buffer (6 FLOPs); Adam reads and writes two moments (12 FLOPs).
* Several GPUs, ``split="data"``: each GPU runs ``batch / gpus`` samples and the
  gradients are summed by a ring all-reduce, ``2*(gpus - 1)/gpus`` times the gradient
  bytes over each GPU's link. ``split="model"``: Krizhevsky's split of AlexNet (a chain
  whose grouped convolutions have one group per GPU): every layer's kernels are shared
  out among the GPUs; a layer that reads every channel (a convolution that is not
  grouped, a Linear layer, a Softmax) first receives the part of its input the other
  GPUs hold, and in the backward pass sends back their part of its input's gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from .catalog import GiB, GPU, gpu
from .roofline import Bound, Peaks

REFERENCES = {
    "paper": {"gpu": "gtx580", "gpus": 2, "days": (5, 6), "batch": 128, "images": 1_200_000, "epochs": 90,
              "source": "Krizhevsky, Sutskever & Hinton (2012): roughly 90 cycles through the 1.2 million "
                        "training images, which took five to six days on two NVIDIA GTX 580 3GB GPUs"},
}
"""Published training runs to set a prediction beside, by model name."""

UPDATE = {"sgd": (3, 2), "momentum": (5, 6), "adam": (7, 12)}
"""Per parameter element of the optimizer's update: (elements read and written, FLOPs)."""


# -- per layer ------------------------------------------------------------------------------

def _dense(layer, gpus: int) -> bool:
    """Does the layer read every channel of its input (so, split across GPUs, it needs the others' part)?"""
    kind = type(layer).__name__
    if kind == "Conv2d":
        return layer.groups % gpus != 0
    return kind in ("Linear", "Softmax")


def forward_bound(row, tr, peaks: Peaks) -> Bound:
    """The forward pass of one layer in training (``row``: its LayerCost, ``tr``: its LayerTraining)."""
    flops = 2 * row.macs + row.bias_adds + tr.train_other_ops
    if flops == 0:
        return Bound.of(0, 0, peaks)
    made = sum(t.bytes for t in tr.saved if t.storage[0] == "new")
    return Bound.of(flops, row.input_bytes + row.weight_bytes + row.output_bytes + made, peaks)


def backward_bound(row, tr, peaks: Peaks) -> Bound:
    """The backward pass of one layer: gradients of input and weights from the output's gradient."""
    flops = 2 * tr.backward_macs + tr.backward_other_ops
    if tr.grads is None or flops == 0:
        return Bound.of(0, 0, peaks)
    nbytes = row.output_bytes + sum(t.bytes for t in tr.saved)
    if any(tr.grads.inputs):
        nbytes += row.input_bytes + (row.weight_bytes if row.params else 0)
    if tr.grads.params:
        nbytes += row.weight_bytes
    return Bound.of(flops, nbytes, peaks)


@dataclass(frozen=True)
class LayerPrediction:
    name: str
    type: str
    forward: Bound
    backward: Bound

    @property
    def ms(self) -> float:
        return self.forward.ms + self.backward.ms

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type,
                "forward_ms": self.forward.ms, "forward_bound": self.forward.kind,
                "forward_flops": self.forward.flops, "forward_bytes": self.forward.bytes,
                "backward_ms": self.backward.ms, "backward_bound": self.backward.kind,
                "backward_flops": self.backward.flops, "backward_bytes": self.backward.bytes}


@dataclass(frozen=True)
class Crossing:
    """Bytes one step sends between the GPUs at a layer of a model split: its input's missing parts
    forward, their gradient backward (summed over the GPUs)."""

    name: str
    forward_bytes: int
    backward_bytes: int


@dataclass(frozen=True)
class Prediction:
    """A training step of ``batch`` samples on ``gpus`` GPUs, at best (the roofline)."""

    gpu: GPU
    gpus: int
    split: str
    dtype: str
    batch: int
    optimizer: str
    layers: tuple[LayerPrediction, ...]
    update: Bound
    communication_ms: float
    crossings: tuple[Crossing, ...]
    memory_per_gpu: int
    params_per_gpu: int
    macs_per_gpu: int

    @property
    def compute_ms(self) -> float:
        return sum(r.ms for r in self.layers) + self.update.ms

    @property
    def step_ms(self) -> float:
        return self.compute_ms + self.communication_ms

    @property
    def fits(self) -> bool:
        return self.memory_per_gpu <= self.gpu.memory

    def days(self, schedule) -> float:
        """Days for the schedule's images and epochs: ``images*epochs/batch`` steps of ``step_ms``."""
        return schedule.samples / self.batch * self.step_ms / 1e3 / 86_400

    def to_dict(self, schedule=None) -> dict:
        out = {"gpu": self.gpu.to_dict(), "gpus": self.gpus, "split": self.split, "dtype": self.dtype,
               "peak_flops": self.gpu.peak(self.dtype), "step_ms": self.step_ms, "compute_ms": self.compute_ms,
               "forward_ms": sum(r.forward.ms for r in self.layers),
               "backward_ms": sum(r.backward.ms for r in self.layers), "update_ms": self.update.ms,
               "communication_ms": self.communication_ms, "memory_per_gpu": self.memory_per_gpu,
               "fits": self.fits, "params_per_gpu": self.params_per_gpu, "macs_per_gpu": self.macs_per_gpu,
               "crossings": [{"layer": c.name, "forward_bytes": c.forward_bytes, "backward_bytes": c.backward_bytes}
                             for c in self.crossings],
               "layers": [r.to_dict() for r in self.layers]}
        if schedule is not None:
            out["days"] = self.days(schedule)
        return out


def _layer_predictions(training, peaks: Peaks, share: int = 1, dense_gpus: int = 0):
    """Per layer, the bounds at ``1/share`` of the work; a layer that reads every channel also
    reads the part of its input the other ``share - 1`` GPUs made (``dense_gpus``: the split)."""
    out = []
    for row, tr in zip(training.forward.layers, training.layers):
        f, b = forward_bound(row, tr, peaks), backward_bound(row, tr, peaks)
        extra = row.input_bytes * (share - 1) // share if dense_gpus and _dense(row.layer, dense_gpus) else 0
        f = Bound.of(f.flops // share, f.bytes // share + (extra if f.bytes else 0), peaks)
        b = Bound.of(b.flops // share, b.bytes // share + (extra if b.bytes else 0), peaks)
        out.append(LayerPrediction(tr.name, tr.type, f, b))
    return tuple(out)


def _update(training, peaks: Peaks, share: int = 1) -> Bound:
    moved, flops = UPDATE[training.optimizer]
    elements = training.trainable_params // share
    itemsize = training.weight_bytes // max(training.params, 1) if training.params else 0
    return Bound.of(flops * elements, moved * elements * itemsize, peaks)


def model_split_possible(network, gpus: int) -> bool:
    """Krizhevsky's split applies: a chain with at least one convolution of exactly ``gpus`` groups,
    and every grouped convolution's groups a multiple of ``gpus``."""
    grouped = [layer.groups for layer in network.layers if type(layer).__name__ == "Conv2d" and layer.groups > 1]
    return network.is_chain and gpus > 1 and gpus in grouped and all(g % gpus == 0 for g in grouped)


def crossings(training, gpus: int) -> tuple[Crossing, ...]:
    """What crosses between the GPUs of a model split: at every layer that reads all channels of an
    input the GPUs hold in parts (not the network input, which every GPU loads whole)."""
    out, split = [], False
    for row, tr in zip(training.forward.layers, training.layers):
        if _dense(row.layer, gpus) and split:
            fwd = row.input_bytes * (gpus - 1)
            bwd = fwd if tr.grads is not None and any(tr.grads.inputs) else 0
            out.append(Crossing(tr.name, fwd, bwd))
        if row.macs or row.type == "Linear":
            split = True
        if row.type == "Softmax" and _dense(row.layer, gpus):
            split = False
    return tuple(out)


def _memory_model_split(training, gpus: int, dense: set) -> int:
    """Per GPU: its share of weights, gradients, state and kept tensors; the input batch whole; a
    tensor a layer that reads every channel keeps, whole (its own part and the part it received)."""
    m = training.memory
    whole = m.input
    shared = 0
    seen = set()
    for tr in training.layers:
        for t in tr.saved:
            if t.storage in seen or t.storage == ("input",):
                continue
            seen.add(t.storage)
            if tr.name in dense and t.storage[0] != "new":
                whole += t.bytes
            else:
                shared += t.bytes
    rest = m.peak - m.input - m.saved
    return rest // gpus + shared // gpus + whole


def predict(training, gpu_key: str, gpus: int = 1, split: str = "auto", network=None) -> Prediction:
    """The roofline prediction of ``training`` (a `alexcost.training.step.TrainingCost`) on ``gpus`` of
    the catalog's ``gpu_key``. ``split``: ``"data"``, ``"model"`` or ``"auto"`` (model when
    `model_split_possible`, else data); data parallelism needs ``network`` to cost the
    per-GPU batch."""
    from ..training.step import training_cost

    card = gpu(gpu_key)
    if not isinstance(gpus, int) or gpus < 1 or gpus > 1024:
        raise SpecError(f"gpus must be a whole number from 1 to 1024, got {gpus!r}")
    peaks = card.peaks(training.dtype)
    if split not in ("auto", "data", "model"):
        raise SpecError(f"unknown split {split!r}; choose auto, data or model")
    net = network if network is not None else training.network
    if gpus == 1:
        split = "single"
    elif split == "auto":
        split = "model" if model_split_possible(net, gpus) else "data"
    if split == "model" and not model_split_possible(net, gpus):
        raise SpecError(f"the model split needs a chain whose grouped convolutions have {gpus} groups (one per "
                        f"GPU), as the AlexNet paper's; {training.model!r} has none: use --split data")
    if split in ("single", "model"):
        share = gpus
        layers = _layer_predictions(training, peaks, share, gpus if split == "model" else 0)
        cross = crossings(training, gpus) if split == "model" else ()
        moved = sum(c.forward_bytes + c.backward_bytes for c in cross)
        comm = moved / gpus / card.link * 1e3 if cross else 0.0  # each GPU receives its share over its link
        dense = {c.name for c in cross}
        memory = _memory_model_split(training, gpus, dense) if split == "model" else training.memory.peak
        return Prediction(card, gpus, split, training.dtype, training.batch, training.optimizer, layers,
                          _update(training, peaks, share), comm, cross, memory, training.params // gpus,
                          training.forward_macs // gpus)
    if training.batch % gpus:
        raise SpecError(f"data parallelism splits the batch evenly: batch {training.batch} is not a multiple of "
                        f"{gpus} GPUs")
    per = training_cost(net, training.batch // gpus, training.dtype, device=training.device,
                        optimizer=training.optimizer, frozen=training.frozen)
    layers = _layer_predictions(per, peaks)
    comm = 2 * (gpus - 1) / gpus * per.grad_bytes / card.link * 1e3
    return Prediction(card, gpus, "data", training.dtype, training.batch, training.optimizer, layers,
                      _update(per, peaks), comm, (), per.memory.peak, per.params, per.forward_macs)


def reference(model: str) -> dict | None:
    """The published training run of ``model``, if alexcost has one (the paper's AlexNet)."""
    return REFERENCES.get(model)


def against_reference(prediction: Prediction, schedule, ref: dict) -> dict:
    """The predicted days beside the published ones, and the utilisation that implies: the
    fraction of the GPUs' peak a run that took the published time would have reached."""
    days = prediction.days(schedule)
    low, high = ref["days"]
    return {"published_days": list(ref["days"]), "predicted_days": days,
            "utilisation": [days / high, days / low], "source": ref["source"],
            "same_setup": prediction.gpu.key == ref["gpu"] and prediction.gpus == ref["gpus"]
            and prediction.batch == ref["batch"]}


def per_layer_split(training, gpus: int) -> list[dict]:
    """Per layer of a model split: parameters and MACs on each GPU."""
    return [{"name": tr.name, "params": row.params // gpus, "macs": row.macs // gpus}
            for row, tr in zip(training.forward.layers, training.layers) if row.params or row.macs]
