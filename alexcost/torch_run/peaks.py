"""Measuring a device's peak arithmetic rate and memory bandwidth with torch (for `alexcost time`)."""

from __future__ import annotations

from typing import Callable, NamedTuple

from ..hardware.roofline import Peaks


PEAK_SETTINGS = {
    # matmul: n x n, n doubling from n_min while one product is shorter than target_ms;
    # conv: a 3x3 convolution, conv_channels -> conv_channels on conv_batch x 32 x 32;
    # copy: copy_bytes; repeats of each (a first call slower than slow_ms is not repeated).
    "cpu": {"n_min": 512, "n_max": 2048, "target_ms": 25.0, "conv_batch": 1, "conv_channels": 256,
            "copy_bytes": 256 * 2**20, "repeats": 3, "slow_ms": 300.0},
    "cuda": {"n_min": 8192, "n_max": 8192, "target_ms": 0.0, "conv_batch": 64, "conv_channels": 256,
             "copy_bytes": 2**30, "repeats": 10, "slow_ms": 300.0},
}
"""How big and how often the peak measurements run: on the CPU about a second."""


class Measured(NamedTuple):
    """Peaks as measured, with the spread of the repeats each came from: (slowest - fastest) / fastest
    (0 for a peak given, not measured)."""

    peaks: Peaks
    flops_spread: float = 0.0
    bytes_spread: float = 0.0


def _best_ms(fn, sample, cfg) -> tuple[float, float]:
    """The fastest of ``repeats`` calls after one warm-up, and their spread; one call (spread 0) when
    that one is slow."""
    first = min(sample(fn, 1, 1))
    if first > cfg["slow_ms"]:
        return first, 0.0
    times = sample(fn, 0, cfg["repeats"])
    best = min(first, *times)
    return best, (max(times) - min(times)) / min(times)


def measure_peaks(device: str, dtype: str, tdtype, sample: Callable, *,
                  flops_per_s: float | None = None, bytes_per_s: float | None = None) -> Peaks:
    """`measure`'s peaks."""
    return measure(device, dtype, tdtype, sample, flops_per_s=flops_per_s, bytes_per_s=bytes_per_s).peaks


def measure(device: str, dtype: str, tdtype, sample: Callable, *,
            flops_per_s: float | None = None, bytes_per_s: float | None = None) -> Measured:
    """Measure what is not given. ``sample(fn, warmup, repeats)`` returns timings in ms.

    The peak rate is the better of a large matrix product and a large 3x3 convolution:
    on some CPUs torch's matrix product (BLAS) runs at half the rate of its convolutions
    (oneDNN), and a "peak" the layers beat would bound nothing.
    """
    import torch
    import torch.nn.functional as F

    cfg = PEAK_SETTINGS[device]
    f_src = b_src = "given"
    f_spread = b_spread = 0.0
    if flops_per_s is None:
        n = cfg["n_min"]
        while True:
            a = torch.randn((n, n), device=device, dtype=tdtype)
            b = torch.randn((n, n), device=device, dtype=tdtype)
            once = min(sample(lambda: a @ b, 1, 1))
            if once >= cfg["target_ms"] or n >= cfg["n_max"]:
                break
            n *= 2
        best, m_spread = _best_ms(lambda: a @ b, sample, cfg)
        matmul = 2 * n**3 / (best / 1e3)
        del a, b
        c, nb = cfg["conv_channels"], cfg["conv_batch"]
        x = torch.randn((nb, c, 32, 32), device=device, dtype=tdtype)
        w = torch.randn((c, c, 3, 3), device=device, dtype=tdtype)
        best, c_spread = _best_ms(lambda: F.conv2d(x, w, padding=1), sample, cfg)
        conv = 2 * nb * c * c * 9 * 32 * 32 / (best / 1e3)
        del x, w
        flops_per_s, f_spread = max((matmul, m_spread), (conv, c_spread))
        f_src = (f"measured, {dtype}: {n}x{n} matrix product {matmul / 1e12:.3f} TFLOP/s, "
                 f"3x3 convolution {c}->{c} on {nb}x{c}x32x32 {conv / 1e12:.3f} TFLOP/s; the better of each's "
                 f"best of {cfg['repeats']}")
    if bytes_per_s is None:
        size = cfg["copy_bytes"]
        src = torch.empty(size // 4, device=device, dtype=torch.float32).fill_(1.0)
        dst = torch.empty_like(src)
        best, b_spread = _best_ms(lambda: dst.copy_(src), sample, cfg)
        del src, dst
        bytes_per_s = 2 * size / (best / 1e3)
        b_src = f"measured: best of {cfg['repeats']} copies of {size // 2**20} MiB, counting read + write"
    return Measured(Peaks(float(flops_per_s), float(bytes_per_s), f_src, b_src), f_spread, b_spread)


def moved(before: Measured, after: Measured) -> list[str]:
    """A warning for each measured peak that moved between two measurements of one run by more than the
    spread of its own repeats (the larger of the two): other work on the machine, or its clocks, changed
    what a kernel gets, and the bounds and shares measured between them are less sure."""
    out = []
    for what, unit, scale, a, b, spread in (
            ("arithmetic", "TFLOP/s", 1e12, before.peaks.flops_per_s, after.peaks.flops_per_s,
             max(before.flops_spread, after.flops_spread)),
            ("memory bandwidth", "GB/s", 1e9, before.peaks.bytes_per_s, after.peaks.bytes_per_s,
             max(before.bytes_spread, after.bytes_spread))):
        if spread and abs(b - a) / a > spread:
            out.append(f"the measured peak {what} moved from {a / scale:.3g} to {b / scale:.3g} {unit} "
                       f"({100 * (b - a) / a:+.0f}%) between the start and the end of the run, more than its "
                       f"repeats' own spread ({100 * spread:.0f}%): other work may be running; the bounds and "
                       f"times are less sure")
    return out
