"""The graph engine keeps every chain report of round one, byte for byte, but for what the
review asked to change: the footer's memory line (activations counted once per tensor, memory in
binary units) and three new count columns (buffers, buffer_bytes, stored_bytes).

tests/golden/round1/ holds the reports the round-one code (commit e65b307) wrote for five
chain specs, in every format, at batch 1 and 8: an independent record of what users saw.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from alexcost import network_from_dict
from alexcost.render.report import render

GOLDEN = Path(__file__).parent / "golden" / "round1"
SPECS = sorted(p.name.split(".")[0] for p in GOLDEN.glob("*.spec.json"))
NEW_COUNTS = {"buffers", "buffer_bytes", "stored_bytes"}


def report(name: str, batch: int, fmt: str) -> tuple[str, str]:
    network = network_from_dict(json.loads((GOLDEN / f"{name}.spec.json").read_text()))
    return (GOLDEN / f"{name}-b{batch}.{fmt}").read_text(), render(network.cost(batch=batch), fmt)


def markdown_cells(text: str) -> list:
    """A Markdown report as its cells, unescaped (the review's fix escapes ``*`` and ``|``, which
    round one left raw, so ``11*11*3`` rendered as emphasis)."""
    out = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            out.append([re.sub(r"\\(.)", r"\1", c.strip()) for c in cells])
        else:
            out.append(line)
    return out


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch", [1, 8])
def test_tables_are_unchanged_but_the_memory_line(name, batch):
    for fmt in ("table", "markdown", "detail"):
        old, new = report(name, batch, fmt)
        old_lines, new_lines = old.splitlines(), new.splitlines()
        if fmt == "markdown":
            old_lines, new_lines = markdown_cells(old), markdown_cells(new)
        assert len(old_lines) == len(new_lines)
        changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
        assert len(changed) == 1, changed
        before, after = changed[0]
        assert isinstance(before, str) and before.startswith("Memory: weights ")
        weights = int(before.removeprefix("Memory: weights ").split(" B")[0].replace(",", ""))
        unit, size = next((u, 2**p) for u, p in (("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)) if weights >= 2**p)
        shown = f"{weights / size:,.1f} {unit}" if size > 1 else f"{weights:,} B"
        assert after.startswith(f"Memory in binary units (1 MiB = 1,048,576 bytes): weights {shown}")
        assert "activations" in after and after.endswith("summed over tensors, not a peak")


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch", [1, 8])
def test_csv_and_json_keep_every_old_value(name, batch):
    old, new = report(name, batch, "csv")
    old_rows, new_rows = list(csv.DictReader(io.StringIO(old))), list(csv.DictReader(io.StringIO(new)))
    assert len(old_rows) == len(new_rows)
    for a, b in zip(old_rows, new_rows):
        assert set(b) - set(a) == NEW_COUNTS and all(b[k] == v for k, v in a.items())
    old, new = report(name, batch, "json")
    a, b = json.loads(old), json.loads(new)
    assert set(b) == set(a) and set(b["totals"]) - set(a["totals"]) == NEW_COUNTS
    assert all(b["totals"][k] == v for k, v in a["totals"].items())
    for row_a, row_b in zip(a["layers"], b["layers"]):
        assert set(row_b) - set(row_a) == NEW_COUNTS and all(row_b[k] == v for k, v in row_a.items())


@pytest.mark.parametrize("name", SPECS)
def test_a_chain_written_as_a_graph_reports_the_same(name):
    """Naming each layer's input explicitly (the previous layer) changes nothing: a chain is a
    matter of wiring, not of syntax."""
    spec = json.loads((GOLDEN / f"{name}.spec.json").read_text())
    plain = network_from_dict(spec)
    previous = "input"
    for entry, layer_name in zip(spec["layers"], plain.names):
        entry["inputs"] = [previous]
        previous = layer_name
    wired = network_from_dict(spec)
    assert wired.is_chain
    for fmt in ("table", "markdown", "detail", "csv", "json"):
        assert render(wired.cost(batch=3), fmt) == render(plain.cost(batch=3), fmt)
