"""Options and helpers the commands share."""

from __future__ import annotations

import click

from alexcost import DEFAULT_MODEL, DTYPE_BYTES, PRESETS, Network, SpecError, preset


def network_options(func):
    """``--model NAME`` / ``--spec FILE`` (one or the other; the seed preset by default)."""
    func = click.option("--spec", "spec", metavar="FILE",
                        help="A JSON or TOML spec file ('-' reads standard input).")(func)
    func = click.option("--model", "model", type=click.Choice(list(PRESETS)), default=None,
                        help=f"A preset network (default: {DEFAULT_MODEL}).")(func)
    return func


def load_network(model: str | None, spec: str | None) -> Network:
    """The network the user named: a preset, a spec file, or the default preset."""
    if model and spec:
        raise click.UsageError("give --model or --spec, not both")
    if spec:
        from alexcost.specfile import load_spec

        return load_spec(spec)
    return preset(model or DEFAULT_MODEL)


def dtype_option(default: str = "float32", choices=tuple(DTYPE_BYTES)):
    return click.option("--dtype", type=click.Choice(list(choices)), default=default, show_default=True,
                        help="Element type (memory is sized at it; tf32 is float32 with TF32 math).")


def write_output(text: str, out: str | None) -> None:
    """Print ``text``, or write it atomically to ``out`` (never a half-written file)."""
    if out is None:
        click.echo(text, nl=False)
        return
    from alexcost.atomic import write_atomic
    try:
        write_atomic(out, text)
    except OSError as err:
        raise SpecError(f"cannot write {out!r}: {err.strerror or err}") from None
