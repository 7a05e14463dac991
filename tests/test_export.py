"""`alexcost export` and `alexcost.dumps_spec`: a network written as a spec file reads back to the
same report, byte for byte, in every format; ``inputs`` appear only where the graph branches or
merges; every exported preset is valid against the published JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from alexcost import (INPUT, PRESETS, Add, Conv2d, Network, ReLU, SpecError, dumps_spec, load_spec,
                      network_from_dict, preset)
from alexcost.render.report import FORMATS, render
from alexcost_cli.main import cli
from static_path import heavy_imports_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def run(*args, cwd=None):
    code = f"import sys; from alexcost_cli.main import main; main({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every preset exported by the command, as JSON and as TOML: {(name, fmt): path}."""
    folder = tmp_path_factory.mktemp("export")
    out = {}
    for name in PRESETS:
        for fmt in ("json", "toml"):
            path = folder / f"{name}.{fmt}"
            assert invoke("export", "--model", name, "--format", fmt, "--out", str(path)) == f"wrote {path} ({fmt})\n"
            out[name, fmt] = path
    return out


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_report_of_the_export_is_byte_identical(exported, name, fmt):
    for report_format in FORMATS:
        ours = invoke("report", "--model", name, "--format", report_format)
        back = invoke("report", "--spec", str(exported[name, fmt]), "--format", report_format)
        assert back == ours, (name, fmt, report_format)
    assert invoke("report", "--spec", str(exported[name, fmt]), "--batch", "7", "--dtype", "bfloat16") == \
        invoke("report", "--model", name, "--batch", "7", "--dtype", "bfloat16")


@pytest.mark.parametrize("name", list(PRESETS))
def test_loads_back_to_the_same_network(exported, name):
    for fmt in ("json", "toml"):
        back = load_spec(exported[name, fmt])
        assert back == preset(name)            # input shape, layers (with their inputs) and name
        assert back.sources == preset(name).sources


def test_standard_output_and_format_from_the_extension(exported, tmp_path):
    assert invoke("export", "--model", "resnet18") == exported["resnet18", "json"].read_text()
    assert invoke("export", "--model", "resnet18", "--format", "toml") == exported["resnet18", "toml"].read_text()
    assert invoke("export", "--model", "resnet18", "--out", str(tmp_path / "r.TOML")) == \
        f"wrote {tmp_path / 'r.TOML'} (toml)\n"
    assert (tmp_path / "r.TOML").read_text() == exported["resnet18", "toml"].read_text()
    assert invoke("export") == exported["seed", "json"].read_text()          # the default model


