"""Rendering a training step: its table, CSV and JSON (``alexcost train``)."""

from __future__ import annotations

from ..training.schedule import OPENAI, Schedule
from ..training.records import LayerTraining
from ..training.step import TrainingCost
from ..units import bytes_text, commas
from . import hardware
from .table import render_table


def layer_dict(r: LayerTraining) -> dict:
    return {"name": r.name, "type": r.type, "forward_macs": r.forward_macs, "backward_macs": r.backward_macs,
            "grad_input_macs": r.grad_input_macs, "grad_weight_macs": r.grad_weight_macs,
            "torch_backward_flops": r.torch_backward_flops, "train_other_ops": r.train_other_ops,
            "backward_other_ops": r.backward_other_ops, "saved_bytes": r.saved_bytes,
            "saved": [{"what": t.what, "bytes": t.bytes, **({"kept_by": t.kept_by} if t.kept_by else {}),
                       **({"caveat": t.caveat} if t.caveat else {})} for t in r.saved],
            "params": r.params, "trainable_params": r.trainable_params, "runs_backward": r.runs_backward}


def to_dict(t: TrainingCost, schedule: Schedule | None = None, prediction=None) -> dict:
    """The step, the schedule and (given a `alexcost.hardware.model.Prediction`) the hardware, as
    plain data: ``alexcost train --format json``."""
    schedule = schedule or t.schedule()
    out = {
        "model": t.model, "input_shape": list(t.input_shape), "batch": t.batch, "dtype": t.dtype,
        "device": t.device, "optimizer": t.optimizer, "frozen": list(t.frozen),
        "layers": [layer_dict(r) for r in t.layers],
        "totals": {"forward_macs": t.forward_macs, "backward_macs": t.backward_macs,
                   "grad_input_macs": t.grad_input_macs, "grad_weight_macs": t.grad_weight_macs,
                   "torch_backward_flops": t.torch_backward_flops, "train_flops": t.train_flops,
                   "train_other_ops": t.train_other_ops, "backward_other_ops": t.backward_other_ops,
                   "saved_bytes": t.saved_bytes, "params": t.params, "trainable_params": t.trainable_params,
                   "weight_bytes": t.weight_bytes, "grad_bytes": t.grad_bytes,
                   "optimizer_bytes": t.optimizer_bytes, "buffer_bytes": t.buffer_bytes,
                   "peak_bytes": t.memory.peak},
        "memory": t.memory.to_dict(),
        "schedule": schedule.to_dict(),
        "notes": list(t.notes),
    }
    if prediction is not None:
        out["hardware"] = hardware.to_dict(prediction, t, schedule)
    return out


def render(t: TrainingCost, schedule: Schedule | None = None, style: str = "simple", prediction=None) -> str:
    """The step as text: per layer, totals, memory, the schedule and (given a prediction) the
    hardware (``style="pipe"``: Markdown tables)."""
    schedule = schedule or t.schedule()
    headers = ("#", "layer", "type", "fwd MACs", "bwd MACs", "grad input", "grad weight", "torch bwd FLOPs",
               "bwd other ops", "saved", "kept")
    rows = []
    for r in t.layers:
        kept = ", ".join(f"{s.what}" + (f" (= {s.kept_by})" if s.kept_by else "") for s in r.saved)
        rows.append([str(r.index), r.name, r.type, commas(r.forward_macs), commas(r.backward_macs),
                     commas(r.grad_input_macs), commas(r.grad_weight_macs), commas(r.torch_backward_flops),
                     commas(r.backward_other_ops), commas(r.saved_bytes), kept or ("-" if r.runs_backward else
                                                                                   "no backward")])
    rows.append(["", "total", "", commas(t.forward_macs), commas(t.backward_macs), commas(t.grad_input_macs),
                 commas(t.grad_weight_macs), commas(t.torch_backward_flops), commas(t.backward_other_ops),
                 commas(t.saved_bytes), ""])
    m = t.memory
    frozen = f", frozen: {', '.join(t.frozen)}" if t.frozen else ""
    state = {"sgd": "SGD state", "momentum": "momentum buffers", "adam": "Adam moments"}[t.optimizer]
    ratio = f" (backward / forward {t.backward_macs / t.forward_macs:.3f})" if t.forward_macs else ""
    out = [f"alexcost train: {t.model}, batch {t.batch}, {t.dtype}, optimizer {t.optimizer}{frozen}; kept tensors "
           f"as torch keeps them on {t.device.upper() if t.device == 'cuda' else 'the CPU'}", "",
           render_table(headers, rows, ("right", "left", "left", *["right"] * 7, "left"), style), "",
           f"step: {commas(t.forward_macs)} forward + {commas(t.backward_macs)} backward MACs = "
           f"{commas(t.train_flops)} FLOPs{ratio}",
           f"memory: weights {bytes_text(t.weight_bytes)}, gradients {bytes_text(t.grad_bytes)}, {state} "
           f"{bytes_text(t.optimizer_bytes)}, kept for backward {bytes_text(t.saved_bytes)}, input {bytes_text(m.input)}",
           f"peak (model): {bytes_text(m.peak)}, in the {m.peak_phase} (forward {bytes_text(m.resident + m.forward_peak)},"
           f" backward {bytes_text(m.resident + m.backward_peak)}, update {bytes_text(m.update_peak)}); not counted: "
           f"allocator rounding, workspaces, the CUDA context, the loss",
           f"schedule: {commas(schedule.images)} images x {schedule.epochs} epochs, {commas(schedule.steps)} steps: "
           f"{schedule.train_flops:.4g} FLOPs = {schedule.pfs_days:.5f} petaflop/s-days",
           f"OpenAI's estimate for AlexNet: {OPENAI['pfs_days']} petaflop/s-days; their rule (forward MACs x 2 x 3) "
           f"on these forward MACs: {schedule.rule_pfs_days:.5f}"]
    out += [f"note: {note}" for note in t.notes]
    text = "\n".join(out) + "\n"
    if prediction is not None:
        text += "\n" + hardware.render(prediction, t, schedule, style)
    return text


CSV_FIELDS = ("name", "type", "forward_macs", "backward_macs", "grad_input_macs", "grad_weight_macs",
              "torch_backward_flops", "train_other_ops", "backward_other_ops", "saved_bytes", "params",
              "trainable_params")


def to_csv(t: TrainingCost) -> str:
    """One row per layer and a ``total`` row, exact integers."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in t.layers:
        writer.writerow([r.name, r.type] + [getattr(r, f) for f in CSV_FIELDS[2:]])
    writer.writerow(["total", ""] + [getattr(t, f) for f in CSV_FIELDS[2:]])
    return buffer.getvalue()
