"""Per-layer timing: CUDA events on the GPU, ``time.perf_counter`` on the CPU.

Conventions: inference (``eval()`` under ``torch.inference_mode``); every layer is
timed in isolation, on fresh random-normal inputs (never zeros) of its real input
shapes (`input_shapes`), and the whole network is timed end to end on the same
kind of input, the same way, so the sum of the layers can be compared with it.

A timing *sample* is taken by a *method* (`METHODS`): ``graph`` (CUDA) replays
a CUDA graph of ``calls`` back-to-back calls, ``loop`` makes ``calls`` back-to-back
eager calls, ``single`` makes one call (launch and dispatch overhead included).
``calls`` is chosen per layer so that a sample lasts at least the device's
``target_ms``; every time reported is per call (sample / calls). Each timing is
``warmup`` untimed calls, then ``repeats`` timed samples, summarised by the median and
the 10th / 90th percentiles (linear interpolation, as ``numpy.percentile``). The
*launch floor* is a trivial one-kernel op timed the same way. Times are milliseconds.
torch is imported only when a measurement runs; CUDA calls go through `.device`.

Training (``training=True``, ``alexcost time --training``): the module in ``train()``
mode with autograd on. Each call of a layer is its forward pass, then its backward pass
(from a random gradient of its output, its inputs needing gradients where the training
step's do), each phase timed on its own: the clock (or a CUDA event) is read before the
forward pass, between the two and after the backward pass, so a backward time is a
measured interval, never a difference of two noisy medians, and cannot come out negative.
A sample is ``calls`` such calls; forward, backward and their sum are summarised per call
like any timing (median, p10, p90), and a phase whose spread (p90 - p10) is wider than its
median is flagged ``noisy``. An in-place layer runs on a fresh copy of its input each call
(autograd cannot rewrite a leaf in place), the copy included in its forward time. Parameter
gradients are dropped before each call, as ``zero_grad()`` does. CUDA graphs are not used
(the default method is ``loop``). With a GPU of the catalog (``gpu``, or the one the CUDA
device's name matches) each layer is also bound on its spec sheet.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from math import ceil, floor
from typing import Callable, Iterable

from . import device as devices
from ..hardware import roofline
from .device import available_bytes, is_out_of_memory, memory_needed, resolve_device  # noqa: F401 - timing's API
from ..errors import SpecError, describe_layer
from ..engine.network import Network
from ..render.roofline import overall_verdict
from ..units import bytes_text
from .peaks import measure as measure_peaks, moved

DTYPES = ("float32", "tf32", "float16", "bfloat16")
"""The dtypes ``alexcost time`` runs: tf32 is float32 storage with TF32 matmul/conv math (CUDA only)."""

METHODS = {
    "graph": "each sample replays a CUDA graph of N back-to-back calls",
    "loop": "each sample is N back-to-back eager calls",
    "single": "each sample is one eager call, its launch and dispatch overhead included",
}
"""How a timing sample is taken, in words (N, the calls per sample, is chosen per layer); ``graph`` needs CUDA."""

DEFAULTS = {"cpu": {"warmup": 2, "repeats": 10, "batches": (1, 8), "method": "loop", "target_ms": 2.0, "max_calls": 100},
            "cuda": {"warmup": 10, "repeats": 50, "batches": (1, 32, 128), "method": "graph", "target_ms": 1.0,
                     "max_calls": 200}}
"""Per device, when the user gives none: warm-up calls, timed samples, batch sizes, the method; and
``target_ms``, the shortest a sample may last (``calls`` grows to reach it, up to ``max_calls``)."""

ESTIMATES = 3
"""Single timed calls that estimate one call's time before ``calls`` is chosen (the fastest counts)."""

FLOOR_OP = "a 1-element in-place add, one kernel launch"
"""What the launch floor times."""

# -- statistics -------------------------------------------------------------------------

