"""The small things a new user meets: OpenAI's AlexNet estimate only beside AlexNet, no communication
line for one GPU, a note when --input-shape changes a layer's parameters, a batch dimension given by
mistake, the smallest input a network takes, no stray figures in the repository, and ``time``'s
warning when the machine's peak moves during a run. Expected values by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result, *fragments) -> str:
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr


@pytest.mark.parametrize("model, shown", [("seed", True), ("paper", True), ("torchvision", True),
                                          ("resnet18", False), ("vgg16", False)])
def test_openai_estimate_only_beside_alexnet(model, shown):
    out = run("train", "--model", model).stdout
    assert ("OpenAI's estimate for AlexNet" in out) is shown
    assert json.loads(run("train", "--model", model, "--format", "json").stdout)["schedule"]["openai"]  # data kept


def test_no_communication_on_one_gpu():
    one = run("train", "--gpu", "h100").stdout
    assert "communication" not in one and "step (time model, eager mode): " in one
    two = run("train", "--gpu", "h100", "--gpus", "2").stdout
    assert "communication " in two  # data parallel: the gradients' all-reduce


def test_a_note_when_the_input_changes_parameters():
    result = run("report", "--input-shape", "1,227,227", "--format", "json")
    assert result.exit_code == 0
    conv1_rgb, conv1_grey = (11 * 11 * 3 + 1) * 96, (11 * 11 * 1 + 1) * 96
    assert result.stderr == (f"note: on input 1x227x227 (not 3x227x227) parameters change: conv1 {conv1_rgb:,} -> "
                             f"{conv1_grey:,}\n")
    assert json.loads(result.stdout)["layers"][0]["params"] == conv1_grey  # standard output stays JSON
    assert run("report", "--input-shape", "3,227,227").stderr == ""          # nothing changes: no note


def test_a_batch_dimension_given_by_mistake():
    one_error_line(run("report", "--input-shape", "1,3,227,227"),
                   "--input-shape is one sample's shape, without the batch: leave out the 1 "
                   "(--input-shape 3,227,227, and --batch 1)")
    pytest.importorskip("torch")
    one_error_line(run("report", "--module", "cli_models:tiny_cnn", "--input-shape", "1,3,16,16"),
                   "if its 1 is the batch, leave it out (--input-shape 3,16,16)")


def seed_side(h: int) -> int:
    """The seed's spatial side after pool5, by its layers' arithmetic (0 or less: it does not run)."""
    h = (h - 11) // 4 + 1           # conv1: 11x11, stride 4
    h = (h - 3) // 2 + 1            # pool1: 3x3, stride 2
    h = (h - 3) // 2 + 1            # conv2 keeps the size (5x5, padding 2); pool2
    return (h - 3) // 2 + 1         # conv3-5 keep it (3x3, padding 1); pool5


def test_a_size_error_names_the_smallest_input():
    smallest = next(h for h in range(1, 228) if seed_side(h) >= 1)
    assert smallest == 67
    one_error_line(run("report", "--input-shape", "3,32,32"), f"the smallest input seed takes is 3,{smallest},{smallest}")
    one_error_line(run("report", "--input-shape", "227,227"), "the smallest input seed takes is 3,67,67")
    assert run("report", "--input-shape", "3,67,67").exit_code == 0


def test_no_stray_figures_in_the_repository_and_the_quickstart_writes_its_own():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    root_files = [name for name in tracked.splitlines() if "/" not in name]
    assert not [name for name in root_files if name.endswith((".svg", ".png", ".pdf"))], root_files
    quickstart = (ROOT / "docs" / "quickstart.md").read_text()
    plotted = [line.split("--out ")[1].split()[0] for line in quickstart.splitlines()
               if line.startswith("$ alexcost plot") and "--out " in line]
    assert plotted and not set(plotted) & set(tracked.splitlines())


def test_time_warns_when_the_peak_moves_during_a_run(monkeypatch, tmp_path):
    """The peaks are measured at the start and again at the end; a move beyond the repeats' spread warns."""
    pytest.importorskip("torch")
    from alexcost.hardware.roofline import Peaks
    from alexcost.torch_run import timing
    from alexcost.torch_run.peaks import Measured

    readings = iter([Measured(Peaks(2e11, 1e10, "measured", "measured"), 0.05, 0.05),
                     Measured(Peaks(1e11, 1e10, "measured", "measured"), 0.05, 0.05)])
    monkeypatch.setattr(timing, "measure_peaks", lambda *args, **kwargs: next(readings))
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 2,
                                                                      "kernel_size": 3}]}))
    result = run("time", "--spec", spec, "--device", "cpu", "--batch", "1", "--warmup", "0", "--repeats", "1",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    warning = ("warning: the measured peak arithmetic moved from 0.2 to 0.1 TFLOP/s (-50%) between the start and "
               "the end of the run, more than its repeats' own spread (5%)")
    assert warning in result.stderr and "memory bandwidth moved" not in result.stderr
    assert json.loads(result.stdout)["warnings"] == [warning.removeprefix("warning: ") + ": other work may be "
                                                     "running; the bounds and times are less sure"]


def test_a_peak_within_its_spread_or_given_is_no_warning():
    from alexcost.hardware.roofline import Peaks
    from alexcost.torch_run.peaks import Measured, moved

    before = Measured(Peaks(1e12, 1e11, "", ""), 0.10, 0.02)
    assert moved(before, Measured(Peaks(1.08e12, 1.01e11, "", ""), 0.03, 0.02)) == []  # 8% < 10%, 1% < 2%
    assert len(moved(before, Measured(Peaks(1.08e12, 1.05e11, "", ""), 0.03, 0.02))) == 1  # 5% > 2%
    given = Measured(Peaks(1e12, 1e11, "given", "given"))
    assert moved(given, Measured(Peaks(2e12, 2e11, "given", "given"))) == []
