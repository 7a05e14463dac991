"""MkDocs hooks, and the generated parts of the docs' sources.

* Figures: every figure a page shows is drawn at build time by alexcost's own plotting code,
  from alexcost's current numbers (and the committed CPU run), never committed. A page names
  one in an HTML comment, ``<!-- figure ![alt](img/NAME.svg) -->``, which the build turns into
  the image: on GitHub, where no figure exists, the page shows nothing in its place.
  ``FIGURES`` lists them; the build draws exactly those, and a page that names another fails it.
* Generated sources: ``cli.md`` (one section per command, read from the click objects) and the
  index of the public API in ``api.md`` are written into the repository between
  ``GENERATED_START`` and ``GENERATED_END``, so that the sources read on their own.
  ``python docs/hooks/alexcost_docs.py`` rewrites them; tests/test_docs.py checks they are current.
* API reference: the ``<!-- alexcost:api -->`` marker in ``api.md`` becomes one mkdocstrings
  block per public name (``API``), the layer kinds with their docstrings alone.
* Heading ids: ``slugify`` replaces the ``toc`` extension's, so that no id starts
  with a digit (the theme's scripts pass every ``#id`` to ``querySelector``, which
  refuses ``#224-or-227`` and stops the page's scripts).
* Code colours: Pygments' stylesheet, written as ``css/pygments.css``; nothing is
  loaded from a CDN, so the site works offline.
"""

from __future__ import annotations

import functools
import html
import importlib
import inspect
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
API_MARKER = "<!-- alexcost:api -->"
KINDS_MARKER = "<!-- alexcost:kinds -->"
GENERATED_START = "<!-- generated from the code: start (python docs/hooks/alexcost_docs.py rewrites it) -->"
GENERATED_END = "<!-- generated from the code: end -->"
FIGURE = re.compile(r"^<!-- figure (!\[[^\]]*\]\((img/[\w.-]+\.svg)\)) -->$", re.M)
"""A figure a page shows, on a line of its own: ``<!-- figure ![alt](img/seed-shares.svg) -->``."""
PYGMENTS_CSS = "css/pygments.css"
PYGMENTS_STYLE = "default"
CPU_RUN = DOCS / "results" / "cpu-2core" / "seed-run1.json"
"""The committed CPU run the timing figures show."""

API = (
    ("Networks and their costs", ("alexcost.Network", "alexcost.preset", "alexcost.PRESETS", "alexcost.DEFAULT_MODEL",
                                  "alexcost.NetworkCost", "alexcost.LayerCost", "alexcost.Totals",
                                  "alexcost.DTYPE_BYTES", "alexcost.INPUT")),
    ("Spec files", ("alexcost.specs.specfile.load_spec", "alexcost.specs.specfile.network_from_dict",
                    "alexcost.specs.specfile.network_to_dict", "alexcost.specs.specfile.dumps_spec",
                    "alexcost.SpecError")),
    ("Layer kinds", ("alexcost.Layer", "alexcost.register_layer", "alexcost.LAYER_KINDS", "alexcost.forget_rules")),
    ("Training and GPUs", ("alexcost.training.training_cost", "alexcost.training.TrainingCost",
                           "alexcost.training.StepMemory", "alexcost.training.Schedule", "alexcost.prediction.predict",
                           "alexcost.hardware.predict", "alexcost.hardware.CATALOG")),
    ("Torch modules, checks and timing", ("alexcost.torch_bridge.from_module", "alexcost.torch_bridge.to_module",
                                          "alexcost.torch_run.verify.verify_network",
                                          "alexcost.torch_run.verify.verify_module",
                                          "alexcost.torch_run.verify.verify_imported",
                                          "alexcost.torch_run.verify_training.verify_training",
                                          "alexcost.torch_run.timing.time_network")),
    ("Many candidates", ("alexcost.search.evaluate", "alexcost.render.search.table")),
    ("Figures", ("alexcost.render.plot.write_figures", "alexcost.render.plot.shares_figure",
                 "alexcost.render.plot.memory_figure", "alexcost.render.plot.time_share_figure",
                 "alexcost.render.plot.roofline_figure", "alexcost.render.plot.step_memory_figure",
                 "alexcost.render.plot.two_gpu_figure")),
)
"""The public API in reading order. The layer kinds of ``alexcost.__all__`` follow "Layer kinds",
each with its docstring alone (`api_markdown`). The spec-file functions are named where they are
defined: ``alexcost`` exports them lazily, which a reader of the source cannot follow."""


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

