"""``alexcost report`` and ``alexcost models``: the static path (no torch)."""

from __future__ import annotations

import click

from alexcost.render.report import FORMATS as TEXT_FORMATS

from .common import BATCHES, check_summary, command, dtype_option, format_for, option, summary_option, write_output
from .sources import load_networks, network_options

FORMATS = (*TEXT_FORMATS, "html")


@command()
@network_options
@option("--batch", "batches", type=BATCHES, default="1", show_default=True,
        help="Batch size, 1 to 2**63-1 (torch's int64 sizes): scales every count except parameters. Several, "
             "such as 1,8,32, give one row per batch size.")
@dtype_option()
@option("--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table/markdown: the seed's layout with formulas; detail: every count; csv, json; html: one "
             "self-contained page with the table and the figures (needs matplotlib). Several networks or batch "
             "sizes: one row each (json: a list). Default: from --out's extension (.txt, .md, .csv, .json, .html), "
             "else table.")
@summary_option
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output, and say so on "
                                      "standard error.")
def report(sources, input_shape, batches, dtype, fmt, summary, out):
    """Per-layer output shape, parameters, MACs and other ops, derived without running anything.

    Counting conventions: MACs are Conv2d and Linear multiply-accumulates (bias excluded);
    the seed's "Forward Computation" is MACs + bias adds; FLOPs = 2*MACs + bias adds + other ops.
    Memory is in binary units (1 MiB = 1,048,576 bytes); activations are every tensor once,
    summed: not a peak.
    """
    from alexcost.engine.bulk import BULK, paused_gc
    from alexcost.render.report import render_many

    fmt = fmt or format_for(out, FORMATS)
    check_summary(summary, fmt)
    with paused_gc(BULK):  # a report makes no reference cycles: the collector would only scan
        costs = [n.cost(batch, dtype) for n in load_networks(sources, input_shape, "report") for batch in batches]
        write_output(render_many(costs, fmt, summary), out, fmt)


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
