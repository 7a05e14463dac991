"""Spec files are data: nothing in one is executed, nothing is written but the named output, sizes are bounded.

The strong check runs ``alexcost report`` on hostile specs in a child process under a
Python audit hook (PEP 578) that records every code compilation or execution that does not
come from an installed module file, every process, socket, pickle or ctypes use, and every
file opened for writing, renamed or removed. docs/security.md describes the guarantees.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alexcost import SpecError, network_from_dict
from alexcost.layers.arguments import MAX_RANK
from alexcost.specs.specfile import MAX_LAYERS, MAX_SPEC_BYTES, load_spec

ROOT = Path(__file__).resolve().parents[1]

AUDITED = r'''
"""Run alexcost's CLI on argument lists twice: once to warm lazy imports, once under an audit hook."""
import json, os, re, sys

from alexcost_cli.main import cli

runs, spec_dir, out_path, result_path = json.loads(sys.argv[1])
out_dir, out_name = os.path.dirname(out_path), os.path.basename(out_path)
temp_name = re.compile(r"^\." + re.escape(out_name) + r"\..*\.tmp$")
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
FORBIDDEN = ("subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.kill",
             "socket.", "ctypes.", "pickle.", "shelve.", "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.",
             "os.putenv", "os.unsetenv", "os.chown", "os.link", "os.symlink", "os.truncate",
             "os.mkdir", "os.rmdir", "os.utime", "shutil.", "sys._getframe", "builtins.input")
violations, armed, codes = [], False, []


def ours(path) -> bool:
    """The output file, or write_atomic's temporary file beside it."""
    path = os.path.abspath(os.fsdecode(path))
    return os.path.dirname(path) == out_dir and (os.path.basename(path) == out_name
                                                 or bool(temp_name.match(os.path.basename(path))))


def hook(event, args):
    if not armed:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, (str, bytes, os.PathLike)):
            writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE)
            if writing and not ours(path):
                violations.append(f"write {os.fsdecode(path)}")
    elif event in ("os.rename", "os.replace"):
        if not (ours(args[0]) and ours(args[1])):
            violations.append(f"{event} {args[0]} -> {args[1]}")
    elif event in ("os.remove", "os.chmod"):  # write_atomic gives its temporary file the final mode
        if not ours(args[0]):
            violations.append(f"{event} {args[0]}")
    elif event in ("compile", "exec"):
        name = args[1] if event == "compile" else getattr(args[0], "co_filename", "?")
        name = os.fsdecode(name) if isinstance(name, (bytes, str)) else str(name)
        if name.startswith("<") or os.path.abspath(name).startswith(spec_dir):
            violations.append(f"{event} of code from {name}")
    elif event.startswith(FORBIDDEN):
        violations.append(f"{event} {str(args)[:120]}")


def run(args):
    try:
        cli.main(args)
    except SystemExit as stop:
        return stop.code
    return 0


sys.addaudithook(hook)
for args in runs:  # warm-up: every lazy import happens here
    run(args)
if os.path.exists(out_path):
    os.remove(out_path)
armed = True
for args in runs:
    codes.append(run(args))
armed = False
with open(result_path, "w") as fh:
    json.dump({"violations": violations, "codes": codes}, fh)
