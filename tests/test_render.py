"""Rendering: the table renderer against tabulate itself and its Markdown against a Markdown
parser, the human-format helpers every renderer shares, and atomic writes."""

import html
import os
import re
import stat

import markdown
import pytest
from hypothesis import given, strategies as st
from tabulate import tabulate

from alexcost.atomic import write_atomic
from alexcost.render.table import render_table
from alexcost.units import byte_unit, bytes_text, commas, short, size_text

MARKDOWN_SPECIALS = "\\`*_[]|<&"
plain_cell = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=MARKDOWN_SPECIALS),
                     max_size=12)
any_cell = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12)


def tables(cell):
    @st.composite
    def draw_table(draw):
        ncols = draw(st.integers(1, 6))
        headers = draw(st.lists(cell, min_size=ncols, max_size=ncols))
        rows = draw(st.lists(st.lists(cell, min_size=ncols, max_size=ncols), min_size=1, max_size=8))
        align = draw(st.lists(st.sampled_from(["left", "right"]), min_size=ncols, max_size=ncols))
        return headers, rows, align
    return draw_table()


@given(tables(plain_cell), st.sampled_from(["simple", "pipe"]))
def test_matches_tabulate(table, style):
    """Cells with nothing Markdown reads come out exactly as tabulate lays them out."""
    headers, rows, align = table
    expected = tabulate(rows, headers=headers, tablefmt=style, colalign=align, disable_numparse=True)
    assert render_table(headers, rows, align, style) == expected


@given(tables(any_cell))
def test_simple_style_keeps_every_character(table):
    headers, rows, align = table
    expected = tabulate(rows, headers=headers, tablefmt="simple", colalign=align, disable_numparse=True)
    assert render_table(headers, rows, align, "simple") == expected


def parsed_cells(text: str) -> list[list[str]]:
    """Each row's cells as Python-Markdown (what the docs are built with) renders them, as text."""
    page = markdown.markdown(text, extensions=["tables"])
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    return [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in rows]


@given(tables(any_cell))
def test_pipe_cells_render_as_written(table):
    """``|``, backslashes, backticks, ``*``, ``_``, brackets, ``<`` and ``&`` in a cell: the parser
    sees the same number of cells in every row, and each renders as the text that went in."""
    headers, rows, align = table
    assert parsed_cells(render_table(headers, rows, align, "pipe")) == [list(headers), *map(list, rows)]


def test_pipe_escapes_examples():
    text = render_table(["name", "n"], [["a|b", "1"], ["x`y\\z", "2"], ["11*11*3", "3"]], ["left", "right"], "pipe")
    lines = text.splitlines()
    assert lines[2].startswith("| a\\|b ") and lines[3].startswith("| x\\`y\\\\z ")
    assert parsed_cells(text)[1:] == [["a|b", "1"], ["x`y\\z", "2"], ["11*11*3", "3"]]


# == number formats in words =======================================================================
# The human-format helpers every renderer shares.

def test_numbers_in_words():
    assert commas(62369152) == "62,369,152"
    assert short(3747200) == "3.7 million" and short(1077284224) == "1.08 billion"
    assert short(62369152) == "62.4 million"  # the seed's "62.3 million" truncates
    assert short(999) == "999" and short(1500) == "1.5 thousand"
    assert size_text((96, 55, 55)) == "96 * 55 * 55"


def test_bytes_in_binary_units():
    """Memory is written in binary units everywhere: 1 KiB = 1,024 bytes, 1 MiB = 1,024 KiB, ..."""
    assert bytes_text(1023) == "1,023 B" and bytes_text(1024) == "1.0 KiB"
    assert bytes_text(4 * 37748736) == f"{4 * 37748736 / 2**20:.1f} MiB" == "144.0 MiB"  # fc6's float32 weights
    assert bytes_text(234493952, 2) == f"{234493952 / 2**20:.2f} MiB" == "223.63 MiB"
    assert bytes_text(80 * 2**30, 0) == "80 GiB"
    assert bytes_text(36013 * 2**40) == "36,013.0 TiB"
    assert byte_unit(5 * 2**20) == ("MiB", 2**20) and byte_unit(2**20 - 1) == ("KiB", 2**10)
    assert byte_unit(10) == ("B", 1)


# == atomic writes =================================================================================
# Atomic writes: all or nothing, and the permissions a plain open() would give.

def test_new_file_gets_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o644


def test_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["c.txt"]
