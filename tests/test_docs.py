"""Docs that cannot rot: every example in README.md and docs/*.md runs, and the site builds.

The convention (docs/contributing.md):

* ```python blocks run top to bottom, one namespace per page; they state results with ``assert``.
* ```pycon blocks are doctests, run in the same namespace.
* ```console blocks: each ``$ alexcost ...`` line runs (through click's CliRunner), and the
  lines after it, up to the next ``$``, are its expected output (stdout and stderr as a
  terminal shows them), compared after stripping trailing whitespace. A line ``...``
  matches any run of lines. The command must exit 0, or 2 when the expected output is an
  ``error: ...`` line.
* ```text, ```json, ```toml, ```bash and ```yaml blocks are not run. Any other language,
  or a fence without one, is an error, so nothing slips through unchecked.
* Output shown as the page itself (a Markdown table, to be read as a table): between
  ``<!-- output: alexcost ... -->`` and ``<!-- end output -->``, the command's output, line for
  line, with the page's own lines (HTML tags, code fences, blank lines) left out.

Every page runs in a fresh temporary folder holding links to the repository's top-level
entries, so ``docs/examples/tiny.json`` resolves and files a page writes land in the
temporary folder. Layer kinds a page registers are removed afterwards.
"""

from __future__ import annotations

import doctest
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from alexcost import PRESETS
from doc_pages import DOCS_EXTRA_ONLY, FENCE, OUTPUT, PAGE_ONLY, Block, blocks

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs" / "results").glob("README.md")])
"""README.md, every docs/*.md, and docs/results/README.md (the other results files are GPU output)."""
RUN = ("python", "pycon", "console")
NOT_RUN = ("text", "json", "toml", "bash", "yaml")


# -- console blocks -----------------------------------------------------------------------------------

def console_commands(block: Block, source: str):
    """``(line, argv, expected lines)`` for each ``$`` command of a console block."""
    out, current = [], None
    for k, line in enumerate(block.code.splitlines()):
        if line.startswith("$ "):
            argv = shlex.split(line[2:])
            where = f"{source}:{block.line + k}"
            if not argv or argv[0] != "alexcost":
                raise AssertionError(f"{where}: console blocks run only `$ alexcost ...` commands; "
                                     f"put other shell commands in a ```bash block")
            if any(tok in ("|", ">", ">>", "<", "&&", ";") for tok in argv):
                raise AssertionError(f"{where}: pipes and redirections are not run; show one command per `$` line")
            current = (where, argv[1:], [])
            out.append(current)
        elif current is None:
            if line.strip():
                raise AssertionError(f"{source}:{block.line + k}: a console block starts with a `$ ` command")
        else:
            current[2].append(line.rstrip())
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line equality where an expected ``...`` line matches any run of lines (even none)."""
    def trim(lines):
        lines = list(lines)
        while lines and not lines[-1]:
            lines.pop()
        return lines

    expected, actual = trim(expected), trim(actual)
    memo = {}

    def walk(i, j):
        if (i, j) not in memo:
            if i == len(expected):
                memo[i, j] = j == len(actual)
            elif expected[i] == "...":
                memo[i, j] = any(walk(i + 1, k) for k in range(j, len(actual) + 1))
            else:
                memo[i, j] = j < len(actual) and expected[i] == actual[j] and walk(i + 1, j + 1)
        return memo[i, j]
    return walk(0, 0)


def run_console(block: Block, source: str) -> None:
    from click.testing import CliRunner

    from alexcost_cli.main import cli

    for where, args, expected in console_commands(block, source):
        result = CliRunner().invoke(cli, args, prog_name="alexcost")
        actual = [line.rstrip() for line in result.output.splitlines()]
        code = 2 if any(line.startswith("error: ") for line in expected) else 0
        detail = "\n".join(["expected:", *expected, "", "actual:", *actual])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback
            detail += "\n" + "".join(traceback.format_exception(result.exception))
        assert result.exit_code == code, f"{where}: `alexcost {shlex.join(args)}` exited {result.exit_code}\n{detail}"
        assert matches(expected, actual), f"{where}: `alexcost {shlex.join(args)}` printed something else\n{detail}"


# -- output shown as Markdown --------------------------------------------------------------------------


def output_regions(text: str) -> list[tuple[int, list[str], list[str]]]:
    """``(line, argv, expected lines)`` for every output region of a page."""
    found = []
    for m in OUTPUT.finditer(text):
        body = [line.rstrip() for line in m["body"].splitlines()]
        expected = [line for line in body if line and not PAGE_ONLY.match(line)]
        found.append((text.count("\n", 0, m.start()) + 1, shlex.split(m["command"]), expected))
    return found


def run_outputs(text: str, source: str) -> int:
    from click.testing import CliRunner

    from alexcost_cli.main import cli

    for line, argv, expected in output_regions(text):
        result = CliRunner().invoke(cli, argv[1:], prog_name="alexcost")
        actual = [row.rstrip() for row in result.output.splitlines() if row.strip()]
        assert result.exit_code == 0, f"{source}:{line}: `{shlex.join(argv)}` exited {result.exit_code}"
        detail = "\n".join(["expected:", *expected, "", "actual:", *actual])
        assert expected == actual, f"{source}:{line}: `{shlex.join(argv)}` printed something else\n{detail}"
    return len(output_regions(text))


# -- pages --------------------------------------------------------------------------------------------

def run_page(page: Path, source: str) -> int:
    """Run every example of ``page`` in the current folder; returns how many blocks ran.
    ``source`` names the page in messages."""
    from alexcost.layers import LAYER_KINDS

    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page.stem))  # a real module, as dataclasses expect
    namespace = module.__dict__
    sys.modules[module.__name__] = module
    kinds = dict(LAYER_KINDS)
    ran = 0
    try:
        for block in blocks(page.read_text(encoding="utf-8"), source):
            where = f"{source}:{block.line}"
            if block.lang == "python":
                exec(compile(block.code, where, "exec", dont_inherit=True), namespace)  # noqa: S102 (our docs)
            elif block.lang == "pycon":
                test = doctest.DocTestParser().get_doctest(block.code, namespace, where, source, block.line - 1)
                report = []
                runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
                runner.run(test, out=report.append, clear_globs=False)
                assert runner.failures == 0, "".join(report)
            elif block.lang == "console":
                run_console(block, source)
            elif block.lang not in NOT_RUN:
                raise AssertionError(f"{where}: code block language {block.lang or '(none)'!r} is neither run "
                                     f"({', '.join(RUN)}) nor shown as is ({', '.join(NOT_RUN)})")
            ran += block.lang in RUN
        ran += run_outputs(page.read_text(encoding="utf-8"), source)
    finally:
        LAYER_KINDS.clear()
        LAYER_KINDS.update(kinds)
        sys.modules.pop(module.__name__, None)
    return ran


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary folder that sees the repository's files (docs/, README.md, ...) through links."""
    for entry in ROOT.iterdir():
        if entry.name not in (".git",):
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_example_runs(page, workdir):
    run_page(page, str(page.relative_to(ROOT)))


