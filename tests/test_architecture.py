"""The architecture holds: the rooms of docs/architecture.md import only what the page allows,
the never-arrows are never drawn (imports inside functions count), no module imports another in
a circle, files and functions stay short, nothing compiles or executes code, and the static path
runs with torch, matplotlib and the command line blocked."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alexcost"
PAGE = ROOT / "docs" / "architecture.md"

ENGINES = ("engine", "training", "hardware", "prediction", "specs", "layers", "models", "search")
THIRD_PARTY = ("torch", "torchvision", "fvcore", "matplotlib", "numpy", "alexcost_cli", "click")

MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 60
LONG_FILES = {
    "alexcost/torch_run/timing.py": "the timing harness, its runs and records in one module; the torch_run room's "
                                    "own split is its owner's next step",
    "alexcost/torch_bridge/reader.py": "the fx reader, grown with writes in place and views followed node by node; "
                                       "its split (values and storages apart from the node handlers) is the "
                                       "torch_bridge room's next step",
    "alexcost/render/plot.py": "every figure in one module, grown with the docs' figures; one module per figure "
                               "is the render room's next step",
}
LONG_FUNCTIONS = {
    ("alexcost/torch_run/verify_training.py", "measure_training"): "one real training step under hooks and "
                                                                    "FlopCounterMode, three passes that share their "
                                                                    "tensors; splitting it is the torch_run room's "
                                                                    "next step",
    ("alexcost/render/roofline.py", "render"): "one table of the roofline per batch, written out line by line",
    ("alexcost/torch_bridge/trace.py", "trace"): "the symbolic trace and what it refuses (hooks, modes, wrappers) "
                                                 "in order; its split is the torch_bridge room's next step",
}
"""The exceptions kept, each with its reason."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


@cache
def imports(name: str) -> tuple[str, ...]:
    """Every module ``name`` imports, at module level or inside functions: alexcost's own by their
    module names, others by their top-level package."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names]
    return tuple(m if m.startswith("alexcost") else m.split(".")[0] for m in found)


def room(name: str) -> str:
    """A module's room as the page names it: its folder, or the top-level module."""
    parts = name.split(".")
    if len(parts) == 1:
        return "__init__.py"
    return parts[1] + ("/" if (PACKAGE / parts[1]).is_dir() else ".py")


@cache
def rooms() -> dict[str, tuple[set, set]]:
    """The page's rooms: room -> (the rooms it may import, what it may import from outside)."""
    out = {}
    for line in PAGE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "`room`":
            allowed = {f"{n}/" if (PACKAGE / n).is_dir() else f"{n}.py" for n in re.findall(r"`(\w+)`", cells[2])}
            out[cells[0].strip("`")] = (allowed, set(re.findall(r"`(\w+)`", cells[3])))
    return out


def test_every_folder_and_module_of_alexcost_is_a_room_on_the_page():
    folders = {f"{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert folders <= set(rooms()), sorted(folders - set(rooms()))
    assert files <= set(rooms()), sorted(files - set(rooms()))
    assert "Architecture: architecture.md" in (ROOT / "mkdocs.yml").read_text()


@pytest.mark.parametrize("name", sorted(modules()))
def test_each_module_imports_what_its_room_may(name):
    allowed, outside = rooms()[room(name)]
    for imported in imports(name):
        if imported.startswith("alexcost."):
            assert room(imported) in allowed | {room(name)}, f"{name} imports {imported}"
        elif imported in THIRD_PARTY:
            assert imported in outside, f"{name} imports {imported}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_the_never_arrows(name):
    own = name.split(".")[1] if "." in name else name
    mine = imports(name)
    if own in ENGINES:
        assert not [m for m in mine if m.startswith("alexcost.render")], name
    if own == "layers":
        assert not [m for m in mine if m.split(".")[:2] in (["alexcost", "torch_bridge"], ["alexcost", "torch_run"])
                    or m == "torch"], name


def test_no_module_imports_another_in_a_circle():
    graph = {name: {m for m in imports(name) if m in modules() and m != name} for name in modules()}
    seen, circles = {}, []

    def visit(node, path):
        seen[node] = "open"
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == "open":
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen[node] = "done"
    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    assert not circles, circles


def test_files_and_functions_are_short():
    long_files, long_functions = {}, {}
    for path in PACKAGE.rglob("*.py"):
        where = str(path.relative_to(ROOT))
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files[where] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long_functions[(where, node.name)] = node.end_lineno - node.lineno + 1
    assert set(long_files) <= set(LONG_FILES), long_files
    assert set(long_functions) <= set(LONG_FUNCTIONS), long_functions


def test_no_code_is_compiled_or_executed():
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                    "exec", "eval", "compile"):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.id}")
    assert not calls, calls