def percentile(samples: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between order statistics."""
    s = sorted(samples)
    if not s:
        raise ValueError("percentile of no samples")
    pos = (len(s) - 1) * q / 100.0
    lo = floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """Median and spread of repeated timings, in milliseconds per call; each sample was ``calls``
    calls taken by ``method`` (``note``: why the method differs from the run's, when it does)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    repeats: int
    calls: int = 1
    method: str = "single"
    note: str = ""

    @classmethod
    def of(cls, samples_ms, calls: int = 1, method: str = "single", note: str = "") -> "Stats":
        s = list(samples_ms)
        return cls(percentile(s, 50), percentile(s, 10), percentile(s, 90), min(s), len(s), calls, method, note)

    @property
    def noisy(self) -> bool:
        """Is the spread (p90 - p10) wider than the median itself?"""
        return self.p90_ms - self.p10_ms > self.median_ms

    def to_dict(self) -> dict:
        d = {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
             "min_ms": self.min_ms, "repeats": self.repeats, "calls": self.calls, "method": self.method}
        return {**d, "note": self.note} if self.note else d


def calls_for(once_ms: float, target_ms: float, max_calls: int) -> int:
    """Back-to-back calls per sample for a sample of at least ``target_ms``:
    ``ceil(target_ms / once_ms)``, within 1..max_calls."""
    if once_ms <= 0:
        return max_calls
    return max(1, min(max_calls, ceil(target_ms / once_ms)))


# -- device, dtype and the sampler -------------------------------------------------------------

def check_dtype(dtype: str, device: str) -> None:
    """Refuse what cannot run: an unknown dtype, or tf32 off CUDA (the CPU has no TF32 math)."""
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype {dtype!r} for timing; choose from {', '.join(DTYPES)}")
    if dtype == "tf32" and device != "cuda":
        raise SpecError("tf32 needs CUDA: on the CPU float32 math is always full precision; "
                        "use --dtype float32")


def check_method(method: str, device: str) -> None:
    """Refuse an unknown method, or ``graph`` off CUDA."""
    if method not in METHODS:
        raise SpecError(f"unknown timing method {method!r}; choose from {', '.join(METHODS)}")
    if method == "graph" and device != "cuda":
        raise SpecError("--method graph needs CUDA (it replays CUDA graphs); on the CPU use loop or single")


def torch_dtype(dtype: str):
    import torch

    return {"float32": torch.float32, "tf32": torch.float32,
            "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def math_mode(dtype: str, device: str) -> str:
    """What the run computes in, said plainly (the JSON's ``math``)."""
    if dtype in ("float16", "bfloat16"):
        return f"module and inputs cast to {dtype}"
    if device != "cuda":
        return "float32 (CPU: full-precision float32 math)"
    if dtype == "tf32":
        return "float32 storage, TF32 math on for matmul and cuDNN convolutions"
    return "float32, TF32 math off for matmul and cuDNN convolutions"


@contextmanager
def cuda_math(dtype: str):
    """Set TF32 math (on for tf32, off otherwise) and ``cudnn.benchmark`` explicitly; restore after.

    Uses the ``allow_tf32`` switches: torch (2.9+) keeps its newer ``fp32_precision``
    settings in step with them, whereas setting the newer ones alone makes any later read
    of ``allow_tf32`` an error. Yields the settings as read back from torch.
    """
    import torch

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark)
    on = dtype == "tf32"
    matmul.allow_tf32 = cudnn.allow_tf32 = on
    cudnn.benchmark = True
    try:
        ran = {"tf32_matmul": matmul.allow_tf32, "tf32_cudnn": cudnn.allow_tf32, "cudnn_benchmark": cudnn.benchmark}
        if hasattr(matmul, "fp32_precision"):
            ran["fp32_precision"] = {"matmul": matmul.fp32_precision, "cudnn": cudnn.conv.fp32_precision}
        yield ran
    finally:
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = saved


@contextmanager
def torch_threads(n: int):
    """Run with ``torch.set_num_threads(n)``; restore the previous count after."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def sample_ms(fn: Callable[[], object], warmup: int, repeats: int, device: str) -> list[float]:
    """``repeats`` timings of single calls of ``fn()`` in ms, after ``warmup`` untimed calls
    (`device.times_ms`: CUDA events, or ``time.perf_counter``)."""
    for _ in range(warmup):
        fn()
    return devices.times_ms(fn, repeats, device)


@dataclass(frozen=True)
class Sampler:
    """Times a callable on ``device`` by ``method`` (`METHODS`): ``warmup`` eager calls, then
    ``repeats`` samples of ``calls`` calls each, ``calls`` chosen for samples of at least ``target_ms``."""

    device: str
    method: str
    warmup: int
    repeats: int
    target_ms: float
    max_calls: int

    def stats(self, fn: Callable[[], object]) -> Stats:
        """The per-call timing of ``fn``. A graph capture that fails (an op CUDA graphs cannot hold)
        falls back to ``loop`` for this callable, saying why in ``note``; running out of memory does not."""
        for _ in range(self.warmup):
            fn()
        if self.method == "single":
            return Stats.of(devices.times_ms(fn, self.repeats, self.device))
        calls = calls_for(min(devices.times_ms(fn, ESTIMATES, self.device)), self.target_ms, self.max_calls)
        method, note = self.method, ""
        if method == "graph":
            try:
                run = devices.capture(fn, calls)
            except RuntimeError as err:
                if is_out_of_memory(err):
                    raise
                method, note = "loop", "graph capture failed: " + " ".join(str(err).split())[:200]
        if method == "loop":
            def run():
                for _ in range(calls):
                    fn()
        run()  # one untimed sample: the graph's first replay uploads it
        samples = devices.times_ms(run, self.repeats, self.device)
        return Stats.of([t / calls for t in samples], calls, method, note)

    def phases(self, forward: Callable[[], object], backward: Callable[[object], object]) -> tuple:
        """Per-call timings of ``forward()`` and of ``backward(its result)``, each phase timed on
        its own in every call (`phase_times_ms`), and of the two together: three `Stats`."""
        for _ in range(self.warmup):
            backward(forward())
        calls = 1
        if self.method != "single":
            estimate = phase_times_ms(forward, backward, 1, ESTIMATES, self.device)
            calls = calls_for(min(f + b for f, b in estimate), self.target_ms, self.max_calls)
        samples = phase_times_ms(forward, backward, calls, self.repeats, self.device)
        return tuple(Stats.of([pick(f, b) / calls for f, b in samples], calls, self.method)
                     for pick in (lambda f, b: f, lambda f, b: b, lambda f, b: f + b))

    def describe(self) -> str:
        """The method in words, for the run's settings."""
        if self.method == "single":
            return METHODS["single"]
        return (f"{METHODS[self.method]}, N per layer for samples of at least {self.target_ms:g} ms "
                f"(N at most {self.max_calls}); times are per call")


def phase_times_ms(forward: Callable[[], object], backward: Callable[[object], object], calls: int, repeats: int,
                   device: str) -> list[tuple[float, float]]:
    """``repeats`` samples of ``calls`` calls of ``backward(forward())``: per sample, the ms spent in
    the forward phase and in the backward phase, each read around its own phase in every call
    (``time.perf_counter``, or CUDA events read after one synchronize), so neither can be negative."""
    if device != "cuda":
        out = []
        for _ in range(repeats):
            f = b = 0.0
            for _ in range(calls):
                t0 = time.perf_counter()
                result = forward()
                t1 = time.perf_counter()
                backward(result)
                t2 = time.perf_counter()
                f, b = f + (t1 - t0), b + (t2 - t1)
            out.append((f * 1e3, b * 1e3))
        return out
    c = devices.cuda()
    c.synchronize()
    marks = [[tuple(c.Event(enable_timing=True) for _ in range(3)) for _ in range(calls)] for _ in range(repeats)]
    for sample in marks:
        for start, middle, end in sample:
            start.record()
            result = forward()
            middle.record()
            backward(result)
            end.record()
    c.synchronize()
    return [(sum(s.elapsed_time(m) for s, m, _ in sample), sum(m.elapsed_time(e) for _, m, e in sample))
            for sample in marks]


def input_shapes(network: Network, i: int) -> tuple[tuple[int, ...], ...]:
    """The per-sample shapes of layer ``i``'s inputs, one per input (none for a Parameter; a
    Parameter read by a merge arrives as a `ParameterShape`, its full shape). A layer run once per pass
    (``network.once``) is timed as a batch of one."""
    x = network.input_shapes[i]
    return (x,) if type(network.layers[i]).arity == 1 else tuple(x)


def random_inputs(shapes, batch: int, device: str, dtype) -> tuple:
    """One random-normal tensor (never zeros) of ``(batch, *shape)`` per shape (a parameter's
    shape as it is: it has no batch dimension)."""
    import torch

    from ..layers import ParameterShape

    return tuple(torch.randn(tuple(shape) if isinstance(shape, ParameterShape) else (batch, *shape),
                             device=device, dtype=dtype) for shape in shapes)


# -- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchFailure:
    """A batch that was not measured: out of memory, or skipped because it could not fit."""

    batch: int
    error: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"batch": self.batch, "error": self.error, "detail": self.detail}


TRAINING_MODE = ("training: train() with autograd; each call is a layer's forward pass, then its backward pass, "
                 "each phase timed on its own")


@dataclass(frozen=True)
class LayerStepTime:
    """One layer's training timings: its forward pass, its backward pass and the two together
    (``backward`` and ``step`` None when nothing in it needs a gradient: no backward pass), beside
    their roofline bounds on the measured peaks and, with a GPU of the catalog, on its spec sheet."""

    name: str
    type: str
    forward: Stats
    step: Stats | None
    forward_bound: roofline.Bound
    backward_bound: roofline.Bound
    backward: Stats | None = None
    spec_forward: roofline.Bound | None = None
    spec_backward: roofline.Bound | None = None

    @property
    def backward_ms(self) -> float:
        return 0.0 if self.backward is None else self.backward.median_ms

    @property
    def noisy(self) -> bool:
        """A phase timed with a spread (p90 - p10) wider than its median: its times are not facts."""
        return self.forward.noisy or (self.backward is not None and self.backward.noisy)

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type, "forward": self.forward.to_dict(),
             "backward": None if self.backward is None else self.backward.to_dict(),
             "forward_backward": None if self.step is None else self.step.to_dict(),
             "forward_ms": self.forward.median_ms, "backward_ms": self.backward_ms, "noisy": self.noisy,
             "forward_bound_ms": self.forward_bound.ms, "forward_bound": self.forward_bound.kind,
             "backward_bound_ms": self.backward_bound.ms, "backward_bound": self.backward_bound.kind}
        if self.spec_forward is not None:
            d.update(spec_forward_bound_ms=self.spec_forward.ms, spec_forward_bound=self.spec_forward.kind,
                     spec_backward_bound_ms=self.spec_backward.ms, spec_backward_bound=self.spec_backward.kind)
        return d


