"""Figures of where a network's parameters, MACs, time and memory go (matplotlib, an optional extra).

Two figures per network:

* **shares** — per layer, its share of the parameters, of the MACs and (given the
  JSON that ``alexcost time`` writes) of the time at each batch size, plus the
  conv-vs-FC split of each of those.
* **memory** — per layer, the size of its output for one sample (the seed table's
  "Size" column) and the bytes its weights take.

Every bar carries its value. A layer with no parameters, no MACs, no bias adds and at
most one other operation per output element (ReLU, Tanh, Sigmoid, Dropout, Flatten, a
residual Add, Cat), and a BatchNorm2d after a convolution, share the row of the layer
they read (in a chain, the layer before), as the seed table writes "conv1 + ReLU"; their
time, when timed, is added to that row. When that still leaves more than ``MAX_ROWS``
rows (ResNet-50, GoogLeNet, MobileNetV2), the rows become blocks of layers whose names
share a prefix (``layer2_1``, ``inception4a``, ``features_7``). ``all_layers=True``
(``alexcost plot --all-layers``) gives every layer its own row. The conv-vs-FC split is
always taken layer by layer.

A time share is a layer's median time over the sum of every layer's median time at
that batch size, so the shares of one batch add up to 100%. Everything here except
the drawing is plain data and imports nothing heavy; matplotlib is imported only
when a figure is drawn. Output is byte-for-byte deterministic for the same input.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from math import prod

from ..engine.cost import DTYPE_BYTES, NetworkCost, percent
from ..errors import SpecError
from ..engine.network import Network
from ..units import byte_unit, bytes_text, commas

EXTRA_HINT = "pip install 'alexcost[plot]'"
FORMATS = ("png", "svg")
DPI = 100
WIDTH_IN = 8.0
"""Every figure is ``WIDTH_IN`` inches wide, about the width of a docs page's text: shown there, its
text stays at its size. PNGs are drawn at ``DPI`` pixels per inch."""

MAX_LAYERS = 300
"""With ``all_layers``, a figure has one row per layer; past this many the image would be huge."""

MEMORY_SUFFIX = "-memory"
"""``--out alexnet.png`` writes the shares to ``alexnet.png`` and the memory figure to ``alexnet-memory.png``."""

# Paul Tol's colour-blind-safe palettes: "muted" for the share series, "vibrant" for the split.
SERIES_COLOURS = ("#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#AA4499", "#44AA99", "#999933")
GROUP_COLOURS = {"conv": "#EE7733", "fc": "#0077BB", "other": "#BBBBBB"}


class PlotExtraMissing(ImportError):
    """matplotlib is not installed: the ``plot`` extra is needed."""


# -- timings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchTiming:
    """One batch size of an ``alexcost time`` run: each layer's median in ms, by name."""

    batch: int
    layer_ms: tuple[tuple[str, float], ...]
    network_ms: float | None = None

    @property
    def total_ms(self) -> float:
        """The sum of the per-layer medians (the denominator of a time share)."""
        return sum(ms for _, ms in self.layer_ms)


@dataclass(frozen=True)
class Timings:
    """What the plot needs from an ``alexcost time`` JSON file; failed batches are listed apart."""

    model: str | None
    device: str | None
    dtype: str | None
    batches: tuple[BatchTiming, ...]
    failed: tuple[tuple[int, str], ...] = ()
    source: str = "timings"


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise SpecError(f"{what} must be a non-negative number, got {value!r:.40}")
    return float(value)


