"""``alexcost verify``: the static counts against a real forward pass (torch, fvcore)."""

from __future__ import annotations

import sys

import click

from alexcost.torch_run.verify import DEVICES

from .common import BATCH, Integer, command, format_for, option, require, write_output
from .sources import load_networks, network_options

SEED = Integer(0, 2**64 - 1, "the seeds torch's random generator takes")
FORMATS = ("table", "json")


@command()
@network_options(several=False)
@option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
        help="Where the forward pass runs; auto = CUDA if available, else CPU (the output says which).")
@option("--batch", type=BATCH, default=1, show_default=True,
        help="Samples in the random input batch, 1 to 2**63-1 (the device's memory is checked first).")
@option("--seed", type=SEED, default=0, show_default=True,
        help="Seed of the random input, 0 to 2**64-1 (what torch's generator takes).")
@option("--no-fvcore", "no_fvcore", is_flag=True, help="Compare with torch's flop counter only.")
@option("--training", is_flag=True,
        help="Check one training step instead: each layer's backward FLOPs against FlopCounterMode, the bytes "
             "autograd keeps against torch's saved-tensor hooks, gradients and optimizer state.")
@option("--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table: the reconciliation for people; json: for machines. "
             "Default: json when --out ends in .json, else table.")
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output, and say so on "
                                      "standard error.")
@click.pass_context
def verify(ctx, sources, input_shape, device, batch, seed, no_fvcore, training, fmt, out):
    """Cross-check every layer's output shape, parameters, MACs, bias adds, other ops and
    FLOPs against one real forward pass: fvcore's per-module count (= MACs for Conv2d and
    Linear) and torch's flop counter (= 2 x MACs), each as the layer's kind declares.
    A torch module (--module, --torchvision, --timm) runs as it is; --training checks the network
    alexcost read from it, built in torch layer by layer.
    Exit 0 when everything agrees, 1 on any mismatch. Needs torch: pip install 'alexcost[torch]'.
    """
    fmt = fmt or format_for(out, FORMATS)
    loaded = load_networks(sources, input_shape, "verify")[0]
    network = loaded.network
    require("torch", "verify")
    progress = None
    if sys.stderr.isatty():
        def progress(message):
            click.echo(f"verify: {message} ...", err=True)
    if training:
        from alexcost.torch_run.verify_training import render, verify_training

        result = verify_training(network, device=device, batch=batch, seed=seed, progress=progress)
    elif loaded.module is not None:  # the user's own module, run as it is, on the device asked for
        from alexcost.torch_run.device import resolve_device
        from alexcost.torch_run.verify import render, verify_imported

        module = loaded.module.to(resolve_device(device))
        result = verify_imported(loaded.imported, module, batch=batch, seed=seed, use_fvcore=not no_fvcore)
    else:
        from alexcost.torch_run.verify import render, verify_network

        result = verify_network(network, device=device, batch=batch, seed=seed, use_fvcore=not no_fvcore,
                                progress=progress)
    write_output(render(result, fmt), out, fmt)
    if not result.ok:
        ctx.exit(1)