def test_json_is_one_layer_per_line(exported):
    lines = exported["googlenet", "json"].read_text().splitlines()
    assert lines[:4] == ['{', '  "name": "googlenet",', '  "input_shape": [3, 224, 224],', '  "layers": [']
    assert len(lines) == len(preset("googlenet")) + 6 and lines[-2:] == ["  ]", "}"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_inputs_only_where_a_layer_does_not_read_the_one_before(exported, name):
    """Written out: ``inputs`` lists exactly the tensors a layer reads, and is there exactly when
    one of them is not the previous layer's output (the wiring below is read from the network)."""
    data = json.loads(exported[name, "json"].read_text())
    net = preset(name)
    for i, entry in enumerate(data["layers"]):
        reads = [INPUT if j == -1 else net.names[j] for j, _ in net.sources[i]]
        previous = INPUT if i == 0 else net.names[i - 1]
        if reads == [previous]:
            assert "inputs" not in entry, entry["name"]
        else:
            assert entry["inputs"] == reads, entry["name"]
    merges = sum(1 for entry in data["layers"] if entry["type"] in ("Add", "Cat"))
    assert merges <= sum(1 for entry in data["layers"] if "inputs" in entry)


def test_inputs_naming_the_previous_layer_are_left_out():
    """A network that names what it would read anyway is written as the same plain chain."""
    explicit = Network((2, 4, 4), [Conv2d(name="c", out_channels=2, kernel_size=1),
                                   ReLU(name="r", inputs=("c",)),
                                   Add(name="a", inputs=("input", "r")),
                                   ReLU(name="out", inputs="a")])
    data = json.loads(dumps_spec(explicit))
    assert [sorted(e) for e in data["layers"]] == [
        ["kernel_size", "name", "out_channels", "type"], ["name", "type"], ["inputs", "name", "type"], ["name", "type"]]
    back = network_from_dict(data)
    assert back.sources == explicit.sources and render(back.cost()) == render(explicit.cost())


@pytest.mark.slow
def test_exported_presets_are_valid_against_the_published_schema(exported):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "spec.schema.json").read_text())
    for (name, fmt), path in exported.items():
        data = json.loads(path.read_text()) if fmt == "json" else tomllib.loads(path.read_text())
        jsonschema.validate(data, schema)
    bad = json.loads(exported["resnet18", "json"].read_text())
    bad["layers"][9]["inputs"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_a_spec_file_exports_to_its_plain_form(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text('input_shape = [3, 8, 8]\n[[layers]]\ntype = "Conv2d"\nout_channels = 4\nkernel_size = [3, 3]\n'
                    'padding = 0\n[[layers]]\ntype = "ReLU"\ninputs = ["conv2d0"]\n')
    assert json.loads(invoke("export", "--spec", str(spec))) == {
        "name": "tiny", "input_shape": [3, 8, 8],
        "layers": [{"type": "Conv2d", "name": "conv2d0", "out_channels": 4, "kernel_size": 3},
                   {"type": "ReLU", "name": "relu1"}]}


@pytest.mark.parametrize("name", ["😀", "face 😀 and 𝄞", 'quote " back \\ é 中'])
def test_toml_writes_any_name_as_tomllib_reads_it(tmp_path, name):
    """Names beyond the Basic Multilingual Plane are written as themselves (JSON's \\ud83d\\ude00 is a
    surrogate pair, which TOML refuses); quotes and backslashes are escaped."""
    net = Network((3, 8, 8), [Conv2d(name=name, out_channels=4, kernel_size=3), ReLU(name=name + "2")], name=name)
    text = dumps_spec(net, "toml")
    data = tomllib.loads(text)
    assert data["name"] == name and [e["name"] for e in data["layers"]] == [name, name + "2"]
    assert network_from_dict(data) == net
    json_spec = tmp_path / "net.json"
    json_spec.write_text(dumps_spec(net, "json"), encoding="utf-8")
    toml_spec = tmp_path / "net.toml"
    assert invoke("export", "--spec", str(json_spec), "--format", "toml", "--out", str(toml_spec)).startswith("wrote")
    assert invoke("report", "--spec", str(toml_spec), "--format", "json") == invoke(
        "report", "--spec", str(json_spec), "--format", "json")


def test_toml_strings_escape_control_characters():
    from alexcost.specs.specfile import _toml_string

    for text in ("tab\there", "line\nbreak", "del\x7f", "bell\x07", "😀\r"):
        assert tomllib.loads(f"x = {_toml_string(text)}") == {"x": text}
    with pytest.raises(SpecError, match="lone surrogate"):
        _toml_string("\ud83d")


# -- errors: one line, exit 2, nothing written ---------------------------------------------------------

def test_toml_refuses_a_null_and_writes_nothing(tmp_path):
    (tmp_path / "none.json").write_text(json.dumps({"input_shape": [3, 8, 8], "layers": [
        {"type": "AdaptiveAvgPool2d", "output_size": [2, None]}]}))
    done = run("export", "--spec", "none.json", "--out", "none.toml", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: TOML has no null") and done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none.json"]
    assert run("export", "--spec", "none.json", "--format", "json", "--out", "none.json2", cwd=tmp_path).returncode == 0
    refused = run("export", "--spec", "none.json", "--out", "none.yaml", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("error: cannot write '.yaml' files")


@pytest.mark.parametrize("args, message", [
    (["--model", "seed", "--spec", "x.json"], "error: alexcost export reads one network; got 2 (--model, --spec)"),
    (["--model", "resnet51"], "error: Invalid value for '--model'"),
    (["--format", "yaml"], "error: Invalid value for '--format'"),
    (["--out", "missing/dir/seed.json"], "error: cannot write 'missing/dir/seed.json'"),
])
def test_bad_arguments_fail_in_one_line(tmp_path, args, message):
    done = run("export", *args, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_never_imports_torch():
    heavy, out = heavy_imports_of("export", "--model", "resnet50", "--format", "toml")
    assert heavy == [] and out.startswith('name = "resnet50"\n'), heavy


# -- the Python API: any network ------------------------------------------------------------------------

def test_a_graph_built_in_python_round_trips():
    from alexcost import BatchNorm2d, Cat, Chunk

    net = Network((4, 8, 8), [
        Conv2d(name="stem", out_channels=8, kernel_size=3, padding=1, bias=False), BatchNorm2d(name="bn"),
        Chunk(name="halves", chunks=2, dim=1),
        ReLU(name="left", inputs="halves.0"), Conv2d(name="right", inputs="halves.1", out_channels=4, kernel_size=1),
        Cat(name="joined", inputs=("left", "right"), dim=1), Add(name="residual", inputs=("joined", "bn"))],
        name="py")
    for fmt in ("json", "toml"):
        text = dumps_spec(net, fmt)
        back = network_from_dict(json.loads(text) if fmt == "json" else tomllib.loads(text))
        assert back == net and render(back.cost(batch=3)) == render(net.cost(batch=3))
    assert [e.get("inputs") for e in json.loads(dumps_spec(net))["layers"]] == [
        None, None, None, ["halves.0"], ["halves.1"], ["left", "right"], ["joined", "bn"]]


@pytest.mark.slow
def test_an_imported_module_is_written_as_its_network():
    torch = pytest.importorskip("torch")
    from alexcost.torch_bridge import from_module

    nn = torch.nn
    module = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    imported = from_module(module, (3, 8, 8))
    back = network_from_dict(json.loads(dumps_spec(imported)))
    assert back == imported.network
    assert back.cost().totals.params == sum(p.numel() for p in module.parameters())


def test_an_imported_module_sharing_a_weight_is_refused():
    """Two Linear(4, 4) with one weight: torch counts 16 + 4 + 4 parameters; a spec would load
    back as two separate layers of 16 + 4 each."""
    torch = pytest.importorskip("torch")
    from alexcost.torch_bridge import from_module

    shared = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    shared[1].weight = shared[0].weight
    assert sum(p.numel() for p in shared.parameters()) == 16 + 4 + 4
    with pytest.raises(SpecError, match=f"has {16 + 4 + 4} parameters as imported but its layers hold "
                                        f"{2 * (16 + 4)}: a module run twice or a shared weight"):
        dumps_spec(from_module(shared, (4,)))


def test_dumps_spec_refuses_what_is_not_a_network():
    with pytest.raises(SpecError, match="expected an alexcost Network, got dict"):
        dumps_spec({"layers": []})
