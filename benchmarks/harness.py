"""What the benchmark scripts share: timing with medians and spreads, the machine, tables, options.

Times are seconds per call. A measurement is ``repeats`` samples; each sample times
``number`` back-to-back calls (chosen so a sample lasts at least ``min_sample`` seconds)
and divides. The median of the samples is the figure; the spread is the interquartile
range (q1-q3) of the samples.

Every peer runs on one torch thread, as alexcost does: importing this module sets
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` to 1 for the processes a script starts, and
`header` pins torch's intra-op and inter-op pools to one thread before any peer runs. On a
shared machine a peer on torch's default threads slows down five- to twentyfold whenever
another process holds a core, which would make its ratio a measure of the load.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("alexcost") is None:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))  # (an alexcost on PYTHONPATH, e.g. an older tree's for "before", is kept)

THREADS = 1
"""torch threads every peer runs on (intra-op and inter-op)."""
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = str(THREADS)  # for the processes a script starts, and torch if imported later

from alexcost.units import commas  # noqa: E402
from alexcost.render.table import render_table  # noqa: E402


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median of ``samples`` samples, and their quartiles."""

    label: str
    median: float
    q1: float
    q3: float
    samples: int
    number: int

    def spread(self) -> str:
        return f"{fmt_time(self.q1)} - {fmt_time(self.q3)}"


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have exited (user + system)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


CLOCKS = {"wall": time.perf_counter, "cpu": cpu_seconds}
"""What the timings count: wall seconds, or CPU seconds, which on a shared machine whose load is
above its core count leave out the wait for a core (every tool here runs on one thread)."""
_CLOCK = {"kind": "wall"}


def use_clock(kind: str) -> None:
    """Time with the ``wall`` or the ``cpu`` clock from now on (the ``--clock`` option does this)."""
    _CLOCK["kind"] = kind


def now() -> float:
    return CLOCKS[_CLOCK["kind"]]()


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, statistics.median(values), q3


def time_call(label: str, fn, repeats: int, min_sample: float = 0.05, warmup: int = 3) -> Timing:
    """Time ``fn()`` in this process (after ``warmup`` calls).

    The heap that exists before the measurement (torch, the peers, their modules) is frozen
    out of the garbage collector, which stays on: each tool pays for collecting the garbage
    it makes, not for rescanning torch's million objects whenever a collection comes round.
    """
    gc.collect()
    gc.freeze()
    try:
        return _time_call(label, fn, repeats, min_sample, warmup)
    finally:
        gc.unfreeze()


def _time_call(label: str, fn, repeats: int, min_sample: float, warmup: int) -> Timing:
    for _ in range(warmup):
        fn()
    number, elapsed = 1, 0.0
    while True:  # grow the batch of calls until one sample lasts min_sample
        start = now()
        for _ in range(number):
            fn()
        elapsed = now() - start
        if elapsed >= min_sample or number >= 10**6:
            break
        number *= 10 if elapsed < min_sample / 20 else 2
    samples = [elapsed / number]
    for _ in range(repeats - 1):
        start = now()
        for _ in range(number):
            fn()
        samples.append((now() - start) / number)
    q1, med, q3 = _quartiles(samples)
    return Timing(label, med, q1, q3, len(samples), number)


def time_process(label: str, argv: list[str], repeats: int, warmup: int = 1, env=None,
                 expect: str | None = None) -> Timing:
    """Time a whole process, start to exit; ``expect`` must appear in its standard output."""
    def once() -> float:
        start = now()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        took = now() - start
        if proc.returncode != 0 or (expect is not None and expect not in proc.stdout):
            raise RuntimeError(f"{label}: exit {proc.returncode}, stdout {proc.stdout[-200:]!r}, "
                               f"stderr {proc.stderr[-400:]!r}")
        return took
    for _ in range(warmup):
        once()
    q1, med, q3 = _quartiles([once() for _ in range(repeats)])
    return Timing(label, med, q1, q3, repeats, 1)


def fmt_time(seconds: float) -> str:
    """``3.2e-05`` -> ``32.0 µs``; three significant figures from ns to s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError


def fmt_ratio(ratio: float) -> str:
    """``6935.2`` -> ``6,935x``; ``1.27`` -> ``1.3x``; ``0.047`` -> ``0.047x``."""
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2g}x"


def machine() -> str:
    """The CPU, core count, OS and Python the figures were taken on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def versions(packages=("alexcost", "torch", "fvcore", "ptflops", "thop", "torchinfo", "torchscan")) -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in packages:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def table(headers, rows, align=None) -> str:
    """A plain-text table (alexcost's own renderer); numbers right-aligned by default."""
    align = align or ["left"] + ["right"] * (len(headers) - 1)
    return render_table(headers, rows, align)


class _Parser(argparse.ArgumentParser):
    """Parses the options, then starts the clock ``--clock`` chose."""

    def parse_args(self, *args, **kwargs):
        parsed = super().parse_args(*args, **kwargs)
        use_clock(parsed.clock)
        return parsed


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    p = _Parser(description=description)
    p.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                   help="wall seconds, or CPU seconds of this process and its finished children (on a loaded "
                        "machine, CPU seconds leave out the wait for a core)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny repeat counts and sizes: checks the script runs, measures nothing")
    p.add_argument("--repeats", type=int, default=None, help="samples per measurement")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (atomically)")
    return p


def pin_threads(torch_used: bool = True) -> str:
    """Put torch on `THREADS` intra-op and inter-op threads (before any peer runs), and say so.
    ``torch_used=False``: a script that never imports torch (its children get the environment)."""
    if not torch_used:
        return f"torch threads: torch not used in this process (children: OMP_NUM_THREADS={THREADS})"
    try:
        import torch
    except ImportError:
        return "torch threads: torch not installed"
    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(THREADS)
    except RuntimeError:  # already set, or parallel work already ran: report what it is
        pass
    return (f"torch threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op "
            f"(every peer; children: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def _shown_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


_LOAD: dict = {}


def header(title: str, torch_used: bool = True) -> None:
    """The script's title, the machine, the versions, torch's threads (pinned here) and the load average;
    the load average is printed again when the script ends (and saved with its results)."""
    import atexit

    threads = pin_threads(torch_used)
    _LOAD["start"] = load_average()
    print(f"# {title}")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(threads)
    print(f"clock: {_CLOCK['kind']} seconds")
    print(f"load average at start: {_shown_load(_LOAD['start'])} (1, 5, 15 min; on {os.cpu_count()} cores, figures "
          f"are noisy above ~0.5 per core)")
    print()
    atexit.register(lambda: print(f"load average at end: {_shown_load(load_average())}"))


def save(path: str | None, results: dict) -> None:
    """Write ``results`` (dataclasses become dicts) to ``path`` atomically, if a path was given."""
    if not path:
        return
    from alexcost.atomic import write_atomic

    def plain(value):
        if hasattr(value, "__dataclass_fields__"):
            return asdict(value)
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
    load = {"clock": _CLOCK["kind"], "load_average_start": _LOAD.get("start"), "load_average_end": load_average()}
    write_atomic(path, json.dumps({"machine": machine(), "versions": versions(), **load, **results},
                                  indent=2, default=plain) + "\n")


__all__ = ["CLOCKS", "ROOT", "THREADS", "Timing", "commas", "cpu_seconds", "fmt_ratio", "fmt_time", "header", "load_average", "machine",
           "now", "parser", "pin_threads", "use_clock", "save", "table", "time_call", "time_process", "versions"]
