"""Options every command shares and their limits: missing extras, absurd numbers,
``--input-shape``, and the help texts the docs render.

Expected values are worked out here by hand from the layer formulas, never read back from
alexcost's own output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from alexcost_cli.main import COMMANDS, cli

from not_installed import without

TINY = {"name": "tiny", "input_shape": [3, 16, 16], "layers": [
    {"type": "Conv2d", "name": "conv1", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "ReLU"}, {"type": "Flatten"}, {"type": "Linear", "name": "fc", "out_features": 5}]}


def tiny_macs(h: int, w: int, batch: int = 1) -> int:
    """conv1: 4 filters of 3x3x3 on an h x w output (padding 1); fc: 4*h*w inputs to 5 outputs."""
    return batch * (4 * h * w * 3 * 3 * 3 + 4 * h * w * 5)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_error_line(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert len(lines[0]) < 300, lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# -- a missing extra: one line naming what to install, exit 2 (in a real process) -----------

def assert_names_extra(proc, command, module, extra):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert f"alexcost {command} needs {module}" in proc.stderr
    assert f"pip install 'alexcost[{extra}]'" in proc.stderr


@pytest.mark.parametrize("command", ["verify", "time"])
def test_torch_missing_is_one_line_exit_2(tmp_path, tiny, command):
    out = tmp_path / "out.json"
    proc = without({"torch", "fvcore", "torchvision"}, command, "--spec", tiny, "--out", out)
    assert_names_extra(proc, command, "torch", "torch")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json"]


def test_torch_missing_still_gives_help_and_static_report(tiny):
    for args in (["verify", "--help"], ["time", "--help"], ["report", "--spec", tiny, "--format", "csv"]):
        proc = without({"torch", "fvcore", "torchvision"}, *args)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr[-2000:])


def test_matplotlib_missing_names_the_plot_extra(tmp_path):
    proc = without({"matplotlib"}, "plot", "--out", tmp_path / "x.png")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "matplotlib" in proc.stderr and "pip install 'alexcost[plot]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_extra_missing_deep_inside_a_command_is_caught_too(monkeypatch):
    """The safety net in the group: a ModuleNotFoundError for an extra's module, from anywhere."""
    import alexcost_cli.report as report_module

    def broken(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")
    monkeypatch.setattr(report_module, "load_networks", broken)
    one_error_line(run("report"), "alexcost report needs torch", "pip install 'alexcost[torch]'")


# -- absurd numbers: one clean line, exit 2, the range in it ---------------------------------

HUGE = "9" * 23
ENORMOUS = "9" * 5000  # past int()'s 4,300-digit limit


@pytest.mark.parametrize("args,fragments", [
    (["verify", "--seed", HUGE], ["--seed", "0 to 2**64-1", "torch"]),
    (["verify", "--seed", str(2**64)], ["--seed", str(2**64), "0 to 2**64-1"]),
    (["verify", "--seed", "-1"], ["--seed", "-1", "0 to 2**64-1"]),
    (["verify", "--seed", ENORMOUS], ["--seed", "5000 characters"]),
    (["verify", "--seed", "1e3"], ["--seed", "'1e3' is not a whole number"]),
    (["verify", "--batch", str(10**30)], ["--batch", "1 to 2**63-1"]),
    (["verify", "--batch", "0"], ["--batch", "1 to 2**63-1"]),
    (["report", "--batch", str(10**30)], ["--batch", str(10**30), "1 to 2**63-1", "int64"]),
    (["report", "--batch", str(2**63)], ["--batch", "1 to 2**63-1"]),
    (["report", "--batch", ENORMOUS], ["--batch"]),
    (["report", "--batch", "1.5"], ["--batch", "'1.5'"]),
    (["report", "--batch", "\u0663"], ["--batch", "not a whole number"]),  # an Arabic-Indic 3: int() takes it
    (["time", "--batch", f"1,{10**30}"], ["--batch", "2**63-1"]),
    (["time", "--batch", f"1,{ENORMOUS}"], ["--batch", "5000 characters"]),
    (["time", "--batch", "1,,2"], ["--batch", "positive whole numbers"]),
    (["time", "--warmup", str(10**30)], ["--warmup", "0 to 1,000,000"]),
    (["time", "--warmup", "-1"], ["--warmup", "0 to 1,000,000"]),
    (["time", "--repeats", str(10**30)], ["--repeats", "1 to 1,000,000"]),
    (["time", "--repeats", "0"], ["--repeats", "1 to 1,000,000"]),
    (["time", "--threads", str(2**31)], ["--threads", "1 to 1,024"]),
    (["time", "--threads", "0"], ["--threads", "1 to 1,024"]),
    (["time", "--peak-tflops", "nan"], ["--peak-tflops", "finite number above 0"]),
    (["time", "--peak-tflops", "inf"], ["--peak-tflops", "finite"]),
    (["time", "--peak-tflops", "1e400"], ["--peak-tflops", "finite"]),
    (["time", "--bandwidth-gbs", "0"], ["--bandwidth-gbs", "above 0"]),
    (["time", "--bandwidth-gbs", "-5"], ["--bandwidth-gbs", "above 0"]),
    (["time", "--bandwidth-gbs", "fast"], ["--bandwidth-gbs", "not a number"]),
])
def test_absurd_numbers_are_one_line(args, fragments):
    one_error_line(run(*args), *fragments)


def test_the_bounds_themselves_are_accepted(tiny):
    """The largest batch whose biggest tensor fits torch's int64 is accepted, with exact counts
    worked out by hand; one sample more is one clear line. The biggest tensor of the tiny spec is
    conv1's output (or the ReLU's), 4*16*16 = 1,024 elements a sample, more than the 3*16*16 input."""
    top = (2**63 - 1) // (4 * 16 * 16)
    data = json.loads(run("report", "--spec", tiny, "--batch", top, "--format", "json").stdout)
    assert data["batch"] == top and data["totals"]["macs"] == tiny_macs(16, 16, top)
    assert data["totals"]["params"] == (3 * 3 * 3 + 1) * 4 + (4 * 16 * 16 + 1) * 5
    one_error_line(run("report", "--spec", tiny, "--batch", top + 1), f"batch {top + 1}", "int64 limit")
    one_error_line(run("report", "--spec", tiny, "--batch", 2**63 - 1), "int64 limit")


@pytest.mark.slow
def test_verify_runs_at_the_extreme_seed_and_another_input_shape(tmp_path, tiny):
    """torch's generator takes 2**64-1 (the top of --seed's range), and --input-shape reaches the
    forward pass: conv1 on 3x8x8 makes 4x8x8. --out ending in .json writes JSON and says so."""
    out = tmp_path / "v.json"
    result = run("verify", "--spec", tiny, "--no-fvcore", "--seed", 2**64 - 1, "--input-shape", "3,8,8", "--out", out)
    assert result.exit_code == 0, result.output
    fc_before, fc_after = (4 * 16 * 16 + 1) * 5, (4 * 8 * 8 + 1) * 5  # fc's in_features follow the input
    assert result.stdout == "" and result.stderr == (f"note: on input 3x8x8 (not 3x16x16) parameters change: "
                                                     f"fc {fc_before:,} -> {fc_after:,}\nwrote {out} (json)\n")
    data = json.loads(out.read_text())
    assert data["ok"] is True
    conv1 = data["layers"][0]
    assert conv1["output_shape"] == conv1["measured_shape"] == [4, 8, 8]
    assert conv1["macs"] == 4 * 8 * 8 * 3 * 3 * 3


# -- --input-shape -------------------------------------------------------------------------

def test_input_shape_runs_a_preset_at_another_resolution():
    """The seed at 224x224 (the paper's stated size): conv1 gives floor((224 - 11) / 4) + 1 = 54."""
    data = json.loads(run("report", "--input-shape", "3,224,224", "--format", "json").stdout)
    assert data["model"] == "seed" and data["input_shape"] == [3, 224, 224]
    conv1 = data["layers"][0]
    assert conv1["output_shape"] == [96, 54, 54] and conv1["macs"] == 96 * 54 * 54 * 11 * 11 * 3
    assert data["totals"]["params"] != 62369152  # fc6 sees 256*5*5 inputs now: 54 -> 26 -> 12 -> 5
    fc6 = next(layer for layer in data["layers"] if layer["name"] == "fc6")
    assert fc6["input_shape"] == [256 * 5 * 5] and fc6["params"] == 256 * 5 * 5 * 4096


def test_input_shape_overrides_a_spec_file(tiny):
    data = json.loads(run("report", "--spec", tiny, "--input-shape", " 3, 10 ,12", "--format", "json").stdout)
    assert data["input_shape"] == [3, 10, 12] and data["totals"]["macs"] == tiny_macs(10, 12)


def test_input_shape_of_any_rank(tmp_path):
    spec = tmp_path / "mlp.json"
    spec.write_text(json.dumps({"input_shape": [20], "layers": [{"type": "Linear", "out_features": 5}]}))
    data = json.loads(run("report", "--spec", spec, "--input-shape", "30", "--format", "json").stdout)
    assert data["input_shape"] == [30] and data["totals"]["params"] == 30 * 5 + 5


@pytest.mark.parametrize("text", ["3,x,224", "", "3,,4", "3;224;224", "0,3,3", "-1,2", "3.0,2", "1e3",
                                  ",".join(["1"] * 65), "3," + "9" * 5000, "3,\u0663"])
def test_bad_input_shape_text(text):
    line = one_error_line(run("report", "--input-shape", text), "--input-shape")
    assert "Traceback" not in line


def test_input_shape_above_int64():
    one_error_line(run("report", "--input-shape", f"3,{2**63},4"), "--input-shape", "2**63-1")


def test_input_shape_the_network_cannot_take_names_the_layer():
    one_error_line(run("report", "--input-shape", "3,10,10"), "layers[0] 'conv1' (Conv2d) on input [3, 10, 10]")
    one_error_line(run("report", "--input-shape", "3,227"), "conv1")


@pytest.mark.parametrize("command", ["report", "verify", "time", "plot", "train", "export"])
def test_every_network_command_takes_input_shape(command):
    assert "--input-shape C,H,W" in run(command, "--help").stdout
    one_error_line(run(command, "--input-shape", "3,x"), "--input-shape", "3,224,224")


def test_train_and_export_run_the_preset_at_the_shape_given():
    side = (224 - 11) // 4 + 1  # conv1 of the seed: kernel 11, stride 4, no padding
    data = json.loads(run("train", "--input-shape", "3,224,224", "--batch", "2", "--format", "json").stdout)
    conv1 = data["layers"][0]
    assert data["batch"] == 2 and conv1["name"] == "conv1"
    assert conv1["forward_macs"] == 2 * 96 * 3 * 11 * 11 * side * side
    spec = json.loads(run("export", "--input-shape", "3,224,224").stdout)
    assert spec["input_shape"] == [3, 224, 224] and spec["layers"][0]["kernel_size"] == 11


def test_plot_with_input_shape_fails_on_the_shape_before_drawing(tmp_path):
    out = tmp_path / "x.png"
    one_error_line(run("plot", "--input-shape", "3,10,10", "--out", out), "conv1")
    assert not out.exists()


# -- help texts ----------------------------------------------------------------------------

def test_summaries_are_whole_sentences_shown_whole():
    group_help = run("--help").stdout
    ctx = click.Context(cli, info_name="alexcost")
    for name, (_, _, summary) in COMMANDS.items():
        assert summary[0].isupper() and summary.endswith(".") and "\n" not in summary, summary
        assert summary.count(".") == 1 and "..." not in summary
        assert f"  {name} " in group_help and summary in group_help  # on one line, not wrapped or cut
        command = cli.get_command(ctx, name)
        assert command.get_short_help_str() == summary  # click's own summary, not cut at 45 characters
        # mkdocs-click lists a subcommand by `short_help or help`, first line
        assert (command.short_help or command.help).splitlines()[0] == summary


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_help_shows_no_sentinel_or_none(command):
    text = run(*command, "--help").stdout
    for noise in ("UNSET", "Sentinel", "None", "default: )", "[default: ]"):
        assert noise not in text, (command, noise)
    if command in (["report"], ["verify"], ["time"], ["plot"]):
        assert "(default: seed)" in text


# == the small things a new user meets =============================================================
# The small things a new user meets: OpenAI's AlexNet estimate only beside AlexNet, no communication
# line for one GPU, a note when --input-shape changes a layer's parameters, a batch dimension given by
# mistake, the smallest input a network takes, no stray figures in the repository, and ``time``'s
# warning when the machine's peak moves during a run. Expected values by hand.

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.slow
def test_a_size_error_of_a_torch_model_names_the_smallest_input_torch_runs():
    """A torchvision model refused at a too-small --input-shape: the hint is the smallest side on which
    torch itself runs the model (found here by running it at every side from 1)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")

    model = torchvision.models.squeezenet1_0(weights=None).eval()

    def runs(side) -> bool:
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, side, side))
        except RuntimeError:
            return False
        return True

    smallest = next(side for side in range(1, 64) if runs(side))
    one_error_line(run("report", "--torchvision", "squeezenet1_0", "--input-shape", "3,8,8"),
                   f"the smallest input squeezenet1_0 takes is 3,{smallest},{smallest}")
    assert run("report", "--torchvision", "squeezenet1_0", "--input-shape", f"3,{smallest},{smallest}").exit_code == 0


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
