"""Rendering a NetworkCost: the seed's table, Markdown, a detailed table, CSV and JSON.

Pure functions of the cost record: ints stay ints until the text is made here.
"""

from __future__ import annotations

from math import prod

from ..engine.cost import COUNTS, NetworkCost, percent
from ..layers.base import Layer
from ..units import BINARY_NOTE, byte_unit, bytes_text, commas, dumps_json, short, size_text  # noqa: F401 (dumps_json: for its users)
from .compare import Column, count
from .compare import render as compare
from .table import render_table

FORMATS = ("table", "markdown", "detail", "csv", "json")
"""``table`` and ``markdown``: the seed's layout with formulas; ``detail``: every count
of every layer; ``csv`` and ``json``: exact ints for machines."""

SEED_HEADERS = ("Size / Operation", "Filter", "Depth", "Stride", "Padding",
                "Number of Parameters", "Forward Computation")
SEED_ALIGN = ("left", "left", "right", "right", "right", "left", "left")


def shape_factors(cost: NetworkCost) -> list[tuple[int, ...]]:
    """Each layer's (first) input as the seed writes it: a reshape keeps the factors it flattened."""
    factors, out = {"input": cost.input_shape}, []
    previous, seen = "input", cost.input_shape
    for row in cost.layers:
        if cost.graph:  # (in a chain, each layer reads what the one before it wrote)
            source = row.inputs[0] if row.inputs else previous
            seen = factors.get(source)
            if seen is None:
                shapes = row.input_shapes
                seen = shapes[0] if shapes else ()
        out.append(seen)
        kind = type(row.layer)
        reshaped = not kind.multi_output and kind.arity == 1 and row.weight_params + row.bias_params == 0 \
            and prod(row.output_shape) == prod(row.input_shape)
        previous = row.name
        if not reshaped:
            seen = row.output_shape
        factors[previous] = seen
    return out


def formulas(cost: NetworkCost) -> list[tuple[str, str]]:
    """Per layer, (params formula, forward formula) with their values: ``(11*11*3 + 1)*96 = 34,944``."""
    out, batch = [], cost.batch
    no_params, no_forward = Layer.params_formula, Layer.forward_formula  # the base's: always ""
    for row, factors in zip(cost.layers, shape_factors(cost)):
        layer, x = row.layer, row.input_shape
        kind = type(layer)
        p = layer.params_formula(x, factors) if kind.params_formula is not no_params else ""
        f = layer.forward_formula(x, factors, row.output_shape) if kind.forward_formula is not no_forward else ""
        if f and batch > 1:
            f = f"{batch}*{f}"
        out.append((f"{p} = {row.weight_params + row.bias_params:,}" if p else "",
                    f"{f} = {row.macs + row.bias_adds:,}" if f else ""))
    return out


def split_lines(cost: NetworkCost) -> tuple[str, str]:
    """The seed's "Conv VS FC" cells: parameters, then computation (macs + bias adds)."""
    t, conv, fc = cost.totals, cost.split["conv"], cost.split["fc"]

    def cell(attr):
        a, b, whole = getattr(conv, attr), getattr(fc, attr), getattr(t, attr)
        return f"Conv: {short(a)} ({percent(a, whole):.0f}%), FC: {short(b)} ({percent(b, whole):.0f}%)"
    return cell("params"), cell("forward")


FOLDABLE = ("ReLU", "ReLU6", "Tanh", "Sigmoid", "SiLU", "GELU", "Hardswish", "LeakyReLU")
"""Activations the seed's layout writes into the row of the Conv2d or Linear they follow."""


def readers(cost: NetworkCost) -> dict[str, int]:
    """How many layers read each layer's output (the next one, in a chain)."""
    count: dict[str, int] = {}
    previous = "input"
    for row in cost.layers:
        for source in row.inputs or (previous,):
            base = source.split(".")[0]
            count[base] = count.get(base, 0) + 1
        previous = row.name
    return count


INPUTS_WIDTH = 40
"""A merge whose inputs, joined, are longer than this lists them one per line (a Cat of four
branches would otherwise widen the Input column of every row)."""


