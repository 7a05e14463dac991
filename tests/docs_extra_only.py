"""Run MkDocs as a fresh ``pip install '.[docs]'`` would: every module outside the docs extra is refused.

``python tests/docs_extra_only.py build --strict ...`` installs an import hook, then runs MkDocs'
command line. The hook refuses to import any top-level module that an installed distribution
provides, unless that distribution is ``alexcost`` itself or one the ``docs`` extra requires
(directly or through its own requirements): torch, fvcore, pytest, hypothesis and whatever
the ``test`` extra alone brings in look missing, as they would be. The standard library and
modules no distribution claims (the docs' own hook) import as usual.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def own_requirements() -> list[str]:
    """alexcost's requirements as pyproject.toml states them now (the installed metadata may be older),
    each extra's marked ``extra == "name"`` as in a wheel's metadata."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [*project["dependencies"], *(f'{req}; extra == "{extra}"' for extra, reqs in
                                        project["optional-dependencies"].items() for req in reqs)]


def closure(extras: tuple[str, ...] = ("docs",)) -> set[str]:
    """The distributions ``pip install '.[extras]'`` installs (normalised names): alexcost's own
    requirements from pyproject.toml, theirs from the installed metadata (a requirement that is
    not installed is listed all the same)."""
    seen: set[tuple[str, frozenset]] = set()
    todo = [("alexcost", frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (normal(name), wanted) in seen:
            continue
        seen.add((normal(name), wanted))
        try:
            requires = own_requirements() if normal(name) == "alexcost" else metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted or {""}):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


class OutsideTheExtra(importlib.abc.MetaPathFinder):
    """Refuses a top-level module whose distributions are all outside ``allowed``."""

    def __init__(self, allowed: set[str]):
        self.allowed = allowed
        self.owners = {top: {normal(d) for d in dists} for top, dists in metadata.packages_distributions().items()}

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        owners = self.owners.get(top)
        if owners and not owners & self.allowed:
            raise ModuleNotFoundError(f"No module named {top!r} (it comes from {', '.join(sorted(owners))}, "
                                      f"which the docs extra does not install)", name=top)
        return None


def install() -> OutsideTheExtra:
    finder = OutsideTheExtra(closure())
    sys.meta_path.insert(0, finder)
    return finder


if __name__ == "__main__":
    install()
    from mkdocs.__main__ import cli

    sys.argv[0] = "mkdocs"
    cli()
