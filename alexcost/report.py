"""Rendering a NetworkCost: the seed's table, Markdown, a detailed table, CSV and JSON.

Pure functions of the cost record: ints stay ints until the text is made here.
"""

from __future__ import annotations

from math import prod

from .cost import COUNTS, NetworkCost, percent
from .textable import render_table

FORMATS = ("table", "markdown", "detail", "csv", "json")
"""``table`` and ``markdown``: the seed's layout with formulas; ``detail``: every count
of every layer; ``csv`` and ``json``: exact ints for machines."""

SEED_HEADERS = ("Size / Operation", "Filter", "Depth", "Stride", "Padding",
                "Number of Parameters", "Forward Computation")
SEED_ALIGN = ("left", "left", "right", "right", "right", "left", "left")


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


BYTE_UNITS = (("GB", 10**9), ("MB", 10**6), ("kB", 10**3))


def byte_unit(largest: int) -> tuple[str, int]:
    """The decimal unit (``GB``, ``MB``, ``kB`` or ``B``) that ``largest`` bytes read best in."""
    return next(((unit, size) for unit, size in BYTE_UNITS if largest >= size), ("B", 1))


def bytes_text(n: int, digits: int = 1) -> str:
    """Bytes in decimal units, as memory is usually quoted: ``150994944`` -> ``151.0 MB``."""
    unit, size = byte_unit(n)
    return f"{n / size:,.{digits}f} {unit}" if size > 1 else f"{n:,} B"


def size_text(shape) -> str:
    """``(96, 55, 55)`` -> ``96 * 55 * 55``."""
    return " * ".join(str(d) for d in shape)


def shape_factors(cost: NetworkCost) -> list[tuple[int, ...]]:
    """Each layer's input as the seed writes it: a reshape keeps the factors it flattened."""
    factors, out = cost.input_shape, []
    for row in cost.layers:
        out.append(factors)
        reshaped = prod(row.output_shape) == prod(row.input_shape) and row.params == 0
        if not reshaped:
            factors = row.output_shape
    return out


def formulas(cost: NetworkCost) -> list[tuple[str, str]]:
    """Per layer, (params formula, forward formula) with their values: ``(11*11*3 + 1)*96 = 34,944``."""
    out = []
    for row, factors in zip(cost.layers, shape_factors(cost)):
        p = row.layer.params_formula(row.input_shape, factors)
        f = row.layer.forward_formula(row.input_shape, factors, row.output_shape)
        if f and cost.batch > 1:
            f = f"{cost.batch}*{f}"
        out.append((f"{p} = {commas(row.params)}" if p else "", f"{f} = {commas(row.forward)}" if f else ""))
    return out


def split_lines(cost: NetworkCost) -> tuple[str, str]:
    """The seed's "Conv VS FC" cells: parameters, then computation (macs + bias adds)."""
    t, conv, fc = cost.totals, cost.split["conv"], cost.split["fc"]

    def cell(attr):
        a, b, whole = getattr(conv, attr), getattr(fc, attr), getattr(t, attr)
        return f"Conv: {short(a)} ({percent(a, whole):.0f}%), FC: {short(b)} ({percent(b, whole):.0f}%)"
    return cell("params"), cell("forward")


def seed_rows(cost: NetworkCost) -> list[list[str]]:
    """The seed's layout: size rows between operation rows; an activation right after a
    Conv2d or Linear is folded into its row (``conv1 + ReLU``), as the seed writes it."""
    rows = [[size_text(cost.input_shape), "", "", "", "", "", ""]]
    folded_into = None
    for row, (pf, ff) in zip(cost.layers, formulas(cost)):
        layer = row.layer
        foldable = type(layer).__name__ in ("ReLU", "Tanh", "Sigmoid")
        if foldable and folded_into is not None:
            folded_into[0] += f" + {type(layer).__name__}"
            folded_into = None
            continue
        label = row.name if layer.group in ("conv", "fc") else f"{row.name}: {layer.label()}"
        entry = [label, *layer.columns(), pf, ff]
        rows.append(entry)
        folded_into = entry if layer.group in ("conv", "fc") else None
        if layer.group in ("conv", "fc") or row.output_shape != row.input_shape:
            rows.append([size_text(row.output_shape), "", "", "", "", "", ""])
    t = cost.totals
    p_split, f_split = split_lines(cost)
    rows.append(["Overall", "", "", "", "", f"{commas(t.params)} = {short(t.params)}",
                 f"{commas(t.forward)} = {short(t.forward)}"])
    rows.append(["Conv vs FC", "", "", "", "", p_split, f_split])
    return rows


