"""``alexcost export``: a preset (or a spec file) written out as a spec file (the static path: no torch)."""

from __future__ import annotations

import click

from .common import command, load_network, network_options, option, write_output


@command()
@network_options
@option("--format", "fmt", type=click.Choice(["json", "toml"]), default=None,
        help="Spec format. Default: from --out's extension (.toml), else json.")
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output, and say so on "
                                      "standard error.")
def export(model, spec, input_shape, fmt, out):
    """Write a network as a spec file that 'alexcost report --spec' reads back to the same report.

    Arguments at torch's defaults are left out; a layer lists 'inputs' only where it does not
    read the layer before it (a branch, a merge, a residual sum).
    """
    from alexcost.specs.specfile import dumps_spec

    fmt = fmt or ("toml" if out is not None and out.lower().endswith(".toml") else "json")
    write_output(dumps_spec(load_network(model, spec, input_shape), fmt), out, fmt)
