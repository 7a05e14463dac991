"""Rendering a search's results (`alexcost.search.Results`): one text table, a row per candidate."""

from __future__ import annotations

from ..search import COLUMNS, Results
from ..units import commas
from .table import render_table


def table(results: Results, limit: int | None = None) -> str:
    """The rows as a text table (the first ``limit``, if given)."""
    def cell(value):
        return "" if value is None else commas(value) if isinstance(value, int) else str(value)
    rows = [[str(r.index), r.name, *(cell(getattr(r, c)) for c in COLUMNS[2:6]),
             "x".join(map(str, r.output_shape)) if r.output_shape else "", r.error or "ok"]
            for r in results.rows[:limit]]
    return render_table(("#", "name", "params", "MACs", "FLOPs", "activation bytes", "output", "verdict"),
                        rows, ("right", "left", "right", "right", "right", "right", "left", "left"))
