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
    span = dilation * (kernel - 1)
    first_full = -(-pad // stride)                       # first i with start >= 0
    last_full = (size - 1 - span + pad) // stride         # last i with start + span <= size - 1
    first_full, last_full = min(first_full, out), min(last_full, out - 1)
    full = max(0, last_full - first_full + 1)
    total = full * kernel
    for i in _clipped(first_full, last_full, out):
        start = i * stride - pad
        lo = -(start // dilation) if start < 0 else 0               # first tap >= 0
        hi = min(kernel - 1, (size - 1 - start) // dilation)        # last tap <= size - 1
        total += max(0, hi - lo + 1)
    return total


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
