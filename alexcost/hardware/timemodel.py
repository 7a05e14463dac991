"""The expected time of a pass or a training step on a GPU, calibrated on published measurements,
beside a roofline bound that holds (no torch).

Each kernel (`alexcost.hardware.kernels`) takes

    expected = max(compute, memory) + per-kernel cost
    compute  = FLOPs / (rate x efficiency x wave quantization)
    memory   = bytes / (bandwidth x bandwidth efficiency)

* rate: the math unit's spec-sheet peak (`GPU.unit`) times the card's boost headroom. On the
  CUDA cores (FP32, and every depthwise convolution) the efficiency is ``conv`` (times
  ``winograd`` for a stride-1 3x3 convolution in FP32, which cuDNN runs with fewer multiplies,
  and times the architecture's factor for Fermi and Kepler); a tensor-core kernel (TF32, FP16,
  BF16) takes ``FLOPs / tensor rate`` plus ``FLOPs / (tensor_side x FP32 rate)``: the tensor
  cores' own time, and what the rest of the SM (address arithmetic, staging, the epilogue)
  spends per FLOP at the CUDA cores' pace.
* backward kernels reach ``backward`` times the forward efficiency.
* wave quantization: a convolution's output is cut in tiles of `TILE` elements, spread over
  the SMs in waves; a last wave that is not full leaves SMs idle: ``tiles / (waves x SMs)``
  (a matrix product splits its reduction instead, `kernels.tiles_of`).
* per-kernel cost: in eager mode ``eager_kernel_us`` (the framework's dispatch and the launch,
  which a small kernel cannot hide); replayed from a CUDA graph or compiled, `GRAPH_KERNEL_US`,
  and at inference the fusion rules (`kernels.fusion`) apply.
* a whole iteration adds the optimizer's update (memory-bound kernels, one per tensor) and the
  GPUs' communication (a ring all-reduce of the gradients, or the activations a model split
  exchanges) over the sheet's link.

The coefficients are fitted by ``scripts/fit-time-model`` on published timings and shipped in
``time_model.json`` beside this module, with their provenance.

The bound is what the GPU could do at best: the spec-sheet peaks raised by the boost headroom,
Winograd's saving on every stride-1 3x3 and 5x5 convolution, every fusion rule applied, full
bandwidth, no per-kernel cost. ``limited_by`` names what dominates a layer's expected time:
``compute``, ``memory`` or ``launch`` (the per-kernel cost).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..errors import SpecError
from .catalog import GPU
from .kernels import COMPUTE, Kernel, group_of

PHASES = ("forward", "train_step", "train_iteration")
"""``forward``: one inference pass of the batch; ``train_step``: forward and backward, no optimizer;
``train_iteration``: the step, the optimizer's update and the GPUs' communication."""

MODES = ("eager", "graph")
"""``eager``: each layer launched by the framework as it runs; ``graph``: replayed from a CUDA graph or
compiled (fusion at inference, kernels launched back to back)."""

TILE = 64 * 64
"""Output elements per tile of a convolution or matrix-product kernel (64 x 64), for wave quantization."""

GRAPH_KERNEL_US = 3.0
"""Per-kernel cost of kernels replayed from a CUDA graph: the gap between kernels launched back to back
(a few microseconds). Not fitted: the published timings are eager runs or give no mode."""

COEFFICIENTS = ("conv", "winograd", "tensor_side", "bandwidth", "backward", "eager_kernel_us", "fermi", "kepler")


class Coefficients(NamedTuple):
    """The fitted constants (see the module's docstring), with where they come from."""

    conv: float
    winograd: float
    tensor_side: float
    bandwidth: float
    backward: float
    eager_kernel_us: float
    fermi: float = 1.0
    kepler: float = 1.0
    provenance: dict | None = None

    def architecture(self, arch: str) -> float:
        """The CUDA-core efficiency factor of an architecture (Fermi and Kepler; 1 for the others)."""
        return {"fermi": self.fermi, "kepler": self.kepler}.get(arch, 1.0)

    def values(self) -> dict:
        return {name: getattr(self, name) for name in COEFFICIENTS}

    def summary(self) -> dict:
        """The values and, in brief, what they were fitted on and how well they do (for a JSON record)."""
        p = self.provenance or {}
        fit = {k: p[k] for k in ("data", "sha256", "rows", "date") if k in p}
        for k in ("in_sample", "leave_one_gpu_out", "leave_one_source_out"):
            if k in p:
                fit[f"{k}_median_error"] = p[k]["median_error"]
        return {**self.values(), "fitted": fit}


_SHIPPED: list = []


def shipped() -> Coefficients:
    """The coefficients in the package's ``time_model.json`` (read once)."""
    if not _SHIPPED:
        import json
        import os

        with open(os.path.join(os.path.dirname(__file__), "time_model.json"), encoding="utf-8") as f:
            data = json.load(f)
        _SHIPPED.append(Coefficients(**data["coefficients"], provenance=data.get("provenance", {})))
    return _SHIPPED[0]


def waves(tiles: int, sms: int) -> float:
    """The fraction of the SMs' time a kernel of ``tiles`` output elements keeps busy: its `TILE`-sized
    tiles in waves of one per SM, the last wave possibly part-empty."""
    if tiles <= 0:
        return 1.0
    n = -(-tiles // TILE)
    return n / (-(-n // sms) * sms)


def check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise SpecError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


class Timer:
    """Times kernels on one GPU for one dtype and mode with some coefficients."""

    def __init__(self, card: GPU, dtype: str, mode: str = "eager", coefficients: Coefficients | None = None):
        check_choice(mode, "mode", MODES)
        c = coefficients or shipped()
        self.card, self.c = card, c
        self.unit = card.unit(dtype)
        h = card.boost_headroom
        self.fp32 = card.fp32 * h
        self.rate = card.rate(self.unit) * h
        self.bandwidth = card.bandwidth * c.bandwidth
        self.launch = (c.eager_kernel_us if mode == "eager" else GRAPH_KERNEL_US) * 1e-6
        self.cuda_core = c.conv * c.architecture(card.arch)

    def expected(self, k: Kernel) -> tuple[float, float, float]:
        """``(compute, memory, launch)`` seconds of one kernel: it takes ``max(compute, memory) + launch``."""
        memory = k.bytes / self.bandwidth
        if k.work not in COMPUTE:
            return k.flops / self.fp32, memory, self.launch
        e = waves(k.tiles, self.card.sms) * (self.c.backward if k.stage == "backward" else 1.0)
        if self.unit == "fp32" or k.work == "depthwise":
            eff = self.cuda_core * (self.c.winograd if k.work == "conv3x3" and k.winograd > 1 and
                                    self.unit == "fp32" else 1.0)
            compute = k.flops / (self.fp32 * eff * e)
        else:
            compute = k.flops / (self.rate * e) + k.flops / (self.fp32 * self.c.tensor_side * e)
        return compute, memory, self.launch

    def bound(self, k: Kernel) -> float:
        """The kernel at best: peak rate with Winograd's saving, full bandwidth, no launch."""
        rate = self.fp32 if k.work not in COMPUTE or k.work == "depthwise" else self.rate
        return max(k.flops / k.winograd / rate, k.bytes / self.card.bandwidth)


class LayerTime(NamedTuple):
    """One layer's expected time and bound (milliseconds, summed over its forward and backward
    kernels) and what limits it."""

    name: str
    type: str
    group: str
    expected_ms: float
    bound_ms: float
    limited_by: str | None
    forward_ms: float
    backward_ms: float
    kernels: int
    macs: int
    params: int

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "group": self.group, "expected_ms": self.expected_ms,
                "bound_ms": self.bound_ms, "limited_by": self.limited_by, "forward_ms": self.forward_ms, "backward_ms": self.backward_ms,
                "kernels": self.kernels, "macs": self.macs, "params": self.params}


def layer_times(rows, kernels, bound_kernels, timer: Timer) -> tuple[LayerTime, ...]:
    """Per layer of ``rows``, its kernels' expected time (``kernels``) and bound (``bound_kernels``)."""
    n = len(rows)
    parts = [[0.0, 0.0, 0.0] for _ in range(n)]  # compute-limited, memory-limited, launch seconds
    fwd, bwd, count, bound = [0.0] * n, [0.0] * n, [0] * n, [0.0] * n
    for k in kernels:
        if k.layer < 0:
            continue
        compute, memory, launch = timer.expected(k)
        p = parts[k.layer]
        if compute >= memory:
            p[0] += compute
        else:
            p[1] += memory
        p[2] += launch
        t = max(compute, memory) + launch
        if k.stage == "backward":
            bwd[k.layer] += t
        else:
            fwd[k.layer] += t
        count[k.layer] += 1
    for k in bound_kernels:
        if k.layer >= 0:
            bound[k.layer] += timer.bound(k)
    out = []
    for i, r in enumerate(rows):
        p = parts[i]
        limited = None if not count[i] else ("compute", "memory", "launch")[max(range(3), key=p.__getitem__)]
        out.append(LayerTime(r.name, r.type, group_of(r), (fwd[i] + bwd[i]) * 1e3, bound[i] * 1e3, limited,
                             fwd[i] * 1e3, bwd[i] * 1e3, count[i], r.macs, r.params))
    return tuple(out)


def total_seconds(kernels, timer: Timer) -> float:
    """The expected seconds of some kernels run one after another."""
    total = 0.0
    for k in kernels:
        compute, memory, launch = timer.expected(k)
        total += max(compute, memory) + launch
    return total


def bound_seconds(kernels, timer: Timer) -> float:
    return math.fsum(timer.bound(k) for k in kernels)
