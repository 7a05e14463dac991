"""scripts/gpu-check's logic, run on the CPU in its quick mode, so it cannot break unnoticed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"
RESULT_FILES = {"summary.md", "time.json", "verify.json", "steps.json", "log.txt"}


def gpu_check(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def bfloat16_lrn_runs_on_cpu() -> bool:
    try:
        torch.nn.LocalResponseNorm(5)(torch.randn(1, 8, 4, 4, dtype=torch.bfloat16))
        return True
    except RuntimeError:
        return False


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK) and SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


def test_quick_cpu_run(tmp_path):
    out = tmp_path / "out"
    done = gpu_check("--device", "cpu", "--quick", "--models", "seed", "--dtypes", "float32,bfloat16",
                     "--batches", "1", env={"OUT": str(out)})
    files = {p.name for p in out.iterdir()}
    assert files == RESULT_FILES, done.stderr  # at most 8 files, no folders: all the device tool brings back
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [s["name"] for s in steps] == ["environment", "verify seed", "time seed float32", "time seed bfloat16"]
    status = {s["name"]: s["status"] for s in steps}
    assert status["environment"] == "ok" and status["time seed float32"] == "ok"
    # The seed has LocalResponseNorm: its bfloat16 step passes exactly when torch runs that op on the CPU,
    # and when it fails the failure is recorded and the run still ends with every file written.
    assert status["time seed bfloat16"] == ("ok" if bfloat16_lrn_runs_on_cpu() else "failed")
    assert done.returncode == (0 if all(s == "ok" for s in status.values()) else 1)

    runs = json.loads((out / "time.json").read_text())["runs"]
    assert [(r["model"], r["dtype"]) for r in runs] == [("seed", "float32"), ("seed", "bfloat16")]
    record = runs[0]["record"]
    assert record["complete"] and record["device"]["type"] == "cpu" and record["settings"]["repeats"] == 3
    assert [b["batch"] for b in record["batches"]] == [1] and len(record["batches"][0]["layers"]) == 23
    summary = (out / "summary.md").read_text()
    assert record["verdict"][0] in summary and "## Per layer: seed, float32" in summary
    verify = json.loads((out / "verify.json").read_text())["runs"]
    assert [v["model"] for v in verify] == ["seed"] and verify[0]["status"] == status["verify seed"]
    assert "$ " + sys.executable + " -m alexcost time --model seed" in (out / "log.txt").read_text()


def test_out_of_time_budget_still_writes_every_file(tmp_path):
    done = gpu_check(str(tmp_path), "--device", "cpu", "--quick", "--models", "seed", "--budget", "1")
    assert done.returncode == 1
    assert {p.name for p in tmp_path.iterdir()} == RESULT_FILES
    steps = json.loads((tmp_path / "steps.json").read_text())["steps"]
    assert steps and all(s["status"] == "skipped" and "out of time budget" in s["note"] for s in steps)


def test_needs_an_output_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 2 and "name an output folder, or set $OUT" in done.stderr
    assert list(tmp_path.iterdir()) == []
