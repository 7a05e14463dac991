"""Whole process: alexcost's start-up against Python's own, and ``alexcost report`` vs a script per peer.

Start-up (issue 13): ``alexcost report``, ``alexcost models`` and ``alexcost --help``
against ``python -c pass`` of the same environment, run interleaved (one of each per
round, the order rotating), many rounds; medians, quartiles, the ratios, and the peak
RSS of each process (``os.wait4``, see ``RSS_LAUNCHER``). Targets: each command within
2x of ``python -c pass``, ``alexcost report``'s peak RSS within 1.5x. ``import typing``, the standard modules click
needs (``CLICK_STDLIB``) and ``import click`` are timed beside them: the floor any click
command pays.

Peers: each peer's script imports torch and the peer, builds the seed AlexNet in plain
torch.nn (written out below, not taken from alexcost) and prints the peer's total; the
parent checks that total against alexcost's prediction (peers.py), so every process timed
did the job. ``python -c pass`` (interpreter start-up) and ``python -c "import torch"``
are the floors.

Time alexcost from a NON-editable install: an editable install's import hook adds ~8 ms.

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install .
    python benchmarks/bench_process.py --alexcost /tmp/bench-venv/bin/alexcost
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
from harness import commas, fmt_ratio, fmt_time, table, time_process
from networks import network
from peers import by_name

TARGET_REPORT = 0.050
TARGET_RATIO = 30
TARGET_STARTUP_RATIO = 2.0
"""``alexcost report``, ``models`` and ``--help``: at most this many times ``python -c pass``."""
TARGET_RSS_RATIO = 1.5
"""``alexcost report``'s peak RSS: at most this many times that of ``python -c pass``."""

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


def run_once(argv: list[str], env: dict, expect: str | None) -> float:
    """Seconds from start to exit of one process, its exit code and output checked."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=out, stderr=err, env=env)
        took = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
        if proc.returncode != 0 or (expect is not None and expect not in text):
            err.seek(0)
            raise RuntimeError(f"{argv}: exit {proc.returncode}, stdout {text[-200:]!r}, "
                               f"stderr {err.read()[-400:]!r}")
    return took


RSS_LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\n{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}\\n")
"""
"""Runs ARGV and prints its exit code and peak RSS. Linux counts in a child's peak the memory of
the process it was forked from, so ``os.wait4`` on a child of this (large) benchmark process
reports ~20 MiB for anything; forked from a bare ``python -S -I`` it matches GNU time's %M."""


def peak_rss(python: str, argv: list[str], env: dict) -> int:
    """The peak resident set size of one run of ``argv``, in bytes."""
    proc = subprocess.run([python, "-S", "-I", "-c", RSS_LAUNCHER, *argv], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env)
    code, maxrss = map(int, proc.stderr.split()[-2:])
    if proc.returncode != 0 or code != 0:
        raise RuntimeError(f"{argv}: exit {code}, {proc.stderr[-400:]!r}")
    return maxrss * (1 if sys.platform == "darwin" else 1024)  # Linux counts KiB, macOS bytes


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, statistics.median(values), q3


CLICK_STDLIB = "import typing, re, enum, gettext, locale, uuid, datetime, threading, weakref"
"""The standard modules click's import runs (module-level use, not just an import statement):
typing everywhere, re and enum, gettext (which loads locale on its first translation), uuid
(which loads platform), datetime, threading, weakref. No command line built on click starts faster."""


def alexcost_processes(command: str, report_total: str, label: str = "alexcost", target=None) -> list[tuple]:
    return [(f"{label} --help", [command, "--help"], "Usage: alexcost", target),
            (f"{label} models", [command, "models"], "62,369,152", target),
            (f"{label} report", [command, "report"], report_total, target)]


def startup(python: str, command: str, rounds: int, warmup: int, env: dict, report_total: str,
            baseline: str | None = None) -> dict:
    """Interleaved rounds of the start-up processes; per process the median time and RSS, and the
    ratios to ``python -c pass`` (of medians; the q1-q3 of the per-round ratios beside them).
    ``baseline``: another install's ``alexcost`` (an older version, say), run in the same rounds."""
    procs = [
        ("python -c pass", [python, "-c", "pass"], None, None),
        ("python -c 'import typing'", [python, "-c", "import typing"], None, None),
        ("python -c 'import <click's stdlib>'", [python, "-c", CLICK_STDLIB], None, None),
        ("python -c 'import click'", [python, "-c", "import click"], None, None),
        *(alexcost_processes(baseline, report_total, "baseline: alexcost") if baseline else []),
        *alexcost_processes(command, report_total, target=TARGET_STARTUP_RATIO),
    ]
    times = {label: [] for label, *_ in procs}
    rss = {label: [] for label, *_ in procs}
    load = os.getloadavg()
    for round_ in range(warmup + rounds):
        shift = round_ % len(procs)
        for label, argv, expect, _ in procs[shift:] + procs[:shift]:
            took = run_once(argv, env, expect)
            if round_ >= warmup:
                times[label].append(took)
                if (round_ - warmup) % 4 == 0:  # the peak barely moves: every fourth round is enough
                    rss[label].append(peak_rss(python, argv, env))
    base, base_rss = times["python -c pass"], rss["python -c pass"]
    rows = []
    for label, _, _, target in procs:
        q1, med, q3 = quartiles(times[label])
        paired = quartiles([t / b for t, b in zip(times[label], base)])
        rows.append({"label": label, "median_s": med, "q1_s": q1, "q3_s": q3, "runs": len(times[label]),
                     "ratio": med / statistics.median(base), "ratio_q1": paired[0], "ratio_q3": paired[2],
                     "rss_bytes": statistics.median(rss[label]),
                     "rss_ratio": statistics.median(rss[label]) / statistics.median(base_rss),
                     "target_ratio": target})
    return {"rows": rows, "load_average_before": load, "load_average_after": os.getloadavg()}


