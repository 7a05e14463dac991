"""The one output-size rule for sliding windows (Conv2d, MaxPool2d, AvgPool2d).

torch's rule, per spatial dimension::

    out = floor((size + 2*pad - dilation*(kernel - 1) - 1) / stride) + 1

With ``ceil_mode`` the division rounds up, and a last window that would start
in the right padding is dropped: ``if (out - 1)*stride >= size + pad: out -= 1``.
"""

from __future__ import annotations

from math import gcd


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """The extent a dilated kernel covers: ``dilation*(kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def window_positions(size: int, kernel: int, stride: int, pad: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """How many window positions fit along one dimension (may be <= 0: the caller objects)."""
    room = size + 2 * pad - effective_kernel(kernel, dilation)
    if not ceil_mode:
        return room // stride + 1
    out = (room + stride - 1) // stride + 1
    if (out - 1) * stride >= size + pad:
        out -= 1
    return out


def adaptive_window_total(size: int, out: int) -> int:
    """Sum of the window lengths adaptive pooling uses along one dimension.

    Window ``i`` spans ``[floor(i*size/out), ceil((i+1)*size/out))``; the lengths
    add up to ``size + out - gcd(size, out)`` (so ``size`` when ``out`` divides it).
    """
    return size + out - gcd(size, out)


MAX_CLIPPED_WINDOWS = 1_000_000
"""Most windows clipped by padding that `window_total` counts one by one."""


def window_total(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> int:
    """Sum, over ``out`` window positions along one dimension, of the taps that land inside
    the input (not in the padding): what a pooling window really reads.

    Window ``i`` starts at ``i*stride - pad`` and taps ``start + j*dilation`` for ``j < kernel``.
    Windows that lie wholly inside hold ``kernel`` taps; the few clipped by the padding (or by
    ``ceil_mode``'s extra window) are counted one by one.
    """
    first_full, last_full = _full_windows(size, kernel, stride, pad, dilation, out)
    total = max(0, last_full - first_full + 1) * kernel
    for i in _clipped(first_full, last_full, out):
        total += _taps_inside(i * stride - pad, size, kernel, dilation)
    return total


def first_empty_window(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> int | None:
    """The first of ``out`` window positions along one dimension whose taps all miss the input
    (they land in the padding, or a dilation wider than the input steps over it), or None."""
    first_full, last_full = _full_windows(size, kernel, stride, pad, dilation, out)
    for i in _clipped(first_full, last_full, out):
        if not _taps_inside(i * stride - pad, size, kernel, dilation):
            return i
    return None


def _full_windows(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> tuple[int, int]:
    """The first and last window positions that lie wholly inside the input (last < first: none)."""
    span = dilation * (kernel - 1)
    first_full = -(-pad // stride)                       # first i with start >= 0
    last_full = (size - 1 - span + pad) // stride         # last i with start + span <= size - 1
    return min(first_full, out), min(last_full, out - 1)


def _taps_inside(start: int, size: int, kernel: int, dilation: int) -> int:
    """How many of the taps ``start + j*dilation`` (``j < kernel``) land in ``[0, size)``."""
    lo = -(start // dilation) if start < 0 else 0               # first tap >= 0
    hi = min(kernel - 1, (size - 1 - start) // dilation)        # last tap <= size - 1
    return max(0, hi - lo + 1)


def _clipped(first_full: int, last_full: int, out: int):
    """Window indices outside ``[first_full, last_full]`` (refused past MAX_CLIPPED_WINDOWS)."""
    if last_full < first_full:
        count = out
        indices = range(out)
    else:
        indices_left, indices_right = range(0, first_full), range(last_full + 1, out)
        count = len(indices_left) + len(indices_right)
        indices = (*indices_left, *indices_right) if count <= MAX_CLIPPED_WINDOWS else ()
    if count > MAX_CLIPPED_WINDOWS:
        from ..errors import SpecError

        raise SpecError(f"{count} pooling windows are clipped by the padding; alexcost counts at most "
                        f"{MAX_CLIPPED_WINDOWS} one by one")
    return indices
