"""``alexcost time``: per-layer timing, the roofline, and where the time goes (torch loads when it runs)."""

from __future__ import annotations

import os
import sys

import click

from alexcost import SpecError
from alexcost.render.roofline import render
from alexcost.torch_run.verify import DEVICES
from alexcost.hardware import CATALOG as GPUS
from alexcost.render.roofline import render_training
from alexcost.torch_run.timing import DEFAULTS, DTYPES, METHODS, Timer, dumps

from .common import INT64_MAX, Integer, Real, command, dtype_option, option, require, shown, write_output
from .sources import load_network, network_options

FORMATS = ("table", "markdown", "json")
MAX_CALLS = 1_000_000
"""Most warm-up or timed calls per layer: a million 10-µs layers already take ten seconds each."""
MAX_THREADS = 1024
"""Most CPU threads ``--threads`` asks torch for (torch takes a C int; more threads than this is no measurement)."""


def parse_batches(ctx, param, value):
    """``"1,32,128"`` -> ``(1, 32, 128)`` (positive, duplicates dropped); None keeps the device's default."""
    if value is None:
        return None
    out = []
    for part in value.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or not part.strip("0"):
            raise click.BadParameter(f"batch sizes are positive whole numbers separated by commas, got {shown(part)}")
        if len(part.lstrip("0")) > 19 or int(part) > INT64_MAX:
            raise click.BadParameter(f"a batch size is at most 2**63-1 (torch's int64 sizes), got {shown(part)}")
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def check_writable(out: str) -> None:
    """Fail before measuring, not after, when ``--out`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        raise SpecError(f"cannot write {out!r}: it is a folder")
    if not os.path.isdir(folder):
        raise SpecError(f"cannot write {out!r}: no such folder {folder!r}")
    if not os.access(folder, os.W_OK):
        raise SpecError(f"cannot write {out!r}: folder {folder!r} is not writable")


@command("time")
@network_options(several=False)
@option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
        help="auto: CUDA when torch sees a GPU, else the CPU.")
@option("--batch", "batches", metavar="N[,N...]", callback=parse_batches,
        help=f"Batch sizes to sweep (default: {','.join(map(str, DEFAULTS['cuda']['batches']))} on CUDA, "
             f"{','.join(map(str, DEFAULTS['cpu']['batches']))} on the CPU).")
@dtype_option(choices=DTYPES)
@option("--warmup", type=Integer(0, MAX_CALLS), default=None,
        help=f"Untimed calls first, 0 to {MAX_CALLS:,} (default: {DEFAULTS['cuda']['warmup']} on CUDA, "
             f"{DEFAULTS['cpu']['warmup']} on the CPU).")
@option("--repeats", type=Integer(1, MAX_CALLS), default=None,
        help=f"Timed calls, 1 to {MAX_CALLS:,} (default: {DEFAULTS['cuda']['repeats']} on CUDA, "
             f"{DEFAULTS['cpu']['repeats']} on the CPU).")
@option("--peak-tflops", type=Real(), default=None,
        help="The device's peak rate in TFLOP/s at this dtype, instead of measuring it "
             "(a large matrix product and convolution).")
@option("--bandwidth-gbs", type=Real(), default=None,
        help="The device's memory bandwidth in GB/s, instead of measuring it with a large copy.")
@option("--method", type=click.Choice(list(METHODS)), default=None,
        help="How a timing sample is taken: graph (CUDA graph replays of N calls), loop (N back-to-back "
             "calls) or single (one call, launch overhead included); default: graph on CUDA, loop on the CPU.")
@option("--threads", type=Integer(1, MAX_THREADS), default=None,
        help=f"torch's CPU threads for this run, 1 to {MAX_THREADS:,} (default: torch's own choice; "
             "reported either way).")
@option("--training", is_flag=True,
        help="Time each layer's forward and backward passes in training mode, each phase timed on its own in "
             "every call (with its p10-p90 spread; a phase noisier than its median is flagged), beside their "
             "roofline bounds.")
@option("--gpu", type=click.Choice(list(GPUS)), default=None,
        help="Also bound each layer on this GPU's spec sheet (default on CUDA: the catalog entry the device's "
             "name matches, if any).")
@option("--out", metavar="FILE.json", help="Also write the JSON record here, atomically, after every batch.")
@option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="table or markdown: for people; json: the record --out writes.")
@click.pass_context
def time_command(ctx, sources, input_shape, device, batches, dtype, warmup, repeats, peak_tflops, bandwidth_gbs,
                 method, threads, training, gpu, out, fmt):
    """Time every layer (and the whole network) on the GPU or CPU, next to its MAC and parameter
    shares and its roofline lower bound; say where the time goes, conv or FC, at each batch size.

    Each layer runs alone on a random input of its real shape; median and p10/p90 of the repeats,
    per call (a sample is N back-to-back calls, or a CUDA graph of them: see --method).
    An out-of-memory batch is recorded and the sweep goes on; Ctrl-C keeps what --out holds.
    Measured peaks are measured again at the end: a peak that moved by more than its repeats'
    own spread (other work running) is a warning on standard error and in the JSON.
    """
    network = load_network(sources, input_shape, "time")
    require("torch", "time")
    timer = Timer(network, device, dtype, warmup, repeats,
                  None if peak_tflops is None else peak_tflops * 1e12,
                  None if bandwidth_gbs is None else bandwidth_gbs * 1e9, threads=threads, method=method,
                  training=training, gpu=gpu)
    batches = batches or DEFAULTS[timer.device]["batches"]
    if out:
        check_writable(out)
    save = (lambda run: write_output(dumps(run.to_dict()), out)) if out else None
    label = f"timing {network.name} on {timer.device}, {dtype}"
    with click.progressbar(length=1 + len(batches) * timer.steps_per_batch, label=label, file=sys.stderr,
                           item_show_func=lambda what: what) as bar:
        timer.progress = bar.update
        try:
            run = timer.sweep(batches, save)
        except KeyboardInterrupt:
            raise click.Abort() from None
    record = run.to_dict()
    for warning in run.warnings:
        click.echo(f"warning: {warning}", err=True)
    style = "pipe" if fmt == "markdown" else "simple"
    text = render_training(record, style) if record.get("training") else render(record, style)
    click.echo(dumps(record) if fmt == "json" else text, nl=False)
    if all("error" in b for b in record["batches"]):
        click.echo("alexcost time: no batch could be measured", err=True)
        ctx.exit(1)