'''


class _Payload:
    """Unpickling this would run a shell command: alexcost must never unpickle."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def hostile_specs(folder: Path, canary: Path) -> list[tuple[str, bool]]:
    """Spec files written to ``folder``: (path, whether a report is expected)."""
    touch = f"touch {canary}"
    files = {
        "code-in-strings.json": (json.dumps({
            "name": f"__import__('os').system('{touch}')", "description": "<script>alert(1)</script>",
            "$schema": "http://127.0.0.1:9/schema.json", "input_shape": [3, 8, 8],
            "layers": [{"type": "ReLU", "name": "$(touch canary)"}, {"type": "Dropout", "name": "{{7*7}}"},
                       {"type": "Flatten", "name": "`touch canary`"}, {"type": "Linear", "out_features": 2,
                                                                       "name": "eval('touch canary')"}]}), True),
        "code-in-strings.toml": ('name = "../../../escape"\ninput_shape = [3, 8, 8]\n\n'
                                 '[[layers]]\ntype = "ReLU"\nname = "${HOME}"\n', True),
        "types-that-are-code.json": (json.dumps({"input_shape": [3, 8, 8], "layers": [
            {"type": "os.system", "command": touch}]}), False),
        "builtin-type.json": (json.dumps({"input_shape": [3, 8, 8], "layers": [{"type": "__import__"}]}), False),
        "base-class.json": (json.dumps({"input_shape": [3, 8, 8], "layers": [{"type": "Layer"}]}), False),
        "dunder-argument.json": (json.dumps({"input_shape": [3, 8, 8], "layers": [
            {"type": "ReLU", "__class__": "os.system", "__init__": touch}]}), False),
        "yaml-tag.yaml": (f"!!python/object/apply:os.system ['{touch}']\n", False),
        "python-source.py": (f"import os\nos.system('{touch}')\n", False),
    }
    out = []
    for name, (text, ok) in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        out.append((str(folder / name), ok))
    (folder / "pickle.pkl").write_bytes(pickle.dumps(_Payload(touch)))
    out.append((str(folder / "pickle.pkl"), False))
    return out


def test_hostile_specs_execute_nothing_and_write_only_the_output(tmp_path):
    specs, work, out = tmp_path / "specs", tmp_path / "cwd", tmp_path / "out" / "report.json"
    for folder in (specs, work, out.parent):
        folder.mkdir()
    canary = tmp_path / "canary"
    files = hostile_specs(specs, canary)
    runs = []
    for path, _ in files:
        runs += [["report", "--spec", path, "--format", fmt] for fmt in ("table", "json", "csv")]
        runs.append(["report", "--spec", path, "--format", "json", "--out", str(out)])
    result = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-B", "-c", AUDITED,
                           json.dumps([runs, str(specs), str(out), str(result)])],
                          cwd=work, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(result.read_text())
    assert outcome["violations"] == []
    expected = [0 if ok else 2 for _, ok in files for _ in range(4)]
    assert outcome["codes"] == expected
    assert "Traceback" not in proc.stderr
    assert not canary.exists()
    assert os.listdir(work) == []  # nothing written to the working folder
    assert os.listdir(out.parent) == ["report.json"]  # the named output only, no temporary file left
    assert sorted(os.listdir(specs)) == sorted(Path(p).name for p, _ in files)  # specs untouched
    assert sorted(os.listdir(tmp_path)) == ["cwd", "out", "result.json", "specs"]


def test_the_audit_hook_sees_what_it_must_refuse(tmp_path):
    """The watcher itself works: code from a string and a stray write are both reported."""
    script = AUDITED.replace("for args in runs:\n    codes.append(run(args))",
                             "exec('x = 1')\nopen(os.path.join(spec_dir, 'stray.txt'), 'w').close()")
    result = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-B", "-c", script,
                           json.dumps([[], str(tmp_path), str(tmp_path / "out.json"), str(result)])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    violations = json.loads(result.read_text())["violations"]
    assert any(v.startswith("compile of code from <string>") for v in violations), violations
    assert any(v.startswith("write ") and v.endswith("stray.txt") for v in violations), violations


@pytest.mark.parametrize("kind", ["os.system", "eval", "__import__", "object", "type", "Layer", "_Elementwise",
                                  "builtins.print", "alexcost.layers.Conv2d", "torch.nn.Conv2d"])
def test_layer_types_come_only_from_the_registry(kind):
    with pytest.raises(SpecError, match="unknown layer type"):
        network_from_dict({"input_shape": [3, 8, 8], "layers": [{"type": kind}]})


@pytest.mark.parametrize("key", ["__class__", "__dict__", "__init__", "group", "ops_per_element", "forward"])
def test_arguments_come_only_from_the_kinds_fields(key):
    with pytest.raises(SpecError, match="unknown argument"):
        network_from_dict({"input_shape": [3, 8, 8], "layers": [{"type": "ReLU", key: 1}]})


def test_spec_path_has_no_code_loading_calls():
    """A tripwire beside the audit test: the spec path's source names no code-loading call."""
    banned = ("eval(", "exec(", "compile(", "__import__", "import_module", "pickle", "marshal", "yaml",
              "shelve", "subprocess", "os.system")
    for name in ("specs/specfile.py", "layers/arguments.py", "engine/network.py", "errors.py", "engine/cost.py",
                 "render/report.py", "atomic.py"):
        source = (ROOT / "alexcost" / name).read_text()
        assert not [b for b in banned if b in source], name
    # search.evaluate keys the layer entries it has seen by their marshal bytes: it writes, never reads
    source = (ROOT / "alexcost" / "search.py").read_text()
    assert not [b for b in banned if b != "marshal" and b in source]
    assert "from marshal import dumps\n" in source and "load" not in source.replace("from marshal import dumps", "")


# -- resource bounds ----------------------------------------------------------------------------

def test_oversized_file_refused_before_parsing(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"input_shape": [3, 8, 8], "layers": [' + " " * MAX_SPEC_BYTES + "]}")
    start = time.perf_counter()
    with pytest.raises(SpecError, match="larger than 16 MiB"):
        load_spec(path)
    assert time.perf_counter() - start < 5


@pytest.mark.slow
def test_layer_count_bound():
    start = time.perf_counter()
    with pytest.raises(SpecError, match=f"at most {MAX_LAYERS}"):
        network_from_dict({"input_shape": [1], "layers": [{"type": "ReLU"}] * (MAX_LAYERS + 1)})
    assert time.perf_counter() - start < 1  # refused before a single layer is built
    net = network_from_dict({"input_shape": [1], "layers": [{"type": "ReLU"}] * MAX_LAYERS})
    assert net.cost().totals.other_ops == MAX_LAYERS  # one comparison per element per ReLU


ONE = [{"type": "Identity"}]


def test_rank_and_element_count_bounds():
    with pytest.raises(SpecError, match=f"at most {MAX_RANK} are allowed"):
        network_from_dict({"input_shape": [1] * (MAX_RANK + 1), "layers": ONE})
    assert network_from_dict({"input_shape": [1] * MAX_RANK, "layers": ONE}).input_shape == (1,) * MAX_RANK
    with pytest.raises(SpecError, match="int64 limit"):
        network_from_dict({"input_shape": [2**32, 2**32], "layers": ONE})
    # 2**31 * 2**32 = 2**63 is one too many; one fewer fits.
    with pytest.raises(SpecError, match="int64 limit"):
        network_from_dict({"input_shape": [2**31, 2**32], "layers": ONE})
    net = network_from_dict({"input_shape": [2**63 - 1], "layers": ONE})
    assert net.input_shape == (2**63 - 1,)
    # a batch of two such samples could not be a torch tensor
    with pytest.raises(SpecError, match="batch 2 makes the input hold 18446744073709551614 elements"):
        net.cost(batch=2)


def test_error_lines_stay_short_whatever_the_spec_holds():
    huge = {"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 4,
                                                  "kernel_size": list(range(10**6))}]}
    with pytest.raises(SpecError) as err:
        network_from_dict(huge)
    assert len(str(err.value)) < 200 and "kernel_size" in str(err.value)


def test_building_layers_compiles_and_executes_no_code():
    """Every kind's ``__init__`` is `Layer`'s own, driven by the kind's fields: in a fresh process,
    under an audit hook, building every built-in kind from a spec whose strings are code, then
    costing it, forward and training, compiles and executes nothing."""
    code = r'''
import json, sys
from alexcost import Network, network_from_dict, preset
from alexcost.layers import BUILTIN_KINDS
from alexcost.training import training_cost
held = [preset(name) for name in ("paper", "googlenet", "resnet18", "mobilenet_v2")]  # their modules imported
events = []
sys.addaudithook(lambda event, args: events.append([event, str(args)[:80]]) if event in ("compile", "exec") else None)
hostile = "__import__('os').system('touch pwned')"
net = network_from_dict({"input_shape": [3, 8, 8], "name": hostile,
                         "layers": [{"type": "Conv2d", "name": hostile.replace(".", "_"), "out_channels": 2,
                                     "kernel_size": 3}]})
net.cost().layers, training_cost(net).memory
for net in held:
    copy = Network(net.input_shape, [type(layer)(**{f: getattr(layer, f) for f in layer.__dataclass_fields__
                                                     if f in layer.args() or f in ("name", "inputs")})
                                     for layer in net.layers], name=hostile)
    copy.cost(2).layers, training_cost(copy, 2).layers
print(json.dumps({"events": events, "kinds": len(BUILTIN_KINDS)}))
'''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["events"] == [] and result["kinds"] >= 38
