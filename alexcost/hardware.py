"""GPUs from their spec sheets, and roofline predictions of a training step on them (no torch).

The catalog holds each GPU's peak arithmetic rates (FP32; TF32, FP16 and BF16 where
its tensor cores have them, dense, without the sparsity the sheets also quote), its
memory bandwidth and size, and the link between two of them, with the sheet they come
from. Memory sizes are the sheets' GB read as GiB (GPU memory comes in powers of two).

A prediction is a roofline lower bound (`alexcost.roofline.Bound`: the larger of FLOPs
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

from .errors import SpecError
from .roofline import Bound, Peaks

GiB = 2**30


@dataclass(frozen=True)
class GPU:
    """One GPU as its spec sheet describes it: rates in FLOP/s, bandwidths in bytes/s, memory in bytes."""

    key: str
    name: str
    year: int
    fp32: float
    tf32: float | None
    fp16: float | None
    bf16: float | None
    bandwidth: float
    memory: int
    link: float
    link_name: str
    source: str

    def peak(self, dtype: str) -> float:
        """The peak rate for ``dtype`` (float32 on the FP32 units; tf32, float16 and bfloat16 on tensor cores)."""
        rate = {"float32": self.fp32, "tf32": self.tf32, "float16": self.fp16, "bfloat16": self.bf16}.get(dtype)
        if rate is None:
            what = "this dtype" if dtype not in ("tf32", "float16", "bfloat16", "float32") else dtype
            raise SpecError(f"the {self.name} has no {what} rate on its spec sheet; choose float32"
                            + ("" if self.tf32 is None else ", tf32") + ("" if self.fp16 is None else ", float16")
                            + ("" if self.bf16 is None else ", bfloat16"))
        return rate

    def peaks(self, dtype: str) -> Peaks:
        return Peaks(self.peak(dtype), self.bandwidth, f"{self.name} spec sheet, {dtype}",
                     f"{self.name} spec sheet")

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "year": self.year, "fp32_flops": self.fp32,
                "tf32_flops": self.tf32, "fp16_flops": self.fp16, "bf16_flops": self.bf16,
                "bandwidth_bytes_per_s": self.bandwidth, "memory_bytes": self.memory,
                "link_bytes_per_s": self.link, "link": self.link_name, "source": self.source}


T, G = 1e12, 1e9
CATALOG = {g.key: g for g in (
    GPU("gtx580", "GeForce GTX 580 (3 GB)", 2010, 1.581 * T, None, None, None, 192.4 * G, 3 * GiB, 8 * G,
        "PCIe 2.0 x16, 8 GB/s each way",
        "NVIDIA GeForce GTX 580 specifications: 512 CUDA cores at a 1544 MHz processor clock (FP32 = 2 x 512 x "
        "1.544 GHz), 384-bit GDDR5 at 4008 MT/s, 192.4 GB/s; 1.5 GB on NVIDIA's card, 3 GB on the boards the "
        "AlexNet paper used"),
    GPU("k40", "Tesla K40", 2013, 5.04 * T, None, None, None, 288 * G, 12 * GiB, 15.75 * G,
        "PCIe 3.0 x16, 15.75 GB/s each way",
        "NVIDIA Tesla K40 GPU accelerator datasheet: 4.29 TFLOPS FP32 at the 745 MHz base clock, 5.04 with GPU "
        "Boost (used here); 12 GB GDDR5, 288 GB/s"),
    GPU("p100", "Tesla P100 (SXM2)", 2016, 10.6 * T, None, 21.2 * T, None, 732 * G, 16 * GiB, 80 * G,
        "NVLink 1, 160 GB/s both ways",
        "NVIDIA Tesla P100 datasheet, NVLink version: 10.6 TFLOPS FP32, 21.2 FP16; 16 GB HBM2, 732 GB/s; "
        "NVLink 160 GB/s"),
    GPU("v100", "Tesla V100 (SXM2, 32 GB)", 2017, 15.7 * T, None, 125 * T, None, 900 * G, 32 * GiB, 150 * G,
        "NVLink 2, 300 GB/s both ways",
        "NVIDIA Tesla V100 datasheet, SXM2: 15.7 TFLOPS FP32, 125 tensor (FP16); 32 GB HBM2, 900 GB/s; "
        "NVLink 300 GB/s"),
    GPU("a100", "A100 (SXM4, 80 GB)", 2020, 19.5 * T, 156 * T, 312 * T, 312 * T, 2039 * G, 80 * GiB, 300 * G,
        "NVLink 3, 600 GB/s both ways",
        "NVIDIA A100 Tensor Core GPU datasheet, 80 GB SXM: 19.5 TFLOPS FP32, 156 TF32, 312 BF16 and FP16 "
        "(dense; the sheet's 312/624 are with sparsity); 2,039 GB/s HBM2e; NVLink 600 GB/s"),
    GPU("h100", "H100 (SXM5)", 2022, 67 * T, 494.5 * T, 989.5 * T, 989.5 * T, 3350 * G, 80 * GiB, 450 * G,
        "NVLink 4, 900 GB/s both ways",
        "NVIDIA H100 Tensor Core GPU datasheet, SXM: 67 TFLOPS FP32, 989 TF32 and 1,979 BF16/FP16 with "
        "sparsity (half that dense, used here); 80 GB HBM3, 3.35 TB/s; NVLink 900 GB/s"),
    GPU("h200", "H200 (SXM)", 2024, 67 * T, 494.5 * T, 989.5 * T, 989.5 * T, 4800 * G, 141 * GiB, 450 * G,
        "NVLink 4, 900 GB/s both ways",
        "NVIDIA H200 Tensor Core GPU datasheet, SXM: 67 TFLOPS FP32, 989 TF32 and 1,979 BF16/FP16 with "
        "sparsity (half that dense, used here); 141 GB HBM3e, 4.8 TB/s; NVLink 900 GB/s"),
)}
"""The GPUs alexcost knows, by key, oldest first."""

REFERENCES = {
    "paper": {"gpu": "gtx580", "gpus": 2, "days": (5, 6), "batch": 128, "images": 1_200_000, "epochs": 90,
              "source": "Krizhevsky, Sutskever & Hinton (2012): roughly 90 cycles through the 1.2 million "
                        "training images, which took five to six days on two NVIDIA GTX 580 3GB GPUs"},
}
"""Published training runs to set a prediction beside, by model name."""

UPDATE = {"sgd": (3, 2), "momentum": (5, 6), "adam": (7, 12)}
"""Per parameter element of the optimizer's update: (elements read and written, FLOPs)."""


