"""The pages' code blocks and output regions, as the docs tests read them (see docs/contributing.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the first line of code


def blocks(text: str, source: str = "page") -> list[Block]:
    """Fenced code blocks in order. An opening fence's indentation is removed from its lines."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        lang = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        body, j = [], i + 1
        while j < len(lines):
            close = lines[j].strip()
            if close.startswith(fence[0] * len(fence)) and set(close) <= {fence[0]}:
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        else:
            raise AssertionError(f"{source}:{i + 1}: code fence never closed")
        found.append(Block(lang, "\n".join(body) + "\n", i + 2))
        i = j + 1
    return found


OUTPUT = re.compile(r"^<!-- output: (?P<command>alexcost [^>]*?) -->\n(?P<body>.*?)^<!-- end output -->$", re.M | re.S)


PAGE_ONLY = re.compile(r"^(?:</?div\b[^>]*>|`{3,}\w*)$")
"""Lines of an output region that are the page's, not the command's: a ``<div>`` and a code fence."""


# -- the site ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
DOCS_EXTRA_ONLY = ROOT / "tests" / "docs_extra_only.py"
"""Runs MkDocs with every module outside ``pip install '.[docs]'`` refused, as in a fresh venv."""


def build_site(out: Path) -> Path:
    """Build the site into ``out`` with ``mkdocs build --strict``, from the docs extra alone."""
    done = subprocess.run([sys.executable, str(DOCS_EXTRA_ONLY), "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    return out
