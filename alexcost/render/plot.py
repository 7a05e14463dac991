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
from ..hardware.roofline import Peaks
from ..units import byte_unit, bytes_text, commas

EXTRA_HINT = "pip install 'alexcost[plot]'"
FORMATS = ("png", "svg", "pdf")
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


class PlotExtraMissing(ModuleNotFoundError):
    """matplotlib is not installed: the ``plot`` extra is needed (``name`` is ``"matplotlib"``)."""


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
        raise PlotExtraMissing(f"plotting needs matplotlib: {EXTRA_HINT}", name="matplotlib") from None
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


# -- figures for the docs: time against MACs, the roofline, a training step, the two-GPU split -------------

def _points_above(values, floor: float) -> list[int]:
    """Indices of the values at or above ``floor``: the points worth a label."""
    return [i for i, v in enumerate(values) if v >= floor]


LABEL_OFFSETS = ((4, 3), (4, -10), (-4, 3), (-4, -10), (4, 12), (4, -19), (-4, 12), (-4, -19), (4, 21), (-4, 21),
                 (4, -28), (-4, -28))
"""Points (1/72 inch) from a point to its label's corner, tried in turn until the label is clear."""


def _label_points(fig, ax, labels) -> None:
    """``labels``: ``(text, (x, y), colour)``. Each label goes beside its point, at the first of
    ``LABEL_OFFSETS`` where it overlaps no label placed before it and stays inside the axes (the
    figure is laid out first, so the places are where the saved figure has them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with _matplotlib()[0].rc_context(STYLE):
        fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []
    for text, xy, colour in labels:
        for dx, dy in LABEL_OFFSETS:
            note = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=VALUE_FONT,
                               color=colour, ha="left" if dx > 0 else "right")
            box = note.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            note.remove()
        else:
            note = ax.annotate(text, xy, xytext=LABEL_OFFSETS[0], textcoords="offset points", fontsize=VALUE_FONT,
                               color=colour)
            box = note.get_window_extent(renderer)
        placed.append(box)


def time_share_figure(cost: NetworkCost, timings: Timings, label_from: float = 3.0):
    """Each row's share of the measured time against its share of the MACs, one series per timed batch,
    with the diagonal where time would follow the MACs. Rows fold as in ``shares_figure``; a row with at
    least ``label_from`` percent of either is named."""
    matplotlib, Figure = _matplotlib()
    rows = share_rows(cost, timings)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 5.6), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        top = max([r.macs for r in rows] + [v for r in rows for v in r.time] + [1.0]) * 1.08
        ax.plot([0, top], [0, top], color="#999999", linewidth=0.8, linestyle="--")
        ax.text(top * 0.97, top * 0.93, "time follows the MACs", ha="right", va="top", fontsize=VALUE_FONT,
                color="#666666", rotation=0)
        labels = []
        for k, run in enumerate(timings.batches):
            colour = SERIES_COLOURS[(k + 2) % len(SERIES_COLOURS)]
            xs, ys = [r.macs for r in rows], [r.time[k] for r in rows]
            ax.scatter(xs, ys, s=22, color=colour, label=f"batch {run.batch}", zorder=3)
            labels += [(rows[i].name, (xs[i], ys[i]), colour)
                       for i in _points_above([max(x, y) for x, y in zip(xs, ys)], label_from)]
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("share of the network's MACs (%)")
        ax.set_ylabel(f"share of the {'predicted' if timings.source == 'predicted' else 'measured'} time (%)")
        ax.grid(color="#DDDDDD", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", frameon=False)
        fig.suptitle(_title(cost, timings, "time share against MAC share, per layer"), fontsize=11)
        _label_points(fig, ax, labels)
    return fig


def roofline_points(cost: NetworkCost) -> list[tuple[str, str, float]]:
    """``(layer name, group, FLOP/B)`` for every layer that moves bytes: FLOPs (2·MACs + bias adds +
    other ops) over input + weights + output bytes, as ``alexcost time``'s roofline counts them."""
    from ..hardware.roofline import bytes_moved

    return [(r.name, r.group, r.flops / bytes_moved(r)) for r in cost.layers if bytes_moved(r) and r.flops]


def _clusters(points: list[tuple[str, float]], spread: float = 1.15) -> list[tuple[str, float]]:
    """Points whose values lie within a factor ``spread`` of their neighbour's, as one labelled point."""
    out: list[list] = []
    for name, x in sorted(points, key=lambda p: p[1]):
        if out and x <= out[-1][1] * spread:
            out[-1][0].append(name)
        else:
            out.append([[name], x])
    return [(", ".join(names), x) for names, x in out]