@dataclass(frozen=True)
class TrainingBatch:
    """One batch timed in training mode: every layer, and the whole network's forward pass, backward
    pass and the two together."""

    batch: int
    layers: tuple[LayerStepTime, ...]
    network_forward: Stats
    network_step: Stats
    network_backward: Stats | None = None

    @property
    def layers_forward_ms(self) -> float:
        return sum(r.forward.median_ms for r in self.layers)

    @property
    def layers_backward_ms(self) -> float:
        return sum(r.backward_ms for r in self.layers)

    @property
    def network_backward_ms(self) -> float:
        return self.network_backward.median_ms

    def verdict(self) -> str:
        fwd, bwd, step = self.network_forward.median_ms, self.network_backward_ms, self.network_step.median_ms
        top = max(self.layers, key=lambda r: r.backward_ms)
        noisy = [r.name for r in self.layers if r.noisy]
        network = "; the whole network's times are noisy (spread wider than the median)" if (
            self.network_forward.noisy or self.network_backward.noisy) else ""
        return (f"batch {self.batch}: forward {fwd:.3f} ms, backward {bwd:.3f} ms, forward + backward {step:.3f} ms "
                f"(backward / forward {bwd / fwd:.2f}); slowest backward: {top.name} {top.backward_ms:.3f} ms"
                + network + (f"; {len(noisy)} layer(s) timed with a spread wider than the median, their times "
                             f"not facts: {', '.join(noisy[:5])}{', ...' if len(noisy) > 5 else ''}" if noisy else ""))

    def to_dict(self) -> dict:
        return {"batch": self.batch, "mode": "training", "network_forward_ms": self.network_forward.median_ms,
                "network_step_ms": self.network_step.median_ms, "network_backward_ms": self.network_backward_ms,
                "network_forward": self.network_forward.to_dict(), "network_backward": self.network_backward.to_dict(),
                "network_step": self.network_step.to_dict(),
                "layers_forward_ms": self.layers_forward_ms, "layers_backward_ms": self.layers_backward_ms,
                "layers": [r.to_dict() for r in self.layers], "verdict": self.verdict()}


