"""``alexcost train``: what a training step costs, whether it fits, and how long training takes (no torch)."""

from __future__ import annotations

import click

from .common import BATCHES, Integer, check_summary, command, format_for, option, summary_option, write_output
from .sources import load_networks, network_options

FORMATS = ("table", "markdown", "csv", "json", "html")
TRAIN_DTYPES = ("float32", "tf32", "float16", "bfloat16")
OPTIMIZERS = ("sgd", "momentum", "adam")
from .predict import GPUS


def _names(ctx, param, value):
    return tuple(n.strip() for n in value.split(",") if n.strip()) if value else ()


@command()
@network_options
@option("--batch", "batches", type=BATCHES, default="128", show_default=True,
        help="Samples per step (the paper's: 128). Several, such as 32,64,128, give one row per batch size.")
@option("--max-batch", is_flag=True,
        help="Find the largest batch whose step fits in the GPU's memory (needs --gpu; the memory model's "
             "peak, per GPU) and cost the step at it.")
@option("--dtype", type=click.Choice(TRAIN_DTYPES), default="float32", show_default=True,
        help="Element type of weights and activations (tf32: float32 storage, TF32 tensor-core rate).")
@option("--optimizer", type=click.Choice(OPTIMIZERS), default="momentum", show_default=True,
        help="sgd: no state; momentum: SGD with momentum, the paper's (one buffer per parameter); adam: two.")
@option("--images", type=Integer(1, 10**15), default=1_200_000, show_default=True,
        help="Training images per epoch (ImageNet's 1.2 million).")
@option("--epochs", type=Integer(1, 10**9), default=90, show_default=True, help="Passes over the images.")
@option("--gpu", type=click.Choice(GPUS), default=None,
        help="Predict the step on this GPU with the calibrated time model (as alexcost predict --phase "
             "train_iteration): time, days, the bound, whether it fits.")
@option("--gpus", type=Integer(1, 1024), default=1, show_default=True,
        help="How many GPUs share the step (needs --gpu).")
@option("--split", type=click.Choice(("auto", "data", "model")), default="auto", show_default=True,
        help="With --gpus > 1: data parallel, or the paper's model split (auto: the paper's when the network's "
             "grouped convolutions have one group per GPU).")
@option("--device", type=click.Choice(("cuda", "cpu")), default="cuda", show_default=True,
        help="Whose rules decide what autograd keeps: torch on CUDA (a bool dropout mask) or on the CPU.")
@option("--freeze", metavar="NAME[,NAME...]", callback=_names, default=None,
        help="Frozen parameters (no gradient, no optimizer state): a layer's name, a prefix of names "
             "(layer1: every layer in layer1), a pattern ('features.*', 'layer[12]*'), matched against layer "
             "names and, for a torch module, module paths; NAME.weight or NAME.bias freezes one of them.")
@option("--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table, markdown, csv (per layer) or json; html: one self-contained page with the tables and the "
             "memory figure. Several networks or batch sizes: one row each (json: a list). Default: from "
             "--out's extension, else table.")
@summary_option
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output.")
def train(sources, input_shape, batches, max_batch, dtype, optimizer, images, epochs, gpu, gpus, split, device,
          freeze, fmt, summary, out):
    """What one training step costs (backward MACs, what autograd keeps, weights, gradients,
    optimizer state, peak memory), the whole schedule in FLOPs and petaflop/s-days, and with
    --gpu, whether it fits and the time model's prediction of the step time and days (with the
    roofline bound beside it). The verdict comes first.

    Backward MACs are the products that give the gradients of each layer's input and
    weights: twice the forward MACs, less the input gradients nothing needs (the first layer's).
    Memory is in binary units (1 GiB = 1,073,741,824 bytes).
    """
    from alexcost.render.training import Trained, render_many
    from alexcost.training import training_cost
    from alexcost.training.freeze import frozen_names

    fmt = fmt or format_for(out, FORMATS)
    check_summary(summary, fmt)
    if gpus > 1 and gpu is None:
        raise click.UsageError("--gpus needs --gpu")
    if max_batch and gpu is None:
        raise click.UsageError("--max-batch needs --gpu: the GPU whose memory the step must fit")
    if max_batch and click.get_current_context().get_parameter_source("batches").name != "DEFAULT":
        raise click.UsageError("give --batch or --max-batch, not both")
    trained = []
    for loaded in load_networks(sources, input_shape, "train"):
        network = loaded.network
        frozen = frozen_names(network, freeze, loaded.paths) if freeze else ()
        options = dict(dtype=dtype, optimizer=optimizer, device=device, frozen=frozen)
        sizes = batches
        if max_batch:
            from alexcost.prediction import max_batch as largest

            best = largest(network, gpu, gpus=gpus, split=split, **options)
            if not best:
                raise click.ClickException(f"not even the smallest batch fits {network.name}'s training step on "
                                           f"{gpus} x {gpu}")
            click.echo(f"largest batch that fits on {gpus} x {gpu}: {best:,} (memory model)", err=True)
            sizes = (best,)
        for batch in sizes:
            if gpu is None:
                step, prediction = training_cost(network, batch, **options), None
            else:
                from alexcost.prediction import train_on_gpu

                step, prediction = train_on_gpu(network, gpu, batch=batch, gpus=gpus, split=split, **options)
            trained.append(Trained(step, step.schedule(images, epochs), prediction))
    write_output(render_many(trained, fmt, summary), out, fmt if out else None)
