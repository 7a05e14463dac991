"""alexcost's table renderer against tabulate itself, and its Markdown against a Markdown parser."""

import html
import re

import markdown
from hypothesis import given
from hypothesis import strategies as st
from tabulate import tabulate

from alexcost.render.table import render_table

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
