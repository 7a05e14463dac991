"""Several networks, or one at several batch sizes, side by side: one row each (``report``, ``train``
and ``predict`` when ``--model``, ``--spec``, ... repeat or ``--batch`` sweeps). Text and Markdown
tables, CSV with exact numbers, and an HTML page; JSON is the list of the one-network objects."""

from __future__ import annotations

from typing import Callable, NamedTuple

from ..units import commas
from .table import render_table


class Column(NamedTuple):
    """``header`` in tables, ``key`` in CSV; ``value`` gives a row's raw value (exact, for CSV) and
    ``text`` shows it."""

    header: str
    key: str
    value: Callable
    text: Callable = str
    align: str = "right"


def count(header: str, key: str, value: Callable) -> Column:
    """A whole number shown with thousands separators."""
    return Column(header, key, value, commas)


def render(columns, records, fmt: str, notes=(), title: str = "", figures=()) -> str:
    """``records`` as one row each in ``fmt`` (table, markdown, detail, csv or html); ``notes`` follow the
    table (in CSV, nothing does); ``figures`` (HTML parts) follow it on the page."""
    raw = [[c.value(r) for c in columns] for r in records]
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")
        out.writerow([c.key for c in columns])
        out.writerows(raw)
        return buf.getvalue()
    headers, align = [c.header for c in columns], [c.align for c in columns]
    rows = [[("" if v is None else c.text(v)) for c, v in zip(columns, row)] for row in raw]
    if fmt == "html":
        from . import html

        return html.page(title, [html.table(headers, rows, align), html.lines(notes), *figures])
    table = render_table(headers, rows, align, "pipe" if fmt == "markdown" else "simple")
    return "\n".join([table, "", *notes]) + "\n"