def input_lines(inputs) -> list[str]:
    """The Input cell of a graph row: ``["bn2, input"]``, or one line per name when that is too long."""
    joined = ", ".join(inputs or ())
    if len(joined) <= INPUTS_WIDTH:
        return [joined]
    return [f"{name}," for name in inputs[:-1]] + [inputs[-1]]


def seed_rows(cost: NetworkCost) -> list[list[str]]:
    """The seed's layout: size rows between operation rows; an activation that alone reads a
    Conv2d or Linear is folded into its row (``conv1 + ReLU``), as the seed writes it. A graph
    gets an Input column naming what each layer reads (see `input_lines`). A kind
    with no parameter formula but parameters (BatchNorm2d) shows its count."""
    graph = cost.graph
    blank = [""] * (8 if graph else 7)
    rows = [[size_text(cost.input_shape), *blank[1:]]]
    folded_into, read = None, readers(cost) if graph else {}
    for row, (pf, ff) in zip(cost.layers, formulas(cost)):
        layer = row.layer
        kind = type(layer).__name__
        if kind in FOLDABLE and folded_into is not None and (not graph or row.inputs == (folded_into[1],)):
            folded_into[0][0] += f" + {kind}"
            folded_into = None
            continue
        weighted = layer.group in ("conv", "fc")
        label = row.name if weighted else f"{row.name}: {layer.label()}"
        if not pf and row.params:  # a kind without a formula (BatchNorm2d): its count, so the column adds up
            pf = commas(row.params)
        entry = [label, *layer.columns(), pf, ff]
        if graph:
            first, *more = input_lines(row.inputs)
            entry.insert(1, first)
            rows.append(entry)
            rows.extend(["", line, *blank[2:]] for line in more)
        else:
            rows.append(entry)
        alone = not graph or read.get(row.name, 0) == 1
        folded_into = (entry, row.name) if weighted and alone else None
        if weighted or row.output_shape != row.input_shape:
            rows.append([size_text(row.output_shape), *blank[1:]])
    t = cost.totals
    p_split, f_split = split_lines(cost)
    gap = blank[:len(blank) - 3]
    rows.append(["Overall", *gap[1:], "", f"{commas(t.params)} = {short(t.params)}",
                 f"{commas(t.forward)} = {short(t.forward)}"])
    rows.append(["Conv vs FC", *gap[1:], "", p_split, f_split])
    return rows


def footer(cost: NetworkCost) -> str:
    """What the table's columns mean, and the counts it does not show."""
    t = cost.totals
    memory = f"Memory in {BINARY_NOTE}: weights {bytes_text(t.weight_bytes)}"
    if t.buffer_bytes:
        memory += f", buffers {bytes_text(t.buffer_bytes)}"
    memory += f", activations {bytes_text(t.stored_bytes)} summed over tensors, not a peak"
    lines = [
        f"{cost.model}: input {size_text(cost.input_shape)}, batch {cost.batch}, {cost.dtype}",
        f"Forward Computation = MACs + bias adds = {commas(t.macs)} + {commas(t.bias_adds)}",
        f"FLOPs = 2*MACs + bias adds + other ops = {commas(t.flops)} (other ops: {commas(t.other_ops)})",
        memory,
    ]
    if t.unused_params:
        lines.append(f"Parameters no layer reads (in the total, as torch counts them): {commas(t.unused_params)}")
    return "\n".join(lines)


def render_seed(cost: NetworkCost, style: str = "simple") -> str:
    """The seed's table (``simple`` text or ``pipe`` Markdown) followed by `footer`."""
    headers, align = SEED_HEADERS, SEED_ALIGN
    if cost.graph:
        headers, align = (headers[0], "Input", *headers[1:]), (align[0], "left", *align[1:])
    table = render_table(headers, seed_rows(cost), align, style)
    return f"{table}\n\n{footer(cost)}\n"


DETAIL_HEADERS = ("#", "name", "type", "output", "params", "MACs", "bias adds", "other ops",
                  "FLOPs", "output bytes", "weight bytes")
_DETAIL_COUNTS = ("params", "macs", "bias_adds", "other_ops", "flops", "output_bytes", "weight_bytes")


