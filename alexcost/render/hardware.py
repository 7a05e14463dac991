"""Rendering a training step's prediction on a GPU (``alexcost train --gpu``): its table and JSON."""

from __future__ import annotations

from ..hardware.catalog import GiB
from ..hardware.model import Prediction, against_reference, per_layer_split, reference
from ..units import bytes_text, commas
from .table import render_table


def to_dict(prediction: Prediction, training, schedule) -> dict:
    """The prediction as plain data, with the published run beside it when there is one."""
    out = prediction.to_dict(schedule)
    if prediction.split == "model":
        out["per_gpu_layers"] = per_layer_split(training, prediction.gpus)
    ref = reference(training.model)
    if ref is not None:
        out["reference"] = against_reference(prediction, schedule, ref)
    return out


def _days(days: float) -> str:
    """``1.85 days``; under a day, in hours too: ``0.0406 days (58 minutes)``."""
    if days >= 1:
        return f"{days:.2f} days"
    hours = days * 24
    return f"{days:.3g} days ({hours:.2g} hours)" if hours >= 1 else f"{days:.3g} days ({hours * 60:.2g} minutes)"


def _memory(p: Prediction) -> str:
    """``1.49 GiB of 80 GiB: fits``."""
    return f"{bytes_text(p.memory_per_gpu, 2)} of {bytes_text(p.gpu.memory, 0)}: " + ("fits" if p.fits else
                                                                                       "DOES NOT FIT")


def where(p: Prediction) -> str:
    return f"{p.gpus} x {p.gpu.name}" if p.gpus > 1 else p.gpu.name


def verdict(p: Prediction, schedule) -> list[str]:
    """Two lines: whether the step fits on the GPU, and how long a step and the schedule take."""
    return [f"{'fits' if p.fits else 'DOES NOT FIT'} on {where(p)}: {bytes_text(p.memory_per_gpu, 2)} of "
            f"{bytes_text(p.gpu.memory, 0)} per GPU (memory model)",
            f"step: {p.step_ms:.2f} ms expected (time model; bound {p.bound_ms:.2f} ms); "
            f"{schedule.samples / p.batch:,.0f} steps: {_days(p.days(schedule))}"]


def render(prediction: Prediction, training, schedule, style: str = "simple") -> str:
    """The prediction as text: per layer, the step, the days, memory, and the split's crossings."""
    p, card = prediction, prediction.gpu
    rows = [[r.name, r.type, f"{r.forward_ms:.3f}", f"{r.backward_ms:.3f}", f"{r.expected_ms:.3f}",
             f"{r.bound_ms:.3f}", r.limited_by or "-"] for r in p.layers]
    rows.append(["update", training.optimizer, "", "", f"{p.update_ms:.3f}", f"{p.estimate.update_bound_ms:.3f}", "-"])
    split = {"single": "", "data": f", data parallel ({p.batch // p.gpus} samples per GPU, gradients all-reduced)",
             "model": ", split as the paper split AlexNet (each layer's kernels shared out, activations exchanged "
                      "where a layer reads every channel)"}[p.split]
    steps = schedule.samples / p.batch
    out = [f"hardware: {where(p)}{split}; {p.dtype} peak {card.peak(p.dtype) / 1e12:.2f} TFLOP/s, "
           f"{card.bandwidth / 1e9:.0f} GB/s, {bytes_text(card.memory, 0)} each",
           f"source: {card.source}", "",
           render_table(("layer", "type", "fwd ms", "bwd ms", "expected ms", "bound ms", "limited by"), rows,
                        ("left", "left", "right", "right", "right", "right", "left"), style), "",
           f"step (time model, {p.mode} mode): {p.step_ms:.2f} ms expected"
           + (f" = compute {p.compute_ms:.2f} + communication {p.communication_ms:.2f} ({card.link_name})"
              if p.gpus > 1 else "")
           + f"; bound {p.bound_ms:.2f} ms; {steps:,.0f} steps: {_days(p.days(schedule))} expected, "
             f"{_days(p.bound_days(schedule))} at best",
           f"memory per GPU (model): {_memory(p)}"]
    if p.split == "model":
        out.append(f"per GPU: {commas(p.params_per_gpu)} parameters, {commas(p.macs_per_gpu)} forward MACs per step")
        out += [f"crosses between the GPUs at {c.name}: {bytes_text(c.forward_bytes)} forward, "
                f"{bytes_text(c.backward_bytes)} backward" for c in p.crossings]
    ref = reference(training.model)
    if ref is not None:
        a = against_reference(p, schedule, ref)
        setup = "" if a["same_setup"] else " (a different setup from the paper's two GTX 580s at batch 128)"
        out.append(f"published: {ref['days'][0]} to {ref['days'][1]} days ({ref['source']})")
        out.append(f"predicted: {a['predicted_days']:.2f} days{setup}; at best (the bound) "
                   f"{a['bound_days']:.2f} days")
    return "\n".join(out) + "\n"
