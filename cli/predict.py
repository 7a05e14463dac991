"""``alexcost predict``: how long a pass or a training step takes on a GPU, and where the time goes (no torch)."""

from __future__ import annotations

import click

from .common import BATCHES, Integer, check_summary, command, format_for, option, summary_option, write_output
from .sources import load_networks, network_options

FORMATS = ("table", "markdown", "csv", "json", "html")
GPUS = ("gtx580", "k40", "k80", "titanx-maxwell", "gtx1080", "titanx-pascal", "gtx1080ti", "p100", "titanv", "v100",
        "a100-40gb", "a100-pcie-40gb", "a100", "rtx3090", "rtx4090", "h100-pcie", "h100", "h200")
"""The catalog's keys (alexcost.hardware.CATALOG), listed here so that --help imports nothing."""
DTYPES = ("float32", "tf32", "float16", "bfloat16", "amp")
PHASES = ("forward", "train_step", "train_iteration")
MODES = ("eager", "graph")


class GpuChoice(click.Choice):
    """A catalog key, or ``NxKEY`` (N of them, as published timings name a multi-GPU run: ``2xgtx580``)."""

    def convert(self, value, param, ctx):
        count, x, key = str(value).partition("x")
        if x and count.isascii() and count.isdigit() and key in self.choices:
            return value
        return super().convert(value, param, ctx)


def gpu_and_count(value: str, gpus: int, given: bool) -> tuple[str, int]:
    """``("gtx580", 2)`` for ``2xgtx580``; a count that contradicts ``--gpus`` is refused."""
    count, x, key = value.partition("x")
    if not (x and count.isdigit() and key in GPUS):
        return value, gpus
    if given and int(count) != gpus:
        raise click.UsageError(f"--gpu {value} means {int(count)} GPUs, but --gpus says {gpus}")
    if not 1 <= int(count) <= 1024:
        raise click.UsageError(f"--gpu {value}: the count must be from 1 to 1,024")
    return key, int(count)


@command()
@network_options
@option("--gpu", type=GpuChoice(GPUS), required=True,
        help="The GPU (the catalog's key; NxKEY, such as 2xgtx580, is KEY with --gpus N).")
@option("--gpus", type=Integer(1, 1024), default=None,
        help="How many GPUs share the batch (default: 1, or the N of --gpu NxKEY): data parallel, or the "
             "AlexNet paper's model split where the network's grouped convolutions allow it.")
@option("--batch", "batches", type=BATCHES, default="1", show_default=True,
        help="Samples per step, over all the GPUs. Several, such as 1,32,256, give one row per batch size.")
@option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True,
        help="float32 on the CUDA cores; tf32, float16 and bfloat16 on tensor cores where the card has them; "
             "amp: mixed precision (FP16 tensor-core math, FP32 master weights).")
@option("--phase", type=click.Choice(PHASES), default="forward", show_default=True,
        help="forward: one inference pass of the batch; train_step: forward and backward; train_iteration: "
             "the step, the optimizer's update and the GPUs' communication.")
@option("--mode", type=click.Choice(MODES), default="eager", show_default=True,
        help="eager: the framework launches each layer as it runs; graph: replayed from a CUDA graph or "
             "compiled (batch norm and activations fused at inference).")
@option("--split", type=click.Choice(("auto", "data", "model")), default="auto", show_default=True,
        help="With --gpus > 1: data parallel, or the paper's model split (auto: the paper's when the network's "
             "grouped convolutions have one group per GPU).")
@option("--optimizer", type=click.Choice(("sgd", "momentum", "adam")), default="momentum", show_default=True,
        help="The update a train_iteration runs.")
@option("--format", "fmt", type=click.Choice(FORMATS), default=None,
        help="table, markdown, csv (per layer) or json; html: one self-contained page with the table and the time "
             "shares figure. Several networks or batch sizes: one row each (json: a list). Default: from --out's "
             "extension, else table.")
@summary_option
@option("--out", metavar="FILE", help="Write to FILE (atomically) instead of standard output.")
def predict(sources, input_shape, gpu, gpus, batches, dtype, phase, mode, split, optimizer, fmt, summary, out):
    """The expected time of a forward pass, a training step or a whole iteration on a GPU, per layer,
    beside its roofline bound: each layer's share of the time next to its share of the MACs and
    parameters. The answer comes first.

    The time model is calibrated on published measurements (see "Predicting time" in the docs);
    the bound is what the spec sheet allows at best.
    """
    from alexcost.prediction import predict as run
    from alexcost.render.prediction import render_many

    fmt = fmt or format_for(out, FORMATS)
    check_summary(summary, fmt)
    gpu, gpus = gpu_and_count(gpu, gpus or 1, gpus is not None)
    estimates, costs = [], []
    for loaded in load_networks(sources, input_shape, "predict"):
        for batch in batches:
            estimates.append(run(loaded.network, gpu, batch=batch, dtype=dtype, phase=phase, mode=mode, gpus=gpus,
                                 split=split, optimizer=optimizer))
            costs.append(loaded.cost(batch) if fmt == "html" else None)
    write_output(render_many(estimates, fmt, summary, costs), out, fmt if out else None)