def _cpu_timings():
    from alexcost.render.plot import read_timings

    return read_timings(CPU_RUN)


def _roofline():
    """The paper network at batch 1 on the GTX 580's roof, beside the committed CPU run's measured peaks and
    the H200's float32 sheet; fc6 also at batch 17, where a GTX 580 first computes it at its peak."""
    import json

    from alexcost import preset
    from alexcost.hardware import CATALOG
    from alexcost.hardware.roofline import Peaks
    from alexcost.render.plot import roofline_figure, roofline_points

    cpu = json.loads(CPU_RUN.read_text())["peaks"]
    roofs = [("GTX 580", CATALOG["gtx580"].peaks("float32")),
             ("2-core CPU (measured)", Peaks(cpu["flops_per_s"], cpu["bytes_per_s"], cpu["flops_source"],
                                             cpu["bytes_source"])),
             ("H200, float32", CATALOG["h200"].peaks("float32"))]
    net = preset("paper")
    fc6 = next(x for name, _, x in roofline_points(net.cost(batch=17)) if name == "fc6")
    return roofline_figure(net.cost(), roofs, [("fc6 at batch 17", fc6)])


def _paper_step():
    from alexcost import preset
    from alexcost.training import training_cost

    return training_cost(preset("paper"), batch=128)


def _two_gpus():
    from alexcost import preset
    from alexcost.hardware import predict
    from alexcost.render.plot import two_gpu_figure

    return two_gpu_figure(preset("paper").cost(batch=128), predict(_paper_step(), "gtx580", gpus=2))


def _shares(name):
    def draw():
        from alexcost import preset
        from alexcost.render.plot import shares_figure

        return shares_figure(preset(name).cost())
    return draw


def _memory(name):
    def draw():
        from alexcost import preset
        from alexcost.render.plot import memory_figure

        return memory_figure(preset(name).cost())
    return draw


def _time_shares():
    from alexcost import preset
    from alexcost.render.plot import time_share_figure

    return time_share_figure(preset("seed").cost(), _cpu_timings())


def _step_memory():
    from alexcost.render.plot import step_memory_figure

    return step_memory_figure(_paper_step())


def _prediction_fit():
    from alexcost.render.prediction import published_fit_figure

    return published_fit_figure()


FIGURES = {
    "img/seed-shares.svg": _shares("seed"), "img/seed-memory.svg": _memory("seed"),
    "img/paper-shares.svg": _shares("paper"), "img/paper-memory.svg": _memory("paper"),
    "img/paper-two-gpus.svg": _two_gpus, "img/paper-step-memory.svg": _step_memory,
    "img/seed-cpu-time-shares.svg": _time_shares, "img/paper-roofline.svg": _roofline,
    "img/prediction-fit.svg": _prediction_fit,
    **{f"img/{name}-shares.svg": _shares(name)
       for name in ("torchvision", "zfnet", "vgg16", "googlenet", "resnet18", "resnet50", "mobilenet_v2")},
}
"""Every figure the pages show, and how it is drawn: the build draws these and nothing else."""


def figures() -> dict[str, bytes]:
    """``{"img/seed-shares.svg": b"<svg...", ...}``: every figure of ``FIGURES``, drawn."""
    from alexcost.render.plot import figure_bytes

    return {uri: figure_bytes(draw(), "svg") for uri, draw in FIGURES.items()}


def shown_figures(markdown: str) -> list[str]:
    """The figures a page's source names, in order."""
    return [m[2] for m in FIGURE.finditer(markdown)]


def pygments_css() -> bytes:
    """The colours of highlighted code (pymdownx.highlight writes Pygments' classes)."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".highlight").encode()


# -- the API reference -------------------------------------------------------------------------------

def layer_kind_names() -> list[str]:
    """The layer kinds ``alexcost`` exports, as ``alexcost.Conv2d``..."""
    import alexcost
    from alexcost.layers import Layer

    return [f"alexcost.{n}" for n in sorted(alexcost.__all__)
            if inspect.isclass(getattr(alexcost, n)) and issubclass(getattr(alexcost, n), Layer)
            and n != "Layer"]


def api_groups() -> list[tuple[str, tuple[str, ...]]]:
    """``API`` with the layer kinds after the layer-kind group's own names."""
    return [(title, names + tuple(layer_kind_names()) if title == "Layer kinds" else names) for title, names in API]


@functools.cache
def _package():
    import griffe

    return griffe.load("alexcost", search_paths=[str(DOCS.parent)])


