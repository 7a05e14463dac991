"""The ``alexcost`` command group.

Commands load lazily, so ``alexcost report`` imports neither torch nor the other commands.
Every failure of input is one line on stderr, ``error: ...``, with exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from alexcost import SpecError, __version__

COMMANDS = {
    "models": ("alexcost_cli.report", "models", "List the preset networks."),
    "report": ("alexcost_cli.report", "report", "Per-layer shapes, parameters and compute, without running anything."),
    "verify": ("alexcost_cli.verify", "verify", "Cross-check the static counts against a real forward pass."),
    "time": ("alexcost_cli.timing", "time_command", "Time every layer on the GPU (or CPU)."),
    "plot": ("alexcost_cli.plot", "plot", "Draw parameter, compute and time shares per layer."),
    "export": ("alexcost_cli.export", "export", "Write a preset (or spec) as a JSON or TOML spec file."),
}


class AlexcostGroup(click.Group):
    """A group that imports a command only when it runs, and reports errors in one line."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

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
        except SpecError as err:
            fail(str(err))
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.stderr.close()  # `alexcost report | head`: nothing left to say
            sys.exit(141)
        sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int = 2):
    """Print ``error: message`` as one line on stderr and exit (2: bad input)."""
    click.echo("error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


@click.group("alexcost", cls=AlexcostGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="alexcost", message="%(prog)s %(version)s")
def cli():
    """alexcost: what each layer of a CNN costs, derived without running it,
    then checked against fvcore and torch on a real forward pass and timed on the GPU."""


def main(argv=None):
    """Console-script entry point."""
    cli.main(argv)
