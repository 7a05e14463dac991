"""Whole process: ``alexcost report`` vs a minimal script per peer that prints the same total.

Each peer's script imports torch and the peer, builds the seed AlexNet in plain torch.nn
(written out below, not taken from alexcost) and prints the peer's total; the parent checks
that total against alexcost's prediction (peers.py), so every process timed did the job.
``python -c pass`` (interpreter start-up) and ``python -c "import torch"`` are the floors.

Time alexcost from a NON-editable install: an editable install's import hook adds ~8 ms.

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install .
    python benchmarks/bench_process.py --alexcost /tmp/bench-venv/bin/alexcost
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import harness
from harness import commas, fmt_ratio, fmt_time, table, time_process
from networks import network
from peers import by_name

TARGET_REPORT = 0.050
TARGET_RATIO = 30

SEED_IN_TORCH = """\
import torch
from torch import nn
torch.manual_seed(0)
m = nn.Sequential(
    nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
    nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
    nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
    nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
    nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    nn.Flatten(), nn.Dropout(0.5), nn.Linear(9216, 4096, bias=False), nn.ReLU(),
    nn.Dropout(0.5), nn.Linear(4096, 4096, bias=False), nn.ReLU(),
    nn.Linear(4096, 1000, bias=False)).eval()
x = torch.randn(1, 3, 227, 227)
"""
"""The seed AlexNet in plain torch.nn, as a peer's user would write it."""


def default_alexcost() -> str | None:
    """The ``alexcost`` command beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "alexcost"
    return str(beside) if beside.exists() else shutil.which("alexcost")


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--alexcost", default=None, help="the alexcost command to time (default: beside this Python)")
    p.add_argument("--peers", nargs="+", default=None, help="peer names (default: all)")
    p.add_argument("--peer-repeats", type=int, default=None, help="samples per peer (default 10)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 30)
    peer_repeats = args.peer_repeats or (1 if args.smoke else 10)
    warmup = 0 if args.smoke else 2
    command = args.alexcost or default_alexcost()
    if not command:
        raise SystemExit("no alexcost command found; pass --alexcost PATH")
    # The python of the alexcost install: its start-up is the floor alexcost pays.
    alexcost_python = str(Path(command).parent / "python")
    alexcost_python = alexcost_python if os.path.exists(alexcost_python) else sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    harness.header("whole process: alexcost report vs a minimal torch script per peer")
    print(f"alexcost command: {command}")
    print(f"peer scripts run with: {sys.executable}")
    print()
    cost = network("seed").cost()
    rows = [
        time_process("python -c pass (start-up floor)", [alexcost_python, "-c", "pass"], repeats, warmup, env),
        time_process("alexcost report", [command, "report"], repeats, warmup, env,
                     expect=f"{commas(cost.totals.forward)}"),
        time_process("python -c 'import torch'", [sys.executable, "-c", "import torch"], peer_repeats, warmup, env),
    ]
    checked, missing = {}, {}
    for peer in by_name(args.peers):
        why = peer.available()
        if why:
            missing[peer.name] = why
            continue
        want = peer.expected_for_script(cost)
        rows.append(time_process(f"{peer.name} script", [sys.executable, "-c", SEED_IN_TORCH + peer.script],
                                 peer_repeats, warmup, env, expect=str(want)))
        checked[peer.name] = want
    base = rows[1].median
    print(table(("process", "median", "q1 - q3", "runs", "vs alexcost report"),
                [[t.label, fmt_time(t.median), t.spread(), str(t.samples), fmt_ratio(t.median / base)]
                 for t in rows]))
    for name, why in missing.items():
        print(f"unavailable: {name} ({why})")
    print(f"every peer script printed the total alexcost predicts for it: {', '.join(checked) or 'none ran'}")
    print()
    print(f"alexcost report: {fmt_time(base)} median (target <= {fmt_time(TARGET_REPORT)}): "
          f"{'met' if base <= TARGET_REPORT else 'MISSED'}")
    peer_rows = rows[3:]
    if peer_rows:
        fastest = min(peer_rows, key=lambda t: t.median)
        ratio = fastest.median / base
        print(f"fastest torch-based peer: {fastest.label}, {fmt_time(fastest.median)} = {fmt_ratio(ratio)} "
              f"alexcost report (target >= {TARGET_RATIO}x): {'met' if ratio >= TARGET_RATIO else 'MISSED'}")
    harness.save(args.json, {"benchmark": "process", "alexcost_command": command, "timings": rows,
                             "missing": missing})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