def print_startup(result: dict) -> list[str]:
    """The start-up table and one PASS/FAIL line per target; returns the verdict lines."""
    mib = 2**20
    print(table(("process", "median", "q1 - q3", "runs", "x python -c pass", "per-round q1 - q3", "peak RSS",
                 "RSS x"),
                [[r["label"], fmt_time(r["median_s"]), f"{fmt_time(r['q1_s'])} - {fmt_time(r['q3_s'])}",
                  str(r["runs"]), f"{r['ratio']:.2f}x", f"{r['ratio_q1']:.2f}x - {r['ratio_q3']:.2f}x",
                  f"{r['rss_bytes'] / mib:.1f} MiB", f"{r['rss_ratio']:.2f}x"] for r in result["rows"]]))
    print("load average before / after: " + " / ".join(" ".join(f"{x:.2f}" for x in result[k])
                                                     for k in ("load_average_before", "load_average_after")))
    verdicts = []
    by_label = {r["label"]: r for r in result["rows"]}
    for r in result["rows"]:
        if r["target_ratio"] is not None:
            ok = r["ratio"] <= r["target_ratio"]
            verdicts.append(f"{'PASS' if ok else 'FAIL'}: {r['label']} takes {r['ratio']:.2f}x python -c pass "
                            f"(target <= {r['target_ratio']:g}x)")
    report = by_label["alexcost report"]
    ok = report["rss_ratio"] <= TARGET_RSS_RATIO
    verdicts.append(f"{'PASS' if ok else 'FAIL'}: alexcost report's peak RSS is {report['rss_ratio']:.2f}x "
                    f"python -c pass's ({report['rss_bytes'] / mib:.1f} vs "
                    f"{by_label['python -c pass']['rss_bytes'] / mib:.1f} MiB; target <= {TARGET_RSS_RATIO:g}x)")
    click, typing = by_label["python -c 'import click'"], by_label["python -c 'import typing'"]
    stdlib = by_label["python -c 'import <click's stdlib>'"]
    verdicts.append(f"floor: importing click alone takes {click['ratio']:.2f}x python -c pass and "
                    f"{click['rss_ratio']:.2f}x its RSS; the standard modules it needs at import, "
                    f"{stdlib['ratio']:.2f}x and {stdlib['rss_ratio']:.2f}x; typing alone {typing['ratio']:.2f}x")
    for line in verdicts:
        print(line)
    return verdicts


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n")[0])
    p.add_argument("--alexcost", default=None, help="the alexcost command to time (default: beside this Python)")
    p.add_argument("--peers", nargs="+", default=None, help="peer names (default: all)")
    p.add_argument("--peer-repeats", type=int, default=None, help="samples per peer (default 10)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved start-up rounds (default 40)")
    p.add_argument("--startup-only", action="store_true", help="skip the torch-based peers")
    p.add_argument("--baseline", metavar="ALEXCOST", default=None,
                   help="another install's alexcost command to time in the same start-up rounds (before/after)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.smoke else 30)
    rounds = args.rounds or (2 if args.smoke else 40)
    peer_repeats = args.peer_repeats or (1 if args.smoke else 10)
    warmup = 0 if args.smoke else 2
    command = args.alexcost or default_alexcost()
    if not command:
        raise SystemExit("no alexcost command found; pass --alexcost PATH")
    # The python of the alexcost install: its start-up is the floor alexcost pays.
    alexcost_python = str(Path(command).parent / "python")
    alexcost_python = alexcost_python if os.path.exists(alexcost_python) else sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    harness.header("whole process: alexcost's start-up, and alexcost report vs a minimal torch script per peer")
    print(f"alexcost command: {command}")
    print(f"its python: {alexcost_python}")
    print(f"peer scripts run with: {sys.executable}")
    print()
    cost = network("seed").cost()
    print(f"## start-up: {rounds} interleaved rounds (after {0 if args.smoke else 2} warm-up rounds)")
    started = startup(alexcost_python, command, rounds, 0 if args.smoke else 2, env, commas(cost.totals.forward),
                      args.baseline)
    verdicts = print_startup(started)
    print()
    if args.startup_only:
        harness.save(args.json, {"benchmark": "process", "alexcost_command": command, "startup": started,
                                 "verdicts": verdicts})
        return 0
    print("## alexcost report vs the peers")
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
                             "missing": missing, "startup": started, "verdicts": verdicts})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