BLOCKED = r'''
import importlib.abc, json, sys
BLOCK = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Blocker())
'''

LIBRARY = BLOCKED + r'''
import alexcost
from alexcost import PRESETS, dumps_spec, load_spec, preset
from alexcost.render.report import FORMATS, render
from alexcost.search import evaluate
from alexcost.training import training_cost
for name in PRESETS:
    cost = preset(name).cost(2)
    for fmt in FORMATS:
        render(cost, fmt)
path = sys.argv[2]
open(path, "w").write(dumps_spec(preset("resnet18")))
assert load_spec(path).cost().totals == preset("resnet18").cost().totals
training_cost(preset("mobilenet_v2"), 2).memory
evaluate([{"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": 3}]}])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCK)))
'''

COMMAND = BLOCKED + r'''
from alexcost_cli.main import cli
for argv in (["report"], ["report", "--model", "resnet50", "--format", "json"], ["models"],
             ["report", "--spec", sys.argv[2]]):
    try:
        cli.main(argv)
    except SystemExit as done:
        assert not done.code, (argv, done.code)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCK)))
'''


def test_the_static_path_runs_with_torch_matplotlib_and_the_command_line_blocked(tmp_path):
    spec = tmp_path / "resnet18.json"
    done = subprocess.run([sys.executable, "-c", LIBRARY, "torch,matplotlib,alexcost_cli,fvcore,numpy", str(spec)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []
    done = subprocess.run([sys.executable, "-c", COMMAND, "torch,matplotlib,fvcore,numpy", str(spec)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


# -- tests: no test module imports another -------------------------------------------------------------

TESTS = ROOT / "tests"


def imported_test_modules(source: str) -> set[str]:
    """The test modules (``test_*``) that ``source`` imports, at module level or inside functions,
    by an import statement or by ``importlib.import_module`` / ``__import__`` with a literal name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + ([f"{node.module}.{a.name}" for a in node.names] if node.module else
                                           [a.name for a in node.names])
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) in
                   ("__import__", "import_module"))):
            names = [node.args[0].value]
        else:
            continue
        found |= {part for name in names for part in name.split(".") if part.startswith("test_")}
    return found


def test_the_import_check_finds_a_test_module_however_it_is_imported():
    assert imported_test_modules("from test_docs import blocks") == {"test_docs"}
    assert imported_test_modules("def f():\n    import tests.test_dense as d") == {"test_dense"}
    assert imported_test_modules("from tests import test_fuzz") == {"test_fuzz"}
    assert imported_test_modules("import importlib\nimportlib.import_module('test_zoo')") == {"test_zoo"}
    assert imported_test_modules("from strategies import chain_networks\nimport pytest") == set()


def test_no_test_module_imports_another():
    """Shared helpers live in support modules (``tests/strategies.py`` and the others without the
    ``test_`` prefix); a test module, or a support module, never imports a test module."""
    offenders = {str(path.relative_to(ROOT)): sorted(found) for path in sorted(TESTS.rglob("*.py"))
                 if (found := imported_test_modules(path.read_text(encoding="utf-8")) - {path.stem})}
    assert offenders == {}, f"test modules imported by other modules: {offenders}"


def test_every_test_file_is_on_the_contributing_pages_map():
    """docs/contributing.md says where a new test goes, one line per test file: every test file is
    there, and every file there exists."""
    text = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")
    section = text.split("## Where a new test goes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `tests/(test_\w+\.py)`: \S", section, flags=re.M)
    on_disk = sorted(path.name for path in TESTS.glob("test_*.py"))
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({n for n in listed if listed.count(n) > 1})}"
    assert sorted(set(on_disk) - set(listed)) == [], "add a line for each under its subject in docs/contributing.md"
    assert sorted(set(listed) - set(on_disk)) == [], "docs/contributing.md lists test files that do not exist"
