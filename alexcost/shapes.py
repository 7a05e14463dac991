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