def training_verdict(batches) -> list[str]:
    """One line per batch timed in training mode."""
    return [b.verdict() for b in batches] or ["no batch was measured"]


@dataclass(frozen=True)
class TimingRun:
    """Everything one ``alexcost time`` run measured; ``to_dict()`` is its JSON."""

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    math: str
    device: dict
    settings: dict
    peaks: roofline.Peaks
    batches: tuple = ()
    complete: bool = False
    warnings: tuple = ()
    """What makes the run less sure: a measured peak that moved between the start and the end of it."""

    def to_dict(self) -> dict:
        return {
            "kind": "alexcost-time", "version": 1,
            "model": self.model, "input_shape": list(self.input_shape),
            "device": self.device, "dtype": self.dtype, "math": self.math,
            "settings": self.settings, "peaks": self.peaks.to_dict(),
            "complete": self.complete, "warnings": list(self.warnings),
            "batches": [b.to_dict() for b in self.batches],
            "training": self.settings.get("mode") == TRAINING_MODE,
            "verdict": (training_verdict([b for b in self.batches if isinstance(b, TrainingBatch)])
                        if self.settings.get("mode") == TRAINING_MODE else
                        overall_verdict([b for b in self.batches if isinstance(b, roofline.BatchAnalysis)])),
        }


# -- the harness ------------------------------------------------------------------------------

