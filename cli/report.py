"""``alexcost report`` and ``alexcost models``: the static path (no torch)."""

from __future__ import annotations

import click

from alexcost.render.report import FORMATS

from .common import BATCH, command, dtype_option, format_for, load_network, network_options, option, write_output


@command()
@network_options
@option("--batch", type=BATCH, default=1, show_default=True,
        help="Batch size, 1 to 2**63-1 (torch's int64 sizes): scales every count except parameters.")
@dtype_option()
@option("--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table/markdown: the seed's layout with formulas; detail: every count; csv, json. "
             "Default: from --out's extension (.json, .csv, .md), else table.")
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output, and say so on "
                                      "standard error.")
def report(model, spec, input_shape, batch, dtype, fmt, out):
    """Per-layer output shape, parameters, MACs and other ops, derived without running anything.

    Counting conventions: MACs are Conv2d and Linear multiply-accumulates (bias excluded);
    the seed's "Forward Computation" is MACs + bias adds; FLOPs = 2*MACs + bias adds + other ops.
    """
    from alexcost.engine.bulk import BULK, paused_gc
    from alexcost.render.report import render

    fmt = fmt or format_for(out, FORMATS)
    with paused_gc(BULK):  # a report makes no reference cycles: the collector would only scan
        network = load_network(model, spec, input_shape)
        write_output(render(network.cost(batch=batch, dtype=dtype), fmt), out, fmt)


@command()
@option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
        help="table: for people; json: for machines.")
def models(fmt):
    """List the preset networks with their input, parameters and MACs."""
    from alexcost import PRESETS
    from alexcost.units import commas
    from alexcost.render.table import render_table

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
