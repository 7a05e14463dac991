"""MkDocs hooks: what the docs show is made by alexcost at build time, so it cannot go stale.

* Figures: ``alexcost plot``'s two figures for every preset, as ``img/<preset>-shares.svg``
  and ``img/<preset>-memory.svg`` (drawn in memory, never committed).
* API reference: the ``<!-- alexcost:api -->`` marker in ``api.md`` becomes one
  mkdocstrings block per module of the ``alexcost`` package, so a new module is
  documented without anyone remembering to add it.
"""

from __future__ import annotations

import pathlib

API_GROUPS = (
    ("The network and its costs", ("network", "cost", "layers", "models")),
    ("Spec files", ("specfile", "schema")),
    ("Reports and figures", ("report", "plot", "textable")),
    ("Against torch: cross-checks and timing", ("torch_bridge", "crosscheck", "timing", "roofline")),
    ("Errors and helpers", ("errors", "atomic", "shapes", "arguments")),
)
"""Modules in reading order; a module not listed here is appended under "Other modules"."""

API_MARKER = "<!-- alexcost:api -->"


def figures() -> dict[str, bytes]:
    """``{"img/seed-shares.svg": b"<svg...", ...}`` for every preset."""
    from alexcost import PRESETS, preset
    from alexcost.plot import figure_bytes, memory_figure, shares_figure

    out = {}
    for name in PRESETS:
        cost = preset(name).cost()
        out[f"img/{name}-shares.svg"] = figure_bytes(shares_figure(cost), "svg")
        out[f"img/{name}-memory.svg"] = figure_bytes(memory_figure(cost), "svg")
    return out


def api_markdown() -> str:
    """One ``::: alexcost.<module>`` block per module that exists, grouped."""
    import alexcost

    package = pathlib.Path(alexcost.__file__).parent
    present = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("_"))
    listed = {m for _, modules in API_GROUPS for m in modules}
    groups = [*API_GROUPS, ("Other modules", tuple(m for m in present if m not in listed))]
    lines = []
    for title, modules in groups:
        found = [m for m in modules if m in present]
        if not found:
            continue
        lines += [f"## {title}", ""]
        for module in found:
            lines += [f"::: alexcost.{module}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


def on_files(files, config):
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    from alexcost.plot import PlotExtraMissing

    try:
        drawn = figures()
    except PlotExtraMissing as err:
        raise PluginError(f"the docs' figures: {err} (or pip install -e '.[docs,plot]')") from None
    for uri, content in drawn.items():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_markdown())
    return markdown
