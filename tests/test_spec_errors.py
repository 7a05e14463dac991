"""Bad specs: each invalid spec beside a valid twin, and the spec loader and ``alexcost report``
fuzzed with random and mutated JSON/TOML specs.

Every input must end in either a correct report or exactly one ``error:`` line on stderr
with exit code 2: never another exception, a traceback, a hang or a memory blow-up.
Inputs: random JSON-like values; specs built from the real layer kinds with wild argument
values (wrong types, missing keys, huge, negative, zero, NaN/Infinity, deep nesting, long
names, unicode, duplicate names, unknown keys); valid specs mutated one to three times;
and their JSON/TOML text, itself cut, spliced and duplicated.

A report that succeeds is checked against arithmetic written here: shapes chain, Conv2d
and Linear MACs and parameters follow their formulas, totals are the column sums.

``ALEXCOST_HYPOTHESIS=thorough`` runs over 100,000 cases (``-s`` prints the count).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from math import prod

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from alexcost import SpecError, network_from_dict
from alexcost.render.report import FORMATS, render
from alexcost.specs.specfile import parse_text
from alexcost_cli.main import cli

from strategies import any_spec, edited_texts, to_text, wild

THOROUGH = os.environ.get("ALEXCOST_HYPOTHESIS") == "thorough"
CASES = Counter()
"""Cases run per test (printed at the end of the module)."""

ELEMENTWISE = ("ReLU", "Tanh", "Sigmoid", "Dropout", "Softmax", "LocalResponseNorm")
SECONDS_PER_CASE = 10.0  # a case slower than this is a hang

fuzz = settings(max_examples=20_000 if THOROUGH else int(os.environ.get("ALEXCOST_FUZZ_EXAMPLES", 400)),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.fixture(scope="module", autouse=True)
def case_count():
    yield
    runs = {k: v for k, v in CASES.items() if ":" not in k}
    print(f"\nfuzz cases run: {sum(runs.values())} {runs}; outcomes "
          f"{ {k: v for k, v in CASES.items() if ':' in k} }")


# -- outcomes ---------------------------------------------------------------------------------

def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _ntuple(v, n: int) -> tuple:
    return (v,) * n if isinstance(v, int) else tuple(v)


SAME_SHAPE = ELEMENTWISE + ("ReLU6", "LeakyReLU", "SiLU", "GELU", "Hardswish", "Hardsigmoid", "Dropout2d",
                           "StochasticDepth", "Identity", "Contiguous", "Clone", "BatchNorm2d", "LayerNorm", "Exp",
                           "Rsqrt", "Sqrt", "Sin", "Cos", "Clamp")
SAME_ELEMENTS = ("Flatten", "Reshape", "View", "Permute", "Transpose")
KEEP_CHANNELS = ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "ZeroPad2d", "MaxPool3d",
                 "AvgPool3d", "AdaptiveAvgPool3d")


def check_report(spec: dict, data: dict, batch: int) -> None:
    """A successful JSON report, checked with arithmetic independent of alexcost."""
    rows, x = data["layers"], list(spec["input_shape"])
    assert len(rows) == len(spec["layers"]) and data["input_shape"] == x and data["batch"] == batch
    chain = "inputs" not in rows[0]
    for entry, row in zip(spec["layers"], rows):
        kind, y = entry["type"], row["output_shape"]
        if not chain:  # a graph: each row reads what it names
            x = row["input_shape"]
        assert row["type"] == kind and row["input_shape"] == x
        if kind == "Conv2d":
            (kh, kw), g, out = _pair(entry["kernel_size"]), entry.get("groups", 1), entry["out_channels"]
            (dh, dw), (sh, sw) = _pair(entry.get("dilation", 1)), _pair(entry.get("stride", 1))
            pad = entry.get("padding", 0)
            if pad == "same":
                assert y[1:] == x[1:]
            else:
                ph, pw = (0, 0) if pad == "valid" else _pair(pad)
                assert y[1:] == [(x[1] + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
                                 (x[2] + 2 * pw - dw * (kw - 1) - 1) // sw + 1]
            assert y[0] == out
            assert row["macs"] == batch * out * y[1] * y[2] * (x[0] // g) * kh * kw
            assert row["params"] == out * (x[0] // g) * kh * kw + (out if entry.get("bias", True) else 0)
        elif kind == "Linear":  # over the last dimension, as torch applies it
            assert y == x[:-1] + [entry["out_features"]]
            assert row["macs"] == batch * prod(x) * y[-1]
            assert row["params"] == x[-1] * y[-1] + (y[-1] if entry.get("bias", True) else 0)
        elif kind in ("Conv1d", "Conv3d"):  # the output size rule of Conv2d, along each spatial dimension
            n = len(x) - 1
            k, s, d = (_ntuple(entry.get(a, dflt), n) for a, dflt in (("kernel_size", None), ("stride", 1),
                                                                     ("dilation", 1)))
            pad = entry.get("padding", 0)
            if pad == "same":
                assert y[1:] == x[1:]
            else:
                p = (0,) * n if pad == "valid" else _ntuple(pad, n)
                assert y[1:] == [(x[i + 1] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]
            g = entry.get("groups", 1)
            assert y[0] == entry["out_channels"] and row["macs"] == batch * prod(y) * (x[0] // g) * prod(k)
            assert row["params"] == y[0] * (x[0] // g) * prod(k) + (y[0] if entry.get("bias", True) else 0)
        elif kind == "ConvTranspose2d":
            k, s, p, d, op = (_ntuple(entry.get(a, dflt), 2) for a, dflt in (
                ("kernel_size", None), ("stride", 1), ("padding", 0), ("dilation", 1), ("output_padding", 0)))
            assert y[1:] == [(x[i + 1] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(2)]
            g = entry.get("groups", 1)
            assert y[0] == entry["out_channels"] and row["macs"] == batch * prod(x) * (y[0] // g) * prod(k)
            assert row["params"] == x[0] * (y[0] // g) * prod(k) + (y[0] if entry.get("bias", True) else 0)
        elif kind in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "InstanceNorm2d"):
            affine = entry.get("affine", kind != "InstanceNorm2d")
            assert y == x and row["macs"] == 0 and row["params"] == (2 * x[0] if affine else 0)
        elif kind == "LayerNorm":
            n = entry["normalized_shape"]
            n = [n] if isinstance(n, int) else n
            affine, bias = entry.get("elementwise_affine", True), entry.get("bias", True)
            assert y == x and y[len(y) - len(n):] == n and row["macs"] == 0
            assert row["params"] == (prod(n) * (1 + bias) if affine else 0)
        elif kind == "Parameter":
            assert y == list(entry["shape"]) and row["params"] == prod(y) and row["input_shape"] == []
        elif kind == "Buffer":
            assert y == list(entry["shape"]) and row["params"] == 0 and row["buffers"] == prod(y)
        elif kind == "Constant":   # made from constants: neither parameters nor buffers
            assert y == list(entry["shape"]) and row["params"] == 0 and row["buffers"] == 0
        elif kind == "Standardize":  # the weight's shape, no weights of its own, no products
            assert y == x and row["params"] == 0 and row["macs"] == 0
        elif kind == "DynamicConv2d":  # its weight is an input, not its parameters
            assert y[0] == entry["out_channels"] and row["params"] == 0
        elif kind == "IndexSelect":  # the slices along dim (of the batched tensor) picked by the index
            d = entry["dim"] % (len(x) + 1)
            assert y == x[:d - 1] + [entry["index_size"]] + x[d:] and row["buffers"] == entry["index_size"]
        else:
            assert row["macs"] == 0 and row["params"] == 0
            if kind in SAME_SHAPE:
                assert y == x
            elif kind in SAME_ELEMENTS:
                assert prod(y) == prod(x)
            elif kind in ("Chunk", "Split"):
                assert sum(prod(part) for part in y) == prod(x)
            elif kind in ("Mean", "Var"):
                assert prod(x) % prod(y) == 0
            elif kind == "Repeat":     # each sample dimension times its count
                assert y == [size * r for size, r in zip(x, entry["repeats"])]
            elif kind == "UnfoldView":  # dim (of the batched tensor) in windows, their size last
                d, size, step = entry["dim"] % (len(x) + 1), entry["size"], entry["step"]
                assert y == x[:d - 1] + [(x[d - 1] - size) // step + 1] + x[d:] + [size]
            elif kind in KEEP_CHANNELS:
                assert len(y) == len(x) and y[0] == x[0]
            elif kind == "Upsample":   # a size per spatial dimension, or the input's times the scale
                assert len(y) == len(x) and y[0] == x[0]
                size = entry.get("size")
                if size is not None:
                    assert y[1:] == (size if isinstance(size, list) else [size] * (len(x) - 1))
                else:
                    scale = entry["scale_factor"]
                    scale = scale if isinstance(scale, list) else [scale] * (len(x) - 1)
                    assert y[1:] == [math.floor(a * f) for a, f in zip(x[1:], scale)]
            elif kind == "Pad":        # (before, after) pairs from the last dimension
                pad = entry["pad"]
                assert y == [size + (pad[2 * (len(x) - 1 - i)] + pad[2 * (len(x) - 1 - i) + 1]
                                     if 2 * (len(x) - i) <= len(pad) else 0) for i, size in enumerate(x)]
            elif kind in ("Add", "Mul", "Cat"):
                assert not chain
            else:
                pytest.fail(f"the fuzz test has no check for {kind}: add one")
        x = y
    for count in ("params", "macs", "bias_adds", "other_ops", "flops"):
        assert data["totals"][count] == sum(row[count] for row in rows)
    t = data["totals"]
    assert t["flops"] == 2 * t["macs"] + t["bias_adds"] + t["other_ops"]


def load_outcome(load) -> str:
    """Run ``load()``: a Network or SpecError is fine; anything else fails the test."""
    start = time.perf_counter()
    try:
        cost = load().cost(batch=2)
        for fmt in FORMATS:  # rendered and encoded as printing it would
            render(cost, fmt).encode("utf-8")
        outcome = "network"
    except SpecError as err:
        assert "\n" not in str(err) and len(str(err)) < 1000, str(err)[:300]
        outcome = "spec error"
    assert time.perf_counter() - start < SECONDS_PER_CASE
    return outcome


def assert_cli_outcome(result, spec=None, fmt="json", batch=1) -> str:
    """Exit 0 with a report, or exit 2 with one ``error:`` line and nothing on stdout."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        assert result.stderr == "" and result.stdout
        if fmt == "json":
            data = json.loads(result.stdout)
            if isinstance(spec, dict):
                check_report(spec, data, batch)
        elif fmt == "csv":
            assert len(list(csv.reader(io.StringIO(result.stdout)))) == 1 + len(spec["layers"])
        else:
            assert "total" in result.stdout.lower() or "Overall" in result.stdout
        return "report"
    assert result.exit_code == 2, (result.exit_code, result.stderr[-500:])
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-500:]
    assert len(lines[0]) < 1000
    return "error"


