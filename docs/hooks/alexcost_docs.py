"""MkDocs hooks: what the docs show is made from alexcost at build time, so it cannot go stale.

* Figures: ``alexcost plot``'s two figures for every preset, as ``img/<preset>-shares.svg``
  and ``img/<preset>-memory.svg`` (drawn in memory, never committed).
* API reference: the ``<!-- alexcost:api -->`` marker in ``api.md`` becomes one
  mkdocstrings block per module of the ``alexcost`` package, so a new module is
  documented without anyone remembering to add it.
* CLI reference: the ``<!-- alexcost:cli -->`` marker in ``cli.md`` becomes one section
  per command, read from the click objects themselves (``cli_markdown``).
* Heading ids: ``slugify`` replaces the ``toc`` extension's, so that no id starts
  with a digit (the theme's scripts pass every ``#id`` to ``querySelector``, which
  refuses ``#224-or-227`` and stops the page's scripts).
* Code colours: Pygments' stylesheet, written as ``css/pygments.css``; nothing is
  loaded from a CDN, so the site works offline.
"""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re

API_GROUPS = (
    ("The network and its costs", ("engine.network", "engine.cost", "engine.rules", "layers", "models",
                                   "engine.storage", "layers.strides", "search")),
    ("Spec files", ("specs.specfile", "specs.schema")),
    ("Training and hardware", ("training", "hardware")),
    ("Reports and figures", ("render.report", "render.search", "render.plot", "render.table", "units")),
    ("Against torch: cross-checks and timing", ("torch_bridge", "torch_run.verify", "torch_run.measure",
                                                "torch_run.reconcile", "torch_run.timing", "hardware.roofline",
                                                "torch_run.device")),
    ("Errors and helpers", ("errors", "atomic", "layers.windows", "layers.arguments")),
)
"""Modules in reading order; a module not listed here is appended under "Other modules"."""

API_MARKER = "<!-- alexcost:api -->"
CLI_MARKER = "<!-- alexcost:cli -->"
PYGMENTS_CSS = "css/pygments.css"
PYGMENTS_STYLE = "default"


# -- heading ids -------------------------------------------------------------------------------------

def slugify(value: str, separator: str) -> str:
    """The ``toc`` extension's slug, with ``_`` in front when it would not start with a letter.

    An HTML id may start with anything, but a CSS selector ``#id`` may not start with a
    digit (or ``-`` and a digit), and the theme's scripts (Bootstrap's ScrollSpy among
    them) look headings up with ``querySelector``: ``"224 or 227"`` -> ``_224-or-227``.
    """
    from markdown.extensions.toc import slugify as plain

    slug = plain(value, separator)
    return slug if re.match(r"-?[A-Za-z_]", slug) else "_" + slug


# -- figures -----------------------------------------------------------------------------------------

def figures() -> dict[str, bytes]:
    """``{"img/seed-shares.svg": b"<svg...", ...}`` for every preset."""
    from alexcost import PRESETS, preset
    from alexcost.render.plot import figure_bytes, memory_figure, shares_figure

    out = {}
    for name in PRESETS:
        cost = preset(name).cost()
        out[f"img/{name}-shares.svg"] = figure_bytes(shares_figure(cost), "svg")
        out[f"img/{name}-memory.svg"] = figure_bytes(memory_figure(cost), "svg")
    return out


def pygments_css() -> bytes:
    """The colours of highlighted code (pymdownx.highlight writes Pygments' classes)."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".highlight").encode()


# -- the API reference -------------------------------------------------------------------------------

def api_markdown() -> str:
    """One ``::: alexcost.<module>`` block per module (or subpackage) that exists, grouped."""
    import alexcost

    present = sorted(m.name for m in pkgutil.iter_modules(alexcost.__path__) if not m.name.startswith("_"))
    listed = {m.split(".")[0] for _, modules in API_GROUPS for m in modules}
    groups = [*API_GROUPS, ("Other modules", tuple(m for m in present if m not in listed))]
    lines = []
    for title, modules in groups:
        found = [m for m in modules if m.split(".")[0] in present]
        if not found:
            continue
        lines += [f"## {title}", ""]
        for module in found:
            lines += [f"::: alexcost.{module}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


# -- the CLI reference -------------------------------------------------------------------------------

def md_text(text: str) -> str:
    """Plain text as Markdown that shows exactly that text: no tags, emphasis, links or cell breaks."""
    text = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([\\`*_\[\]])", r"\\\1", text).replace("|", "&#124;")


def help_paragraphs(text: str | None) -> list[str]:
    """click's help text as Markdown paragraphs (``\\b`` paragraphs keep their lines, ``\\f`` ends it)."""
    if not text:
        return []
    text = inspect.cleandoc(text).split("\f")[0]
    out = []
    for block in re.split(r"\n\s*\n", text):
        if block.startswith("\b"):
            out.append("<br>\n".join(md_text(line) for line in block[1:].strip("\n").splitlines()))
        elif block.strip():
            out.append(md_text(block))
    return out


