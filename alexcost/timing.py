"""Per-layer timing: CUDA events on the GPU, ``time.perf_counter`` on the CPU.

Conventions: inference (``eval()`` under ``torch.inference_mode``); every layer is
timed in isolation, on a fresh random-normal input (never zeros) of its real shape
``(batch, *network.shapes[i])``, and the whole network is timed end to end on the
same kind of input, so the sum of the layers can be compared with it. Each timing is
``warmup`` untimed calls then ``repeats`` timed ones, summarised by the median and
the 10th / 90th percentiles (linear interpolation, as ``numpy.percentile``).
Times are milliseconds. torch is imported only when a measurement runs.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from math import floor
from typing import Callable, Iterable

from . import roofline
from .crosscheck import memory_free, memory_needed, resolve_device
from .errors import SpecError, describe_layer
from .network import Network
from .report import bytes_text

DTYPES = ("float32", "tf32", "float16", "bfloat16")
"""The dtypes ``alexcost time`` runs: tf32 is float32 storage with TF32 matmul/conv math (CUDA only)."""

DEFAULTS = {"cpu": {"warmup": 2, "repeats": 10, "batches": (1, 8)},
            "cuda": {"warmup": 10, "repeats": 50, "batches": (1, 32, 128)}}
"""Warm-up calls, timed repeats and batch sizes when the user gives none, per device."""

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
    """Median and spread of repeated timings, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    repeats: int

    @classmethod
    def of(cls, samples_ms) -> "Stats":
        s = list(samples_ms)
        return cls(percentile(s, 50), percentile(s, 10), percentile(s, 90), min(s), len(s))

    def to_dict(self) -> dict:
        return {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
                "min_ms": self.min_ms, "repeats": self.repeats}


# -- device, dtype and the timer ------------------------------------------------------------

