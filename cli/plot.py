"""``alexcost plot``: the shares and memory figures (matplotlib is imported only when drawing)."""

from __future__ import annotations

import click

from alexcost import DTYPE_BYTES

from .sources import load_network, network_options


@click.command()
@network_options(several=False)
@click.option("--timings", metavar="FILE.json",
              help="Per-layer times written by 'alexcost time --out FILE.json': adds time shares per batch size.")
@click.option("--out", metavar="FILE.png|FILE.svg|FILE.pdf",
              help="Where the shares figure goes; the memory figure goes beside it as FILE-memory.png "
                   "(or .svg, .pdf). Default: alexcost-<model>.png.")
@click.option("--dtype", type=click.Choice(list(DTYPE_BYTES)), default=None,
              help="Element type the memory figure sizes bytes at (default: the timings' dtype, else float32).")
@click.option("--all-layers", is_flag=True,
              help="One row per layer. By default a layer with no parameters, no MACs and at most two "
                   "operations per element (ReLU, Dropout, Flatten, a residual Add, ...), and a BatchNorm2d "
                   "after a convolution, share the row of the layer they read, as in the seed table's "
                   "'conv1 + ReLU'; past 40 rows, rows become blocks of layers named alike (ResNet's "
                   "layer2_1).")
def plot(sources, input_shape, timings, out, dtype, all_layers):
    """Draw parameter, MAC and time shares per layer, the conv-vs-FC split, and memory per layer.

    Writes two figures, atomically: FILE (shares: parameters, MACs and, with --timings,
    time at each timed batch size; then the conv-vs-FC split) and FILE-memory (each
    layer's output size for one sample and its weight bytes). Every bar is labelled with
    its value. The same input always gives byte-identical files. Needs matplotlib:
    pip install 'alexcost[plot]'.
    """
    from alexcost.render import plot as figures

    network = load_network(sources, input_shape, "plot")
    if out is not None:
        figures.output_paths(out)  # a bad --out fails before anything is read or drawn
    recorded = figures.read_timings(timings) if timings else None
    if dtype is None:
        dtype = recorded.dtype if recorded and recorded.dtype in DTYPE_BYTES else "float32"
    try:
        paths = figures.write_figures(network, out, timings=recorded, dtype=dtype, all_layers=all_layers)
    except figures.PlotExtraMissing as err:
        raise click.ClickException(str(err)) from None
    for path in paths:
        click.echo(f"wrote {path}")
