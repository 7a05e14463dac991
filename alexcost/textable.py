"""Plain-text and Markdown tables (tabulate's "simple" and "pipe" layouts, string cells).

alexcost draws its own tables so that ``alexcost report`` stays fast: importing
tabulate 0.10 imports ``importlib.metadata``, which alone costs about 27 ms.
The tests check this module against tabulate itself.
"""

from __future__ import annotations


def render_table(headers, rows, align, style: str = "simple") -> str:
    """``rows`` of strings under ``headers``; ``align`` holds "left" or "right" per column.

    ``style`` is ``"simple"`` (underlined headers, two spaces between columns) or
    ``"pipe"`` (a Markdown table with alignment colons).
    """
    widths = [max([len(str(h)) + 2, *(len(str(c)) for c in col)]) for h, *col in zip(headers, *rows)]

    def fit(cells):
        return [str(c).rjust(w) if a == "right" else str(c).ljust(w) for c, w, a in zip(cells, widths, align)]

    if style == "simple":
        lines = [fit(headers), ["-" * w for w in widths], *map(fit, rows)]
        return "\n".join("  ".join(cells).rstrip() for cells in lines)
    if style == "pipe":
        rule = [("-" * (w + 1) + ":") if a == "right" else (":" + "-" * (w + 1)) for w, a in zip(widths, align)]
        body = ["| " + " | ".join(fit(cells)) + " |" for cells in (headers, *rows)]
        return "\n".join([body[0], "|" + "|".join(rule) + "|", *body[1:]])
    raise ValueError(f"unknown table style {style!r}")