@dataclass
class Timer:
    """Times a network's layers and the whole network on one device at one dtype.

    Use as a context manager: entering sets the math mode, measures the device's peaks
    (unless given) and the launch floor, and moves the module to the device; leaving
    restores the math mode.
    """

    network: Network
    device: str = "auto"
    dtype: str = "float32"
    warmup: int | None = None
    repeats: int | None = None
    peak_flops: float | None = None
    peak_bandwidth: float | None = None
    progress: Callable[[int, str], None] | None = None
    threads: int | None = None
    method: str | None = None
    training: bool = False
    gpu: str | None = None
    """A GPU of alexcost's catalog (`alexcost.hardware.model`) whose spec sheet each layer's bound is also
    taken on; default on CUDA: the entry the device's name matches, if any."""
    module: object = field(default=None, init=False, repr=False)
    spec: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.device = resolve_device(self.device)
        check_dtype(self.dtype, self.device)
        defaults = DEFAULTS[self.device]
        method_given = self.method is not None
        self.warmup = defaults["warmup"] if self.warmup is None else self.warmup
        self.repeats = defaults["repeats"] if self.repeats is None else self.repeats
        self.method = defaults["method"] if self.method is None else self.method
        if self.training and self.method == "graph":
            if method_given:
                raise SpecError("--method graph cannot time a backward pass (CUDA graphs of autograd are not "
                                "captured here); use loop or single with --training")
            self.method = "loop"
        check_method(self.method, self.device)
        if self.warmup < 0 or self.repeats < 1:
            raise SpecError(f"need warmup >= 0 and repeats >= 1, got warmup={self.warmup}, repeats={self.repeats}")
        if self.threads is not None and self.threads < 1:
            raise SpecError(f"threads must be positive, got {self.threads}")
        self.sampler = Sampler(self.device, self.method, self.warmup, self.repeats, defaults["target_ms"],
                               defaults["max_calls"])

    @property
    def steps_per_batch(self) -> int:
        """Progress steps one batch takes: each layer, then the whole network."""
        return len(self.network) + 1

    def __enter__(self) -> "Timer":
        from ..torch_bridge.bridge import to_module

        self._exit = ExitStack()
        self.settings = {"warmup": self.warmup, "repeats": self.repeats,
                         "timer": "cuda events" if self.device == "cuda" else "perf_counter",
                         "method": self.method, "sampling": self.sampler.describe(),
                         "sample_target_ms": self.sampler.target_ms, "max_calls": self.sampler.max_calls,
                         "mode": TRAINING_MODE if self.training else "inference: eval() under torch.inference_mode",
                         "inputs": "random normal, drawn fresh for each layer and batch"}
        try:
            if self.device == "cuda":
                self.settings.update(self._exit.enter_context(cuda_math(self.dtype)))
            if self.threads is not None:
                self._exit.enter_context(torch_threads(self.threads))
            self.measured = self.measure_peaks()
            self.peaks = self.measured.peaks
            self.settings["launch_floor"] = {"op": FLOOR_OP, **self.launch_floor().to_dict()}
            self.spec = self.spec_sheet()
            self._tick(1, "peaks")
            weights = self.network.cost(1, self.dtype).totals.weight_bytes
            free = available_bytes(self.device)
            if free is not None and weights > free:
                raise SpecError(f"the network's weights ({bytes_text(weights)} at {self.dtype}) do not fit in the "
                                f"{bytes_text(free)} of free {self.device} memory")
            self.module = to_module(self.network).train(self.training).to(device=self.device,
                                                                           dtype=torch_dtype(self.dtype))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.module = None
        devices.release(self.device)
        self._exit.close()
        return False

    def measure_peaks(self):
        """The device's peaks (`peaks.Measured`), those not given measured now."""
        return measure_peaks(self.device, self.dtype, torch_dtype(self.dtype),
                             lambda fn, w, r: sample_ms(fn, w, r, self.device),
                             flops_per_s=self.peak_flops, bytes_per_s=self.peak_bandwidth)

    def spec_sheet(self):
        """The spec-sheet peaks (`roofline.Peaks`) of `gpu`, or of the catalog GPU the CUDA device's
        name matches; None without one, or when its sheet has no rate for this dtype."""
        from .. import hardware

        card = hardware.gpu(self.gpu) if self.gpu else (
            hardware.match(devices.describe(self.device)["name"]) if self.device == "cuda" else None)
        if card is None:
            return None
        try:
            peaks = card.peaks(self.dtype)
        except SpecError:
            return None
        self.settings["spec_sheet"] = {"gpu": card.key, "name": card.name, "source": card.source,
                                       **peaks.to_dict()}
        return peaks

    def launch_floor(self) -> Stats:
        """The floor of every timing: `FLOOR_OP`, timed by the run's method."""
        import torch

        with torch.inference_mode():
            one = torch.zeros(1, device=self.device, dtype=torch_dtype(self.dtype))
            return self.sampler.stats(lambda: one.add_(1))

    def _tick(self, n: int, what: str) -> None:
        self._ticks = getattr(self, "_ticks", 0) + n
        if self.progress:
            self.progress(n, what)

    def run(self) -> TimingRun:
        """An empty run record carrying the device, settings and peaks."""
        return TimingRun(self.network.name, self.network.input_shape, self.dtype, math_mode(self.dtype, self.device),
                         devices.describe(self.device), dict(self.settings), self.peaks)

    def sweep(self, batches: Iterable[int], on_batch: Callable[[TimingRun], None] | None = None) -> TimingRun:
        """Measure each batch in turn; ``on_batch(run)`` sees the record after each batch and once
        more when it is complete (to write it out incrementally). An out-of-memory batch is
        recorded and the sweep goes on."""
        with self:
            run = self.run()
            for batch in batches:
                run = replace(run, batches=(*run.batches, self.measure(batch)))
                if on_batch:
                    on_batch(run)
            if self.peak_flops is None or self.peak_bandwidth is None:  # measured: measured again, compared
                run = replace(run, warnings=tuple(moved(self.measured, self.measure_peaks())))
        run = replace(run, complete=True)
        if on_batch:
            on_batch(run)
        return run

    def measure(self, batch: int):
        """One batch: a `roofline.BatchAnalysis`, or a `BatchFailure` (out of memory,
        or skipped because it obviously cannot fit). Other torch errors become SpecError."""
        cost = self.network.cost(batch, self.dtype)
        self._ticks = 0
        need, free = batch_bytes(cost), available_bytes(self.device)
        if free is not None and need > free:
            self._tick(self.steps_per_batch, f"batch {batch}")
            return BatchFailure(batch, "skipped: would not fit in memory",
                                f"needs about {bytes_text(need)} beyond the weights, "
                                f"{bytes_text(free)} free on {self.device}")
        try:
            if self.training:
                return measure_training_layers(self, batch)
            layers, network = self._measure(batch)
        except Exception as err:  # noqa: BLE001 - sorted below: OOM is recorded, the rest re-raised
            if not is_out_of_memory(err):
                raise
            detail = " ".join(str(err).split())[:300]
        else:
            return roofline.analyse(cost, layers, network, self.peaks, self.spec)
        devices.release(self.device)  # outside the except block, so the error's frames (and tensors) are gone
        self._tick(self.steps_per_batch - self._ticks, f"batch {batch}")
        return BatchFailure(batch, "out of memory", detail)

    def _measure(self, batch: int):
        import torch

        dev, dt = self.device, torch_dtype(self.dtype)
        children = dict(self.module.named_children())
        layers = []
        with torch.inference_mode():
            for i, (name, layer) in enumerate(zip(self.network.names, self.network.layers)):
                mod = children[name]
                xs = random_inputs(input_shapes(self.network, i), 1 if self.network.once[i] else batch, dev, dt)
                try:
                    layers.append(self.sampler.stats(lambda: mod(*xs)))
                except RuntimeError as err:
                    if "not implemented for" in str(err):
                        raise SpecError(f"torch cannot run it in {self.dtype} on {dev}: {err}").at(
                            describe_layer(i, name, type(layer).__name__)) from None
                    raise
                del xs
                self._tick(1, f"batch {batch}: {name}")
            xs = random_inputs((self.network.input_shape,), batch, dev, dt)
            network = self.sampler.stats(lambda: self.module(*xs))
            del xs
            self._tick(1, f"batch {batch}: network")
        return layers, network


