"""The device a measurement runs on: which one, its memory, its clock. The one module that talks to ``torch.cuda``.

Every CUDA runtime call alexcost makes (availability, memory queries, device properties,
events, synchronize, streams, CUDA graphs) goes through `cuda`: ``torch.cuda``, or
a stand-in with the same API installed by `use_cuda` (``tests/cuda_standin.py``
runs the CUDA code paths on the CPU that way, and asserts the order of the calls).
Memory is in bytes, times in milliseconds. torch is imported only when a function runs.
"""

from __future__ import annotations

import gc
import os
import platform
import time
import warnings
from contextlib import contextmanager
from typing import Callable

from ..errors import SpecError
from ..units import bytes_text

DEVICES = ("auto", "cpu", "cuda")

_STANDINS: list = []


def cuda():
    """``torch.cuda``, or the stand-in installed by `use_cuda`."""
    if _STANDINS:
        return _STANDINS[-1]
    import torch

    return torch.cuda


@contextmanager
def use_cuda(standin):
    """Route every CUDA call alexcost makes through ``standin`` (``torch.cuda``'s API) inside the block."""
    _STANDINS.append(standin)
    try:
        yield standin
    finally:
        _STANDINS.remove(standin)


# -- which device -------------------------------------------------------------------------

def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is a SpecError."""
    import torch

    if device not in DEVICES:
        raise SpecError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda().is_available() else "cpu"
    if device == "cuda" and not cuda().is_available():
        why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise SpecError(f"--device cuda: CUDA is not available ({why}, torch {torch.__version__}); "
                        f"use --device cpu or auto")
    return device


def describe(device: str) -> dict:
    """The machine the numbers belong to: name, versions, threads (and on CUDA the GPU's properties)."""
    import torch

    info = {"type": device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device == "cuda":
        c = cuda()
        props = c.get_device_properties(c.current_device())
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


# -- memory -------------------------------------------------------------------------------

def memory_needed(cost) -> int:
    """A lower bound of the bytes one forward pass needs: the weights plus, twice over
    (the tensor and the copies the counters keep), the largest layer input + output."""
    widest = max((r.input_bytes + r.output_bytes for r in cost.layers), default=0)
    return cost.totals.weight_bytes + 2 * widest


def memory_free(device: str) -> int | None:
    """Bytes free on ``device`` now (None when it cannot be told)."""
    if device == "cuda":
        return cuda().mem_get_info()[0]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(device: str) -> int | None:
    """Free memory now (`memory_free`), plus on CUDA what torch's cache holds unused."""
    free = memory_free(device)
    if device == "cuda" and free is not None:
        c = cuda()
        free += c.memory_reserved() - c.memory_allocated()
    return free


def check_fits(cost, device: str, free: int | None = None) -> None:
    """Refuse (SpecError) a forward pass that obviously cannot fit: its lower bound
    `memory_needed` above 80% of ``device``'s free memory."""
    need = memory_needed(cost)
    free = memory_free(device) if free is None else free
    if free is not None and need > free * 0.8:
        raise SpecError(f"a forward pass of {cost.model!r} at batch {cost.batch} needs at least {bytes_text(need)} "
                        f"(weights {bytes_text(cost.totals.weight_bytes)} + the largest layer input and output) but "
                        f"{device} has {bytes_text(free)} free (80% may be used); nothing was allocated")


def release(device: str) -> None:
    """Collect garbage and, on CUDA, hand torch's cached blocks back to the driver."""
    gc.collect()
    if device == "cuda":
        cuda().empty_cache()


OOM_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory")
"""What torch's allocators say when an allocation fails (CUDA, and the CPU's DefaultCPUAllocator)."""


def is_out_of_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError, Python's MemoryError, or a RuntimeError saying one of `OOM_MESSAGES`."""
    if isinstance(err, MemoryError):
        return True
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(err, RuntimeError) and any(s in str(err) for s in OOM_MESSAGES)


# -- the clock ----------------------------------------------------------------------------

def times_ms(run: Callable[[], object], repeats: int, device: str) -> list[float]:
    """How long each of ``repeats`` calls of ``run()`` took, in ms.

    CUDA: a fresh pair of timing events recorded around each call in the current stream,
    all read after one synchronize (the GPU time between the two points of the stream).
    CPU: ``time.perf_counter`` around each call.
    """
    if device != "cuda":
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            out.append((time.perf_counter() - t0) * 1e3)
        return out
    c = cuda()
    c.synchronize()
    pairs = [(c.Event(enable_timing=True), c.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in pairs:
        start.record()
        run()
        end.record()
    c.synchronize()
    return [start.elapsed_time(end) for start, end in pairs]


EMPTY_GRAPH = "The CUDA Graph is empty"
"""torch's warning for a graph that launched no kernel (a view, an identity): timed as such, not warned about."""


def capture(fn: Callable[[], object], calls: int, warmup: int = 3) -> Callable[[], None]:
    """A CUDA graph of ``calls`` back-to-back calls of ``fn``; returns its ``replay``.

    As torch's CUDA-graph documentation asks: ``warmup`` eager calls on a side stream
    first (cuDNN's algorithm search, lazy initialisation), the current stream waits for
    them, then the capture. The graph keeps ``fn``'s inputs and its own memory pool
    until the returned function is dropped.
    """
    c = cuda()
    side = c.Stream()
    side.wait_stream(c.current_stream())
    with c.stream(side):
        for _ in range(warmup):
            fn()
    c.current_stream().wait_stream(side)
    graph = c.CUDAGraph()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EMPTY_GRAPH)
        with c.graph(graph):
            for _ in range(calls):
                fn()
    return graph.replay
