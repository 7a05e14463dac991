"""``alexcost report`` and ``alexcost models``: the static path (no torch)."""

from __future__ import annotations

import click

from alexcost import PRESETS
from alexcost.report import FORMATS, commas, render
from alexcost.textable import render_table

from .common import dtype_option, load_network, network_options, write_output


@click.command()
@network_options
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size: scales every count except parameters.")
@dtype_option()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table/markdown: the seed's layout with formulas; detail: every count; csv, json.")
@click.option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output.")
def report(model, spec, batch, dtype, fmt, out):
    """Per-layer output shape, parameters, MACs and other ops, derived without running anything.

    Counting conventions: MACs are Conv2d and Linear multiply-accumulates (bias excluded);
    the seed's "Forward Computation" is MACs + bias adds; FLOPs = 2*MACs + bias adds + other ops.
    """
    network = load_network(model, spec)
    write_output(render(network.cost(batch=batch, dtype=dtype), fmt), out)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def models(fmt):
    """List the preset networks with their input, parameters and MACs."""
    rows = []
    for name, p in PRESETS.items():
        net = p.build()
        t = net.cost().totals
        rows.append((name, net.input_shape, t.params, t.macs, p.description))
    if fmt == "json":
        import json
        data = [{"name": n, "input_shape": list(s), "params": pa, "macs": m, "description": d}
                for n, s, pa, m, d in rows]
        click.echo(json.dumps(data, indent=2))
        return
    table = [[n, "x".join(map(str, s)), commas(pa), commas(m), d] for n, s, pa, m, d in rows]
    click.echo(render_table(("model", "input", "params", "MACs", "description"), table,
                            ("left", "left", "right", "right", "left")))
