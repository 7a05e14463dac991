"""Every number in the prose about AlexNet is known: computed by alexcost, and by hand here.

Numbers inside examples that run (```python, ```pycon, ```console) are checked by running
them (tests/test_docs.py). Every other number in the pages below, text blocks and tables
included, must be one of:

* a FACT: a value computed fresh by alexcost *and* written out here as hand arithmetic,
  the two checked equal;
* a PERCENT fact (only these may be followed by "%"), computed the same two ways;
* a number of the architecture itself (a layer argument or a shape of a preset);
* a number QUOTED from a source, listed with the source;
* a small integer (at most 16: kernel sizes, counts such as "two GPUs", "Figure 2").
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from alexnet_facts import (DOCS, QUOTED, QUOTED_PERCENTS, architecture_numbers, facts, numbers, percent_facts,
                           rounded_facts)

PAGES = ("alexnet.md", "seed-table.md", "conventions.md", "beyond-the-table.md")
"""index.md, training.md and timing.md: tests/test_docs_numbers.py."""


def test_facts_agree_with_hand_arithmetic():
    for label, (ours, hand) in {**facts(), **rounded_facts(), **percent_facts()}.items():
        assert ours is not None and ours == hand, f"{label}: alexcost says {ours}, hand arithmetic {hand}"


@pytest.mark.parametrize("page", PAGES)
def test_every_number_in_the_prose_is_known(page):
    exact = {Decimal(v) for v, _ in facts().values()} | {v for v, _ in rounded_facts().values()}
    exact |= architecture_numbers() | {Decimal(q.replace(",", "")) for q in QUOTED} | set(map(Decimal, range(17)))
    percents = {v for v, _ in percent_facts().values()} | {Decimal(q) for q in QUOTED_PERCENTS}
    unknown = []
    for text, value, is_percent in numbers(DOCS / page):
        if (value not in percents) if is_percent else (value not in exact):
            unknown.append(text + ("%" if is_percent else ""))
    assert unknown == [], (f"docs/{page}: numbers no test knows: {unknown}. Add each to "
                           f"tests/test_alexnet_numbers.py with alexcost's value and hand arithmetic.")


def test_every_fact_is_quoted_somewhere():
    found = {value for page in PAGES for _, value, _ in numbers(DOCS / page)}
    unused = [label for label, (value, _) in {**facts(), **rounded_facts(), **percent_facts()}.items()
              if Decimal(value) not in found]
    assert unused == [], f"facts no page quotes any more (remove them): {unused}"
    quoted = [q for q in QUOTED if Decimal(q.replace(",", "")) not in found]
    assert quoted == [], f"quoted numbers no page uses any more (remove them): {quoted}"


def test_the_scanner_sees_what_it_should(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("conv1 has 34,944 parameters, 62.4 million in all (6%); ILSVRC-2010, 10^-4, "
                    "[the paper](https://example.org/4824), 1e-4 and fc8.\n```python\nx = 999\n```\n"
                    "```text\n(11*11*3 + 1) * 96=34944\n```\n")
    assert [(t, p) for t, _, p in numbers(page)] == [
        ("34,944", False), ("62.4", False), ("6", True), ("2010", False), ("10", False), ("4", False),
        ("4", False), ("11", False), ("11", False), ("3", False), ("1", False), ("96", False), ("34944", False)]
