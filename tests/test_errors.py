"""Bad input: each invalid spec beside a valid twin, through the CLI.

Every invalid one must give exit code 2 and exactly one line, ``error: ...``, that
names the layer and the offending numbers; its valid twin must report normally.
"""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli

BASE = {"name": "tiny", "input_shape": [3, 32, 32], "layers": [
    {"type": "Conv2d", "name": "conv1", "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Flatten"},
    {"type": "Linear", "out_features": 10},
]}


def with_layer(index, **changes):
    spec = json.loads(json.dumps(BASE))
    layer = spec["layers"][index]
    for key, value in changes.items():
        if value is DELETE:
            del layer[key]
        else:
            layer[key] = value
    return spec


DELETE = object()

# (id, valid spec, invalid spec, fragments the one error line must contain)
CASES = [
    ("unknown type", BASE, with_layer(1, type="Relu"),
     ["layers[1]", "unknown layer type 'Relu'", "did you mean 'ReLU'"]),
    ("unknown argument", BASE, with_layer(0, kernal_size=3),
     ["layers[0] 'conv1' (Conv2d)", "unknown argument 'kernal_size'", "did you mean 'kernel_size'"]),
    ("missing argument", BASE, with_layer(0, kernel_size=DELETE),
     ["layers[0] 'conv1' (Conv2d)", "missing argument 'kernel_size'"]),
    ("wrong type: string size", BASE, with_layer(0, out_channels="16"),
     ["layers[0] 'conv1' (Conv2d)", "out_channels must be an integer", "'16'"]),
    ("wrong type: float size", BASE, with_layer(0, kernel_size=3.0),
     ["layers[0] 'conv1' (Conv2d)", "kernel_size", "3.0"]),
    ("wrong type: bool size", BASE, with_layer(2, kernel_size=True),
     ["layers[2] (MaxPool2d)", "kernel_size", "True"]),
    ("wrong type: bias", BASE, with_layer(4, bias="yes"),
     ["layers[4] (Linear)", "bias must be true or false", "'yes'"]),
    ("non-positive size", BASE, with_layer(0, out_channels=0),
     ["layers[0] 'conv1' (Conv2d)", "out_channels must be positive, got 0"]),
    ("negative stride", BASE, with_layer(0, stride=-2),
     ["layers[0] 'conv1' (Conv2d)", "stride must be positive, got -2"]),
    ("negative padding", BASE, with_layer(0, padding=-1),
     ["layers[0] 'conv1' (Conv2d)", "padding must be >= 0, got -1"]),
    ("kernel larger than padded input", BASE, with_layer(0, kernel_size=35),
     ["layers[0] 'conv1' (Conv2d) on input [3, 32, 32]", "Kernel size can't be greater than actual input size",
      "padded input 34x34", "kernel_size=35"]),
    ("pooling output size <= 0", BASE, with_layer(2, kernel_size=2, stride=2, dilation=40),
     ["layers[2] 'maxpool2d2' (MaxPool2d) on input [16, 32, 32]", "Output size is too small"]),
    ("channels not divisible by groups", BASE, with_layer(0, groups=5),
     ["layers[0] 'conv1' (Conv2d)", "out_channels must be divisible by groups",
      "out_channels=16, groups=5"]),
    ("input channels not divisible by groups", with_layer(0, groups=1), with_layer(0, groups=2),
     ["layers[0] 'conv1' (Conv2d) on input [3, 32, 32]", "in_channels must be divisible by groups",
      "in_channels=3, groups=2"]),
    ("in_channels mismatch", with_layer(0, in_channels=3), with_layer(0, in_channels=4),
     ["layers[0] 'conv1' (Conv2d) on input [3, 32, 32]", "in_channels=4", "got 3 channels"]),
    ("in_features mismatch", with_layer(4, in_features=4096), with_layer(4, in_features=4000),
     ["layers[4] 'linear4' (Linear) on input [4096]", "in_features=4000", "4096 features"]),
    ("duplicate names", with_layer(1, name="relu"), with_layer(1, name="conv1"),
     ["layers[1] (ReLU)", "duplicate name 'conv1'", "layers[0]"]),
    ("absurd size", with_layer(0, out_channels=10**9), with_layer(0, out_channels=10**30),
     ["layers[0] 'conv1' (Conv2d)", "out_channels", "int64"]),
    ("padding same with stride", with_layer(0, padding="same"), with_layer(0, padding="same", stride=2),
     ["layers[0] 'conv1' (Conv2d)", "padding='same' is not supported for strided convolutions"]),
    ("dropout probability", BASE, {**BASE, "layers": BASE["layers"][:3] + [{"type": "Dropout", "p": 1.5}]},
     ["layers[3] (Dropout)", "between 0 and 1", "1.5"]),
]


