"""Plain-text and Markdown tables (tabulate's "simple" and "pipe" layouts, string cells).

alexcost draws its own tables so that ``alexcost report`` stays fast: importing
tabulate 0.10 imports ``importlib.metadata``, which alone costs about 27 ms.
The tests check this module against tabulate itself.
"""

from __future__ import annotations

_MARKDOWN = str.maketrans({
    **{c: "\\" + c for c in "\\`*_[]|"},   # escapes every Markdown parser (CommonMark, GFM, Python-Markdown) reads
    "<": "&lt;", "&": "&amp;",              # no raw HTML or entity; Python-Markdown keeps a backslash before these
    "\n": " ", "\r": " ",                    # one cell, one line
})


def markdown_cell(text) -> str:
    """``text`` as one Markdown table cell that renders as itself: ``a|b`` -> ``a\\|b``,
    ``11*11*3`` -> ``11\\*11\\*3`` (not *emphasis*), ``<x>`` -> ``&lt;x>``."""
    return str(text).translate(_MARKDOWN)


def render_table(headers, rows, align, style: str = "simple") -> str:
    """``rows`` of strings under ``headers``; ``align`` holds "left" or "right" per column.

    ``style`` is ``"simple"`` (underlined headers, two spaces between columns) or
    ``"pipe"`` (a Markdown table with alignment colons; cells escaped by `markdown_cell`).
    """
    if style == "pipe":
        headers = [markdown_cell(h) for h in headers]
        rows = [[markdown_cell(c) for c in row] for row in rows]
    elif style != "simple":
        raise ValueError(f"unknown table style {style!r}")
    widths = [max(len(str(h)) + 2, max(map(len, map(str, col)), default=0)) for h, *col in zip(headers, *rows)]
    widths = widths[:len(align)]
    n = len(widths)
    # One format per line: ``%9s`` is ``str(cell).rjust(9)``, ``%-9s`` ``str(cell).ljust(9)``; cells past
    # the last column are left out.
    fields = [("%" if a == "right" else "%-") + str(w) + "s" for w, a in zip(widths, align)]
    if style == "simple":
        line = "  ".join(fields)
        lines = [line % tuple(headers[:n]), "  ".join("-" * w for w in widths), *(line % tuple(row[:n]) for row in rows)]
        return "\n".join(text.rstrip() for text in lines)
    line = "| " + " | ".join(fields) + " |"
    rule = [("-" * (w + 1) + ":") if a == "right" else (":" + "-" * (w + 1)) for w, a in zip(widths, align)]
    body = [line % tuple(cells[:n]) for cells in (headers, *rows)]
    return "\n".join([body[0], "|" + "|".join(rule) + "|", *body[1:]])
