"""alexcost's table renderer against tabulate itself, on random string tables."""

from hypothesis import given
from hypothesis import strategies as st
from tabulate import tabulate

from alexcost.textable import render_table

cell = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="|"), max_size=12)


@st.composite
def tables(draw):
    ncols = draw(st.integers(1, 6))
    headers = draw(st.lists(cell, min_size=ncols, max_size=ncols))
    rows = draw(st.lists(st.lists(cell, min_size=ncols, max_size=ncols), min_size=1, max_size=8))
    align = draw(st.lists(st.sampled_from(["left", "right"]), min_size=ncols, max_size=ncols))
    return headers, rows, align


@given(tables(), st.sampled_from(["simple", "pipe"]))
def test_matches_tabulate(table, style):
    headers, rows, align = table
    expected = tabulate(rows, headers=headers, tablefmt=style, colalign=align, disable_numparse=True)
    assert render_table(headers, rows, align, style) == expected