# -- the fuzz tests ---------------------------------------------------------------------------

@pytest.mark.slow
@fuzz
@given(spec=st.one_of(any_spec, wild))
def test_dicts_load_or_fail_cleanly(spec):
    """Spec dicts straight into the loader, including values JSON text cannot hold."""
    CASES["dict"] += 1
    if isinstance(spec, dict):
        CASES["dict:" + load_outcome(lambda: network_from_dict(spec))] += 1
    else:
        assert load_outcome(lambda: network_from_dict(parse_text(to_text(spec, "json"), "json"))) == "spec error"


@pytest.mark.slow
@fuzz
@given(case=edited_texts())
def test_texts_parse_or_fail_cleanly(case):
    """JSON and TOML text, whole or damaged, through the parser and the loader."""
    CASES["text"] += 1
    fmt, text = case
    CASES["text:" + load_outcome(lambda: network_from_dict(parse_text(text, fmt, "fuzz")))] += 1


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-specs")


@pytest.mark.slow
@fuzz
@given(spec=any_spec, fmt=st.sampled_from(["table", "markdown", "detail", "csv", "json"]),
       text_fmt=st.sampled_from(["json", "toml"]), suffix=st.sampled_from([".json", ".toml", ""]),
       batch=st.one_of(st.just(1), st.integers(1, 64)))