def option_default(option, ctx) -> str:
    """The default a user gets, as text; empty when there is none to show (None, click's UNSET, a
    flag that is off). ``show_default="text"`` wins, as in ``--help``."""
    import click

    if isinstance(option.show_default, str):
        return option.show_default
    value = option.get_default(ctx, call=False)
    unset = getattr(click.core, "UNSET", None)
    if value is None or (unset is not None and value is unset) or (option.is_flag and value is False):
        return ""
    if callable(value):
        return "(computed when run)"
    if option.is_flag and value is True:
        return "on"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def option_value(option, ctx) -> str:
    """What follows the option's name: its choices, its range, or its metavar; empty for a flag."""
    import click

    if option.is_flag or option.count:
        return ""
    kind = option.type
    if isinstance(kind, click.Choice):
        return " \\| ".join(f"`{c}`" for c in kind.choices)
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        bounds = []
        if kind.min is not None:
            bounds.append(f"{'>' if kind.min_open else '≥'} {kind.min}")
        if kind.max is not None:
            bounds.append(f"{'<' if kind.max_open else '≤'} {kind.max}")
        return f"{kind.name} {', '.join(bounds)}".strip()
    try:
        metavar = option.make_metavar(ctx)
    except TypeError:           # click < 8.2
        metavar = option.make_metavar()
    return f"`{metavar}`"


def command_markdown(command, ctx, level: int) -> list[str]:
    """One command: heading, help, usage, and its options as a table."""
    import click

    lines = [f"{'#' * level} {ctx.command_path}", ""]
    for paragraph in help_paragraphs(command.help):
        lines += [paragraph, ""]
    lines += ["Usage:", "", "```text", " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)]),
              "```", ""]
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines += ["| option | value | what it does | default |", "| --- | --- | --- | --- |"]
        for option in options:
            names = ", ".join(f"`{name}`" for name in [*option.opts, *option.secondary_opts])
            default = option_default(option, ctx)
            lines.append(f"| {names} | {option_value(option, ctx)} | {md_text(option.help or '')} | "
                         f"{f'`{default}`' if default else ''} |")
        lines.append("")
    return lines


def cli_markdown(module: str = "alexcost_cli.main", name: str = "cli", prog: str = "alexcost") -> str:
    """The whole command line, from click's objects: the group, a one-sentence summary of each
    command (click's own short help, never cut short), then each command in full."""
    import click

    group = getattr(importlib.import_module(module), name)
    root = click.Context(group, info_name=prog, **group.context_settings)
    commands = [(n, group.get_command(root, n)) for n in group.list_commands(root)]
    lines = command_markdown(group, root, 2)
    lines += ["Commands:", ""]
    for cmd_name, command in commands:
        summary = md_text(command.get_short_help_str(limit=10 ** 6))
        lines.append(f"- [`{prog} {cmd_name}`](#{slugify(f'{prog} {cmd_name}', '-')}): {summary}")
    lines.append("")
    for cmd_name, command in commands:
        ctx = click.Context(command, info_name=cmd_name, parent=root, **command.context_settings)
        lines += command_markdown(command, ctx, 2)
    return "\n".join(lines)


# -- MkDocs events -----------------------------------------------------------------------------------

def on_config(config):
    config.mdx_configs.setdefault("toc", {})["slugify"] = slugify
    if "toc" not in config.markdown_extensions:
        config.markdown_extensions.append("toc")
    return config


def on_files(files, config):
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    from alexcost.render.plot import PlotExtraMissing

    try:
        drawn = figures()
    except PlotExtraMissing as err:
        raise PluginError(f"the docs' figures: {err} (or pip install -e '.[docs,plot]')") from None
    drawn[PYGMENTS_CSS] = pygments_css()
    for uri, content in drawn.items():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_markdown())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    return markdown
