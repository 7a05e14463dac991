"""``alexcost export``: a preset (or a spec file) written out as a spec file (the static path: no torch)."""

from __future__ import annotations

import click

from .common import load_network, network_options, write_output


@click.command()
@network_options
@click.option("--format", "fmt", type=click.Choice(["json", "toml"]), default=None,
              help="Spec format (default: from --out's extension, else json).")
@click.option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output.")
def export(model, spec, fmt, out):
    """Write a network as a spec file that 'alexcost report --spec' reads back to the same report.

    Arguments at torch's defaults are left out; a layer lists 'inputs' only where it does not
    read the layer before it (a branch, a merge, a residual sum).
    """
    from alexcost.specfile import dumps_spec

    if fmt is None:
        fmt = "toml" if out is not None and out.lower().endswith(".toml") else "json"
    write_output(dumps_spec(load_network(model, spec), fmt), out)
