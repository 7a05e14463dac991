"""Every benchmark script runs in ``--smoke`` mode (tiny repeats and sizes), so none can silently break.

The figures are not checked (they are benchmarks, not timed tests), but the agreement is:
every peer that is installed must report the count alexcost predicts for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every script runs in a child process

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FAST_PEERS = ["fvcore", "torch FlopCounterMode (meta)"]


def smoke(tmp_path, script: str, *args: str) -> tuple[str, dict]:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(BENCH / script), "--smoke", "--json", str(out), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_speed(tmp_path):
    out, data = smoke(tmp_path, "bench_speed.py", "--models", "seed")
    assert "alexcost: analyse (cost().totals)" in out and "!= rule" not in out
    counts = data["results"][0]["counts"]
    assert "fvcore" in counts and all(c["peer"] == c["rule"] for c in counts.values())


def test_process(tmp_path):
    out, data = smoke(tmp_path, "bench_process.py", "--peers", *FAST_PEERS)
    assert "printed the total alexcost predicts for it: fvcore" in out
    assert [t["label"] for t in data["timings"]][:2] == ["python -c pass (start-up floor)", "alexcost report"]


def test_scaling(tmp_path):
    out, data = smoke(tmp_path, "bench_scaling.py", "--sizes", "10", "60")
    assert [r["layers"] for r in data["results"]] == [10, 60]
    assert "per-layer time at 60 / at 10 layers" in out


def test_agreement(tmp_path):
    out, data = smoke(tmp_path, "bench_agreement.py", "--models", "seed", "chain24")
    assert "agreement: every count matches its prediction" in out
    assert data["per_layer_mismatches"] == []


def test_search(tmp_path):
    out, data = smoke(tmp_path, "bench_search.py")
    assert "peers' MACs equal alexcost's" in out and data["agree"] is True
    assert [r["space"] for r in data["results"]] == ["repetitive", "diverse"]
    for result in data["results"]:
        assert result["candidates"] == 200 and 0 < result["valid"] <= 200
    assert data["results"][1]["layers"] == 200 * 40


def test_graphs(tmp_path):
    """fvcore's count on torchvision's ResNet-18 is the one alexcost predicts; every verdict is printed."""
    pytest.importorskip("torchvision")
    out, data = smoke(tmp_path, "bench_graphs.py", "--models", "resnet18")
    assert "alexcost predicts" in out and "DIFFER" not in out
    verdicts = data["verdicts"]
    assert any("preset(name).cost()" in v for v in verdicts) and any("fvcore / that" in v for v in verdicts)


def test_from_module(tmp_path):
    """It runs, and its MACs agree with torch's."""
    pytest.importorskip("torchvision")
    out, data = smoke(tmp_path, "bench_from_module.py")
    assert "fvcore / from_module on squeezenet1_1" in out
    assert [r["agree"] for r in data["results"]] == [True]


def test_zoo_speed(tmp_path):
    """It runs, its CSV holds the row it printed, and the MACs agree with FlopCounterMode's FLOPs / 2."""
    pytest.importorskip("torchvision")
    csv_path = tmp_path / "zoo_speed.csv"
    out, data = smoke(tmp_path, "bench_zoo_speed.py", "--out", str(csv_path))
    assert "[1/1] squeezenet1_1" in out and "fastest real-tensor peer:" in out
    [row] = data["results"]
    assert row["model"] == "squeezenet1_1" and row["agree"] is True
    assert csv_path.read_text().splitlines()[1].startswith("squeezenet1_1,")


def test_training(tmp_path):
    from alexcost import PRESETS

    _, data = smoke(tmp_path, "bench_training.py")
    assert [r["model"] for r in data["in_process"]] == list(PRESETS)
    assert data["process"]["rounds"] == 2


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_every_script_has_help(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "--smoke" in proc.stdout


def test_prediction(tmp_path):
    """The time model on the published timings: every target line printed, the bound holding."""
    out, data = smoke(tmp_path, "bench_prediction.py")
    assert "leave one GPU out" in out and "PASS: 0 rows faster than the bound by more than 5%" in out
    assert data["faster_than_bound"] == 0 and len(data["rows"]) == data["summary"]["rows"]