def timings_from_dict(data, source: str = "timings") -> Timings:
    """Parse the ``alexcost time`` JSON (tolerant of extra keys and of batches recorded as errors)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a JSON object from 'alexcost time', got {type(data).__name__}")
    runs = data.get("batches", data.get("results"))
    if not isinstance(runs, list):
        raise SpecError(f"{source}: no 'batches' list; is this a file written by 'alexcost time --out'?")
    batches, failed = [], []
    for i, run in enumerate(runs):
        where = f"{source}: batches[{i}]"
        if not isinstance(run, dict) or isinstance(run.get("batch"), bool) or not isinstance(run.get("batch"), int):
            raise SpecError(f"{where} needs an integer 'batch'")
        if run.get("error") is not None:
            failed.append((run["batch"], str(run["error"])))
            continue
        layers = run.get("layers")
        if not isinstance(layers, list):
            raise SpecError(f"{where} (batch {run['batch']}) has neither 'layers' nor 'error'")
        pairs = []
        for j, row in enumerate(layers):
            if not isinstance(row, dict) or not isinstance(row.get("name"), str):
                raise SpecError(f"{where}.layers[{j}] needs a 'name'")
            pairs.append((row["name"], _number(row.get("median_ms"), f"{where}.layers[{j}] ({row['name']}) median_ms")))
        network_ms = run.get("network_ms")
        batches.append(BatchTiming(run["batch"], tuple(pairs),
                                   None if network_ms is None else _number(network_ms, f"{where} network_ms")))
    device = data.get("device")
    if isinstance(device, dict):  # {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", ...}
        kind = device.get("type")
        device = " ".join(str(part) for part in (device.get("name"), f"({kind.upper()})" if isinstance(kind, str) else None)
                          if part) or None
    dtype = data.get("dtype")
    model = data.get("model")
    return Timings(model if isinstance(model, str) else None, device if isinstance(device, str) else None,
                   dtype if isinstance(dtype, str) else None, tuple(batches), tuple(failed), source)


def read_timings(path: str | os.PathLike) -> Timings:
    """Read the JSON that ``alexcost time --out FILE.json`` wrote."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as err:
        raise SpecError(f"cannot read timings file {source!r}: {err.strerror or err}") from None
    except ValueError as err:
        raise SpecError(f"timings file {source!r} is not valid JSON: {err}") from None
    return timings_from_dict(data, source)


def check_timings(network: Network, timings: Timings) -> None:
    """Refuse timings recorded for another network (by its name, or by its layers' names)."""
    names, source = set(network.names), timings.source
    if timings.model is not None and timings.model != network.name:
        raise SpecError(f"{source} was recorded for model {timings.model!r}, not {network.name!r}; "
                        f"pass the --model or --spec that was timed")
    for run in timings.batches:
        unknown = [name for name, _ in run.layer_ms if name not in names]
        if unknown:
            recorded = f" (recorded for model {timings.model!r})" if timings.model else ""
            raise SpecError(f"{source}{recorded}: layer {unknown[0]!r} at batch {run.batch} is not a layer of "
                            f"{network.name!r}; pass the --model or --spec that was timed")
    if timings.failed and not timings.batches:
        batch, error = timings.failed[0]
        raise SpecError(f"{source}: no batch was timed successfully (batch {batch}: {error})")


# -- rows: which layers get a row of their own ------------------------------------------------------

def folds(row) -> bool:
    """Whether a layer's row folds into the row of the layer it reads: it has no parameters, no MACs
    and no bias adds, and at most two other operations per output element (ReLU, ReLU6, Tanh,
    Sigmoid, SiLU, Dropout, Flatten, a residual Add, Cat: the "+ ReLU" of the seed table's
    "conv1 + ReLU"). Pooling (a window per output), LRN and Softmax (three or more operations
    per element) keep a row of their own. A BatchNorm2d that reads a Conv2d folds too (see
    `layer_groups`)."""
    return row.params == 0 and row.macs == 0 and row.bias_adds == 0 and row.other_ops <= 2 * row.output_elements


def layer_groups(cost: NetworkCost, all_layers: bool = False) -> list[tuple]:
    """The layers in drawing order, one tuple per row: a layer, then the layers folded into it.

    A layer that `folds`, or a BatchNorm2d that reads a Conv2d (at inference it is a scale and a
    shift of the convolution's output), joins the row of the layer it reads: in a chain the layer
    before it; in a graph the layer named in its ``inputs``, and for a merge (Add, Cat) the input
    computed last. A layer that reads only the network input starts a row. ``all_layers`` gives
    every layer a row.
    """
    groups: list[list] = []
    where: dict[str, int] = {}  # layer name -> its row
    index = {row.name: row for row in cost.layers}
    previous = None
    for row in cost.layers:
        if row.inputs is None:
            source = previous
        else:
            names = [ref.split(".")[0] for ref in row.inputs]
            source = max(names, key=lambda n: index[n].index if n in index else -1, default=None)
        target = where.get(source)
        joins = target is not None and not all_layers and (
            folds(row) or (row.type == "BatchNorm2d" and index[source].type == "Conv2d"))
        if joins:
            groups[target].append(row)
        else:
            target = len(groups)
            groups.append([row])
        where[row.name] = target
        previous = row.name
    return [tuple(g) for g in groups]


