"""A stand-in for the ``torch.cuda`` calls alexcost makes, so its CUDA code paths run on the CPU in CI.

:func:`standin` installs, for the length of a ``with`` block:

* a :class:`CudaStandIn` as alexcost's CUDA backend (:func:`alexcost.torch_run.device.use_cuda`):
  ``is_available`` says yes, memory queries answer configured numbers, and events,
  synchronize, streams and CUDA graphs behave as on a GPU whose kernels run at once,
  on the CPU, while the stand-in ASSERTS the rules a real GPU only enforces now and
  then: an event's ``elapsed_time`` only after both events were recorded and then
  synchronized; no event recorded again before it was read; nothing that synchronizes,
  queries memory or records a timing event while a graph is being captured (CUDA's
  own error, a RuntimeError, as torch raises it); a capture only after a warm-up on a
  side stream; a replay only of a captured graph, outside any capture.
* a torch function mode that sends ``device="cuda"`` (strings, ``torch.device``, ``.to()``,
  ``torch.Generator``) to the CPU, so ``device="cuda"`` tensors live on the CPU;
* small peak-measurement sizes for ``cuda`` (the stand-in GPU is a CPU).

A CUDA graph is emulated by recording the aten ops of the capture (a torch dispatch
mode) and running them again on each replay. Event times are ``perf_counter`` at the
record, so a time between events is the CPU's time for the work between them.

:func:`install_for_process` does the same for a whole process (``tests/standin_site``'s
``sitecustomize`` calls it when ``ALEXCOST_CUDA_STANDIN`` names a log file) and appends
the process's call counts to that file at exit, one JSON line.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
import warnings
from collections import Counter
from contextlib import ExitStack, contextmanager
from types import SimpleNamespace

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from alexcost.torch_run import device as alexcost_device
from alexcost.torch_run import peaks as roofline

GiB = 2**30
SMALL_PEAKS = {"n_min": 256, "n_max": 256, "target_ms": 0.0, "conv_batch": 1, "conv_channels": 32,
               "copy_bytes": 8 * 2**20, "repeats": 2, "slow_ms": 300.0}
"""The peak measurement's sizes on the stand-in (the real ones are a GPU's: an 8192x8192 product, 1 GiB copies)."""


class CaptureError(RuntimeError):
    """What CUDA answers an operation a capturing stream does not permit (torch raises a RuntimeError)."""

    def __init__(self, what: str):
        super().__init__(f"CUDA error: operation not permitted when stream is capturing ({what}, stand-in)")


class StandInStream:
    """A CUDA stream: the default one, or a side stream."""

    def __init__(self, owner: "CudaStandIn", default: bool = False):
        self.owner, self.default = owner, default

    def wait_stream(self, other: "StandInStream") -> None:
        self.owner.count["wait_stream"] += 1

    def synchronize(self) -> None:
        self.owner._sync("stream.synchronize", self)

    def query(self) -> bool:
        return True


class StandInEvent:
    """A CUDA event; ``elapsed_time`` asserts it and its partner were recorded, then synchronized."""

    def __init__(self, owner: "CudaStandIn", enable_timing: bool = False, blocking: bool = False,
                 interprocess: bool = False):
        self.owner, self.enable_timing = owner, enable_timing
        self.at = self.seq = self.stream = None
        self.read = True  # nothing to read yet
        self.synced_seq = -1
        owner.events.append(self)

    def record(self, stream: StandInStream | None = None) -> None:
        o = self.owner
        if o.capturing:
            raise CaptureError("cudaEventRecord of a timing event")
        assert self.read, "event recorded again before its elapsed time was read"
        o.count["record"] += 1
        self.stream = stream or o.current
        self.seq, self.at, self.read = o.tick(), time.perf_counter(), not self.enable_timing

    def synchronize(self) -> None:
        assert self.seq is not None, "synchronize on an event never recorded"
        self.synced_seq = self.owner.tick()

    def query(self) -> bool:
        return True

    def _complete(self) -> bool:
        """Recorded, and some synchronize (device, its stream, or this event) came after the record."""
        return self.synced_seq > self.seq or any(
            seq > self.seq and (stream is None or stream is self.stream) for seq, stream in self.owner.syncs)

    def elapsed_time(self, end: "StandInEvent") -> float:
        o = self.owner
        if o.capturing:
            raise CaptureError("cudaEventElapsedTime")
        assert self.enable_timing and end.enable_timing, "elapsed_time of an event created without enable_timing"
        assert self.seq is not None and end.seq is not None, "elapsed_time before both events were recorded"
        assert self.seq < end.seq, "elapsed_time(end) with end recorded before start"
        assert self._complete() and end._complete(), "elapsed_time before a synchronize after both records"
        self.read = end.read = True
        o.count["elapsed_time"] += 1
        return (end.at - self.at) * 1e3


class _Recorder(TorchDispatchMode):
    """Records every aten op run under it (a graph capture), refusing what a capture cannot hold."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default):
            raise CaptureError("a tensor read on the host, e.g. .item()")
        self.ops.append((func, args, kwargs))
        return func(*args, **kwargs)


