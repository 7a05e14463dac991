"""The ``alexcost`` command group.

Every failure of input is one line on stderr, ``error: ...``, with exit code 2.

Start-up (figures in benchmarks/README.md). A command imports only what it
uses: the group lists its commands from `COMMANDS` without importing them,
``alexcost --help`` does not import the engine, ``report`` never imports torch.
``inspect``, which click imports but reads only to clean help texts, loads when it is
first read (`_Deferred`), and the options are built so that reading them does not
(``common.Option``). `main` skips the interpreter's teardown when nothing needs it
(``common.flush_and_exit``).
"""

from __future__ import annotations

import sys


class _Deferred(type(sys)):
    """A module whose code runs when an attribute it does not have yet is first read.

    The standard library's ``importlib.util.LazyLoader`` loads its module on *any* attribute
    read, and the ``import inspect`` statement itself reads ``__spec__`` (CPython 3.11's
    import checks whether the module is still initialising), so click's own ``import inspect``
    would load it at once. Here ``__spec__`` and the other import attributes are plain
    attributes; the first read of anything else runs the module's code, through its own
    loader, in this same module object, as LazyLoader does. (``vars()`` of a module not yet
    loaded shows only those import attributes.)
    """

    def __getattr__(self, name):
        self.__class__ = type(sys)
        self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def _load_on_first_use(*names: str) -> None:
    """Import each module lazily (see `_Deferred`). A module already imported is left alone."""
    import importlib.util

    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            continue
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _Deferred
        sys.modules[name] = module


_load_on_first_use("inspect")

import click  # noqa: E402

from .common import (EXTRAS, Context, Option, flush_and_exit, help_option, missing_extra,  # noqa: E402
                     silence_stdout)

COMMANDS = {
    "models": ("alexcost_cli.report", "models", "List the preset networks with their parameters and MACs."),
    "report": ("alexcost_cli.report", "report", "Count each layer's shape, parameters and MACs without running it."),
    "verify": ("alexcost_cli.verify", "verify", "Check every static count against a real forward pass in torch."),
    "time": ("alexcost_cli.timing", "time_command", "Time every layer on the GPU or CPU and show where the time goes."),
    "plot": ("alexcost_cli.plot", "plot", "Draw each layer's parameter, MAC and time shares and its memory."),
    "train": ("alexcost_cli.train", "train", "Cost a training step, its memory and the whole schedule on a GPU."),
    "predict": ("alexcost_cli.predict", "predict", "Predict a pass's or a training step's time on a GPU, per layer."),
    "export": ("alexcost_cli.export", "export", "Write a preset or spec file as a JSON or TOML spec file."),
}
"""name -> (module, attribute, one-sentence summary): ``alexcost --help`` lists the commands
from here without importing them, and each command's ``short_help`` is set from it."""


class AlexcostGroup(click.Group):
    """A group that imports a command only when it runs, and reports errors in one line."""

    context_class = Context

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, summary = COMMANDS[name]
        __import__(module)
        command = getattr(sys.modules[module], attr)
        command.short_help = summary  # the one summary, wherever it is shown (help, docs)
        return command

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        self.running = name  # for an error raised after its context is gone
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # `alexcost report | head`: the reader left. Say nothing more and exit as SIGPIPE
            # would (141), not with click's 1, which here means "verify found a mismatch".
            silence_stdout()
            raise click.exceptions.Exit(141) from None

    def format_help_text(self, ctx, formatter):
        # The group's help is written clean (see HELP): click's own method would import inspect to clean it.
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(self.help)

    def format_commands(self, ctx, formatter):
        # Short help from the table above: listing commands must not import them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.ctx.get_help())
            sys.exit(0)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
            fail(f"{err.format_message()}{hint}")
        except click.ClickException as err:
            fail(err.format_message())
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except ImportError as err:
            # An optional dependency missing deep inside a command the command did not check for.
            name = getattr(err, "name", None) or ""
            if name.partition(".")[0] not in EXTRAS:
                raise
            fail(missing_extra(name, getattr(self, "running", None) or "this command", err))
        except Exception as err:
            errors = sys.modules.get("alexcost.errors")  # no SpecError can exist before it is imported
            if errors is None or not isinstance(err, errors.SpecError):
                raise
            fail(str(err))
        sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int = 2):
    """Print ``error: message`` as one line on stderr and exit (2: bad input)."""
    click.echo("error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def show_version(ctx, param, value):
    if value and not ctx.resilient_parsing:
        from alexcost import __version__

        click.echo(f"alexcost {__version__}")
        ctx.exit()


HELP = ("alexcost: what each layer of a CNN costs, derived without running it, then checked against "
        "fvcore and torch on a real forward pass and timed on the GPU.")


@click.group("alexcost", cls=AlexcostGroup, add_help_option=False, help=HELP)
@click.option("--version", cls=Option, is_flag=True, expose_value=False, is_eager=True, callback=show_version,
              help="Show the version and exit.")
@help_option
def cli():
    pass


def main(argv=None):
    """Console-script entry point: runs the command and exits with its code (never returns)."""
    try:
        cli.main(argv)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            click.echo(done.code, err=True)
    flush_and_exit(code)