def gpu(key: str) -> GPU:
    try:
        return CATALOG[key]
    except KeyError:
        raise SpecError(f"unknown GPU {key!r}; choose from {', '.join(CATALOG)}") from None


def match(device_name: str) -> GPU | None:
    """The catalog entry a CUDA device's name stands for ("NVIDIA H200" -> h200, "Tesla
    V100-SXM2-32GB" -> v100, "NVIDIA GeForce GTX 580" -> gtx580), or None. Variants the
    catalog does not list (a PCIe H100, a 40 GB A100) match their family's entry, whose spec
    sheet is then only close: the record names the entry used."""
    words = "".join(ch if ch.isalnum() else " " for ch in device_name.lower()).split()
    joined = "".join(words)
    for key in CATALOG:
        if key in words or key in joined:
            return CATALOG[key]
    return None


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
    """The roofline prediction of ``training`` (a `alexcost.training.TrainingCost`) on ``gpus`` of
    the catalog's ``gpu_key``. ``split``: ``"data"``, ``"model"`` or ``"auto"`` (model when
    `model_split_possible`, else data); data parallelism needs ``network`` to cost the
    per-GPU batch."""
    from .training import training_cost

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



# -- rendering ------------------------------------------------------------------------------

def to_dict(prediction: Prediction, training, schedule) -> dict:
    """The prediction as plain data, with the published run beside it when there is one."""
    out = prediction.to_dict(schedule)
    if prediction.split == "model":
        out["per_gpu_layers"] = per_layer_split(training, prediction.gpus)
    ref = reference(training.model)
    if ref is not None:
        out["reference"] = against_reference(prediction, schedule, ref)
    return out


def _days(days: float) -> str:
    """``1.85 days``; under a day, in hours too: ``0.0406 days (58 minutes)``."""
    if days >= 1:
        return f"{days:.2f} days"
    hours = days * 24
    return f"{days:.3g} days ({hours:.2g} hours)" if hours >= 1 else f"{days:.3g} days ({hours * 60:.2g} minutes)"


def render(prediction: Prediction, training, schedule, style: str = "simple") -> str:
    """The prediction as text: per layer, the step, the days, memory, and the split's crossings."""
    from .report import bytes_text, commas
    from .textable import render_table

    p, card = prediction, prediction.gpu
    rows = [[r.name, r.type, f"{r.forward.ms:.3f}", r.forward.kind or "-", f"{r.backward.ms:.3f}",
             r.backward.kind or "-"] for r in p.layers]
    rows.append(["update", training.optimizer, "", "", f"{p.update.ms:.3f}", p.update.kind or "-"])
    where = f"{p.gpus} x {card.name}" if p.gpus > 1 else card.name
    split = {"single": "", "data": f", data parallel ({p.batch // p.gpus} samples per GPU, gradients all-reduced)",
             "model": ", split as the paper split AlexNet (each layer's kernels shared out, activations exchanged "
                      "where a layer reads every channel)"}[p.split]
    out = [f"hardware: {where}{split}; {p.dtype} peak {card.peak(p.dtype) / 1e12:.2f} TFLOP/s, "
           f"{card.bandwidth / 1e9:.0f} GB/s, {card.memory / GiB:g} GiB each",
           f"source: {card.source}", "",
           render_table(("layer", "type", "fwd ms", "fwd bound", "bwd ms", "bwd bound"), rows,
                        ("left", "left", "right", "left", "right", "left"), style), "",
           f"step (roofline, at best): {p.step_ms:.2f} ms = compute {p.compute_ms:.2f} + communication "
           f"{p.communication_ms:.2f} ({card.link_name}); {schedule.samples / p.batch:,.0f} steps: "
           f"{_days(p.days(schedule))}",
           f"memory per GPU (model): {p.memory_per_gpu / GiB:.2f} GiB of {card.memory / GiB:g} GiB: "
           + ("fits" if p.fits else "DOES NOT FIT")]
    if p.split == "model":
        out.append(f"per GPU: {commas(p.params_per_gpu)} parameters, {commas(p.macs_per_gpu)} forward MACs per step")
        out += [f"crosses between the GPUs at {c.name}: {bytes_text(c.forward_bytes)} forward, "
                f"{bytes_text(c.backward_bytes)} backward" for c in p.crossings]
    ref = reference(training.model)
    if ref is not None:
        a = against_reference(p, schedule, ref)
        low, high = a["utilisation"]
        setup = "" if a["same_setup"] else " (a different setup from the paper's two GTX 580s at batch 128)"
        out.append(f"published: {ref['days'][0]} to {ref['days'][1]} days ({ref['source']})")
        out.append(f"predicted at peak: {a['predicted_days']:.2f} days{setup}; the published run reached "
                   f"{100 * low:.0f}-{100 * high:.0f}% of this roofline")
    return "\n".join(out) + "\n"