def test_cli_report_or_one_error_line(spec_dir, spec, fmt, text_fmt, suffix, batch):
    """``alexcost report --spec FILE`` in-process: a checked report, or one error line with exit 2."""
    CASES["cli"] += 1
    path = spec_dir / f"spec{CASES['cli'] % 7}{suffix}"
    path.write_text(to_text(spec, text_fmt), encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["report", "--spec", str(path), "--format", fmt, "--batch", str(batch)])
    assert time.perf_counter() - start < SECONDS_PER_CASE
    CASES["cli:" + assert_cli_outcome(result, spec, fmt, batch)] += 1


@pytest.mark.slow
@fuzz
@given(case=edited_texts(), args=st.lists(st.sampled_from(
    ["--batch", "0", "-1", "3", "99999999999999999999", "1.5", "--dtype", "float16", "int4", "--format", "json",
     "xml", "--model", "seed", "--out", "--bogus", "", "\u00e9"]), max_size=4))
def test_cli_damaged_stdin_and_odd_options(spec_dir, case, args):
    """Damaged text on standard input (``--spec -``) with odd options after it."""
    CASES["cli-stdin"] += 1
    fmt, text = case
    args = [a if a != "--out" else "--out=" + str(spec_dir / "out.txt") for a in args]
    result = CliRunner().invoke(cli, ["report", "--spec", "-", *args],
                                input=text.encode("utf-8", "surrogatepass"))
    if result.exit_code == 0:  # with --out, report says on stderr what it wrote
        assert all(line.startswith("wrote ") for line in result.stderr.splitlines())
    else:
        assert_cli_outcome(result)
    out = spec_dir / "out.txt"
    if out.exists():
        assert result.exit_code == 0
        out.unlink()
    assert not [p for p in os.listdir(spec_dir) if p.endswith(".tmp")]