def render_detail(cost: NetworkCost) -> str:
    """Every count of every layer, a total row, and the conv-vs-FC split (a graph adds an inputs
    column, see `input_lines`)."""
    rows = [[str(r.index), r.name, r.type, size_text(r.output_shape),
             *(commas(getattr(r, c)) for c in _DETAIL_COUNTS)] for r in cost.layers]
    rows.append(["", "total", "", "", *(commas(getattr(cost.totals, c)) for c in _DETAIL_COUNTS)])
    headers, align = DETAIL_HEADERS, ("right", "left", "left", "left", *(["right"] * len(_DETAIL_COUNTS)))
    if cost.graph:
        wired = []
        for row, r in zip(rows, (*cost.layers, None)):
            first, *more = input_lines(r.inputs if r else ())
            row.insert(3, first)
            wired.append(row)
            wired.extend(["", "", "", line, *[""] * (len(row) - 4)] for line in more)
        rows = wired
        headers, align = (*headers[:3], "inputs", *headers[3:]), (*align[:3], "left", *align[3:])
    p_split, f_split = split_lines(cost)
    return (f"{render_table(headers, rows, align)}\n\n{footer(cost)}\n"
            f"Conv vs FC, parameters:  {p_split}\nConv vs FC, computation: {f_split}\n")


def _plain(value):
    """Tuples as lists (nested too), so JSON and CSV see plain data."""
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def to_dict(cost: NetworkCost) -> dict:
    """The report JSON contract (DESIGN.md section 5), extended with every count and formula."""
    layers = []
    for row, (pf, ff) in zip(cost.layers, formulas(cost)):
        entry = {"name": row.name, "type": row.type, "group": row.group}
        if cost.graph:
            entry["inputs"] = list(row.inputs)
        if row.per_pass:  # it reads parameters alone: counted once, whatever the batch
            entry["per_pass"] = True
        layers.append({
            **entry, "input_shape": _plain(row.input_shape), "output_shape": _plain(row.output_shape),
            **{c: getattr(row, c) for c in COUNTS},
            "args": {k: _plain(v) for k, v in row.layer.torch_args(row.input_shape).items()},
            "params_formula": pf, "forward_formula": ff,
        })
    counts = lambda t: {c: getattr(t, c) for c in COUNTS}  # noqa: E731
    return {
        "model": cost.model, "input_shape": list(cost.input_shape), "batch": cost.batch,
        "dtype": cost.dtype, "output_shape": _plain(cost.output_shape),
        "layers": layers, "totals": counts(cost.totals),
        "split": {g: counts(t) for g, t in cost.split.items()},
    }


CSV_COLUMNS = ("index", "name", "type", "group", "input_shape", "output_shape", *COUNTS)


def _csv_shape(shape) -> str:
    """``3x227x227``; several shapes joined by ``;``."""
    if shape and isinstance(shape[0], tuple):
        return ";".join(_csv_shape(s) for s in shape)
    return "x".join(map(str, shape))


def render_csv(cost: NetworkCost) -> str:
    """One row per layer (no total row: the columns sum to it, but for stored bytes of
    nothing and parameters no layer reads); shapes as ``3x227x227``. A graph adds an
    ``inputs`` column (names joined by ``;``)."""
    import csv
    import io

    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    columns = CSV_COLUMNS if not cost.graph else (*CSV_COLUMNS[:4], "inputs", *CSV_COLUMNS[4:])
    out.writerow(columns)
    for r in cost.layers:
        lead = [r.index, r.name, r.type, r.group] + ([";".join(r.inputs)] if cost.graph else [])
        out.writerow([*lead, _csv_shape(r.input_shape), _csv_shape(r.output_shape), *(getattr(r, c) for c in COUNTS)])
    return buf.getvalue()


def render(cost: NetworkCost, fmt: str = "table") -> str:
    """``cost`` in one of `FORMATS`."""
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


# -- a few lines, several networks side by side, one page ------------------------------------------------

def _most(cost: NetworkCost, attr: str) -> str:
    """The layer with the most of ``attr`` and its share: ``fc6 60.5%``."""
    whole = getattr(cost.totals, attr)
    if not whole:
        return "-"
    top = max(cost.layers, key=lambda r: getattr(r, attr))
    return f"{top.name} {percent(getattr(top, attr), whole):.1f}%"


