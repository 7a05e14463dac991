"""The training analysis against the forward one: whole process and in-process.

Targets (issue 10):

* ``alexcost train --model paper`` within 1.2x of ``alexcost report --model paper``, whole
  process, start to exit: both commands run interleaved (one of each per round, the order
  alternating), many rounds; the figure is the ratio of the medians.
* In-process, the training analysis (``training_cost(net, 128)``: backward counts, kept
  bytes, model state and the peak-memory model, then the schedule) within 3x of the forward
  analysis (``net.cost(128).totals``), per preset, each on a network built afresh from the
  preset's layers inside the timed call: what either caches on a network object (the forward
  sums, the training structure) would otherwise make the comparison one of caches.

A last row times both on the preset's own network object, held between calls.

    python benchmarks/bench_training.py [--alexcost /tmp/bench-venv/bin/alexcost] [--smoke] [--json FILE]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness
from harness import fmt_ratio, fmt_time, table, time_call

TARGET_PROCESS = 1.2
TARGET_IN_PROCESS = 3.0


def alexcost_command(given: str | None = None) -> str:
    """The ``alexcost`` to time: the one given, else the one beside this Python, else on PATH.
    Give a non-editable install (whose modules pip compiled): where ``PYTHONDONTWRITEBYTECODE``
    is set, an editable install compiles every module from source on every run."""
    if given:
        return given
    beside = Path(sys.executable).parent / "alexcost"
    found = str(beside) if beside.exists() else shutil.which("alexcost")
    if not found:
        raise SystemExit("no alexcost command found beside this Python or on PATH")
    return found


def processes(command: str, rounds: int) -> dict[str, list[float]]:
    """Seconds per run of each command, interleaved; each run's output checked."""
    runs = {"report": [command, "report", "--model", "paper"], "train": [command, "train", "--model", "paper"]}
    expect = {"report": "Forward Computation", "train": "petaflop/s-days"}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds + 1):  # round 0 warms the file cache and is dropped
        order = list(runs) if r % 2 else list(reversed(runs))
        for name in order:
            start = time.perf_counter()
            done = subprocess.run(runs[name], capture_output=True, text=True)
            took = time.perf_counter() - start
            if done.returncode != 0 or expect[name] not in done.stdout:
                raise RuntimeError(f"{runs[name]}: exit {done.returncode}: {done.stderr[-300:]}")
            if r:
                times[name].append(took)
    return times


def main(argv=None) -> int:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--alexcost", metavar="PATH", help="the alexcost command to time (default: beside this Python)")
    args = p.parse_args(argv)
    from alexcost import PRESETS, Network, preset
    from alexcost.training import training_cost

    repeats = args.repeats or (3 if args.smoke else 15)
    rounds = 2 if args.smoke else 40
    harness.header("alexcost train: the training analysis against the forward analysis", torch_used=False)
    results: dict = {"in_process": [], "process": {}}
    lines, passed = [], True
    rows = []
    for name in PRESETS:
        held = preset(name)
        shape, layers = held.input_shape, held.layers
        forward = time_call(f"{name}: cost(128).totals", lambda: Network(shape, layers, name=name).cost(128).totals,
                            repeats)
        train = time_call(f"{name}: training_cost(128) + schedule",
                          lambda: training_cost(Network(shape, layers, name=name), 128).schedule(), repeats)
        ratio = train.median / forward.median
        ok = ratio <= TARGET_IN_PROCESS
        passed &= ok
        rows.append([name, fmt_time(forward.median), fmt_time(train.median), fmt_ratio(ratio), "PASS" if ok else "FAIL"])
        results["in_process"].append({"model": name, "forward": forward, "training": train, "ratio": ratio})
    cold_f = time_call("paper, held: cost(128).totals", lambda: preset("paper").cost(128).totals, repeats)
    cold_t = time_call("paper, held: training_cost(128)", lambda: training_cost(preset("paper"), 128).schedule(),
                       repeats)
    rows.append(["paper (network held between calls)", fmt_time(cold_f.median), fmt_time(cold_t.median),
                 fmt_ratio(cold_t.median / cold_f.median), ""])
    results["cold"] = {"forward": cold_f, "training": cold_t}
    print(table(("model", "forward analysis", "training analysis", "ratio", f"<= {TARGET_IN_PROCESS}x"), rows))
    print()

    command = alexcost_command(args.alexcost)
    print(f"alexcost command: {command}")
    times = processes(command, rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["train"] / med["report"]
    ok = ratio <= TARGET_PROCESS
    passed &= ok
    print(table(("process", "median", "runs"),
                [["alexcost report --model paper", fmt_time(med["report"]), str(len(times["report"]))],
                 ["alexcost train --model paper", fmt_time(med["train"]), str(len(times["train"]))]]))
    lines.append(f"whole process: train / report = {ratio:.2f}x (target <= {TARGET_PROCESS}x): "
                 f"{'PASS' if ok else 'FAIL'}")
    results["process"] = {"report_s": med["report"], "train_s": med["train"], "ratio": ratio,
                          "rounds": len(times["train"])}
    print()
    print("\n".join(lines))
    print("verdict:", "PASS" if passed else "FAIL", "(smoke run: figures not meaningful)" if args.smoke else "")
    harness.save(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
