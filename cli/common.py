"""Options, parameter types and helpers the commands share.

Start-up time matters here (benchmarks/README.md), so this module imports click and nothing of the
engine: ``alexcost --help`` uses it without importing ``alexcost`` at all.
"""

from __future__ import annotations

import sys

import click

INT64_MAX = 2**63 - 1
"""torch sizes tensors with int64: no batch or dimension can be larger (the engine uses the same bound)."""

MAX_RANK = 64
"""Most dimensions ``--input-shape`` may have (the engine's bound for a per-sample shape)."""

EXTRAS = {"torch": "torch", "fvcore": "torch", "torchvision": "torch", "matplotlib": "plot"}
"""Optional modules -> the extra that installs them."""


class Option(click.Option):
    """A click option whose help text is kept as written.

    click passes every option's help through ``inspect.cleandoc``, and the first call
    loads ``inspect`` (with ``ast``, ``dis`` and ``tokenize``), which ``main.py`` defers:
    about 3 ms of every command (benchmarks/README.md). The texts here are written clean,
    so nothing is lost.
    """

    def __init__(self, *args, help: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.help = help


def terminal_columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size().columns`` finds it (``COLUMNS``, then
    the terminal on standard output, else 80), without importing shutil: with bz2, lzma and
    fnmatch that import costs about 2 ms of every ``--help``."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


class Context(click.Context):
    """click's context, with the help width worked out as click does (see `terminal_columns`)."""

    def make_formatter(self):
        from click import formatting

        width = self.terminal_width
        if width is None and formatting.FORCED_WIDTH is None:
            width = max(min(terminal_columns(), self.max_content_width or 80) - 2, 50)
        return self.formatter_class(width=width, max_width=self.max_content_width)


class Command(click.Command):
    """A command that records the order its options were given in (``ctx.meta["alexcost.order"]``),
    so that networks named by different options keep the command line's order."""

    context_class = Context

    def make_parser(self, ctx):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_args(args):
            opts, rest, order = parse(args=args)
            ctx.meta["alexcost.order"] = [p.name for p in order]
            return opts, rest, order
        parser.parse_args = parse_args
        return parser


def option(*decls, **attrs):
    """``click.option`` with `Option`."""
    return click.option(*decls, cls=Option, **attrs)


def help_option(func):
    """``-h`` / ``--help``, built as an `Option` (see there why)."""
    return click.help_option("-h", "--help", cls=Option, help="Show this message and exit.")(func)


def command(name: str | None = None, **attrs):
    """``click.command`` with alexcost's ``-h`` / ``--help``; the one-line summary comes from
    ``COMMANDS`` in ``main.py`` when the group loads the command."""
    def decorate(func):
        help_option(func)
        params = func.__click_params__
        params.insert(0, params.pop())  # click shows these in reverse: -h / --help comes last
        return click.command(name, cls=Command, add_help_option=False, **attrs)(func)
    return decorate


def shown(text: str, limit: int = 40) -> str:
    """``repr(text)``, cut short: one short error line whatever the user typed."""
    text = repr(text)
    return text if len(text) <= limit else f"{text[:limit - 12]}...' ({len(text) - 2} characters)"


class Integer(click.ParamType):
    """A whole number from ``low`` to ``high``; out of range (or 5,000 digits long) it is one
    short error line that gives the range and why (``bound``)."""

    name = "integer"

    def __init__(self, low: int, high: int, bound: str = ""):
        self.low, self.high, self.bound = low, high, bound

    def get_metavar(self, param, ctx=None):
        return "N"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            digits = text[1:] if text[:1] in "+-" else text
            if not (digits.isascii() and digits.isdigit()):
                self.fail(f"{shown(str(value))} is not a whole number", param, ctx)
            if len(digits) > 40:
                self.fail(f"{shown(str(value))} is out of range {self.range()}", param, ctx)
            number = int(text)
        if not self.low <= number <= self.high:
            self.fail(f"{number} is out of range {self.range()}", param, ctx)
        return number

    def range(self) -> str:
        high = "2**63-1" if self.high == INT64_MAX else "2**64-1" if self.high == 2**64 - 1 else f"{self.high:,}"
        return f"{self.low} to {high}" + (f" ({self.bound})" if self.bound else "")


class Real(click.ParamType):
    """A finite number above 0 (``nan``, ``inf`` and ``1e400`` refused)."""

    name = "number"

    def get_metavar(self, param, ctx=None):
        return "X"

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{shown(str(value))} is not a number", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{shown(str(value))} is not a finite number above 0", param, ctx)
        return number


BATCH = Integer(1, INT64_MAX, "torch's int64 sizes")
"""A batch size: counts are exact integers, but a batch is a tensor dimension, so int64 bounds it."""


