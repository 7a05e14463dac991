"""``alexcost train``: what a training step costs, whether it fits, and how long training takes (no torch)."""

from __future__ import annotations

import click

from .common import BATCH, Integer, command, format_for, load_network, network_options, option, write_output

FORMATS = ("table", "markdown", "csv", "json")
TRAIN_DTYPES = ("float32", "tf32", "float16", "bfloat16")
OPTIMIZERS = ("sgd", "momentum", "adam")
from .predict import GPUS


def _names(ctx, param, value):
    return tuple(n.strip() for n in value.split(",") if n.strip()) if value else ()


@command()
@network_options
@option("--batch", type=BATCH, default=128, show_default=True, help="Samples per step (the paper's: 128).")
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
        help="Frozen parameters (no gradient, no optimizer state): a layer's NAME (its weight and bias), or "
             "NAME.weight or NAME.bias alone.")
@option("--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table, markdown, csv (per layer) or json. Default: from --out's extension, else table.")
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output.")
def train(model, spec, input_shape, batch, dtype, optimizer, images, epochs, gpu, gpus, split, device, freeze, fmt,
          out):
    """What one training step costs (backward MACs, what autograd keeps, weights, gradients,
    optimizer state, peak memory), the whole schedule in FLOPs and petaflop/s-days beside
    OpenAI's estimate, and with --gpu, the time model's prediction of the step time and days
    (with the roofline bound beside it).

    Backward MACs are the products that give the gradients of each layer's input and
    weights: twice the forward MACs, less the input gradients nothing needs (the first layer's).
    """
    from alexcost.render.training import render, to_csv, to_dict
    from alexcost.training import training_cost

    fmt = fmt or format_for(out, FORMATS)
    if gpus > 1 and gpu is None:
        raise click.UsageError("--gpus needs --gpu")
    network = load_network(model, spec, input_shape)
    step = training_cost(network, batch, dtype, device=device, optimizer=optimizer, frozen=freeze)
    schedule = step.schedule(images, epochs)
    prediction = None
    if gpu is not None:
        from alexcost.hardware import predict
        from alexcost.hardware.model import per_gpu_batch, resolve_split

        per_gpu = None
        if resolve_split(network, gpus, split) == "data":
            per_gpu = training_cost(network, per_gpu_batch(batch, gpus), dtype, device=device, optimizer=optimizer,
                                    frozen=freeze)
        prediction = predict(step, gpu, gpus, split, network, per_gpu)
    if fmt == "json":
        from alexcost.render.report import dumps_json

        text = dumps_json(to_dict(step, schedule, prediction))
    elif fmt == "csv":
        text = to_csv(step)
    else:
        text = render(step, schedule, "pipe" if fmt == "markdown" else "simple", prediction)
    write_output(text, out, fmt if out else None)
