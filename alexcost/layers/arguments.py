"""Checks for layer arguments, in torch.nn's vocabulary. Each returns the normalised value."""

from __future__ import annotations

import math
import sys
from math import prod

from ..errors import SpecError

INT64_MAX = 2**63 - 1  # torch indexes tensors with int64: nothing larger can be a size
MAX_RANK = 64
"""Most dimensions a per-sample shape may have: keeps every report linear in the spec's size."""


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages: one short line
    whatever a spec holds (a huge list, a megabyte string, a 5,000-digit integer)."""
    import reprlib

    class _Short(reprlib.Repr):
        def repr_int(self, x, level):
            return f"<{x.bit_length()}-bit integer>" if x.bit_length() > 128 else repr(x)

    short = _Short()
    short.maxstring = short.maxother = limit
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 6, 6, 4
    text = short.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value):
    """numpy's integer scalars as Python ints (torch takes them); anything else unchanged."""
    if type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", None) in ("i", "u"):
        return int(value)
    return value


def integer(value, what: str, minimum: int = 1) -> int:
    """An int ``>= minimum`` that fits torch's int64 (bools and floats refused; numpy ints taken)."""
    if type(value) is int and minimum <= value <= INT64_MAX:  # the common case, checked fast
        return value
    value = _as_int(value)
    if not _is_int(value):
        raise SpecError(f"{what} must be an integer, got {shown(value)}")
    if value < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise SpecError(f"{what} must be {bound}, got {shown(value)}")
    if value > INT64_MAX:
        raise SpecError(f"{what}={shown(value)} is larger than torch's int64 limit {INT64_MAX}")
    return value


