"""The static path's promise, checked in a child process: a command imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "fvcore", "matplotlib", "numpy", "tabulate")


def heavy_imports_of(*argv: str) -> tuple[list[str], str]:
    """Run ``alexcost ARGV`` in a fresh interpreter: the heavy modules loaded when it ends, plus
    anything else it wrote on standard error (a warning, a traceback), and its standard output."""
    code = ("import json, sys; from alexcost_cli.main import cli\n"
            f"try:\n    cli.main({list(argv)!r})\n"
            "except SystemExit:\n    pass\n"
            f"sys.stderr.write('\\n' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    before, _, last = done.stderr.rpartition("\n")
    try:
        heavy = json.loads(last)
    except ValueError:
        return [done.stderr], done.stdout
    return heavy + ([before] if before else []), done.stdout
