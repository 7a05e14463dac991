"""`alexcost report` and `alexcost models` through click's CliRunner, every format; the chain
reports of round one kept byte for byte; and byte-identical output across runs and hash seeds."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alexcost import PRESETS, __version__, network_from_dict
from alexcost.render.report import FORMATS, render
from alexcost_cli.main import cli

from static_path import heavy_imports_of


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


# == chain reports kept byte for byte ==============================================================
# The graph engine keeps every chain report of round one, byte for byte, but for what the
# review asked to change: the footer's memory line (activations counted once per tensor, memory in
# binary units) and three new count columns (buffers, buffer_bytes, stored_bytes).
#
# tests/golden/round1/ holds the reports the round-one code (commit e65b307) wrote for five
# chain specs, in every format, at batch 1 and 8: an independent record of what users saw.

GOLDEN = Path(__file__).parent / "golden" / "round1"
SPECS = sorted(p.name.split(".")[0] for p in GOLDEN.glob("*.spec.json"))
NEW_COUNTS = {"buffers", "buffer_bytes", "stored_bytes"}


def report(name: str, batch: int, fmt: str) -> tuple[str, str]:
    network = network_from_dict(json.loads((GOLDEN / f"{name}.spec.json").read_text()))
    return (GOLDEN / f"{name}-b{batch}.{fmt}").read_text(), render(network.cost(batch=batch), fmt)


def markdown_cells(text: str) -> list:
    """A Markdown report as its cells, unescaped (the review's fix escapes ``*`` and ``|``, which
    round one left raw, so ``11*11*3`` rendered as emphasis)."""
    out = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            out.append([re.sub(r"\\(.)", r"\1", c.strip()) for c in cells])
        else:
            out.append(line)
    return out


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch", [1, 8])
def test_tables_are_unchanged_but_the_memory_line(name, batch):
    for fmt in ("table", "markdown", "detail"):
        old, new = report(name, batch, fmt)
        old_lines, new_lines = old.splitlines(), new.splitlines()
        if fmt == "markdown":
            old_lines, new_lines = markdown_cells(old), markdown_cells(new)
        assert len(old_lines) == len(new_lines)
        changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
        assert len(changed) == 1, changed
        before, after = changed[0]
        assert isinstance(before, str) and before.startswith("Memory: weights ")
        weights = int(before.removeprefix("Memory: weights ").split(" B")[0].replace(",", ""))
        unit, size = next((u, 2**p) for u, p in (("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)) if weights >= 2**p)
        shown = f"{weights / size:,.1f} {unit}" if size > 1 else f"{weights:,} B"
        assert after.startswith(f"Memory in binary units (1 MiB = 1,048,576 bytes): weights {shown}")
        assert "activations" in after and after.endswith("summed over tensors, not a peak")


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("batch", [1, 8])
def test_csv_and_json_keep_every_old_value(name, batch):
    old, new = report(name, batch, "csv")
    old_rows, new_rows = list(csv.DictReader(io.StringIO(old))), list(csv.DictReader(io.StringIO(new)))
    assert len(old_rows) == len(new_rows)
    for a, b in zip(old_rows, new_rows):
        assert set(b) - set(a) == NEW_COUNTS and all(b[k] == v for k, v in a.items())
    old, new = report(name, batch, "json")
    a, b = json.loads(old), json.loads(new)
    assert set(b) == set(a) and set(b["totals"]) - set(a["totals"]) == NEW_COUNTS
    assert all(b["totals"][k] == v for k, v in a["totals"].items())
    for row_a, row_b in zip(a["layers"], b["layers"]):
        assert set(row_b) - set(row_a) == NEW_COUNTS and all(row_b[k] == v for k, v in row_a.items())


@pytest.mark.parametrize("name", SPECS)
def test_a_chain_written_as_a_graph_reports_the_same(name):
    """Naming each layer's input explicitly (the previous layer) changes nothing: a chain is a
    matter of wiring, not of syntax."""
    spec = json.loads((GOLDEN / f"{name}.spec.json").read_text())
    plain = network_from_dict(spec)
    previous = "input"
    for entry, layer_name in zip(spec["layers"], plain.names):
        entry["inputs"] = [previous]
        previous = layer_name
    wired = network_from_dict(spec)
    assert wired.is_chain
    for fmt in ("table", "markdown", "detail", "csv", "json"):
        assert render(wired.cost(batch=3), fmt) == render(plain.cost(batch=3), fmt)


# == the same bytes across runs and hash seeds =====================================================
# The same input gives byte-identical ``report`` output, in every format, across runs and hash seeds.
#
# Each child process renders every preset and a unicode-named spec (JSON and TOML) in every
# format, with and without ``--batch``/``--dtype``, through the CLI itself, and reports the
# SHA-256 of each output; two real ``alexcost report`` runs per seed (stdout and ``--out``)
# cover the console entry point. The digests must agree across PYTHONHASHSEED values and runs.

SPEC = {"name": "d\u00e9terministe", "input_shape": [3, 32, 32], "layers": [
    {"type": "Conv2d", "name": "\u5377\u79ef1", "out_channels": 8, "kernel_size": 3, "padding": "same"},
    {"type": "ReLU", "name": "r\u00e9lu"},
    {"type": "MaxPool2d", "kernel_size": 2, "ceil_mode": True},
    {"type": "LocalResponseNorm", "size": 3, "alpha": 0.0001, "beta": 0.75, "k": 2.0},
    {"type": "AdaptiveAvgPool2d", "output_size": [5, None]},
    {"type": "Flatten", "name": "\U0001f600"},
    {"type": "Dropout", "p": 0.25},
    {"type": "Linear", "out_features": 10},
    {"type": "Softmax", "dim": 1}]}
TOML = """name = "d\u00e9terministe-toml"
input_shape = [3, 16, 16]