def _grad_inputs(xs, needs) -> tuple:
    return tuple(x.requires_grad_() if need and x.is_floating_point() else x for x, need in zip(xs, needs))


def _train_call(module, xs, inplace: bool, params):
    """One training call of a layer: gradients dropped (``zero_grad``), input 0 copied for an
    in-place layer (autograd cannot rewrite a leaf in place)."""
    def call():
        for p in params:
            p.grad = None
        return module(*((xs[0].clone(), *xs[1:]) if inplace and xs else xs))
    return call


def _outputs(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def measure_training_layers(timer: "Timer", batch: int) -> TrainingBatch:
    """Time every layer's forward pass, then its forward and backward passes, and the whole network's."""
    import torch

    from ..hardware.model import backward_bound, forward_bound
    from ..training import training_cost

    step = training_cost(timer.network, batch, timer.dtype, device=timer.device)
    dev, dt = timer.device, torch_dtype(timer.dtype)
    children = dict(timer.module.named_children())
    rows = []
    for i, (name, layer) in enumerate(zip(timer.network.names, timer.network.layers)):
        mod, tr = children[name], step.layers[i]
        shapes = input_shapes(timer.network, i)
        needs = tr.grads.inputs if tr.grads is not None else (False,) * len(shapes)
        xs = _grad_inputs(random_inputs(shapes, 1 if timer.network.once[i] else batch, dev, dt), needs)
        params = [p for p in mod.parameters() if p.requires_grad]
        call = _train_call(mod, xs, layer.train_inplace(), params)
        try:
            if tr.grads is None:
                forward, backward, both = timer.sampler.stats(call), None, None
            else:
                grads = tuple(torch.randn_like(o) for o in _outputs(call()))
                forward, backward, both = timer.sampler.phases(
                    call, lambda out: torch.autograd.backward(_outputs(out), grads))
        except RuntimeError as err:
            if "not implemented for" in str(err):
                raise SpecError(f"torch cannot run it in {timer.dtype} on {dev}: {err}").at(
                    describe_layer(i, name, type(layer).__name__)) from None
            raise
        row = step.forward.layers[i]
        sheet = timer.spec
        rows.append(LayerStepTime(name, tr.type, forward, both, forward_bound(row, tr, timer.peaks),
                                  backward_bound(row, tr, timer.peaks), backward,
                                  None if sheet is None else forward_bound(row, tr, sheet),
                                  None if sheet is None else backward_bound(row, tr, sheet)))
        del xs
        timer._tick(1, f"batch {batch}: {name}")
    x = random_inputs((timer.network.input_shape,), batch, dev, dt)[0]
    params = [p for p in timer.module.parameters() if p.requires_grad]
    call = _train_call(timer.module, (x,), False, params)
    grads = tuple(torch.randn_like(o) for o in _outputs(call()))
    forward, backward, both = timer.sampler.phases(call, lambda out: torch.autograd.backward(_outputs(out), grads))
    timer._tick(1, f"batch {batch}: network")
    return TrainingBatch(batch, tuple(rows), forward, both, backward)


def batch_bytes(cost) -> int:
    """Memory a batch needs beyond the weights, which stay resident: `device.memory_needed`
    less the weights, i.e. twice the largest input + output of one layer (workspaces, temporaries)."""
    return memory_needed(cost) - cost.totals.weight_bytes


def time_network(network: Network, batches: Iterable[int], *, device: str = "auto", dtype: str = "float32",
                 warmup: int | None = None, repeats: int | None = None,
                 peak_flops: float | None = None, peak_bandwidth: float | None = None,
                 on_batch: Callable[[TimingRun], None] | None = None,
                 progress: Callable[[int, str], None] | None = None, threads: int | None = None,
                 method: str | None = None, training: bool = False, gpu: str | None = None) -> TimingRun:
    """Time ``network`` at each batch size (see `Timer.sweep`)."""
    timer = Timer(network, device, dtype, warmup, repeats, peak_flops, peak_bandwidth, progress, threads, method,
                  training, gpu)
    return timer.sweep(batches, on_batch)


def _rounded(value):
    """Floats to 6 significant digits (timings are not more precise than that)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def dumps(record: dict) -> str:
    """A run record as JSON, diff-friendly: one key per line, one layer per line; floats to 6 digits."""
    def one(value, pad: str) -> str:
        inner = pad + "  "
        if isinstance(value, dict) and any(isinstance(v, (dict, list)) and v for v in value.values()):
            return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {one(v, inner)}" for k, v in value.items()) + f"\n{pad}}}"
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return "[\n" + ",\n".join(inner + one(v, inner) for v in value) + f"\n{pad}]"
        return json.dumps(_rounded(value))
    return one(record, "") + "\n"
