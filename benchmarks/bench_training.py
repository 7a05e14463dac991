"""The training analysis against the forward one: whole process and in-process.

Targets (issues 10 and 22):

* ``alexcost train --model paper`` within 1.2x of ``alexcost report --model paper``, whole
  process, start to exit: both commands run interleaved (one of each per round, the order
  alternating), many rounds; the figure is the ratio of the medians.
* ``alexcost train --model resnet50`` in-process within 3x of the forward analysis, memory model
  included. Measured two ways:
  - the commands: ``train --model resnet50`` against ``report --model resnet50``, each invoked
    in a fresh process after its imports (and one command on another preset, so every module the
    command uses is loaded): the time of the one invocation, preset built and rules worked out
    for the first time, output rendered; interleaved rounds, the ratio of the medians;
  - the analyses, per preset, each on a network built afresh from the preset's layers inside the
    timed call (what either caches on a network object would otherwise make the comparison one
    of caches): ``training_cost(net, 128)`` with its schedule and memory model (its per-layer
    records are part of it), against ``net.cost(128).totals``.

A last row times both on the preset's own network object, held between calls (each kept on it).

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
COMMAND_SNIPPET = """\
import contextlib, io, sys, time
from alexcost_cli.main import cli
def run(argv, out):
    with contextlib.redirect_stdout(out):
        try:
            cli.main(argv, standalone_mode=False)
        except SystemExit as done:  # the group always leaves through sys.exit
            assert not done.code, done.code
clock, argv = {"wall": time.perf_counter, "cpu": time.process_time}[sys.argv[1]], sys.argv[2:]
run([argv[0], "--model", "seed"], io.StringIO())  # load what the command loads, on another preset
out = io.StringIO()
start = clock()
run(argv, out)
took = clock() - start
print(took, len(out.getvalue()))
"""
"""One invocation of an alexcost command, timed in-process after its imports (seconds, output length)."""


def commands_in_process(model: str, rounds: int, clock: str) -> dict[str, list[float]]:
    """Seconds of one in-process invocation of ``report`` and of ``train`` on ``model``, each in a
    fresh process, interleaved (on the ``wall`` or the ``cpu`` clock)."""
    runs = {"report": ["report", "--model", model], "train": ["train", "--model", model]}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in (list(runs) if r % 2 else list(reversed(runs))):
            done = subprocess.run([sys.executable, "-c", COMMAND_SNIPPET, clock, *runs[name]], capture_output=True,
                                  text=True, check=True)
            took, length = done.stdout.split()
            if int(length) < 1000:
                raise RuntimeError(f"{runs[name]} printed {length} characters: {done.stderr[-300:]}")
            times[name].append(float(took))
    return times


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
    times = commands_in_process("resnet50", 3 if args.smoke else 20, args.clock)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["train"] / med["report"]
    passed &= ratio <= TARGET_IN_PROCESS
    print(table(("command, in-process (fresh process, after imports)", "median", "runs"),
                [[f"alexcost {k} --model resnet50", fmt_time(v), str(len(times[k]))] for k, v in med.items()]))
    lines.append(f"in-process: train / report --model resnet50 = {ratio:.2f}x (target <= {TARGET_IN_PROCESS}x): "
                 f"{'PASS' if ratio <= TARGET_IN_PROCESS else 'FAIL'}")
    results["commands"] = {"report_s": med["report"], "train_s": med["train"], "ratio": ratio,
                           "rounds": len(times["train"])}
    print()

    def step(net):
        t = training_cost(net, 128)
        t.schedule()
        return t.memory

    for name in PRESETS:
        held = preset(name)
        shape, layers = held.input_shape, held.layers
        forward = time_call(f"{name}: cost(128).totals", lambda: Network(shape, layers, name=name).cost(128).totals,
                            repeats)
        train = time_call(f"{name}: training_cost(128) + schedule", lambda: training_cost(
            Network(shape, layers, name=name), 128).schedule(), repeats)
        memory = time_call(f"{name}: + memory", lambda: step(Network(shape, layers, name=name)), repeats)
        ratio = memory.median / forward.median
        ok = ratio <= TARGET_IN_PROCESS
        if name == "resnet50":
            lines.append(f"analyses, network built afresh: training (memory model included) / forward on resnet50 = "
                         f"{ratio:.2f}x (target <= {TARGET_IN_PROCESS}x): {'PASS' if ok else 'FAIL'}")
        rows.append([name, fmt_time(forward.median), fmt_time(train.median), fmt_ratio(train.median / forward.median),
                     fmt_time(memory.median), fmt_ratio(ratio)])
        results["in_process"].append({"model": name, "forward": forward, "training": train, "memory": memory,
                                      "ratio": train.median / forward.median, "ratio_memory": ratio})
    cold_f = time_call("resnet50, held: cost(128).totals", lambda: preset("resnet50").cost(128).totals, repeats)
    cold_t = time_call("resnet50, held: training_cost(128)", lambda: step(preset("resnet50")), repeats)
    rows.append(["resnet50 (network held between calls)", fmt_time(cold_f.median), "", "", fmt_time(cold_t.median),
                 fmt_ratio(cold_t.median / cold_f.median)])
    results["held"] = {"forward": cold_f, "training": cold_t}
    print(table(("model", "forward analysis", "training analysis", "ratio", "with its memory model", "ratio"), rows))
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
