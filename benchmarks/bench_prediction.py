"""The time model against published GPU timings, and ``alexcost predict``'s speed as a process.

On the published file (benchmarks/published.py finds it), with the shipped coefficients:
the median error (|predicted / measured - 1|) overall, per phase, per GPU and per network;
the rows within 10% and within 25%; the median predicted/measured; the leave-one-GPU-out
median (each GPU predicted by a fit that never saw it: a refit per GPU, about a minute); and
the rows faster than the bound (``bound_ms`` more than 5% above the measured time).

Targets: median error at most 20%, median predicted/measured in [0.9, 1.1], no phase with
a median error above 30%, no row faster than the bound by more than 5%, leave-one-GPU-out
median at most 20%; ``alexcost predict --model resnet50 --gpu a100`` within 1.3x of
``alexcost report --model resnet50`` as whole processes (interleaved, ratio of medians).

    python benchmarks/bench_prediction.py [--rows] [--rounds N] [--smoke] [--json FILE]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
from harness import table

import calibration
import published
from alexcost.hardware.model import timed
from alexcost.hardware.timemodel import shipped

TARGETS = {"median_error": 0.20, "ratio": (0.9, 1.1), "phase_error": 0.30, "faster_than_bound": 1.05,
           "leave_one_gpu_out": 0.20, "process": 1.3}


def medians(keys, errors) -> list[list[str]]:
    out = []
    for key in sorted(set(keys), key=str):
        e = [v for k, v in zip(keys, errors) if k == key]
        out.append([str(key), str(len(e)), f"{statistics.median(e):.1%}"])
    return out


def processes(rounds: int, cache: str) -> dict[str, list[float]]:
    """Seconds per whole process of ``alexcost report`` and ``alexcost predict`` on ResNet-50, interleaved,
    their modules compiled once into ``cache`` (as an installed package's are), whatever
    ``PYTHONDONTWRITEBYTECODE`` says."""
    command = str(Path(sys.executable).parent / "alexcost")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    runs = {"report": [command, "report", "--model", "resnet50"],
            "predict": [command, "predict", "--model", "resnet50", "--gpu", "a100"]}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds + 1):  # round 0 warms the file cache and is dropped
        for name in (list(runs) if r % 2 else list(reversed(runs))):
            start = time.perf_counter()
            done = subprocess.run(runs[name], capture_output=True, text=True, env=env)
            took = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"{runs[name]}: exit {done.returncode}: {done.stderr[-300:]}")
            if r:
                times[name].append(took)
    return times


def main(argv=None) -> int:
    p = harness.parser(__doc__.split("\n\n")[0])
    p.add_argument("--rows", action="store_true", help="also print every row")
    p.add_argument("--rounds", type=int, default=20, help="process rounds (report and predict once each)")
    a = p.parse_args(argv)
    harness.header("time model against published timings", torch_used=False)
    rows = published.rows()
    plans = published.plans(rows)
    estimates = [timed(x) for x in plans]
    measured = [r.measured_ms for r in rows]
    predicted = [e.expected_ms for e in estimates]
    errors = calibration.errors(predicted, measured)
    s = calibration.summary(predicted, measured)
    provenance = shipped().provenance
    same = "matches" if provenance.get("sha256") == published.sha256() else "DIFFERS"
    print(f"{len(rows)} published timings ({published.data_path()}); coefficients fitted {provenance.get('date')} "
          f"on {provenance.get('rows')} rows (the file's sha256 {same})")
    print(f"median error {s['median_error']:.1%}; median predicted/measured {s['median_ratio']:.3f}; "
          f"within 10%: {s['within_10']} rows, within 25%: {s['within_25']} rows")
    for title, keys in (("phase (as published)", [r.published_phase for r in rows]), ("GPU", [r.gpu for r in rows]),
                        ("network", [r.network for r in rows]), ("dtype", [r.dtype for r in rows])):
        print()
        print(table((title, "rows", "median error"), medians(keys, errors)))
    over = [(e.bound_ms / m, r) for e, m, r in zip(estimates, measured, rows)]
    faster = [(x, r) for x, r in over if x > TARGETS["faster_than_bound"]]
    worst = max(over, key=lambda t: t[0])
    print(f"\nrows faster than the bound by more than 5%: {len(faster)}; closest: measured = "
          f"{1 / worst[0]:.2f} x bound ({worst[1].network} on {worst[1].gpu}, {worst[1].dtype}, {worst[1].phase})")
    if a.rows:
        print()
        print(table(("network", "GPU", "batch", "dtype", "phase", "measured ms", "predicted ms", "pred/meas",
                     "bound/meas", "framework"),
                    [[r.network, r.gpu if r.gpus == 1 else f"{r.gpus}x{r.gpu}", str(r.batch), r.dtype, r.phase,
                      f"{m:.2f}", f"{pr:.2f}", f"{pr / m:.2f}", f"{e.bound_ms / m:.2f}", r.framework[:30]]
                     for r, m, pr, e in zip(rows, measured, predicted, estimates)],
                    ["left"] * 5 + ["right"] * 4 + ["left"]))
    if a.smoke:
        logo = provenance.get("leave_one_gpu_out", {}).get("median_error")
        print(f"\nleave one GPU out (smoke: the shipped fit's figure): median error {logo:.1%}")
    else:
        start = time.monotonic()
        held, _ = calibration.held_out(plans, measured, [r.gpu for r in rows])
        logo = calibration.summary(held, measured)["median_error"]
        print(f"\nleave one GPU out: median error {logo:.1%} ({len(set(r.gpu for r in rows))} refits, "
              f"{time.monotonic() - start:.0f} s)")
    phase_errors = {k: float(v[:-1]) / 100 for k, _, v in medians([r.published_phase for r in rows], errors)}
    with tempfile.TemporaryDirectory() as cache:
        times = processes(2 if a.smoke else a.rounds, cache)
    ratio = statistics.median(times["predict"]) / statistics.median(times["report"])
    print(f"\nwhole process, ResNet-50: predict {statistics.median(times['predict']) * 1e3:.0f} ms, report "
          f"{statistics.median(times['report']) * 1e3:.0f} ms: {ratio:.2f}x ({len(times['predict'])} rounds)")
    low, high = TARGETS["ratio"]
    verdicts = [(s["median_error"] <= TARGETS["median_error"], f"median error {s['median_error']:.1%} <= 20%"),
                (low <= s["median_ratio"] <= high, f"median predicted/measured {s['median_ratio']:.3f} in [0.9, 1.1]"),
                (max(phase_errors.values()) <= TARGETS["phase_error"],
                 f"worst phase median error {max(phase_errors.values()):.1%} <= 30%"),
                (not faster, f"{len(faster)} rows faster than the bound by more than 5%"),
                (logo <= TARGETS["leave_one_gpu_out"], f"leave-one-GPU-out median {logo:.1%} <= 20%"),
                (ratio <= TARGETS["process"], f"predict / report as processes {ratio:.2f}x <= 1.3x")]
    print()
    for ok, text in verdicts:
        print(("PASS: " if ok else "FAIL: ") + text)
    harness.save(a.json, {"summary": s, "phase_errors": phase_errors, "leave_one_gpu_out": logo,
                          "faster_than_bound": len(faster), "process_ratio": ratio,
                          "rows": [{"network": r.network, "gpu": r.gpu, "gpus": r.gpus, "batch": r.batch,
                                    "dtype": r.dtype, "phase": r.phase, "measured_ms": m, "predicted_ms": pr,
                                    "bound_ms": e.bound_ms}
                                   for r, m, pr, e in zip(rows, measured, predicted, estimates)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
