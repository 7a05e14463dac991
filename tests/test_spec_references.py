"""A layer's ``inputs`` are checked the same whichever way they come: the check answers a plain list
or tuple of plain names at once, and anything else (a subclass of list, a name with a dot, a
blank or unprintable name) through each check in turn; both give the same names or refuse with
the same message."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alexcost import SpecError
from alexcost.layers import arguments as check


class _Listed(list):
    """A list that is not exactly ``list``: always checked one test at a time."""


class _Tupled(tuple):
    """A tuple that is not exactly ``tuple``: always checked one test at a time."""


def _outcome(value):
    try:
        return "ok", check.references(value)
    except SpecError as err:
        return "refused", str(err)


_NAMES = st.one_of(st.text(max_size=12), st.sampled_from(["conv1", " ", "", "a.0", "a.01", "x" * 211, "b\x00",
                                                           "layer1_0", "\u2003", "input"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_NAMES, max_size=6))
def test_references_same_on_every_path(names):
    assert _outcome(names) == _outcome(_Listed(names))
    assert _outcome(tuple(names)) == _outcome(_Tupled(names))
    if names and all(n.strip() and "." not in n and len(n) <= 210 and n.isprintable() for n in names):
        assert check.references(names) == tuple(names)


def test_references_refusals():
    for value, message in [([], "non-empty list"), (["a", " "], "must name layers"), (["a.x"], "is not a layer name"),
                           (["x" * 211], "at most 200"), (["a\x07"], "control characters"), ([1], "must name layers")]:
        kind, text = _outcome(value)
        assert kind == "refused" and message in text, (value, text)