class Batches(click.ParamType):
    """Batch sizes separated by commas, ``1,8,32`` (each a `BATCH`; repeats dropped): a sweep."""

    name = "batches"

    def get_metavar(self, param, ctx=None):
        return "N[,N...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        out = []
        for part in str(value).split(","):
            number = BATCH.convert(part.strip(), param, ctx)
            if number not in out:
                out.append(number)
        return tuple(out)


BATCHES = Batches()


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` -> ``(3, 224, 224)``: 1 to 64 positive whole numbers, each at most 2**63-1."""
    parts = [p.strip() for p in text.split(",")]
    if not 1 <= len(parts) <= MAX_RANK or not all(p.isascii() and p.isdigit() and len(p) <= 19 for p in parts):
        raise click.BadParameter(f"give 1 to {MAX_RANK} positive whole numbers separated by commas, "
                                 f"like 3,224,224; got {shown(text)}")
    shape = tuple(int(p) for p in parts)
    if not all(1 <= d <= INT64_MAX for d in shape):
        raise click.BadParameter(f"every dimension must be from 1 to 2**63-1 (torch's int64 sizes); got {shown(text)}")
    return shape


def dtype_option(default: str = "float32", choices=None):
    from alexcost import DTYPE_BYTES

    return option("--dtype", type=click.Choice(list(choices or DTYPE_BYTES)), default=default, show_default=True,
                  help="Element type (memory is sized at it; tf32 is float32 with TF32 math).")


def summary_option(func):
    """``--summary``: a few lines instead of the whole output."""
    return option("--summary", is_flag=True,
                  help="A few lines: the totals, the verdict, the step time and what dominates (several networks "
                       "or batch sizes: the side-by-side table).")(func)


def check_summary(summary: bool, fmt: str) -> None:
    if summary and fmt in ("csv", "json"):
        raise click.UsageError(f"--summary gives a few lines of text; --format {fmt} gives everything")


def require(module: str, command: str) -> None:
    """Fail with one line naming the extra to install when ``module`` cannot be imported."""
    try:
        __import__(module)
    except ImportError as err:
        raise click.ClickException(missing_extra(module, command, err)) from None


def missing_extra(module: str, command: str, err: BaseException | None = None) -> str:
    """``alexcost verify needs torch, which is not installed: pip install 'alexcost[torch]'``."""
    extra = EXTRAS.get(module.partition(".")[0], "torch")
    if err is None or isinstance(err, ModuleNotFoundError):
        why = "which is not installed"
    else:
        why = "which failed to import (" + " ".join(str(err).split())[:200] + ")"
    return f"alexcost {command} needs {module}, {why}: pip install 'alexcost[{extra}]'"


FORMAT_BY_SUFFIX = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".txt": "table",
                    ".html": "html", ".htm": "html", ".toml": "toml"}


def format_for(out: str | None, choices, default: str = "table") -> str:
    """The format ``--out FILE`` implies by its extension (among ``choices``), else ``default`` (no
    extension, or none given). An extension the command cannot write is one usage error."""
    if not out:
        return default
    dot = out.rfind(".")
    if dot <= max(out.rfind("/"), out.rfind("\\")) + 1:  # no extension (a name starting with a dot has none)
        return default
    fmt = FORMAT_BY_SUFFIX.get(out[dot:].lower())
    if fmt in choices:
        return fmt
    known = [ext for ext, f in FORMAT_BY_SUFFIX.items() if f in choices]
    raise click.UsageError(f"cannot write {shown(out[dot:])} files: --out takes {', '.join(known)} "
                           f"(or give --format: {', '.join(choices)})")


def write_output(text: str, out: str | None, fmt: str | None = None) -> None:
    """Print ``text``, or write it atomically to ``out`` (never a half-written file) and say so
    on standard error: ``wrote r.json (json)``."""
    if out is None:
        click.echo(text, nl=False)
        return
    from alexcost.atomic import write_atomic

    try:
        write_atomic(out, text)
    except OSError as err:
        raise click.ClickException(f"cannot write {out!r}: {err.strerror or err}") from None
    if fmt is not None:
        click.echo(f"wrote {out} ({fmt})", err=True)


def silence_stdout() -> None:
    """Point standard output at the null device, so that what is still buffered for a reader
    who has gone (a closed pipe) is dropped instead of failing again at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test's capture): nothing to protect


def flush_and_exit(code: int) -> None:
    """Leave now with ``code``, skipping the interpreter's teardown when nothing needs it.

    Tearing down ~120 modules takes a few ms that a command-line run does not need. It is
    skipped only when standard output and error flushed cleanly, no ``atexit`` function is
    registered and no other thread runs (torch, matplotlib and logging register ``atexit``
    functions, so ``verify``, ``time`` and ``plot`` exit the ordinary way); every file
    alexcost writes is closed (and fsynced) before this point.
    """
    import os

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        code = 141
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    import atexit

    pending = getattr(atexit, "_ncallbacks", lambda: 1)()
    threads = sys.modules.get("threading")
    if pending == 0 and (threads is None or threads.active_count() == 1):
        os._exit(code)
    sys.exit(code)
