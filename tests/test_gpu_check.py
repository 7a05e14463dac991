"""scripts/gpu-check's logic, run on the CPU in its quick mode, so it cannot break unnoticed.

Every run names its own --wheels folder, so the checkout's ignored .whl/ (full or empty) changes nothing.
Its CUDA branch runs under the stand-in in tests/test_cuda_paths.py.
"""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"
RESULT_FILES = {"summary.md", "time.json", "verify.json", "steps.json", "log.txt", "zoo.json", "train.json"}


def gpu_check(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def load_script():
    """scripts/gpu-check as a module (its file name has no .py)."""
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("gpu_check", loader))
    sys.modules["gpu_check"] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def fake_wheel(folder: Path, name: str, init: str) -> Path:
    """A minimal pure-Python wheel holding the package ``name`` whose ``__init__.py`` is ``init``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-0.0.0-py3-none-any.whl"
    info = f"{name}-0.0.0.dist-info"
    files = {f"{name}/__init__.py": init,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as z:
        for f, text in files.items():
            z.writestr(f, text)
    return path


def bfloat16_lrn_runs_on_cpu() -> bool:
    try:
        torch.nn.LocalResponseNorm(5)(torch.randn(1, 8, 4, 4, dtype=torch.bfloat16))
        return True
    except RuntimeError:
        return False


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK) and SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")


@pytest.mark.slow
def test_quick_cpu_run(tmp_path):
    out, wheels = tmp_path / "out", tmp_path / "no-wheels"
    wheels.mkdir()
    done = gpu_check("--device", "cpu", "--quick", "--models", "seed", "--dtypes", "float32,bfloat16",
                     "--batches", "1", "--wheels", str(wheels), env={"OUT": str(out)})
    files = {p.name for p in out.iterdir()}
    assert files == RESULT_FILES, done.stderr  # at most 8 files, no folders: all the device tool brings back
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [s["name"] for s in steps] == ["environment", "verify seed", "time seed float32", "time seed bfloat16",
                                          "zoo verify", "verify --training seed", "time --training seed"]
    status = {s["name"]: s["status"] for s in steps}
    assert status["environment"] == "ok" and status["time seed float32"] == "ok"
    # verify passes exactly when fvcore runs (it is importable here, with no wheels to install)
    assert status["verify seed"] == ("ok" if importlib.util.find_spec("fvcore") else "failed")
    # The seed has LocalResponseNorm: its bfloat16 step passes exactly when torch runs that op on the CPU,
    # and when it fails the failure is recorded and the run still ends with every file written.
    assert status["time seed bfloat16"] == ("ok" if bfloat16_lrn_runs_on_cpu() else "failed")
    assert done.returncode == (0 if all(s == "ok" for s in status.values()) else 1)

    runs = json.loads((out / "time.json").read_text())["runs"]
    assert [(r["model"], r["dtype"]) for r in runs] == [("seed", "float32"), ("seed", "bfloat16")]
    record = runs[0]["record"]
    assert record["complete"] and record["device"]["type"] == "cpu" and record["settings"]["repeats"] == 3
    assert record["settings"]["method"] == "loop" and record["settings"]["launch_floor"]["calls"] >= 1
    assert [b["batch"] for b in record["batches"]] == [1] and len(record["batches"][0]["layers"]) == 23
    summary = (out / "summary.md").read_text()
    assert record["verdict"][0] in summary and "## Per layer: seed, float32" in summary
    assert "- fvcore: ran (fvcore " in summary and f"wheels: none in {wheels}" in summary
    verify = json.loads((out / "verify.json").read_text())["runs"]
    assert [v["model"] for v in verify] == ["seed"] and verify[0]["status"] == status["verify seed"]
    assert "$ " + sys.executable + " -m alexcost time --model seed" in (out / "log.txt").read_text()
    # the zoo: torchvision models read by from_module and verified; params as torch counts them
    torchvision = pytest.importorskip("torchvision")
    zoo = json.loads((out / "zoo.json").read_text())["runs"][0]["output"]
    assert [r["model"] for r in zoo["runs"]] == ["tv:resnet18", "tv:mobilenet_v3_small"]
    for r in zoo["runs"]:
        model = torchvision.models.get_model(r["model"][3:], weights=None)
        assert r["status"] == "ok" and r["params"] == sum(p.numel() for p in model.parameters())
    assert "## The zoo: from_module + verify on the device" in summary and "| tv:resnet18 | ok |" in summary
    # training: a real step reconciled, and timed; the seed at batch 2: 2 * 62,369,152 parameters' gradients
    train = json.loads((out / "train.json").read_text())["runs"]
    assert [(r["model"], r["what"], r["status"]) for r in train] == [("seed", "verify", "ok"), ("seed", "time", "ok")]
    assert train[0]["output"]["ok"] and train[0]["output"]["batch"] == 2
    assert "## Training on the device" in summary


@pytest.mark.slow
def test_verify_without_fvcore_is_a_failed_step(tmp_path):
    # The wheels folder holds an "fvcore" that cannot be imported: the install step puts it first on the
    # path, verify runs without fvcore and exits 0, and gpu-check fails that step and says why.
    wheels = tmp_path / "wheels"
    fake_wheel(wheels, "fvcore", "raise ImportError('fvcore blocked by the test')\n")
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"name": "tiny", "input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "Flatten"}]}))
    out = tmp_path / "out"
    done = gpu_check(str(out), "--device", "cpu", "--steps", "verify", "--models", str(spec), "--wheels", str(wheels))
    assert done.returncode == 1, done.stderr
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("install wheels", "ok"), ("environment", "ok"),
                                                         ("verify tiny", "failed")]
    verify = steps[-1]
    assert verify["rc"] == 0 and verify["note"].startswith("fvcore did not run (fvcore skipped: import failed: ")
    assert "--allow-no-fvcore" in verify["note"]
    run = json.loads((out / "verify.json").read_text())["runs"][0]
    assert run["output"]["ok"] is True and run["output"]["fvcore"]["ran"] is False and run["status"] == "failed"
    summary = (out / "summary.md").read_text()
    assert "- fvcore: **did not run** (fvcore skipped: import failed: ImportError: fvcore blocked by the test)" \
        in summary
    assert summary.split("fvcore importable from: ")[1].split("\n")[0].endswith("/site/fvcore/__init__.py")
    assert set(p.name for p in out.iterdir()) == RESULT_FILES


def test_allow_no_fvcore_accepts_it_and_only_it():
    gc = load_script()
    ran = {"ok": True, "fvcore": {"ran": True, "note": "fvcore 0.1.5"}}
    skipped = {"ok": True, "fvcore": {"ran": False, "note": "fvcore skipped: not installed"}}
    for allow in (False, True):
        args = gc.arguments(["out", "--allow-no-fvcore"] if allow else ["out"])
        verify = gc.Verify(type("check", (), {"args": args})())
        assert verify.judge(None, ran) == ""
        assert (verify.judge(None, skipped) == "") is allow
        assert verify.judge(None, "Traceback ...") == "verify printed no JSON with fvcore's status"


def test_kinds_fit_the_device_tools_eight_files():
    gc = load_script()
    files = {"summary.md", "steps.json", "log.txt"} | {k.file for k in gc.KINDS.values()}
    assert files == RESULT_FILES and len(files) <= 8
    assert list(gc.KINDS) == ["verify", "time", "zoo", "train"]


def test_unknown_step_kind_is_exit_2(tmp_path):
    done = gpu_check(str(tmp_path), "--steps", "verify,trian")
    assert done.returncode == 2 and "unknown step kind 'trian'" in done.stderr


def test_out_of_time_budget_still_writes_every_file(tmp_path):
    done = gpu_check(str(tmp_path / "out"), "--device", "cpu", "--quick", "--models", "seed", "--budget", "1",
                     "--wheels", str(tmp_path))
    tmp_path = tmp_path / "out"
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


def test_time_runs_get_predict_beside_them():
    """A time record on a catalog GPU gets `alexcost predict`'s expected time per batch, in the record's
    dtype and the mode its method implies; on a device the catalog lacks, a note and no numbers."""
    from alexcost import preset
    from alexcost.prediction import predict

    script = load_script()
    record = {"dtype": "float32", "input_shape": [3, 227, 227], "settings": {"method": "graph", "spec_sheet": {"gpu": "v100"}},
              "batches": [{"batch": 32, "network_ms": 5.0, "layers_sum_ms": 5.5, "layers": [{"name": "conv1", "median_ms": 0.5}]}]}
    p = script.predicted(record, "seed")
    expect = predict(preset("seed"), "v100", batch=32, mode="graph")
    assert (p["gpu"], p["mode"], p["phase"]) == ("v100", "graph", "forward") and "never enter its fit" in p["note"]
    b = p["batches"][0]
    assert b["expected_ms"] == expect.expected_ms and b["bound_ms"] == expect.bound_ms
    assert b["expected_over_measured"] == expect.expected_ms / 5.0
    assert b["layers"][0] == {"name": "conv1", "measured_ms": 0.5, "expected_ms": expect.layers[0].expected_ms,
                              "bound_ms": expect.layers[0].bound_ms, "limited_by": expect.layers[0].limited_by}
    table = "\n".join(script.prediction_section([{"model": "seed", "dtype": "float32", "predicted": p}]))
    assert f"| seed | float32 | 32 | v100 (graph) | 5.000 | {expect.expected_ms:.3f} |" in table
    cpu = script.predicted({"dtype": "float32", "settings": {"method": "loop"}, "batches": [{"batch": 1}]}, "seed")
    assert cpu == {"note": "no GPU of alexcost's catalog matches this device: nothing to predict"}
