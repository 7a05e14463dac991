"""``alexcost export``: a network written out as a spec file (a preset or spec file: the static path, no torch)."""

from __future__ import annotations

import click

from .common import command, format_for, option, write_output
from .sources import load_network, network_options


@command()
@network_options(several=False)
@option("--format", "fmt", type=click.Choice(["json", "toml"]), default=None,
        help="Spec format. Default: from --out's extension (.toml), else json.")
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output, and say so on "
                                      "standard error.")
def export(sources, input_shape, fmt, out):
    """Write a network (a preset, a spec file or a torch module as alexcost reads it) as a spec file
    that 'alexcost report --spec' reads back to the same report.

    Arguments at torch's defaults are left out; a layer lists 'inputs' only where it does not
    read the layer before it (a branch, a merge, a residual sum).
    """
    from alexcost.specs.specfile import dumps_spec

    fmt = fmt or format_for(out, ("json", "toml"), "json")
    network = load_network(sources, input_shape, "export")
    modes = getattr(getattr(network, "network", network), "modes", None)
    if modes:  # a spec file holds layers only: a training step of it is not the module's
        click.echo("warning: the spec file holds the layers only, not what the module's training step runs "
                   "differently (frozen parameters, grad-mode regions, checkpointing, training-only branches); "
                   "train the module itself (or pass --freeze) to count its step", err=True)
    write_output(dumps_spec(network, fmt), out, fmt)
