"""Checks for layer arguments, in torch.nn's vocabulary. Each returns the normalised value."""

from __future__ import annotations

import math

from .errors import SpecError

INT64_MAX = 2**63 - 1  # torch indexes tensors with int64: nothing larger can be a size


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(value, what: str, minimum: int = 1) -> int:
    """An int ``>= minimum`` that fits torch's int64 (bools and floats refused)."""
    if not _is_int(value):
        raise SpecError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise SpecError(f"{what} must be {bound}, got {value}")
    if value > INT64_MAX:
        raise SpecError(f"{what}={value} is larger than torch's int64 limit {INT64_MAX}")
    return value


def pair(value, what: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, as torch's ``_pair``: returns ``(h, w)``."""
    if _is_int(value):
        value = (value, value)
    elif not isinstance(value, (tuple, list)) or len(value) != 2:
        raise SpecError(f"{what} must be an integer or a pair of integers, got {value!r}")
    return (integer(value[0], what, minimum), integer(value[1], what, minimum))


def optional_pair(value, what: str, minimum: int = 1) -> tuple[int | None, int | None]:
    """Like :func:`pair`, but an entry may be ``None`` (AdaptiveAvgPool2d's output_size)."""
    if value is None or _is_int(value):
        value = (value, value)
    elif not isinstance(value, (tuple, list)) or len(value) != 2:
        raise SpecError(f"{what} must be an integer, None or a pair of them, got {value!r}")
    return tuple(None if v is None else integer(v, what, minimum) for v in value)


def real(value, what: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number (int or float), optionally within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{what} must be finite, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SpecError(f"{what} must be between {low} and {high}, got {value!r}")
    return value


def flag(value, what: str) -> bool:
    """A bool (``true``/``false`` in JSON and TOML)."""
    if not isinstance(value, bool):
        raise SpecError(f"{what} must be true or false, got {value!r}")
    return value


def choice(value, what: str, options) -> str:
    """One of a fixed set of strings."""
    if not isinstance(value, str) or value not in options:
        shown = ", ".join(repr(o) for o in options)
        raise SpecError(f"{what} must be one of {shown}, got {value!r}")
    return value


def dim(value, what: str, rank: int) -> int:
    """A dimension index of a batched tensor of ``rank`` dims, normalised to ``0..rank-1``."""
    if not _is_int(value):
        raise SpecError(f"{what} must be an integer, got {value!r}")
    if not -rank <= value < rank:
        raise SpecError(f"{what}={value} is out of range: expected a dimension in [{-rank}, {rank - 1}]")
    return value % rank


def shape(value, what: str = "input_shape") -> tuple[int, ...]:
    """A per-sample shape: a non-empty list of positive ints."""
    if not isinstance(value, (tuple, list)) or not value:
        raise SpecError(f"{what} must be a non-empty list of positive integers, got {value!r}")
    return tuple(integer(v, what) for v in value)


def name(value) -> str | None:
    """A layer name: ``None`` (a default is given) or a non-empty string without dots."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"name must be a non-empty string, got {value!r}")
    if "." in value:  # torch.nn module names may not contain dots
        raise SpecError(f"name may not contain '.', got {value!r}")
    if len(value) > 200:
        raise SpecError(f"name is {len(value)} characters long; at most 200 are allowed")
    return value