@pytest.mark.slow
@fuzz
@given(spec=any_spec)
def test_failed_report_writes_nothing(spec_dir, spec):
    """With ``--out``, a spec that fails leaves no file (and no temporary file) behind."""
    CASES["out"] += 1
    path, out = spec_dir / "out-spec.json", spec_dir / "report.json"
    path.write_text(to_text(spec, "json"), encoding="utf-8")
    if out.exists():
        out.unlink()
    result = CliRunner().invoke(cli, ["report", "--spec", str(path), "--format", "json", "--out", str(out)])
    outcome = assert_cli_outcome(result) if result.exit_code else "report"
    assert out.exists() == (outcome == "report")
    if out.exists():
        check_report(spec, json.loads(out.read_text(encoding="utf-8")), 1)
    assert not [p for p in os.listdir(spec_dir) if p.endswith(".tmp")]


@pytest.mark.slow
@settings(max_examples=200 if THOROUGH else 4, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=edited_texts())
def test_real_process_never_shows_a_traceback(spec_dir, case):
    """End to end, in a real process: a report (exit 0) or one ``error:`` line (exit 2)."""
    CASES["process"] += 1
    fmt, text = case
    path = spec_dir / f"process.{fmt}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    proc = subprocess.run([sys.executable, "-m", "alexcost", "report", "--spec", str(path)],
                          capture_output=True, text=True, timeout=60, errors="backslashreplace")
    assert "Traceback" not in proc.stderr, proc.stderr[-1000:]
    if proc.returncode == 0:
        assert proc.stderr == "" and "Overall" in proc.stdout
    else:
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
        assert proc.stderr.startswith("error: ")


HOSTILE = [
    ('{"name": "\\ud800", "input_shape": [3, 8, 8], "layers": []}', "lone surrogate"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "ReLU", "name": "r\\udc00"}]}', "lone surrogate"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "ReLU", "name": "a\\nb"}]}', "control characters"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "LocalResponseNorm", "size": 3, "alpha": 1' + "0" * 400 + '}]}',
     "too large to be a float"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "Dropout", "p": 1' + "0" * 400 + '}]}',
     "too large to be a float"),
    ('{"input_shape": [' + ", ".join(["4611686018427387904"] * 40) + '], "layers": [{"type": "Flatten"}, '
     '{"type": "Linear", "out_features": 5}]}', "int64 limit"),
    ('{"input_shape": [' + ", ".join(["1"] * 65) + '], "layers": []}', "at most 64"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": "'
     + "x" * 100000 + '"}]}', "kernel_size"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "' + "Q" * 100000 + '"}]}', "unknown layer type"),
    ('{"input_shape": [3, 8, 8], "layers": [{"type": "ReLU", "' + "k" * 100000 + '": 1}]}', "unknown argument"),
    ('{"input_shape": [3, 8, 8], "name": [' + "1, " * 50000 + '1], "layers": []}', "name must be a string"),
]
"""Inputs that crashed alexcost or flooded its error line before the fixes fuzzing led to."""


@pytest.mark.parametrize("text,fragment", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_regressions_from_fuzzing(tmp_path, text, fragment):
    """Each found crash, fixed: one short error line, exit 2, also with --out (no file)."""
    path = tmp_path / "hostile.json"
    path.write_text(text, encoding="utf-8")
    for extra in ([], ["--out", str(tmp_path / "r.txt")]):
        result = CliRunner().invoke(cli, ["report", "--spec", str(path), *extra])
        assert_cli_outcome(result)
        assert fragment in result.stderr and len(result.stderr) < 400, result.stderr[:400]
    assert sorted(os.listdir(tmp_path)) == ["hostile.json"]


def test_absurd_sizes_are_computed_not_allocated():
    """2^20 channels: exact counts by formula, in microseconds and a few KiB of memory."""
    import tracemalloc

    spec = {"input_shape": [2**20, 64, 64], "layers": [
        {"type": "Conv2d", "out_channels": 2**20, "kernel_size": 3, "padding": 1},
        {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"}, {"type": "Linear", "out_features": 2**20}]}
    tracemalloc.start()
    try:
        cost = network_from_dict(spec).cost(batch=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    conv_macs = 2**20 * 2**20 * 64 * 64 * 2**20 * 3 * 3
    fc_macs = 2**20 * (2**20 * 32 * 32) * 2**20
    assert cost.totals.macs == conv_macs + fc_macs


# == each invalid spec beside its valid twin =======================================================
# Bad input: each invalid spec beside a valid twin, through the CLI.
#
# Every invalid one must give exit code 2 and exactly one line, ``error: ...``, that
# names the layer and the offending numbers; its valid twin must report normally.

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
ERROR_CASES = [
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


ERROR_CASES.append(("Linear after an unflattened tensor", linear_on_maps(16), linear_on_maps(16 * 16 * 16),
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


@pytest.mark.parametrize("case_id,valid,invalid,fragments", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
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