LABEL_CHARS = 30
"""A row label longer than this goes on to a second line (a long label would squeeze the bars)."""

MAX_ROWS = 40
"""Past this many rows (after folding), rows become blocks: see `plot_rows`."""


def group_label(group) -> str:
    """``conv1 (Conv2d)``, or ``conv1 (Conv2d) + ReLU`` with the kinds folded into it; a label that
    would pass ``LABEL_CHARS`` continues on a new line: ``pool5 (MaxPool2d)\n+ Flatten + Dropout``."""
    head = group[0]
    lines = [f"{head.name} ({head.type})"]
    for row in group[1:]:
        piece = f"+ {row.type}"
        if len(lines[-1]) + 1 + len(piece) > LABEL_CHARS:
            lines.append(piece)
        else:
            lines[-1] += " " + piece
    return "\n".join(lines)


@dataclass(frozen=True)
class PlotRow:
    """One row of a figure: its label, and the layers whose counts (and times) it adds up."""

    label: str
    layers: tuple
    block: str | None = None
    """The name prefix the row stands for, when it is a block of rows (None: one layer and its folds)."""


def _prefix(name: str, depth: int) -> str:
    return "_".join(name.split("_")[:depth])


def _merge(groups: list[tuple], key) -> list[list[tuple]]:
    """Consecutive groups with equal ``key(group)`` as runs."""
    runs: list[list[tuple]] = []
    for g in groups:
        if runs and key(runs[-1][-1]) == key(g):
            runs[-1].append(g)
        else:
            runs.append([g])
    return runs