# -- the collector itself -----------------------------------------------------------------------------

def test_collector_finds_blocks_and_runs_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "\n".join([
        "Intro.", "", "```python", "x = 6 * 7", "assert x == 42", "```", "",
        "  ```pycon", "  >>> x + 1", "  43", "  ```", "",
        "```console", "$ alexcost report --model seed --format csv", "...",
        "22,fc8,Linear,fc,4096,1000,4096000,4096000,0,4096000,0,0,8192000,4096000,1000,4000,16384000,0,0,4000",
        "$ alexcost report --model nope", "error: ...", "```", "", "```text", "not run", "```", ""])
    found = blocks(text)
    assert [(b.lang, b.line) for b in found] == [("python", 4), ("pycon", 9), ("console", 14), ("text", 22)]
    assert found[1].code == ">>> x + 1\n43\n"
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and matches(["a", "...", "b"], ["a", "b"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"]) and not matches(["a"], ["a", "b"])
    page = tmp_path / "page.md"
    page.write_text(text.replace("error: ...", "error: invalid value..."))
    with pytest.raises(AssertionError, match="printed something else"):
        run_page(page, "page.md")
    page.write_text(text.replace("x == 42", "x == 41"))
    with pytest.raises(AssertionError):
        run_page(page, "page.md")
    page.write_text(text.replace("error: ...", "error: Invalid value for '--model': 'nope' is not one of "
                                 + ", ".join(repr(n) for n in PRESETS) + ". (see 'alexcost report --help')"))
    assert run_page(page, "page.md") == 3


def test_output_regions_are_compared_line_for_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from alexcost_cli.main import cli
    from click.testing import CliRunner

    printed = CliRunner().invoke(cli, ["report", "--spec", str(ROOT / "docs" / "examples" / "tiny.json"),
                                       "--format", "markdown"]).output.rstrip("\n").split("\n")
    table, footer = printed[:printed.index("")], printed[printed.index("") + 1:]
    region = ["<!-- output: alexcost report --spec " + str(ROOT / "docs" / "examples" / "tiny.json") +
              " --format markdown -->", '<div class="report" markdown="1">', "", *table, "", "</div>", "",
              "```text", *footer, "```", "<!-- end output -->"]
    page = tmp_path / "page.md"
    page.write_text("\n".join(["Intro.", "", *region, ""]))
    assert run_page(page, "page.md") == 1
    page.write_text("\n".join(["Intro.", "", *region, ""]).replace("| conv1", "| convX", 1))
    with pytest.raises(AssertionError, match="printed something else"):
        run_page(page, "page.md")


@pytest.mark.parametrize("bad, message", [
    ("```\nplain\n```\n", "language '(none)'"),
    ("```sh\nls\n```\n", "language 'sh'"),
    ("```console\n$ ls -l\n```\n", "run only `$ alexcost"),
    ("```console\n$ alexcost report | head\n```\n", "pipes and redirections"),
    ("```python\nx = 1\n", "never closed"),
    ("```pycon\n>>> 1 + 1\n3\n```\n", "Failed example:"),
    ("```console\n$ alexcost models --format json\n[]\n```\n", "printed something else"),
    ("```console\n$ alexcost report --spec missing.json\n...\n```\n", "exited 2"),
])
def test_collector_refuses_what_it_cannot_check(tmp_path, monkeypatch, bad, message):
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "bad.md"
    page.write_text(bad)
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_page(page, "page.md")


# -- Markdown that Python-Markdown reads otherwise than GitHub -----------------------------------------

def list_breaks(text: str) -> list[int]:
    """Lines (1-based) where a list would end early in the built site: a block after a blank line in a
    list item indented by 1 to 3 spaces (Python-Markdown wants 4), or a list item right after a
    4-space indented paragraph with no blank line between (it is read as part of that paragraph)."""
    lines, bad, fence = text.splitlines(), [], False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fence = not fence
            continue
        if fence or i == 0:
            continue
        before = lines[i - 1]
        if not before.strip() and re.match(r"^ {1,3}\S", line):
            bad.append(i + 1)
        elif re.match(r"^(?:[-*+]|\d+\.) ", line) and re.match(r"^ {4,}\S", before) and not FENCE.match(before):
            bad.append(i + 1)
    return bad


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_lists_keep_their_structure(page):
    assert list_breaks(page.read_text(encoding="utf-8")) == []


def test_list_breaks_are_found():
    assert list_breaks("- a\n\n  | t |\n") == [3]
    assert list_breaks("- a\n\n    para\n- b\n") == [4]
    assert list_breaks("- a\n\n    para\n\n- b\n  more\n") == []


# -- the site -----------------------------------------------------------------------------------------

def nav_files() -> list[str]:
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from walk(value)
        elif isinstance(entry, list):
            for item in entry:
                yield from walk(item)
    return list(walk(config["nav"]))


def test_nav_lists_every_page_and_only_pages_that_exist():
    nav = nav_files()
    missing = [name for name in nav if not (ROOT / "docs" / name).is_file()]
    assert missing == [], f"mkdocs.yml's nav names pages that do not exist (yet): {missing}"
    orphans = sorted({str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").glob("*.md")} - set(nav))
    assert orphans == [], f"pages missing from mkdocs.yml's nav: {orphans}"


def test_the_build_sees_only_the_docs_extra():
    """What the site fixture builds with: the docs extra's requirements and theirs, read from
    pyproject.toml (Pygments among them: the build colours code with it), and nothing of the test
    extra; a module outside them fails to import, as in a fresh ``pip install '.[docs]'``."""
    import tomllib

    sys.path.insert(0, str(DOCS_EXTRA_ONLY.parent))
    try:
        import docs_extra_only
    finally:
        sys.path.pop(0)
    allowed = docs_extra_only.closure()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for req in extras["docs"]:
        name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]
        assert docs_extra_only.normal(name) in allowed, name
    assert {"mkdocs", "pygments", "pymdown-extensions", "mkdocstrings-python", "matplotlib"} <= allowed
    assert not {"torch", "fvcore", "pytest", "hypothesis", "torchvision", "tabulate"} & allowed
    probe = "import docs_extra_only, sys; docs_extra_only.install(); import {}"
    for module, ok in (("pytest", False), ("mkdocs", True), ("pygments", True)):
        done = subprocess.run([sys.executable, "-c", probe.format(module)], cwd=DOCS_EXTRA_ONLY.parent,
                              capture_output=True, text=True)
        assert (done.returncode == 0) == ok, (module, done.stderr[-500:])
        if not ok:
            assert "which the docs extra does not install" in done.stderr


def hook():
    """docs/hooks/alexcost_docs.py, imported as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("alexcost_docs_hook", ROOT / "docs" / "hooks" / "alexcost_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_mkdocs_build_strict(site):
    cli_page = (site / "cli" / "index.html").read_text()
    from alexcost_cli.main import COMMANDS
    for name in COMMANDS:   # every (lazily loaded) subcommand is rendered
        assert f'id="alexcost-{name}"' in cli_page, f"the CLI reference lacks `alexcost {name}`"
    assert (site / "css" / "pygments.css").is_file() and not (site / "hooks").exists()


@pytest.mark.slow
def test_the_api_page_documents_the_public_api(site):
    """Every name ``alexcost`` exports, and the entry points of its subpackages the pages use, have a
    section of their own, with the docstring; the layer kinds without their methods."""
    import alexcost

    api_page = (site / "api" / "index.html").read_text()
    kinds_page = (site / "layer-kinds" / "index.html").read_text()
    sections = set(re.findall(r'id="(alexcost\.[\w.]+)"', api_page + kinds_page))
    expected = {f"alexcost.{n}" for n in alexcost.__all__ if n not in ("dumps_spec", "load_spec", "network_from_dict",
                                                                          "network_to_dict", "predict")}
    expected |= {f"alexcost.specs.specfile.{n}" for n in ("dumps_spec", "load_spec", "network_from_dict",
                                                          "network_to_dict")}
    expected.add("alexcost.prediction.predict")  # loaded on first use, like the spec functions
    expected |= {"alexcost.torch_bridge.from_module", "alexcost.training.training_cost",
                 "alexcost.render.plot.write_figures"}
    assert expected <= sections, sorted(expected - sections)
    assert 'id="alexcost.Conv2d.counts"' not in kinds_page and 'id="alexcost.Network.cost"' in api_page
    assert 'id="alexcost.Conv2d"' in kinds_page and 'id="alexcost.Conv2d"' not in api_page
    assert "2-D convolution" in api_page and "2-D convolution" in kinds_page


@pytest.mark.slow
def test_generated_sources_are_current():
    """docs/cli.md and docs/api.md hold what the code makes of them, so that they read on their own
    (on GitHub too). After changing a command, an option or a public docstring, run
    ``python docs/hooks/alexcost_docs.py`` and commit the two pages."""
    module = hook()
    for name, content in module.generated().items():
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert module.with_generated(text, content) == text, (
            f"docs/{name} is out of date: run `python docs/hooks/alexcost_docs.py` and commit it")


@pytest.mark.slow
def test_every_drawn_figure_is_shown_and_every_shown_figure_is_drawn(site):
    """The build draws ``FIGURES``, exactly the figures the pages name; the pages name them in
    comments (``<!-- figure ![alt](img/x.svg) -->``), never as plain images, so that a source read
    on GitHub shows no broken image."""
    module = hook()
    shown = {uri: page.name for page in PAGES for uri in module.shown_figures(page.read_text(encoding="utf-8"))}
    assert set(shown) == set(module.FIGURES), (sorted(set(module.FIGURES) - set(shown)),
                                               sorted(set(shown) - set(module.FIGURES)))
    for page in PAGES:
        plain = re.findall(r"^!\[[^\]]*\]\((?!https?:)[^)]*\)", page.read_text(encoding="utf-8"), re.M)
        assert plain == [], f"{page.name}: images outside a figure comment: {plain}"
    for uri, name in shown.items():
        assert (site / uri).read_bytes().startswith(b"<?xml"), uri
        built = (site / ("" if name == "index.md" else name.removesuffix(".md")) / "index.html").read_text()
        assert f'src="{"" if name == "index.md" else "../"}{uri}"' in built, (name, uri)
    drawn = {str(p.relative_to(site)) for p in (site / "img").glob("*.svg")}
    assert drawn == set(module.FIGURES)


# -- what a browser will be given (tests/test_browser.py checks what it then shows) --------------------

def html_pages(site: Path) -> dict[str, str]:
    return {str(p.relative_to(site)): p.read_text(encoding="utf-8") for p in sorted(site.rglob("*.html"))}


@pytest.mark.parametrize("heading, slug", [
    ("224 or 227", "_224-or-227"), ("\u201c62.3 million\u201d", "_623-million"), ("fc8 has no ReLU", "fc8-has-no-relu"),
    ("3 \u00d7 3 windows", "_3-3-windows"), ("-1 and up", "_-1-and-up"), ("_private", "_private"),
])
def test_slugs_never_start_with_a_digit(heading, slug):
    assert hook().slugify(heading, "-") == slug


@pytest.mark.slow
def test_every_id_and_in_page_link_is_a_css_selector(site):
    """Bootstrap's ScrollSpy calls querySelector('#' + id): an id that starts with a digit throws
    a SyntaxError there, which stops the theme's scripts (tables unstyled, sidebar dead)."""
    bad = []
    for name, text in html_pages(site).items():
        if name == "404.html":   # the theme's own page, with no links into it
            continue
        for value in re.findall(r'\bid="([^"]*)"', text) + re.findall(r'href="#([^"]+)"', text):
            if not re.match(r"-?[A-Za-z_]", value):
                bad.append(f"{name}: #{value}")
    assert bad == []
    assert 'id="_224-or-227"' in (site / "seed-table" / "index.html").read_text()


@pytest.mark.slow
def test_the_site_loads_nothing_from_other_hosts(site):
    """No CDN: every script, stylesheet and image the pages load is one of the site's own files."""
    foreign = []
    for name, text in html_pages(site).items():
        for tag in re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", text):
            for url in re.findall(r'\b(?:src|href)="([^"]*)"', tag):
                if re.match(r"(?:[a-z]+:)?//", url):
                    foreign.append(f"{name}: {url}")
    assert foreign == []
    assert (site / "css" / "pygments.css").read_text().count(".highlight") > 10   # code is coloured offline


def cli_sections(site: Path) -> dict[str, list[list[str]]]:
    """The CLI page's option tables: ``{"alexcost report": [[option, value, help, default], ...]}``."""
    import html as html_lib

    page = (site / "cli" / "index.html").read_text().split("<footer")[0]
    out = {}
    for part in re.split(r'(?=<h2 id="alexcost)', page)[1:]:
        title = html_lib.unescape(re.sub(r"<[^>]+>", "", re.match(r"<h2[^>]*>(.*?)</h2>", part, re.S)[1]))
        title = title.replace("\u00b6", "").strip()
        rows = []
        for row in re.findall(r"<tr>(.*?)</tr>", part, re.S):
            cells = [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            if cells:
                rows.append(cells)
        out[title] = rows
    return out


@pytest.mark.slow
def test_cli_page_shows_what_click_knows(site):
    """Every option with its full help and its real default (none shown where there is none), every
    command's summary as the complete sentence click's ``--help`` would show, no UNSET sentinel."""
    import click

    from alexcost_cli.main import cli

    page = (site / "cli" / "index.html").read_text()
    assert "Sentinel" not in page and "UNSET" not in page
    sections = cli_sections(site)
    root = click.Context(cli, info_name="alexcost", **cli.context_settings)
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        ctx = click.Context(command, info_name=name, parent=root)
        summary = " ".join(command.get_short_help_str(limit=10 ** 6).split())
        assert summary.endswith(".") and "..." not in summary
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
        assert f"alexcost {name}: {__import__('html').escape(summary, quote=False)}" in text
        rows = {row[0].split(",")[0]: row for row in sections[f"alexcost {name}"]}
        for option in command.get_params(ctx):
            if not isinstance(option, click.Option):
                continue
            row = rows[option.opts[0]]
            assert row[2] == " ".join((option.help or "").split()), row
            default = option.get_default(ctx, call=False)
            if option.is_flag or default is None or repr(default).startswith("Sentinel"):
                assert row[3] == "", row
            else:
                assert row[3] == str(default), row
    report_rows = {row[0]: row for row in sections["alexcost report"]}
    assert report_rows["--batch"][3] == "1" and report_rows["--model"][3] == ""
    assert report_rows["--model"][1] == " | ".join(PRESETS)
    assert "alexcost-<model>.png" in " ".join(row[2] for row in sections["alexcost plot"])   # not eaten as a tag


def test_cli_markdown_escapes_what_markdown_would_eat():
    md_text = hook().md_text
    assert md_text("2*MACs + bias adds, x_1 | <model> & [link]") == \
        "2\\*MACs + bias adds, x\\_1 &#124; &lt;model&gt; &amp; \\[link\\]"