def _group_share(cost: NetworkCost, group: str, attr: str) -> float:
    return percent(getattr(cost.split[group], attr), getattr(cost.totals, attr))


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def summary(cost: NetworkCost) -> str:
    """A few lines: what was costed, the totals, the memory, and what dominates."""
    t = cost.totals
    return "\n".join([
        f"{cost.model}: input {_shape(cost.input_shape)}, batch {cost.batch}, {cost.dtype}",
        f"parameters: {commas(t.params)} ({short(t.params)}); conv {_group_share(cost, 'conv', 'params'):.0f}%, "
        f"FC {_group_share(cost, 'fc', 'params'):.0f}%; most: {_most(cost, 'params')}",
        f"MACs: {commas(t.macs)} ({short(t.macs)}); conv {_group_share(cost, 'conv', 'macs'):.0f}%, "
        f"FC {_group_share(cost, 'fc', 'macs'):.0f}%; most: {_most(cost, 'macs')}",
        f"FLOPs = 2*MACs + bias adds + other ops = {commas(t.flops)}",
        f"memory in {BINARY_NOTE}: weights {bytes_text(t.weight_bytes)}, activations {bytes_text(t.stored_bytes)} "
        f"summed over tensors (not a peak)"]) + "\n"


COMPARE = (
    Column("model", "model", lambda c: c.model, align="left"),
    Column("input", "input_shape", lambda c: _shape(c.input_shape), align="left"),
    Column("batch", "batch", lambda c: c.batch, commas),
    Column("dtype", "dtype", lambda c: c.dtype, align="left"),
    count("parameters", "params", lambda c: c.totals.params),
    count("MACs", "macs", lambda c: c.totals.macs),
    count("FLOPs", "flops", lambda c: c.totals.flops),
    Column("weights", "weight_bytes", lambda c: c.totals.weight_bytes, bytes_text),
    Column("activations (sum)", "activation_bytes", lambda c: c.totals.stored_bytes, bytes_text),
    Column("conv % of MACs", "conv_mac_share", lambda c: round(_group_share(c, "conv", "macs"), 1)),
    Column("FC % of params", "fc_param_share", lambda c: round(_group_share(c, "fc", "params"), 1)),
    Column("most MACs", "most_macs", lambda c: _most(c, "macs"), align="left"),
)
"""The columns of several reports side by side."""

COMPARE_NOTES = (f"Memory in {BINARY_NOTE}; activations: every tensor once, summed (not a peak). "
                 f"FLOPs = 2*MACs + bias adds + other ops.",)


def html_page(costs, summary_only: bool = False) -> str:
    """One page: the table (one network: its summary, the seed's table and footer; several: side by
    side) and each network's shares and memory figures."""
    from . import html
    from .plot import memory_figure, shares_figure

    figures = []
    for cost in costs:
        figures += [html.figure(shares_figure(cost), f"{cost.model}: shares of parameters and MACs per layer"),
                    html.figure(memory_figure(cost), f"{cost.model}: output size and weight bytes per layer")]
    title = "alexcost report: " + ", ".join(dict.fromkeys(c.model for c in costs))
    if len(costs) > 1:
        return compare(COMPARE, costs, "html", COMPARE_NOTES, title, figures)
    cost = costs[0]
    parts = [html.lines(summary(cost))]
    if not summary_only:
        headers, align = SEED_HEADERS, SEED_ALIGN
        if cost.graph:
            headers, align = (headers[0], "Input", *headers[1:]), (align[0], "left", *align[1:])
        parts += [html.table(headers, seed_rows(cost), align), html.lines(footer(cost))]
    return html.page(title, parts + figures)


def render_many(costs, fmt: str = "table", summary_only: bool = False) -> str:
    """One cost as `render` gives it (or its `summary`); several side by side (JSON: a list)."""
    if fmt == "html":
        return html_page(costs, summary_only)
    if fmt == "json":
        return dumps_json(to_dict(costs[0]) if len(costs) == 1 else [to_dict(c) for c in costs])
    if len(costs) > 1:
        return compare(COMPARE, costs, fmt, COMPARE_NOTES)
    if summary_only:
        return summary(costs[0])
    return render(costs[0], fmt)