def blocks(groups: list[tuple], max_rows: int = MAX_ROWS) -> list[PlotRow]:
    """At most ``max_rows`` rows made of consecutive groups whose first layers' names share their
    first ``depth`` "_"-separated parts: the largest ``depth`` that fits, or a smaller one giving
    as many rows (ResNet-50: ``layer2_1``, GoogLeNet: ``inception4a``, MobileNetV2:
    ``features_7``, torchvision's block modules). A block is labelled with that prefix and its
    layer count. If even one part leaves too many rows, runs of consecutive groups of equal
    length, labelled by their first and last layers."""
    deepest = max(len(g[0].name.split("_")) for g in groups)
    chosen = None
    for depth in range(deepest, 0, -1):
        runs = _merge(groups, lambda g, d=depth: _prefix(g[0].name, d))
        if chosen is not None and len(runs) != len(chosen[1]):
            break
        if len(runs) <= max_rows:
            chosen = (depth, runs)
    if chosen is None:
        size = -(-len(groups) // max_rows)
        return [_block_row(groups[i:i + size], None) for i in range(0, len(groups), size)]
    depth, runs = chosen
    return [_block_row(run, _prefix(run[0][0].name, depth)) for run in runs]


def _block_row(run: list[tuple], name: str | None) -> PlotRow:
    if len(run) == 1:
        return PlotRow(group_label(run[0]), run[0])
    layers = tuple(row for g in run for row in g)
    name = name or f"{layers[0].name} to {layers[-1].name}"
    return PlotRow(f"{name} ({len(layers)} layers)", layers, name)


def plot_rows(cost: NetworkCost, all_layers: bool = False, max_rows: int = MAX_ROWS) -> list[PlotRow]:
    """The rows a figure draws: each layer with the layers folded into it (`layer_groups`); when that
    leaves more than ``max_rows`` rows (ResNet-50: 56), blocks of layers named alike (`blocks`;
    ResNet-50: one row per bottleneck block). ``all_layers``: one row per layer, always."""
    groups = layer_groups(cost, all_layers)
    if all_layers or len(groups) <= max_rows:
        return [PlotRow(group_label(g), g) for g in groups]
    return blocks(groups, max_rows)


# -- shares ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShareRow:
    """One row's shares (in percent) of the network's parameters, MACs and time per timed batch.
    ``name`` and ``type`` are the row's first layer (a block: its name prefix and ``"block"``);
    ``folded`` names the other layers the row adds up."""

    name: str
    type: str
    group: str
    params: float
    macs: float
    time: tuple[float, ...] = ()
    folded: tuple[str, ...] = ()
    label: str = ""


def share_rows(cost: NetworkCost, timings: Timings | None = None, all_layers: bool = False) -> list[ShareRow]:
    """Every row's shares, in network order; ``time`` has one entry per batch of ``timings``. A row's
    shares are the sums of its layers' (see `plot_rows`; ``all_layers`` keeps every layer apart)."""
    totals = cost.totals
    runs = timings.batches if timings else ()
    by_batch = [dict(run.layer_ms) for run in runs]
    rows = []
    for plotted in plot_rows(cost, all_layers):
        group = plotted.layers
        head = group[0]
        time = tuple(percent(sum(ms.get(r.name, 0.0) for r in group), run.total_ms)
                     for ms, run in zip(by_batch, runs))
        name, kind = (plotted.block, "block") if plotted.block else (head.name, head.type)
        rows.append(ShareRow(name, kind, head.group if not plotted.block else "other",
                             percent(sum(r.params for r in group), totals.params),
                             percent(sum(r.macs for r in group), totals.macs), time,
                             tuple(r.name for r in group[1:]), plotted.label))
    return rows


def share_series(rows: list[ShareRow], timings: Timings | None = None) -> list[tuple[str, list[float]]]:
    """The metrics one by one: ``[("parameters", [% per row]), ("MACs", ...), ("time, batch 1", ...)]``."""
    series = [("parameters", [r.params for r in rows]), ("MACs", [r.macs for r in rows])]
    for k, run in enumerate(timings.batches if timings else ()):
        series.append((f"time, batch {run.batch}", [r.time[k] for r in rows]))
    return series


def split_shares(cost: NetworkCost, timings: Timings | None = None) -> list[tuple[str, dict[str, float]]]:
    """The conv / fc / other split of each metric: ``[("parameters", {"conv": 6.0, ...}), ...]``.
    Layer by layer, never folded: a ReLU's time is "other" here even when its row joins conv1's."""
    rows = share_rows(cost, timings, all_layers=True)
    out = []
    for label, values in share_series(rows, timings):
        split = {g: 0.0 for g in GROUP_COLOURS}
        for r, v in zip(rows, values):
            split[r.group if r.group in split else "other"] += v
        out.append((label, split))
    return out


# -- drawing -----------------------------------------------------------------------------------------

def _matplotlib():
    """Import matplotlib's object-oriented API (no pyplot, no global state), or say which extra to install."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotExtraMissing(f"plotting needs matplotlib: {EXTRA_HINT}") from None
    return matplotlib, Figure


STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 10,
    "svg.hashsalt": "alexcost",    # stable ids inside SVG files
    "svg.fonttype": "path",
    "path.simplify": False,
}
VALUE_FONT = 7.5
"""Points for the value written at each bar: 10 pixels high at ``DPI``, at the width docs pages show it."""

SLOT_IN = 0.17
"""Inches of height per bar: a bar and its value label, with room between neighbouring bars' labels."""


def _shape_text(shape) -> str:
    return "×".join(str(d) for d in shape)


def _layer_height(labels: list[str], n_series: int) -> float:
    """Inches for a per-row panel: ``n_series`` bars per row, each tall enough for its value, and
    every row tall enough for its label's lines."""
    lines = max([label.count("\n") + 1 for label in labels] + [1])
    return max(2.0, len(labels) * max(0.12 + SLOT_IN * n_series, 0.06 + 0.16 * lines))


def _text_colour(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (a ``#RRGGBB`` colour)."""
    r, g, b = (int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def _label_bars(ax, ys, values, texts, colour: str, limit: float, inside_from: float = 0.6) -> None:
    """Write each non-empty bar's value at its end: after it, or inside it (right-aligned) when the
    bar is long enough that the text might not fit after it."""
    for y, v, text in zip(ys, values, texts):
        if not text:
            continue
        if v >= inside_from * limit:
            ax.text(v - limit * 0.01, y, text, ha="right", va="center", fontsize=VALUE_FONT,
                    color=_text_colour(colour))
        else:
            ax.text(v + limit * 0.01, y, text, ha="left", va="center", fontsize=VALUE_FONT)


def _percent_text(v: float) -> str:
    return "" if v <= 0 else "<0.1%" if v < 0.05 else f"{v:.1f}%"


def shares_figure(cost: NetworkCost, timings: Timings | None = None, all_layers: bool = False):
    """The shares figure: per-row bars of parameter, MAC and time share, each with its value written at
    its end, then the conv-vs-FC split. Layers that cost nothing of their own share the row of the
    layer before them (see ``folds``) unless ``all_layers``."""
    matplotlib, Figure = _matplotlib()
    rows = share_rows(cost, timings, all_layers)
    series = share_series(rows, timings)
    split = split_shares(cost, timings)
    top = _layer_height([r.label for r in rows], len(series))
    bottom = 0.45 * len(split) + 0.9
    largest = max([v for _, values in series for v in values] + [1.0])
    limit = min(100.0, largest * 1.05)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, top + bottom + 1.5), dpi=DPI, layout="constrained")
        ax, ax_split = fig.subplots(2, 1, height_ratios=[top, bottom])
        n = len(series)
        step = 0.8 / n
        for k, (label, values) in enumerate(series):
            colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
            ys = [i - 0.4 + step * (k + 0.5) for i in range(len(rows))]
            ax.barh(ys, values, height=step * 0.92, color=colour, label=label)
            _label_bars(ax, ys, values, [_percent_text(v) for v in values], colour, limit)
        ax.set_yticks(range(len(rows)), [r.label for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, limit)
        ax.set_xlabel("share of the network's total (%)")
        ax.grid(axis="x", color="#DDDDDD", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=min(n, 3), frameon=False, borderaxespad=0.3)

        for i, (label, parts) in enumerate(split):
            left = 0.0
            for group, colour in GROUP_COLOURS.items():
                width = parts[group]
                ax_split.barh(i, width, left=left, height=0.6, color=colour,
                              label=group if i == 0 else None)
                if width >= 4:
                    text = f"{group} {width:.0f}%" if width >= 12 else f"{width:.0f}%"
                    ax_split.text(left + width / 2, i, text, ha="center", va="center",
                                  fontsize=VALUE_FONT, color=_text_colour(colour))
                left += width
        ax_split.set_yticks(range(len(split)), [label for label, _ in split])
        ax_split.set_ylim(len(split) - 0.5, -0.5)
        ax_split.set_xlim(0, 100)
        ax_split.set_xlabel("share (%)")
        ax_split.set_title("conv vs FC, layer by layer (other: pooling, LRN, activations, ...)")
        fig.legend(*ax_split.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
        what = "where the parameters, MACs and time go" if timings else "where the parameters and MACs go"
        fig.suptitle(_title(cost, timings, what) + _blocks_note(any(r.type == "block" for r in rows)), fontsize=11)
    return fig


def memory_figure(cost: NetworkCost, all_layers: bool = False):
    """The memory figure: each row's output size for one sample (its last layer's output) and the bytes
    its weights take, each bar with its value. Rows fold as in ``shares_figure``."""
    matplotlib, Figure = _matplotlib()
    rows = plot_rows(cost, all_layers)
    groups = [r.layers for r in rows]
    itemsize = DTYPE_BYTES[cost.dtype]
    shapes = [g[-1].output_shapes for g in groups]
    out_bytes = [sum(prod(s) for s in shape) * itemsize for shape in shapes]
    weight_bytes = [sum(r.weight_bytes for r in g) for g in groups]
    labels = [r.label for r in rows]
    height = _layer_height(labels, 1) + 1.4
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
        ax_out, ax_w = fig.subplots(1, 2, sharey=True)
        ys = list(range(len(groups)))
        unit, scale = byte_unit(max(max(out_bytes), max(weight_bytes)))
        panels = ((ax_out, out_bytes, [f"{' + '.join(map(_shape_text, shape))}, {bytes_text(b)}"
                                       for shape, b in zip(shapes, out_bytes)],
                   SERIES_COLOURS[4], "output of each row, one sample"),
                  (ax_w, weight_bytes, [bytes_text(b) if b else "" for b in weight_bytes],
                   SERIES_COLOURS[0], "weights and biases"))
        for ax, values, texts, colour, title in panels:
            scaled = [b / scale for b in values]
            limit = max(max(scaled), 1 / scale) * 1.05
            ax.barh(ys, scaled, height=0.7, color=colour)
            _label_bars(ax, ys, scaled, texts, colour, limit, inside_from=0.45)
            ax.set_xlim(0, limit)
            ax.set_title(title)
            ax.set_xlabel(unit)
            ax.grid(axis="x", color="#DDDDDD", linewidth=0.6)
            ax.set_axisbelow(True)
        ax_out.set_yticks(ys, labels)
        ax_out.set_ylim(len(groups) - 0.5, -0.5)
        fig.suptitle(f"{cost.model}: memory per layer\ninput {_shape_text(cost.input_shape)}, {cost.dtype}"
                     + _blocks_note(any(r.block for r in rows)), fontsize=11)
    return fig


def _blocks_note(blocked: bool) -> str:
    return "\nrows: blocks of layers named alike (--all-layers: one row per layer)" if blocked else ""


def _title(cost: NetworkCost, timings: Timings | None, what: str) -> str:
    where = f"timed on {timings.device or 'an unnamed device'}" if timings else "static counts, not timed"
    return f"{cost.model}: {what}\ninput {_shape_text(cost.input_shape)}, {where}"


def figure_bytes(fig, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes, with no date or version in the metadata (deterministic)."""
    matplotlib, _ = _matplotlib()
    if fmt not in FORMATS:
        raise SpecError(f"unknown figure format {fmt!r}; choose png or svg")
    metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue()


# -- files -------------------------------------------------------------------------------------------

def output_paths(out: str | os.PathLike) -> tuple[str, str, str]:
    """``(format, shares path, memory path)`` for ``--out``: ``x.png`` -> ``x.png``, ``x-memory.png``."""
    out = os.fspath(out)
    stem, ext = os.path.splitext(out)
    fmt = ext[1:].lower()
    if fmt not in FORMATS or not os.path.basename(stem):
        raise SpecError(f"--out must name a .png or .svg file, got {out!r}")
    return fmt, out, f"{stem}{MEMORY_SUFFIX}{ext}"


def default_out(network: Network) -> str:
    """``alexcost-<model>.png`` in the current folder (the name reduced to safe characters)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", network.name).strip("._") or "network"
    return f"alexcost-{safe}.png"


def write_figures(network: Network, out: str | os.PathLike | None = None, timings: Timings | None = None,
                  dtype: str = "float32", all_layers: bool = False) -> tuple[str, str]:
    """Draw both figures and write them atomically; returns ``(shares path, memory path)``."""
    fmt, shares_path, memory_path = output_paths(out if out is not None else default_out(network))
    if all_layers and len(network) > MAX_LAYERS:
        raise SpecError(f"plot --all-layers draws one row per layer, at most {MAX_LAYERS}; {network.name!r} has "
                        f"{len(network)} layers (without --all-layers, rows are folded and grouped into blocks)")
    if timings is not None:
        check_timings(network, timings)
    cost = network.cost(batch=1, dtype=dtype)
    data = (figure_bytes(shares_figure(cost, timings, all_layers), fmt),
            figure_bytes(memory_figure(cost, all_layers), fmt))
    from ..atomic import write_atomic
    for path, blob in zip((shares_path, memory_path), data):
        try:
            write_atomic(path, blob)
        except OSError as err:
            raise SpecError(f"cannot write {path!r}: {err.strerror or err}") from None
    return shares_path, memory_path