def roofline_figure(cost: NetworkCost, roofs: list[tuple[str, "Peaks"]], extra: list[tuple[str, float]] = (),
                    on: int = 0):
    """A roofline: each device's attainable rate against arithmetic intensity (``roofs``: a label and the
    device's `alexcost.hardware.roofline.Peaks`), its ridge marked, and the layers of ``cost`` placed at
    their intensities on the roof of ``roofs[on]``: the convolutions and fully connected layers named
    (neighbours within 15% share a label), the other layers as small grey dots. ``extra``: more named
    points, such as one layer at other batch sizes."""
    matplotlib, Figure = _matplotlib()
    points = roofline_points(cost)
    named = [(name, x) for name, group, x in points if group in ("conv", "fc")] + list(extra)
    others = [x for _, group, x in points if group not in ("conv", "fc")]
    every = [x for _, _, x in points] + [x for _, x in extra] + [peaks.ridge for _, peaks in roofs]
    lo, hi = min(every) / 3, max(every) * 6
    base_label, base = roofs[on]

    def on_roof(x):
        return min(base.flops_per_s, x * base.bytes_per_s) / 1e12

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 5.8), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        ax.set_xscale("log")
        ax.set_yscale("log")
        for k, (label, roof) in enumerate(roofs):
            colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
            xs = [lo, roof.ridge, hi]
            ax.plot(xs, [min(roof.flops_per_s, x * roof.bytes_per_s) / 1e12 for x in xs], color=colour,
                    linewidth=1.6, label=f"{label}: ridge {roof.ridge:.1f} FLOP/B")
            ax.axvline(roof.ridge, color=colour, linewidth=0.6, linestyle=":")
        ax.scatter(others, [on_roof(x) for x in others], s=10, color="#999999", zorder=3,
                   label="pooling, LRN, activations, softmax")
        labels = []
        for name, x in _clusters(named):
            ax.scatter([x], [on_roof(x)], s=20, color="black", zorder=4)
            labels.append((name, (x, on_roof(x)), "black"))
        ax.set_xlim(lo, hi)
        ax.set_ylim(top=max(peaks.flops_per_s for _, peaks in roofs) / 1e12 * 6)
        ax.set_xlabel("arithmetic intensity (FLOP/B, log scale)")
        ax.set_ylabel("attainable rate (TFLOP/s, log scale)")
        ax.grid(color="#DDDDDD", linewidth=0.6, which="major")
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", frameon=False)
        fig.suptitle(f"{cost.model}: the roofline, each layer at batch {cost.batch} ({cost.dtype}) on the "
                     f"{base_label}'s roof", fontsize=11)
        _label_points(fig, ax, labels)
    return fig


def step_memory_figure(training):
    """A training step's memory (a `alexcost.training.TrainingCost`): what it holds, as one stacked bar
    (weights, gradients, optimizer state, the input batch, each layer's kept tensors), and the bytes
    live after each layer of the forward pass and then of the backward pass, with the peak."""
    matplotlib, Figure = _matplotlib()
    m = training.memory
    unit, scale = "GiB", 2**30          # as alexcost train states a step's memory
    parts = [("weights", m.weights + m.buffers), ("gradients", m.grads), ("optimizer state", m.optimizer),
             ("input batch", m.input)]
    kept = [(r.name, r.saved_bytes) for r in training.layers if r.saved_bytes]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 6.4), dpi=DPI, layout="constrained")
        ax_bar, ax_time = fig.subplots(2, 1, height_ratios=[1, 2.4])
        left = 0.0
        for k, (label, size) in enumerate(parts):
            ax_bar.barh(0, size / scale, left=left, height=0.6, color=SERIES_COLOURS[k], label=label)
            left += size / scale
        saved_left = left
        for k, (name, size) in enumerate(kept):
            ax_bar.barh(0, size / scale, left=left, height=0.6, color=("#BBBBBB", "#DDDDDD")[k % 2],
                        edgecolor="white", linewidth=0.4)
            if size >= 0.06 * m.peak:
                ax_bar.text(left + size / scale / 2, 0, name, ha="center", va="center", fontsize=VALUE_FONT)
            left += size / scale
        ax_bar.annotate(f"kept for backward: {m.saved / scale:.2f} {unit}", (saved_left, 0.42),
                        fontsize=VALUE_FONT, va="bottom")
        ax_bar.set_yticks([])
        ax_bar.set_xlim(0, left * 1.02)
        ax_bar.set_ylim(-0.5, 0.9)
        ax_bar.set_xlabel(unit)
        ax_bar.set_title("what the step holds: resident, and what autograd keeps per layer")
        ax_bar.legend(loc="lower left", bbox_to_anchor=(0.0, 1.12), ncols=4, frameon=False, fontsize=VALUE_FONT)

        xs = list(range(len(m.timeline)))
        ys = [(m.resident + b) / scale for _, _, b in m.timeline]
        forward = sum(1 for phase, _, _ in m.timeline if phase == "forward")
        ax_time.fill_between(xs, [m.resident / scale] * len(xs), ys, color=SERIES_COLOURS[4], step="mid")
        ax_time.fill_between(xs, 0, [m.resident / scale] * len(xs), color=SERIES_COLOURS[0], step="mid",
                             label="weights, gradients' room and optimizer state")
        ax_time.axvline(forward - 0.5, color="black", linewidth=0.8)
        ax_time.text(forward - 0.7, ys[0], "forward  ", ha="right", va="bottom", fontsize=VALUE_FONT)
        ax_time.text(forward - 0.3, ys[0], "  backward", ha="left", va="bottom", fontsize=VALUE_FONT)
        top = max(range(len(ys)), key=ys.__getitem__)
        ax_time.annotate(f"peak {m.peak / scale:.2f} {unit} at {m.timeline[top][1]} ({m.timeline[top][0]})",
                         (top, ys[top]), xytext=(0, 8), textcoords="offset points", ha="center",
                         fontsize=VALUE_FONT)
        ax_time.set_xticks(xs, [name for _, name, _ in m.timeline], rotation=90, fontsize=VALUE_FONT)
        ax_time.set_xlim(-0.5, len(xs) - 0.5)
        ax_time.set_ylim(0, max(ys) * 1.15)
        ax_time.set_ylabel(unit)
        ax_time.set_title("live memory at each layer's high point (model)")
        ax_time.grid(axis="y", color="#DDDDDD", linewidth=0.6)
        ax_time.set_axisbelow(True)
        fig.suptitle(f"{training.model}: a training step's memory, batch {training.batch}, {training.dtype}, "
                     f"optimizer {training.optimizer}", fontsize=11)
    return fig