class StandInGraph:
    """``torch.cuda.CUDAGraph``: the ops of its capture, run again on each replay."""

    def __init__(self, owner: "CudaStandIn"):
        self.owner, self.ops, self.captured = owner, None, False

    def replay(self) -> None:
        o = self.owner
        assert self.captured, "replay of a graph that was never captured"
        assert not o.capturing, "replay inside a capture"
        o.count["replay"] += 1
        for func, args, kwargs in self.ops:
            func(*args, **kwargs)


class CudaStandIn:
    """``torch.cuda``'s API as alexcost uses it, on the CPU, asserting the order of the calls.

    ``count`` counts the calls; ``events`` keeps every event made (see :meth:`close`).
    """

    OutOfMemoryError = torch.cuda.OutOfMemoryError

    def __init__(self, name: str = "Stand-in GPU (CPU)", total: int = 16 * GiB, free: int = 12 * GiB,
                 reserved: int = 0, allocated: int = 0):
        self.name, self.total, self.free, self.reserved, self.allocated = name, total, free, reserved, allocated
        self.count: Counter = Counter()
        self.events: list[StandInEvent] = []
        self.syncs: list = []  # (sequence number, stream or None for the whole device)
        self._seq = 0
        self.default_stream = StandInStream(self, default=True)
        self.current = self.default_stream
        self.capturing = False
        self.side_stream_work = 0  # side-stream blocks run since the last capture

    def tick(self) -> int:
        self._seq += 1
        return self._seq

    def _sync(self, what: str, stream: StandInStream | None = None) -> None:
        if self.capturing:
            raise CaptureError(what)
        self.count[what] += 1
        self.syncs.append((self.tick(), stream))

    # -- the device
    def is_available(self) -> bool:
        self.count["is_available"] += 1
        return True

    def device_count(self) -> int:
        return 1

    def current_device(self) -> int:
        return 0

    def get_device_name(self, device=None) -> str:
        return self.name

    def get_device_properties(self, device=None):
        self.count["get_device_properties"] += 1
        return SimpleNamespace(name=self.name, major=9, minor=0, total_memory=self.total, multi_processor_count=132)

    # -- memory
    def _memory(self, what: str) -> None:
        if self.capturing:
            raise CaptureError(what)
        self.count[what] += 1

    def mem_get_info(self, device=None) -> tuple[int, int]:
        self._memory("mem_get_info")
        return self.free, self.total

    def memory_reserved(self, device=None) -> int:
        self._memory("memory_reserved")
        return self.reserved

    def memory_allocated(self, device=None) -> int:
        self._memory("memory_allocated")
        return self.allocated

    def empty_cache(self) -> None:
        self._memory("empty_cache")

    # -- time and order
    def synchronize(self, device=None) -> None:
        self._sync("synchronize")

    def Event(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> StandInEvent:
        return StandInEvent(self, enable_timing, blocking, interprocess)

    def Stream(self, device=None, priority: int = 0) -> StandInStream:
        return StandInStream(self)

    def current_stream(self, device=None) -> StandInStream:
        return self.current

    @contextmanager
    def stream(self, stream: StandInStream):
        saved, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = saved
            self.side_stream_work += not stream.default

    # -- CUDA graphs
    def CUDAGraph(self) -> StandInGraph:
        return StandInGraph(self)

    @contextmanager
    def graph(self, cuda_graph: StandInGraph, pool=None, stream=None, capture_error_mode: str = "global"):
        """``torch.cuda.graph``: synchronize, free the cache, then capture on a side stream."""
        assert not self.capturing, "a capture inside a capture"
        assert not cuda_graph.captured, "a graph captured twice"
        assert self.side_stream_work, "capture without a warm-up on a side stream first (torch's CUDA-graph docs)"
        self.synchronize()
        self.empty_cache()
        recorder = _Recorder()
        saved, self.current, self.capturing = self.current, stream or StandInStream(self), True
        self.count["capture"] += 1
        try:
            with recorder:
                yield cuda_graph
        finally:
            self.current, self.capturing, self.side_stream_work = saved, False, 0
        cuda_graph.ops, cuda_graph.captured = recorder.ops, True
        if not recorder.ops:
            warnings.warn("The CUDA Graph is empty. This usually means that the graph was attempted to be "
                          "captured on wrong device or stream. (stand-in)", UserWarning, stacklevel=3)

    # -- the end
    def unread(self) -> int:
        """Timing events recorded and never read."""
        return sum(1 for e in self.events if e.enable_timing and e.seq is not None and not e.read)

    def close(self) -> None:
        """Assert that every timing event recorded was read."""
        assert not self.unread(), f"{self.unread()} timing event(s) recorded and never read"


# -- device="cuda" on the CPU ----------------------------------------------------------------

def _on_cpu(value):
    if isinstance(value, str) and value.split(":")[0] == "cuda":
        return "cpu"
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    return value


class OnTheCPU(TorchFunctionMode):
    """Sends every ``device="cuda"`` argument of a torch call to the CPU; counts them in ``standin.count``."""

    def __init__(self, standin: CudaStandIn):
        super().__init__()
        self.standin = standin

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        moved_args = tuple(_on_cpu(a) for a in args)
        moved_kwargs = {k: _on_cpu(v) for k, v in kwargs.items()}
        if any(a is not b for a, b in zip(moved_args, args)) or any(moved_kwargs[k] is not kwargs[k] for k in kwargs):
            self.standin.count["placed on cuda"] += 1
        return func(*moved_args, **moved_kwargs)


_RealGenerator = torch.Generator


class _Generator(_RealGenerator):
    """``torch.Generator(device="cuda")`` made on the CPU."""

    def __new__(cls, device="cpu"):
        return _RealGenerator.__new__(cls, device=_on_cpu(device))

    def __init__(self, device="cpu"):
        pass


@contextmanager
def standin(**config):
    """Run alexcost's CUDA code paths on the CPU under a :class:`CudaStandIn` (``config``: its
    constructor's arguments); yields it. Leaving asserts every timing event was read."""
    s = CudaStandIn(**config)
    saved_peaks = roofline.PEAK_SETTINGS["cuda"]
    with ExitStack() as stack:
        stack.enter_context(alexcost_device.use_cuda(s))
        stack.enter_context(OnTheCPU(s))
        torch.Generator = _Generator
        stack.callback(setattr, torch, "Generator", _RealGenerator)
        roofline.PEAK_SETTINGS["cuda"] = SMALL_PEAKS
        stack.callback(roofline.PEAK_SETTINGS.__setitem__, "cuda", saved_peaks)
        yield s
    s.close()


_PROCESS: list = []


def install_for_process(log_path: str) -> CudaStandIn:
    """Install :func:`standin` for the rest of this process; at exit, append
    ``{"argv", "count", "unread"}`` as one JSON line to ``log_path``."""
    context = standin()
    s = context.__enter__()
    _PROCESS.append(context)  # held: a collected generator would leave the stand-in at once

    def report():
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"argv": sys.argv, "count": dict(s.count), "unread": s.unread()}) + "\n")
    atexit.register(report)
    return s
