"""Arithmetic a command prints (``a 7 - b 2 = 5 = 3 bias adds + 2 MACs``), parsed and checked."""

from __future__ import annotations

import re


NUMBER_OR_SIGN = re.compile(r"-?\d[\d,]*|[-+*=]")


def equation(line: str) -> list[list[int]]:
    """The values of the sides of each equation in ``line`` (equations split by ``;``).

    Parenthesised notes and anything after the first ``: `` outside them are words, not
    arithmetic; every number and sign left is part of an equation."""
    text = line
    while re.search(r"\([^()]*\)", text):  # notes may nest: "(a, ... z (7 layers): ...)"
        text = re.sub(r"\([^()]*\)", "", text)
    text = text.split(": ")[0]
    values = []
    for part in text.split(";"):
        tokens = NUMBER_OR_SIGN.findall(part)
        sides = " ".join(tokens).replace(",", "").split("=")
        values.append([eval(side, {"__builtins__": {}}) for side in sides])  # noqa: S307 - digits and + - * only
    return values


def assert_adds_up(line: str) -> None:
    for sides in equation(line):
        assert len(sides) >= 2 and len(set(sides)) == 1, (sides, line)