def pair(value, what: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, as torch's ``_pair``: returns ``(h, w)``."""
    kind = type(value)
    if kind is int and minimum <= value <= INT64_MAX:  # the common cases, checked fast
        return (value, value)
    if (kind is tuple or kind is list) and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and minimum <= value[0] <= INT64_MAX and minimum <= value[1] <= INT64_MAX:
        return (value[0], value[1])
    value = _as_int(value)
    if _is_int(value):
        value = (value, value)
    elif not isinstance(value, (tuple, list)) or len(value) != 2:
        raise SpecError(f"{what} must be an integer or a pair of integers, got {shown(value)}")
    return (integer(value[0], what, minimum), integer(value[1], what, minimum))


_HOW_MANY = {1: "a list of one integer", 3: "three integers"}


def ntuple(value, what: str, n: int, minimum: int = 1) -> tuple[int, ...]:
    """An int or ``n`` ints, as torch's ``_ntuple(n)`` (``n = 2``: `pair`): returns ``n`` ints."""
    if n == 2:
        return pair(value, what, minimum)
    value = _as_int(value)
    if _is_int(value):
        value = (value,) * n
    elif not isinstance(value, (tuple, list)) or len(value) != n:
        raise SpecError(f"{what} must be an integer or {_HOW_MANY.get(n, f'{n} integers')}, got {shown(value)}")
    return tuple(integer(v, what, minimum) for v in value)


def optional_ntuple(value, what: str, n: int) -> tuple[int | None, ...]:
    """Like `ntuple`, but an entry may be ``None`` (adaptive pooling's output_size keeps that size)."""
    if n == 2:
        return optional_pair(value, what)
    value = _as_int(value)
    if value is None or _is_int(value):
        value = (value,) * n
    elif not isinstance(value, (tuple, list)) or len(value) != n:
        raise SpecError(f"{what} must be an integer, None or a list of {n} of them, got {shown(value)}")
    return tuple(None if v is None else integer(v, what) for v in value)


def optional_pair(value, what: str, minimum: int = 1) -> tuple[int | None, int | None]:
    """Like `pair`, but an entry may be ``None`` (AdaptiveAvgPool2d's output_size)."""
    value = _as_int(value)
    if value is None or _is_int(value):
        value = (value, value)
    elif not isinstance(value, (tuple, list)) or len(value) != 2:
        raise SpecError(f"{what} must be an integer, None or a pair of them, got {shown(value)}")
    return tuple(None if v is None else integer(v, what, minimum) for v in value)


_FLOAT_MAX_INT = int(sys.float_info.max)


def real(value, what: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number (int or float; numpy's too), optionally within ``[low, high]``."""
    value = _as_real(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{what} must be finite, got {value!r}")
    if isinstance(value, int) and abs(value) > _FLOAT_MAX_INT:  # float(value) would overflow
        raise SpecError(f"{what} is too large to be a float, got {shown(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SpecError(f"{what} must be between {low} and {high}, got {shown(value)}")
    return value


def _as_real(value):
    """numpy's integer and float scalars as Python's; anything else unchanged."""
    if type(value).__module__ == "numpy":
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if kind in ("i", "u"):
            return int(value)
        if kind == "f":
            return float(value)
    return value


def flag(value, what: str) -> bool:
    """A bool (``true``/``false`` in JSON and TOML; numpy's bool too)."""
    if value is True or value is False:
        return value
    if type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", "") == "b":
        value = bool(value)
    if not isinstance(value, bool):
        raise SpecError(f"{what} must be true or false, got {shown(value)}")
    return value


def choice(value, what: str, options) -> str:
    """One of a fixed set of strings."""
    if not isinstance(value, str) or value not in options:
        options_text = ", ".join(repr(o) for o in options)
        raise SpecError(f"{what} must be one of {options_text}, got {shown(value)}")
    return value


def dim(value, what: str, rank: int) -> int:
    """A dimension index of a batched tensor of ``rank`` dims, normalised to ``0..rank-1``."""
    value = _as_int(value)
    if not _is_int(value):
        raise SpecError(f"{what} must be an integer, got {shown(value)}")
    if not -rank <= value < rank:
        raise SpecError(f"{what}={shown(value)} is out of range: expected a dimension in [{-rank}, {rank - 1}]")
    return value % rank


def shape(value, what: str = "input_shape") -> tuple[int, ...]:
    """A per-sample shape: a non-empty list of at most `MAX_RANK` positive ints whose
    product (the elements per sample) fits torch's int64, as any tensor's must."""
    if (value.__class__ is tuple or value.__class__ is list) and 0 < len(value) <= MAX_RANK \
            and set(map(type, value)) == {int} and min(value) >= 1 and prod(value) <= INT64_MAX:  # the common case
        return tuple(value)
    if not isinstance(value, (tuple, list)) or not value:
        raise SpecError(f"{what} must be a non-empty list of positive integers, got {shown(value)}")
    if len(value) > MAX_RANK:
        raise SpecError(f"{what} has {len(value)} dimensions; at most {MAX_RANK} are allowed")
    dims = tuple(integer(v, what) for v in value)
    if prod(dims) > INT64_MAX:
        raise SpecError(f"{what} {shown(list(dims), 200)} holds more than {INT64_MAX} elements per sample "
                        f"(torch's int64 limit)")
    return dims


def text(value: str, what: str) -> str:
    """A string that can be printed and written as UTF-8: no control characters, no lone
    surrogates (JSON's ``"\\ud800"`` escapes make those)."""
    if not value.isprintable():  # fast path above; separators and format chars are fine
        import unicodedata

        bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs")), None)
        if bad is not None:
            raise SpecError(f"{what} may not contain control characters or lone surrogates, "
                            f"got {ascii(bad)} in {shown(value)}")
    return value


def name(value) -> str | None:
    """A layer name: ``None`` (a default is given) or a non-empty printable string without dots."""
    if value is None:
        return None
    if type(value) is str and 0 < len(value) <= 200 and value.isprintable() and "." not in value \
            and not value.isspace():  # the common case, checked fast
        return value
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"name must be a non-empty string, got {shown(value)}")
    text(value, "name")
    if "." in value:  # torch.nn module names may not contain dots
        raise SpecError(f"name may not contain '.', got {shown(value)}")
    if len(value) > 200:
        raise SpecError(f"name is {len(value)} characters long; at most 200 are allowed")
    return value


def references(value) -> tuple[str, ...]:
    """A layer's ``inputs``: node names (``"input"`` is the network input; ``"n.k"`` is output
    ``k`` of a multi-output node ``n``). One name may stand alone."""
    if isinstance(value, str):
        value = (value,)
    if (value.__class__ is list or value.__class__ is tuple) and 0 < len(value) <= 4096 and all(
            ref.__class__ is str and 0 < len(ref) <= 210 and "." not in ref and ref.isprintable()
            and not ref.isspace() for ref in value):
        return tuple(value)  # the common case (plain names), checked fast: the checks below pass them
    if not isinstance(value, (tuple, list)) or not value:
        raise SpecError(f"inputs must be a non-empty list of layer names, got {shown(value)}")
    if len(value) > 4096:
        raise SpecError(f"inputs lists {len(value)} names; at most 4096 are allowed")
    out = []
    for ref in value:
        if not isinstance(ref, str) or not ref.strip():
            raise SpecError(f"inputs must name layers, got {shown(ref)}")
        base, dot, index = ref.partition(".")
        if dot and not (index.isdigit() and index.isascii() and (index == "0" or not index.startswith("0"))):
            raise SpecError(f"inputs: {shown(ref)} is not a layer name or 'name.k' (output k of a layer)")
        if len(ref) > 210:
            raise SpecError(f"inputs: a name is {len(ref)} characters long; at most 200 are allowed")
        out.append(text(ref, "inputs"))
    return tuple(out)


def dim_index(value, what: str) -> int:
    """An integer dimension index (range checked later, against the input's rank)."""
    value = _as_int(value)
    if not _is_int(value):
        raise SpecError(f"{what} must be an integer, got {shown(value)}")
    if abs(value) > MAX_RANK + 1:
        raise SpecError(f"{what}={shown(value)} is out of range: a sample has at most {MAX_RANK} dimensions")
    return value


def dims(value, what: str) -> tuple[int, ...]:
    """One dimension index or a list of them."""
    value = _as_int(value)
    if _is_int(value):
        return (dim_index(value, what),)
    if not isinstance(value, (tuple, list)) or not value or len(value) > MAX_RANK + 1:
        raise SpecError(f"{what} must be an integer or a non-empty list of integers, got {shown(value)}")
    return tuple(dim_index(v, what) for v in value)