def footer(cost: NetworkCost) -> str:
    """What the table's columns mean, and the counts it does not show."""
    t = cost.totals
    return "\n".join([
        f"{cost.model}: input {size_text(cost.input_shape)}, batch {cost.batch}, {cost.dtype}",
        f"Forward Computation = MACs + bias adds = {commas(t.macs)} + {commas(t.bias_adds)}",
        f"FLOPs = 2*MACs + bias adds + other ops = {commas(t.flops)} (other ops: {commas(t.other_ops)})",
        f"Memory: weights {commas(t.weight_bytes)} B, layer outputs {commas(t.output_bytes)} B",
    ])


def render_seed(cost: NetworkCost, style: str = "simple") -> str:
    """The seed's table (``simple`` text or ``pipe`` Markdown) followed by :func:`footer`."""
    table = render_table(SEED_HEADERS, seed_rows(cost), SEED_ALIGN, style)
    return f"{table}\n\n{footer(cost)}\n"


DETAIL_HEADERS = ("#", "name", "type", "output", "params", "MACs", "bias adds", "other ops",
                  "FLOPs", "output bytes", "weight bytes")
_DETAIL_COUNTS = ("params", "macs", "bias_adds", "other_ops", "flops", "output_bytes", "weight_bytes")


def render_detail(cost: NetworkCost) -> str:
    """Every count of every layer, a total row, and the conv-vs-FC split."""
    rows = [[str(r.index), r.name, r.type, size_text(r.output_shape),
             *(commas(getattr(r, c)) for c in _DETAIL_COUNTS)] for r in cost.layers]
    rows.append(["", "total", "", "", *(commas(getattr(cost.totals, c)) for c in _DETAIL_COUNTS)])
    align = ("right", "left", "left", "left", *(["right"] * len(_DETAIL_COUNTS)))
    p_split, f_split = split_lines(cost)
    return (f"{render_table(DETAIL_HEADERS, rows, align)}\n\n{footer(cost)}\n"
            f"Conv vs FC, parameters:  {p_split}\nConv vs FC, computation: {f_split}\n")


def _plain(value):
    """Tuples as lists, so JSON and CSV see plain data."""
    return list(value) if isinstance(value, tuple) else value


def to_dict(cost: NetworkCost) -> dict:
    """The report JSON contract (DESIGN.md section 5), extended with every count and formula."""
    layers = []
    for row, (pf, ff) in zip(cost.layers, formulas(cost)):
        layers.append({
            "name": row.name, "type": row.type, "group": row.group,
            "input_shape": list(row.input_shape), "output_shape": list(row.output_shape),
            **{c: getattr(row, c) for c in COUNTS},
            "args": {k: _plain(v) for k, v in row.layer.torch_args(row.input_shape).items()},
            "params_formula": pf, "forward_formula": ff,
        })
    counts = lambda t: {c: getattr(t, c) for c in COUNTS}  # noqa: E731
    return {
        "model": cost.model, "input_shape": list(cost.input_shape), "batch": cost.batch,
        "dtype": cost.dtype, "output_shape": list(cost.output_shape),
        "layers": layers, "totals": counts(cost.totals),
        "split": {g: counts(t) for g, t in cost.split.items()},
    }


CSV_COLUMNS = ("index", "name", "type", "group", "input_shape", "output_shape", *COUNTS)


def render_csv(cost: NetworkCost) -> str:
    """One row per layer (no total row: the columns sum to it); shapes as ``3x227x227``."""
    import csv
    import io

    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for r in cost.layers:
        out.writerow([r.index, r.name, r.type, r.group, "x".join(map(str, r.input_shape)),
                      "x".join(map(str, r.output_shape)), *(getattr(r, c) for c in COUNTS)])
    return buf.getvalue()


def dumps_json(data: dict) -> str:
    """Readable and diff-friendly JSON: one top-level key, or one list item, per line."""
    import json

    def one(value) -> str:
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "[\n" + ",\n".join("    " + json.dumps(v) for v in value) + "\n  ]"
        return json.dumps(value)
    return "{\n" + ",\n".join(f"  {json.dumps(k)}: {one(v)}" for k, v in data.items()) + "\n}\n"


def render(cost: NetworkCost, fmt: str = "table") -> str:
    """``cost`` in one of :data:`FORMATS`."""
    if fmt == "table":
        return render_seed(cost, "simple")
    if fmt == "markdown":
        return render_seed(cost, "pipe")
    if fmt == "detail":
        return render_detail(cost)
    if fmt == "csv":
        return render_csv(cost)
    if fmt == "json":
        return dumps_json(to_dict(cost))
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
