"""`alexcost report` and `alexcost models` through click's CliRunner, every format."""

import csv
import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from alexcost import __version__
from alexcost_cli.main import cli
from static_path import heavy_imports_of  # noqa: E402


def invoke(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


# conv1 of the seed, by hand: 11*11*3 weights per filter, 96 filters, 55*55 positions.
CONV1_PARAMS = (11 * 11 * 3 + 1) * 96
CONV1_MACS = 11 * 11 * 3 * 96 * 55 * 55
# the paper's AlexNet: conv2, conv4, conv5 in two groups; every layer with its bias
PAPER_PARAMS = ((11 * 11 * 3 + 1) * 96 + (5 * 5 * 48 + 1) * 256 + (3 * 3 * 256 + 1) * 384 + (3 * 3 * 192 + 1) * 384
                + (3 * 3 * 192 + 1) * 256 + (9216 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000)


def test_default_is_seed_table():
    out = invoke("report")
    assert out.splitlines()[0].split("  ")[0] == "Size / Operation"
    assert f"(11*11*3 + 1)*96 = {CONV1_PARAMS:,}" in out
    assert f"= {CONV1_MACS + 96 * 55 * 55:,}" in out
    assert out == invoke("report", "--model", "seed", "--format", "table")


def test_markdown_is_a_pipe_table():
    out = invoke("report", "--format", "markdown")
    lines = out.splitlines()
    assert lines[0].startswith("| Size / Operation") and set(lines[1]) <= set("|:-")
    table = [line for line in lines if line.startswith("|")]
    assert all(line.count("|") == 8 for line in table)
    assert f"{CONV1_PARAMS:,}" in out


def test_detail_lists_every_layer():
    out = invoke("report", "--model", "torchvision", "--format", "detail")
    for name in ["features_0", "avgpool", "flatten", "classifier_6"]:
        assert f" {name} " in out
    # torchvision's conv1: 64 filters of 11*11*3 on a 55*55 output
    assert f"{11 * 11 * 3 * 64 * 55 * 55:,}" in out


def test_csv_has_exact_ints():
    rows = list(csv.DictReader(io.StringIO(invoke("report", "--format", "csv"))))
    assert [r["name"] for r in rows][:3] == ["conv1", "relu1", "pool1"]
    assert int(rows[0]["params"]) == CONV1_PARAMS and int(rows[0]["macs"]) == CONV1_MACS
    assert rows[0]["output_shape"] == "96x55x55"
    assert sum(int(r["params"]) for r in rows) == 62369152


def test_json_batch_scales_everything_but_params():
    one = json.loads(invoke("report", "--format", "json"))
    many = json.loads(invoke("report", "--format", "json", "--batch", "32"))
    assert many["batch"] == 32
    assert many["totals"]["params"] == one["totals"]["params"]
    for key in ("macs", "bias_adds", "other_ops", "flops", "forward", "output_elements", "output_bytes"):
        assert many["totals"][key] == 32 * one["totals"][key], key
    for a, b in zip(one["layers"], many["layers"]):
        assert b["input_shape"] == a["input_shape"] and b["macs"] == 32 * a["macs"]


def test_json_every_layer_in_order_with_formulas():
    data = json.loads(invoke("report", "--model", "paper", "--format", "json"))
    names = [layer["name"] for layer in data["layers"]]
    assert names[:4] == ["conv1", "relu1", "norm1", "pool1"] and names[-1] == "prob"
    conv2 = data["layers"][names.index("conv2")]
    assert conv2["args"]["groups"] == 2 and conv2["args"]["in_channels"] == 96
    assert conv2["params"] == (5 * 5 * 48 + 1) * 256
    assert conv2["params_formula"] == f"(5*5*48 + 1)*256 = {(5 * 5 * 48 + 1) * 256:,}"
    assert set(data["split"]) == {"conv", "fc"}
    for key in data["totals"]:
        if key != "output_elements":
            assert data["totals"][key] == sum(layer[key] for layer in data["layers"])


def test_dtype_sizes_memory():
    f32 = json.loads(invoke("report", "--format", "json"))["totals"]
    f16 = json.loads(invoke("report", "--format", "json", "--dtype", "float16"))["totals"]
    assert f32["weight_bytes"] == 4 * 62369152 and f16["weight_bytes"] == 2 * 62369152
    assert f32["output_bytes"] == 2 * f16["output_bytes"]


def test_spec_from_stdin_toml():
    toml = 'name = "mlp"\ninput_shape = [20]\n\n[[layers]]\ntype = "Linear"\nout_features = 5\n'
    result = CliRunner().invoke(cli, ["report", "--spec", "-", "--format", "json"], input=toml)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "mlp" and data["totals"]["params"] == 20 * 5 + 5


def test_out_file(tmp_path):
    out = tmp_path / "seed.md"
    result = CliRunner().invoke(cli, ["report", "--format", "markdown", "--out", str(out)])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == f"wrote {out} (markdown)\n"
    assert out.read_text() == invoke("report", "--format", "markdown")


@pytest.mark.parametrize("name,fmt", [("r.json", "json"), ("r.csv", "csv"), ("r.md", "markdown"),
                                      ("R.JSON", "json"), ("r.markdown", "markdown"), ("r.txt", "table"),
                                      ("r", "table"), ("dir.json/r", "table")])
def test_out_extension_picks_the_format(tmp_path, name, fmt):
    out = tmp_path / name
    out.parent.mkdir(exist_ok=True)
    result = CliRunner().invoke(cli, ["report", "--model", "paper", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == f"wrote {out} ({fmt})\n"
    text = out.read_text()
    assert text == invoke("report", "--model", "paper", "--format", fmt)
    if fmt == "json":
        assert json.loads(text)["totals"]["params"] == PAPER_PARAMS
    if fmt == "csv":
        assert sum(int(r["params"]) for r in csv.DictReader(io.StringIO(text))) == PAPER_PARAMS


def test_format_given_beats_the_extension(tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["report", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0 and result.stderr == f"wrote {out} (csv)\n"
    assert out.read_text().startswith("index,name,type,")


def test_markdown_escapes_what_would_break_the_table(tmp_path):
    """Layer names with a pipe, a backtick and a backslash: every row still has the seven cells
    of the seed's layout, and each name renders as itself (Python-Markdown, as the docs use)."""
    import html
    import re

    import markdown

    names = ["c|1", "r`elu", "fl\\at|ten", "fc*8*"]
    spec = tmp_path / "odd.json"
    spec.write_text(json.dumps({"input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "name": names[0], "out_channels": 2, "kernel_size": 3},
        {"type": "ReLU", "name": names[1]}, {"type": "Flatten", "name": names[2]},
        {"type": "Linear", "name": names[3], "out_features": 2}]}))
    page = markdown.markdown(invoke("report", "--spec", str(spec), "--format", "markdown"), extensions=["tables"])
    rows = [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    assert rows and all(len(row) == 7 for row in rows)
    first = [row[0] for row in rows]
    assert f"{names[0]} + ReLU" in first and f"{names[2]}: Flatten" in first and names[3] in first
    # conv1 on 3x8x8 with 3x3 kernels: 2 filters of (3*3*3 + 1) weights; written as it renders, with its '*'
    assert f"(3*3*3 + 1)*2 = {(3 * 3 * 3 + 1) * 2}" in [row[5] for row in rows]


def test_models_lists_presets():
    out = invoke("models")
    for name in ("seed", "paper", "torchvision"):
        assert f"\n{name} " in out
    data = json.loads(invoke("models", "--format", "json"))
    by_name = {m["name"]: m for m in data}
    assert by_name["seed"]["params"] == 62369152
    assert by_name["torchvision"]["input_shape"] == [3, 224, 224]


@pytest.mark.parametrize("command", ["report", "models", "verify", "time", "plot"])
def test_help_on_every_command(command):
    assert "Usage: alexcost " + command in invoke(command, "--help")


def test_version_and_group_help():
    assert invoke("--version").strip() == f"alexcost {__version__}"
    out = invoke("--help")
    for command in ("models", "report", "verify", "time", "plot"):
        assert f"  {command} " in out
    assert invoke() == out  # no command: the help


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "alexcost", "report", "--format", "csv"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == invoke("report", "--format", "csv")


def test_static_path_never_imports_torch():
    heavy, _ = heavy_imports_of("report", "--model", "paper", "--format", "json")
    assert heavy == [], heavy