def docs_of(identifier: str):
    """The griffe object of a public name (read from the source, as mkdocstrings reads it: nothing is
    imported, so torch need not be installed)."""
    obj = _package()[identifier.removeprefix("alexcost.")]
    return obj.final_target if obj.is_alias else obj


def inline_markdown(text: str) -> str:
    """Docstring text as Markdown: ````code```` and `` `code` `` as code, everything else escaped."""
    parts = re.split(r"``(.+?)``|`([^`]+)`", " ".join(text.split()))
    out = []
    for k in range(0, len(parts), 3):
        plain = parts[k] or ""
        out.append((" " if plain[:1].isspace() else "") + md_text(plain) + (" " if plain[-1:].isspace() and
                                                                             plain.strip() else ""))
        if k + 1 < len(parts):
            code = parts[k + 1] or parts[k + 2]
            out.append(f"`{code}`".replace("|", "&#124;"))
    return "".join(out)


def summary_line(identifier: str) -> str:
    """The first sentence of a name's docstring; a constant without one, its value."""
    obj = docs_of(identifier)
    doc = obj.docstring.value if obj.docstring else ""
    if not doc:
        return inline_markdown(f"``= {obj.value}``") if getattr(obj, "value", None) is not None else ""
    first = doc.split("\n\n")[0]
    first = re.split(r"(?<=[a-z0-9)`])\. ", " ".join(first.split()))[0].rstrip(".") + "."
    return inline_markdown(first)


def api_summary() -> str:
    """The public API as Markdown tables, one per group: each name and the first sentence of its docs."""
    lines = []
    for title, names in api_groups():
        lines += [f"**{title}**", "", "| name | what it is |", "| --- | --- |"]
        for identifier in names:
            lines.append(f"| `{identifier}` | {summary_line(identifier)} |")
        lines.append("")
    return "\n".join(lines)


def api_markdown(kinds_page: bool = False) -> str:
    """One ``::: identifier`` block per public name, grouped: on the API page every name but the layer
    kinds; on the layer kinds' page (``kinds_page``) each kind's docstring alone."""
    kinds = layer_kind_names()
    if kinds_page:
        return "\n".join(line for identifier in kinds for line in (
            f"::: {identifier}", "    options:", "      heading_level: 2", "      members: false", ""))
    lines = []
    for title, names in api_groups():
        names = [n for n in names if n not in kinds]
        lines += [f"## {title}", ""]
        if title == "Layer kinds":
            lines += ["Each layer kind's reference is on [its own page](layer-kinds.md).", ""]
        for identifier in names:
            lines += [f"::: {identifier}", "    options:", "      heading_level: 3", ""]
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


# -- the generated sources ---------------------------------------------------------------------------

def generated() -> dict[str, str]:
    """What goes between the markers of each generated page."""
    from alexcost.render.prediction import docs_markdown

    return {"cli.md": cli_markdown(), "api.md": api_summary(), "predicting-time.md": docs_markdown()}


def with_generated(text: str, content: str) -> str:
    """``text`` with what stands between its markers replaced by ``content``."""
    head, start, rest = text.partition(GENERATED_START)
    _, end, tail = rest.partition(GENERATED_END)
    if not start or not end:
        raise ValueError("the page has no generated part (its markers are missing)")
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"


def write_generated() -> list[str]:
    """Rewrite the generated part of every generated page; returns the pages that changed."""
    changed = []
    for name, content in generated().items():
        path = DOCS / name
        old = path.read_text(encoding="utf-8")
        new = with_generated(old, content)
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(name)
    return changed


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
        raise PluginError(f"the docs' figures: {err} (pip install -e '.[docs]' installs it)") from None
    drawn[PYGMENTS_CSS] = pygments_css()
    for uri, content in drawn.items():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    from mkdocs.exceptions import PluginError

    unknown = [uri for uri in shown_figures(markdown) if uri not in FIGURES]
    if unknown:
        raise PluginError(f"{page.file.src_uri} shows figures the build does not draw: {unknown} "
                          f"(add them to FIGURES in docs/hooks/alexcost_docs.py)")
    markdown = FIGURE.sub(r"\1", markdown)
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_markdown())
    if KINDS_MARKER in markdown:
        markdown = markdown.replace(KINDS_MARKER, api_markdown(kinds_page=True))
    return markdown


if __name__ == "__main__":
    sys.path.insert(0, str(DOCS.parent))
    print("rewrote: " + (", ".join(write_generated()) or "nothing (all current)"))