def check_dtype(dtype: str, device: str) -> None:
    """Refuse what cannot run: an unknown dtype, or tf32 off CUDA (the CPU has no TF32 math)."""
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype {dtype!r} for timing; choose from {', '.join(DTYPES)}")
    if dtype == "tf32" and device != "cuda":
        raise SpecError("tf32 needs CUDA: on the CPU float32 math is always full precision; "
                        "use --dtype float32")


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
    """``repeats`` timings of ``fn()`` in ms, after ``warmup`` untimed calls.

    CUDA: a ``torch.cuda.Event`` pair around each call, read after one synchronize
    (GPU time of the call in its stream). CPU: ``time.perf_counter`` around each call.
    """
    for _ in range(warmup):
        fn()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                 for _ in range(repeats)]
        for start, end in pairs:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in pairs]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def device_info(device: str) -> dict:
    """The machine the numbers belong to: name, versions, threads."""
    import torch

    info = {"type": device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(name=props.name, capability=f"{props.major}.{props.minor}",
                    memory_bytes=props.total_memory, multiprocessors=props.multi_processor_count,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        info.update(name=_cpu_name(), cpus=os.cpu_count())
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def available_bytes(device: str) -> int | None:
    """Free memory now (:func:`crosscheck.memory_free`), plus on CUDA what torch's cache holds unused."""
    free = memory_free(device)
    if device == "cuda" and free is not None:
        import torch

        free += torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    return free


def batch_bytes(cost) -> int:
    """Memory a batch needs beyond the weights, which stay resident: :func:`crosscheck.memory_needed`
    less the weights, i.e. twice the largest input + output of one layer (workspaces, temporaries)."""
    return memory_needed(cost) - cost.totals.weight_bytes


OOM_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory")
"""What torch's allocators say when an allocation fails (CUDA, and the CPU's DefaultCPUAllocator)."""


def is_out_of_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError, Python's MemoryError, or a RuntimeError saying one of :data:`OOM_MESSAGES`."""
    if isinstance(err, MemoryError):
        return True
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(err)
    return isinstance(err, RuntimeError) and any(s in text for s in OOM_MESSAGES)


# -- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchFailure:
    """A batch that was not measured: out of memory, or skipped because it could not fit."""

    batch: int
    error: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"batch": self.batch, "error": self.error, "detail": self.detail}


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

    def to_dict(self) -> dict:
        return {
            "kind": "alexcost-time", "version": 1,
            "model": self.model, "input_shape": list(self.input_shape),
            "device": self.device, "dtype": self.dtype, "math": self.math,
            "settings": self.settings, "peaks": self.peaks.to_dict(),
            "complete": self.complete,
            "batches": [b.to_dict() for b in self.batches],
            "verdict": roofline.overall_verdict([b for b in self.batches if not isinstance(b, BatchFailure)]),
        }


# -- the harness ------------------------------------------------------------------------------

@dataclass
class Timer:
    """Times a network's layers and the whole network on one device at one dtype.

    Use as a context manager: entering sets the math mode, measures the device's peaks
    (unless given) and moves the module to the device; leaving restores the math mode.
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
    module: object = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.device = resolve_device(self.device)
        check_dtype(self.dtype, self.device)
        defaults = DEFAULTS[self.device]
        self.warmup = defaults["warmup"] if self.warmup is None else self.warmup
        self.repeats = defaults["repeats"] if self.repeats is None else self.repeats
        if self.warmup < 0 or self.repeats < 1:
            raise SpecError(f"need warmup >= 0 and repeats >= 1, got warmup={self.warmup}, repeats={self.repeats}")
        if self.threads is not None and self.threads < 1:
            raise SpecError(f"threads must be positive, got {self.threads}")

    @property
    def steps_per_batch(self) -> int:
        """Progress steps one batch takes: each layer, then the whole network."""
        return len(self.network) + 1

    def __enter__(self) -> "Timer":
        from .torch_bridge import to_module

        self._exit = ExitStack()
        self.settings = {"warmup": self.warmup, "repeats": self.repeats,
                         "timer": "cuda events" if self.device == "cuda" else "perf_counter",
                         "mode": "inference: eval() under torch.inference_mode",
                         "inputs": "random normal, drawn fresh for each layer and batch"}
        try:
            if self.device == "cuda":
                self.settings.update(self._exit.enter_context(cuda_math(self.dtype)))
            if self.threads is not None:
                self._exit.enter_context(torch_threads(self.threads))
            self.peaks = roofline.measure_peaks(self.device, self.dtype, torch_dtype(self.dtype),
                                                lambda fn, w, r: sample_ms(fn, w, r, self.device),
                                                flops_per_s=self.peak_flops, bytes_per_s=self.peak_bandwidth)
            self._tick(1, "peaks")
            weights = self.network.cost(1, self.dtype).totals.weight_bytes
            free = available_bytes(self.device)
            if free is not None and weights > free:
                raise SpecError(f"the network's weights ({bytes_text(weights)} at {self.dtype}) do not fit in the "
                                f"{bytes_text(free)} of free {self.device} memory")
            self.module = to_module(self.network).eval().to(device=self.device, dtype=torch_dtype(self.dtype))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.module = None
        _free(self.device)
        self._exit.close()
        return False

    def _tick(self, n: int, what: str) -> None:
        self._ticks = getattr(self, "_ticks", 0) + n
        if self.progress:
            self.progress(n, what)

    def run(self) -> TimingRun:
        """An empty run record carrying the device, settings and peaks."""
        return TimingRun(self.network.name, self.network.input_shape, self.dtype, math_mode(self.dtype, self.device),
                         device_info(self.device), dict(self.settings), self.peaks)

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
        run = replace(run, complete=True)
        if on_batch:
            on_batch(run)
        return run

    def measure(self, batch: int):
        """One batch: a :class:`roofline.BatchAnalysis`, or a :class:`BatchFailure` (out of memory,
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
            layers, network = self._measure(batch)
        except Exception as err:  # noqa: BLE001 - sorted below: OOM is recorded, the rest re-raised
            if not is_out_of_memory(err):
                raise
            detail = " ".join(str(err).split())[:300]
        else:
            return roofline.analyse(cost, layers, network, self.peaks)
        _free(self.device)  # outside the except block, so the error's frames (and tensors) are gone
        self._tick(self.steps_per_batch - self._ticks, f"batch {batch}")
        return BatchFailure(batch, "out of memory", detail)

    def _measure(self, batch: int):
        import torch

        dev, dt = self.device, torch_dtype(self.dtype)
        children = dict(self.module.named_children())
        layers = []
        with torch.inference_mode():
            for i, (name, layer, shape) in enumerate(zip(self.network.names, self.network.layers, self.network.shapes)):
                mod = children[name]
                x = torch.randn((batch, *shape), device=dev, dtype=dt)
                try:
                    layers.append(Stats.of(sample_ms(lambda: mod(x), self.warmup, self.repeats, dev)))
                except RuntimeError as err:
                    if "not implemented for" in str(err):
                        raise SpecError(f"torch cannot run it in {self.dtype} on {dev}: {err}").at(
                            describe_layer(i, name, type(layer).__name__)) from None
                    raise
                del x
                self._tick(1, f"batch {batch}: {name}")
            x = torch.randn((batch, *self.network.input_shape), device=dev, dtype=dt)
            network = Stats.of(sample_ms(lambda: self.module(x), self.warmup, self.repeats, dev))
            del x
            self._tick(1, f"batch {batch}: network")
        return layers, network


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def time_network(network: Network, batches: Iterable[int], *, device: str = "auto", dtype: str = "float32",
                 warmup: int | None = None, repeats: int | None = None,
                 peak_flops: float | None = None, peak_bandwidth: float | None = None,
                 on_batch: Callable[[TimingRun], None] | None = None,
                 progress: Callable[[int, str], None] | None = None, threads: int | None = None) -> TimingRun:
    """Time ``network`` at each batch size (see :meth:`Timer.sweep`)."""
    timer = Timer(network, device, dtype, warmup, repeats, peak_flops, peak_bandwidth, progress, threads)
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