def two_gpu_figure(cost: NetworkCost, prediction):
    """The model split of a `alexcost.hardware.Prediction` (``split == "model"``): each convolution and
    fully connected layer as one box per GPU with its share of the output, and at every layer that
    reads all the channels, the bytes that cross between the GPUs each way per step."""
    matplotlib, Figure = _matplotlib()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    gpus = prediction.gpus
    crossing = {c.name: c for c in prediction.crossings}
    columns = [r for r in cost.layers if r.type in ("Conv2d", "Linear") or r.name in crossing]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 1.2 + 1.3 * gpus), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        ax.set_xlim(-0.6, len(columns) - 0.4)
        ax.set_ylim(-0.8, gpus - 0.5)
        ax.axis("off")
        width, height = 0.72, 0.46
        for j, row in enumerate(columns):
            shape = row.output_shapes[0]
            part = (shape[0] // gpus, *shape[1:]) if row.type != "Softmax" else shape
            for g in range(gpus):
                y = gpus - 1 - g
                colour = GROUP_COLOURS.get(row.group, GROUP_COLOURS["other"])
                ax.add_patch(FancyBboxPatch((j - width / 2, y - height / 2), width, height,
                                            boxstyle="round,pad=0.02", facecolor=colour, edgecolor="none",
                                            alpha=0.9))
                ax.text(j, y + 0.08, row.name, ha="center", va="center", fontsize=9, color=_text_colour(colour))
                ax.text(j, y - 0.11, _shape_text(part), ha="center", va="center", fontsize=VALUE_FONT,
                        color=_text_colour(colour))
            if j == 0:
                continue
            for g in range(gpus):
                y = gpus - 1 - g
                ax.add_patch(FancyArrowPatch((j - 1 + width / 2, y), (j - width / 2, y), arrowstyle="-|>",
                                             mutation_scale=8, color="#444444", linewidth=0.8))
            if row.name in crossing:
                for g in range(gpus - 1):
                    lo, hi = gpus - 2 - g, gpus - 1 - g
                    for a, b in ((lo, hi), (hi, lo)):
                        ax.add_patch(FancyArrowPatch((j - 1 + width / 2, a + (0.12 if a < b else -0.12)),
                                                     (j - width / 2, b + (-0.12 if a < b else 0.12)),
                                                     arrowstyle="-|>", mutation_scale=8, color="#CC3311",
                                                     linewidth=1.0))
                ax.text(j - 0.5, -0.62, f"{bytes_text(crossing[row.name].forward_bytes)}\neach way",
                        ha="center", va="center", fontsize=VALUE_FONT, color="#CC3311")
        for g in range(gpus):
            ax.text(-0.6, gpus - 1 - g + 0.3, f"GPU {g + 1}", ha="left", va="bottom", fontsize=9)
        moved = sum(c.forward_bytes + c.backward_bytes for c in prediction.crossings)
        fig.suptitle(f"{cost.model} on {gpus} GPUs, split as the paper split it, batch {prediction.batch}\n"
                     f"red: what crosses between the GPUs, {bytes_text(moved)} a step, forward and backward",
                     fontsize=11)
    return fig


def _blocks_note(blocked: bool) -> str:
    return "\nrows: blocks of layers named alike (--all-layers: one row per layer)" if blocked else ""


def _title(cost: NetworkCost, timings: Timings | None, what: str) -> str:
    where = f"timed on {timings.device or 'an unnamed device'}" if timings else "static counts, not timed"
    if timings and timings.source == "predicted":
        where = f"predicted on {timings.device} by the time model"
    return f"{cost.model}: {what}\ninput {_shape_text(cost.input_shape)}, {where}"


def figure_bytes(fig, fmt: str) -> bytes:
    """The figure as PNG, SVG or PDF bytes, with no date or version in the metadata (deterministic)."""
    matplotlib, _ = _matplotlib()
    if fmt not in FORMATS:
        raise SpecError(f"unknown figure format {fmt!r}; choose png, svg or pdf")
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}[fmt]
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
        raise SpecError(f"--out must name a .png, .svg or .pdf file, got {out!r}")
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
