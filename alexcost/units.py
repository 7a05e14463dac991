"""Numbers and units as alexcost writes them: thousands separators, counts in words, bytes; and
JSON text, one item per line.

The one place counts become text; everything before it keeps exact ints."""

from __future__ import annotations


def commas(n: int) -> str:
    """``62369152`` -> ``62,369,152``."""
    return f"{n:,}"


def short(n: int) -> str:
    """A count in words, as the seed writes them: ``3.7 million``, ``1.08 billion``."""
    if n >= 10**9:
        return f"{n / 10**9:.2f} billion"
    if n >= 10**6:
        return f"{n / 10**6:.1f} million"
    if n >= 10**3:
        return f"{n / 10**3:.1f} thousand"
    return str(n)


BYTE_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
"""Memory sizes are written in binary units everywhere (1 KiB = 1,024 bytes), as torch, the CUDA
allocator and GPU spec sheets' memory sizes count them. Rates (GB/s, TFLOP/s) stay decimal."""

BINARY_NOTE = "binary units (1 MiB = 1,048,576 bytes)"
"""What every output that shows memory sizes says once."""


def byte_unit(largest: int) -> tuple[str, int]:
    """The binary unit (``GiB``, ``MiB``, ``KiB`` or ``B``) that ``largest`` bytes read best in."""
    return next(((unit, size) for unit, size in BYTE_UNITS if largest >= size), ("B", 1))


def bytes_text(n: int, digits: int = 1) -> str:
    """Bytes in binary units: ``150994944`` -> ``144.0 MiB``; under 1 KiB, exact: ``999 B``."""
    unit, size = byte_unit(n)
    return f"{n / size:,.{digits}f} {unit}" if size > 1 else f"{n:,} B"


def size_text(shape) -> str:
    """``(96, 55, 55)`` -> ``96 * 55 * 55``; several shapes (a merge's inputs, a split's
    outputs) -> ``58 * 28 * 28, 58 * 28 * 28``."""
    if shape and isinstance(shape[0], tuple):
        return ", ".join(size_text(s) for s in shape)
    return " * ".join(map(str, shape))


def dumps_json(data) -> str:
    """Readable and diff-friendly JSON: one top-level key, or one list item, per line; a list of
    objects (one per network compared) is a list of such objects."""
    import json

    if isinstance(data, list):
        return "[\n" + ",\n".join("  " + dumps_json(d).rstrip().replace("\n", "\n  ") for d in data) + "\n]\n"

    def one(value) -> str:
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "[\n" + ",\n".join("    " + json.dumps(v) for v in value) + "\n  ]"
        return json.dumps(value)
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {one(v)}" for k, v in data.items()) + "\n}\n"
