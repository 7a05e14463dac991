"""The distribution's shape: no generic top-level `cli` module, one test command everywhere."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_folder_installs_under_a_distinct_name():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert "cli" not in setuptools["packages"]
    assert setuptools["package-dir"]["alexcost_cli"] == "cli"
    assert project["project"]["scripts"]["alexcost"] == "alexcost_cli.main:main"


def test_core_requirements_stay_light():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(re.match(r"(torch|fvcore|matplotlib|numpy)\b", d) for d in deps)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("torch>=") and "==" not in d for d in extras["torch"])  # a range, not a pin


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, re.S)


def test_ci_runs_the_readme_test_command():
    commands = readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command.strip() in (ROOT / ".ci" / "run").read_text()


def test_readme_main_command_runs_the_default_report():
    main = readme_commands()[0]
    assert "pip install" in main and main.rstrip().endswith("alexcost report")


def test_every_subpackage_is_in_the_distribution():
    """A non-editable install ships only the listed packages: every folder of alexcost/ with an
    __init__.py must be listed, or `pip install .` gives an alexcost that cannot import itself."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "alexcost").rglob("__init__.py")
             if "__pycache__" not in p.parts}
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
