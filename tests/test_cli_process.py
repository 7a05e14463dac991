"""The command as a real process (issue 13's start-up work): what it imports, how it exits.

``alexcost`` skips the interpreter's teardown (``os._exit``) when nothing needs it, defers
``inspect`` until something reads it, and works out the help width without ``shutil``.
These tests check that none of that changes what a user sees: the bytes written, the exit
codes, a closed pipe, the help layout.
"""

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli


def alexcost(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "alexcost", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)


def in_process(*args):
    # a real process without a terminal lays help out 78 columns wide (80 - 2), as click does
    result = CliRunner().invoke(cli, list(map(str, args)), terminal_width=78, prog_name="python -m alexcost")
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("args", [["report", "--format", "detail", "--batch", "3"], ["models", "--format", "json"],
                                  ["--help"], ["report", "--help"], ["--version"]])
def test_a_real_process_prints_what_click_prints(args):
    proc = alexcost(*args)
    assert (proc.returncode, proc.stdout, proc.stderr) == in_process(*args)


def test_exit_codes_and_error_line_survive_the_fast_exit(tmp_path):
    bad = alexcost("report", "--batch", "0")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: Invalid value for '--batch'")
    assert alexcost("nonsense").returncode == 2
    out = tmp_path / "r.json"
    done = alexcost("report", "--model", "torchvision", "--out", out)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == f"wrote {out} (json)\n"
    # torchvision's AlexNet, by hand: 64-192-384-256-256 convolutions and three Linear layers, all with biases
    params = ((11 * 11 * 3 + 1) * 64 + (5 * 5 * 64 + 1) * 192 + (3 * 3 * 192 + 1) * 384 + (3 * 3 * 384 + 1) * 256
              + (3 * 3 * 256 + 1) * 256 + (9216 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000)
    assert json.loads(out.read_text())["totals"]["params"] == params == 61100840


def test_a_closed_pipe_ends_quietly_with_141():
    """``alexcost report | head -1``: the reader is gone before the report is written."""
    proc = subprocess.Popen([sys.executable, "-m", "alexcost", "report", "--format", "detail"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the interpreter has even started
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b""


def test_main_skips_teardown_only_when_nothing_needs_it(tmp_path):
    """An ``atexit`` function registered before the command still runs: then main exits the ordinary way."""
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, pathlib, sys\n"
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
            "from alexcost_cli.main import main\n"
            "main(['report', '--format', 'csv'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("index,name,type,")
    assert marker.read_text() == "yes"


def test_inspect_waits_until_something_reads_it():
    """click imports ``inspect`` (with ast, dis, tokenize) only to clean help texts: ``alexcost --help``
    never runs its code, and the first real use loads the whole module, as an import would."""
    code = ("import sys\n"
            "from alexcost_cli.main import cli\n"
            "try:\n    cli.main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "before = 'ast' in sys.modules\n"
            "import inspect\n"
            "still = 'ast' in sys.modules\n"
            "text = inspect.cleandoc('a\\n    b\\n      c')\n"
            "from inspect import signature\n"
            "sys.stderr.write(repr((before, still, text, 'ast' in sys.modules, str(signature(lambda x, y=2: x)),"
            " type(sys.modules['inspect']).__name__)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr == repr((False, False, "a\nb\n  c", True, "(x, y=2)", "module")), proc.stderr


def test_static_commands_import_no_shutil_or_json():
    code = ("import sys\n"
            "from alexcost_cli.main import cli\n"
            "for args in (['--help'], ['report', '--help'], ['report'], ['models']):\n"
            "    try:\n        cli.main(args)\n"
            "    except SystemExit:\n        pass\n"
            "sys.stderr.write(repr(sorted(m for m in ('shutil', 'json', 'importlib.metadata', 'tabulate') "
            "if m in sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr == "[]", proc.stderr


@pytest.mark.parametrize("columns", [None, "40", "60", "79", "100", "300", "junk", "0"])
def test_help_width_is_clicks_own(columns):
    """The help is laid out at the width click's HelpFormatter works out with shutil."""
    code = ("import click.formatting, sys\n"
            "from alexcost_cli.main import cli\n"
            "ctx = cli.make_context('alexcost', ['--version'], resilient_parsing=True)\n"
            "sys.stderr.write(repr((ctx.make_formatter().width, click.formatting.HelpFormatter().width)))\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    ours, clicks = eval(proc.stderr)
    assert ours == clicks, (columns, ours, clicks)


def test_help_options_keep_their_text():
    """Our options keep the help as written (click would have passed it through inspect.cleandoc)."""
    import inspect

    for name in ("report", "verify", "time", "models"):
        command = cli.get_command(click.Context(cli), name)
        for param in command.params:
            if isinstance(param, click.Option) and param.help:
                assert param.help == inspect.cleandoc(param.help), (name, param.name)