def linear_on_maps(in_features=None):
    spec = json.loads(json.dumps(BASE))
    del spec["layers"][3]  # no Flatten: torch applies Linear to the last dimension, 16
    if in_features:
        spec["layers"][3]["in_features"] = in_features
    return spec


CASES.append(("Linear after an unflattened tensor", linear_on_maps(16), linear_on_maps(16 * 16 * 16),
              ["layers[3] 'linear3' (Linear) on input [16, 16, 16]", "in_features=4096", "put a Flatten"]))


def run(tmp_path, spec_text, suffix=".json", extra=()):
    path = tmp_path / f"spec{suffix}"
    path.write_text(spec_text)
    return CliRunner().invoke(cli, ["report", "--spec", str(path), *extra])


def assert_one_line_error(result, fragments):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case_id,valid,invalid,fragments", CASES, ids=[c[0] for c in CASES])
def test_invalid_spec_one_line_error(tmp_path, case_id, valid, invalid, fragments):
    ok = run(tmp_path, json.dumps(valid))
    assert ok.exit_code == 0, ok.output
    assert_one_line_error(run(tmp_path, json.dumps(invalid)), fragments)


@pytest.mark.parametrize("text,suffix,fragments", [
    ('{"input_shape": [3, 8, 8], "layers": [}', ".json", ["malformed JSON", "line 1"]),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "ReLU"}], "x": NaN}', ".json", ["NaN"]),
    ('input_shape = [3, 8, 8]\n[[layers]\ntype = "ReLU"\n', ".toml", ["malformed TOML"]),
    ('input_shape = [3, 8, 8]\nlayers = 5\n', ".toml", ["layers must be a list"]),
    ("[1, 2]", ".json", ["a spec must be an object"]),
    ('{"layers": []}', ".json", ["needs 'input_shape'"]),
    ('{"input_shape": [3, -8, 8], "layers": []}', ".json", ["input_shape must be positive, got -8"]),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "ReLU"}], "extra": 1}', ".json",
     ["unknown top-level key 'extra'"]),
    ("[" * 100000 + "]" * 100000, ".json", ["nested too deeply"]),
    ('{"input_shape": [' + "9" * 5000 + '], "layers": []}', ".json", ["malformed JSON"]),
    ("\xff\xfe", ".json", []),
])
def test_malformed_files(tmp_path, text, suffix, fragments):
    path = tmp_path / f"spec{suffix}"
    path.write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    result = CliRunner().invoke(cli, ["report", "--spec", str(path)])
    assert_one_line_error(result, [str(path)] + fragments if suffix and fragments else fragments)


def test_missing_file_and_bad_options(tmp_path):
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--spec", str(tmp_path / "nope.json")]),
                          ["cannot read spec file", "nope.json", "No such file"])
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--batch", "0"]), ["--batch", "0"])
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--batch", "-3"]), ["--batch"])
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--batch", "1.5"]), ["--batch", "1.5"])
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--model", "vgg"]), ["'vgg'", "seed"])
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--format", "xml"]), ["--format"])
    assert_one_line_error(CliRunner().invoke(cli, ["report", "--bacth", "3"]), ["--bacth", "--batch"])
    assert_one_line_error(CliRunner().invoke(cli, ["reprot"]), ["reprot"])
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(BASE))
    assert_one_line_error(CliRunner().invoke(cli, ["export", "--model", "seed", "--spec", str(spec)]),
                          ["export reads one network", "--model, --spec"])


def test_failed_report_leaves_no_output_file(tmp_path):
    out = tmp_path / "report.json"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(with_layer(0, groups=5)))
    result = CliRunner().invoke(cli, ["report", "--spec", str(bad), "--out", str(out), "--format", "json"])
    assert result.exit_code == 2 and not out.exists()
    assert os.listdir(tmp_path) == ["bad.json"]  # no temporary file left either
    good = tmp_path / "good.json"
    good.write_text(json.dumps(BASE))
    result = CliRunner().invoke(cli, ["report", "--spec", str(good), "--out", str(out), "--format", "json"])
    assert result.exit_code == 0 and json.loads(out.read_text())["model"] == "tiny"


def test_unwritable_output_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "missing-dir" / "r.txt")])
    assert_one_line_error(result, ["cannot write", "missing-dir"])


def test_no_traceback_end_to_end(tmp_path):
    """The installed command, in a real process: one stderr line, exit 2."""
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(with_layer(0, kernel_size=35)))
    proc = subprocess.run([sys.executable, "-m", "alexcost", "report", "--spec", str(spec)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: layers[0] 'conv1' (Conv2d)")
