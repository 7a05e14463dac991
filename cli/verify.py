"""``alexcost verify``: the static counts against a real forward pass (torch, fvcore)."""

from __future__ import annotations

import sys

import click

from alexcost.crosscheck import DEVICES

from .common import load_network, network_options, write_output


@click.command()
@network_options
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where the forward pass runs; auto = CUDA if available, else CPU (the output says which).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples in the random input batch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random input.")
@click.option("--no-fvcore", "no_fvcore", is_flag=True, help="Compare with torch's flop counter only.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: the reconciliation for people; json: for machines.")
@click.option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output.")
@click.pass_context
def verify(ctx, model, spec, device, batch, seed, no_fvcore, fmt, out):
    """Cross-check every layer's output shape, parameters, MACs, bias adds, other ops and
    FLOPs against one real forward pass: fvcore's per-module count (= MACs for Conv2d and
    Linear) and torch's flop counter (= 2 x MACs), each as the layer's kind declares.
    Exit 0 when everything agrees, 1 on any mismatch.
    """
    network = load_network(model, spec)
    from alexcost.crosscheck import render, verify_network

    progress = None
    if sys.stderr.isatty():
        def progress(message):
            click.echo(f"verify: {message} ...", err=True)
    result = verify_network(network, device=device, batch=batch, seed=seed, use_fvcore=not no_fvcore,
                            progress=progress)
    write_output(render(result, fmt), out)
    if not result.ok:
        ctx.exit(1)