[[layers]]
type = "Conv2d"
name = "\u5377\u79ef1"
out_channels = 4
kernel_size = [3, 2]
groups = 1

[[layers]]
type = "Tanh"

[[layers]]
type = "AvgPool2d"
kernel_size = 2
"""

DIGESTS = r'''
import hashlib, json, sys
from click.testing import CliRunner
from alexcost_cli.main import cli

cases = json.loads(sys.argv[1])
out = {}
for args in cases:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output)
    out[" ".join(args)] = hashlib.sha256(result.stdout_bytes).hexdigest()
result = CliRunner().invoke(cli, ["models", "--format", "json"])
out["models"] = hashlib.sha256(result.stdout_bytes).hexdigest()
print(json.dumps(out, sort_keys=True))
'''


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("determinism")
    (folder / "spec.json").write_text(json.dumps(SPEC, ensure_ascii=False), encoding="utf-8")
    (folder / "spec.toml").write_text(TOML, encoding="utf-8")
    return folder


def cases(folder) -> list[list[str]]:
    sources = [["--model", name] for name in PRESETS] + [["--spec", str(folder / "spec.json")],
                                                         ["--spec", str(folder / "spec.toml")]]
    out = [["report", *src, "--format", fmt] for src in sources for fmt in FORMATS]
    out += [["report", *src, "--format", fmt, "--batch", "128", "--dtype", "bfloat16"]
            for src in sources[:1] + sources[-2:] for fmt in FORMATS]
    return out


def child_env(seed: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONHASHSEED"] = seed
    return env


@pytest.mark.slow
def test_every_format_is_byte_identical_across_hash_seeds(specs):
    runs = {}
    for seed in ("0", "1", "4242", "random", "random"):  # "random" twice: two unrelated seeds, two runs
        proc = subprocess.run([sys.executable, "-c", DIGESTS, json.dumps(cases(specs))], env=child_env(seed),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[seed] = runs.get(seed, []) + [json.loads(proc.stdout)]
    digests = [d for per_seed in runs.values() for d in per_seed]
    assert len(digests[0]) == len(cases(specs)) + 1
    for other in digests[1:]:
        assert other == digests[0]


def test_the_command_itself_is_byte_identical(specs, tmp_path):
    """``python -m alexcost report`` to stdout and to ``--out``: the same bytes under every seed."""
    seen = set()
    for seed in ("0", "1", "random"):
        for fmt in ("table", "json"):
            out = tmp_path / f"report-{seed}.{fmt}"
            args = [sys.executable, "-m", "alexcost", "report", "--spec", str(specs / "spec.json"), "--format", fmt]
            printed = subprocess.run(args, env=child_env(seed), capture_output=True, timeout=60)
            written = subprocess.run(args + ["--out", str(out)], env=child_env(seed), capture_output=True,
                                     timeout=60)
            assert printed.returncode == 0 and written.returncode == 0, printed.stderr + written.stderr
            assert out.read_bytes() == printed.stdout
            seen.add((fmt, hashlib.sha256(printed.stdout).hexdigest()))
    assert len(seen) == 2  # one digest per format, whatever the seed
