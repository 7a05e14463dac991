"""Rendering a training step: its table, CSV and JSON (``alexcost train``)."""

from __future__ import annotations

from typing import NamedTuple

from ..training.schedule import OPENAI, Schedule
from ..training.records import LayerTraining
from ..training.step import TrainingCost
from ..engine.cost import percent
from ..units import BINARY_NOTE, bytes_text, commas, dumps_json
from .compare import Column, count
from .compare import render as compare
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


ALEXNET_MODELS = ("seed", "paper", "torchvision", "alexnet")
"""The AlexNet presets (and torchvision's alexnet read as a module): OpenAI's AlexNet estimate is shown
beside their schedule, and no other network's."""

STATE = {"sgd": "SGD state", "momentum": "momentum buffers", "adam": "Adam moments"}


def _where(t: TrainingCost) -> str:
    return "CUDA" if t.device == "cuda" else "the CPU"


def verdict(t: TrainingCost, schedule: Schedule, prediction=None) -> list[str]:
    """Whether the step fits and how long it takes (with a prediction), else its peak memory."""
    if prediction is None:
        return [f"peak memory (model): {bytes_text(t.memory.peak, 2)}; give --gpu to see whether it fits and how "
                f"long a step takes"]
    return hardware.verdict(prediction, schedule)


def dominates(t: TrainingCost, prediction=None) -> str:
    """What takes most: of the memory peak, of the step's MACs, and (given a prediction) of its time."""
    m = t.memory
    parts = {"weights": m.weights + m.buffers, "gradients": m.grads, STATE[t.optimizer]: m.optimizer,
             "kept for backward": m.saved, "the input batch": m.input}
    part, size = max(parts.items(), key=lambda kv: kv[1])
    out = [f"{part} {percent(size, m.peak):.0f}% of the peak memory"]
    rows = [r for r in t.layers if r.forward_macs + r.backward_macs]
    if rows:
        top = max(rows, key=lambda r: r.forward_macs + r.backward_macs)
        out.append(f"{top.name} {percent(top.forward_macs + top.backward_macs, t.forward_macs + t.backward_macs):.0f}% "
                   f"of the step's MACs")
    if prediction is not None and prediction.layers:
        slow = max(prediction.layers, key=lambda r: r.expected_ms)
        out.append(f"{slow.name} {percent(slow.expected_ms, prediction.step_ms):.0f}% of the step's time")
    return "most: " + "; ".join(out)


def summary(t: TrainingCost, schedule: Schedule | None = None, prediction=None) -> str:
    """A few lines: the verdict (fits, step time), the totals, the memory, and what takes most."""
    schedule = schedule or t.schedule()
    m = t.memory
    frozen = f", frozen: {', '.join(t.frozen)}" if t.frozen else ""
    return "\n".join([
        f"{t.model}: training step of batch {t.batch}, {t.dtype}, optimizer {t.optimizer}{frozen}",
        *verdict(t, schedule, prediction),
        f"totals: {commas(t.train_flops)} FLOPs a step ({commas(t.forward_macs)} forward + "
        f"{commas(t.backward_macs)} backward MACs), {commas(t.params)} parameters",
        f"memory in {BINARY_NOTE}: peak {bytes_text(m.peak, 2)} in the {m.peak_phase}: weights "
        f"{bytes_text(t.weight_bytes)}, gradients {bytes_text(t.grad_bytes)}, {STATE[t.optimizer]} "
        f"{bytes_text(t.optimizer_bytes)}, kept for backward {bytes_text(t.saved_bytes)}, input {bytes_text(m.input)}",
        dominates(t, prediction)]) + "\n"


def layer_table(t: TrainingCost) -> tuple[tuple, list, tuple]:
    """``(headers, rows, align)``: per layer, its forward and backward counts and what it keeps; a total row."""
    headers = ("#", "layer", "type", "fwd MACs", "bwd MACs", "grad input", "grad weight", "torch bwd FLOPs",
               "bwd other ops", "saved bytes", "kept")
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
    return headers, rows, ("right", "left", "left", *["right"] * 7, "left")


def details(t: TrainingCost, schedule: Schedule) -> list[str]:
    """The lines under the table: the step's MACs, the memory model's peak by phase, the schedule (and,
    for AlexNet, OpenAI's estimate beside it), notes."""
    m = t.memory
    ratio = f" (backward / forward {t.backward_macs / t.forward_macs:.3f})" if t.forward_macs else ""
    out = [f"step: {commas(t.forward_macs)} forward + {commas(t.backward_macs)} backward MACs = "
           f"{commas(t.train_flops)} FLOPs{ratio}",
           f"peak (model): {bytes_text(m.peak, 2)}, in the {m.peak_phase} (forward "
           f"{bytes_text(m.resident + m.forward_peak, 2)}, backward {bytes_text(m.resident + m.backward_peak, 2)}, "
           f"update {bytes_text(m.update_peak, 2)}); not counted: allocator rounding, workspaces, the CUDA context, "
           f"the loss",
           f"schedule: {commas(schedule.images)} images x {schedule.epochs} epochs, {commas(schedule.steps)} steps: "
           f"{schedule.train_flops:.4g} FLOPs = {schedule.pfs_days:.5f} petaflop/s-days"]
    if t.model in ALEXNET_MODELS:
        out.append(f"OpenAI's estimate for AlexNet: {OPENAI['pfs_days']} petaflop/s-days; their rule (forward MACs x "
                   f"2 x 3) on these forward MACs: {schedule.rule_pfs_days:.5f}")
    return out + [f"note: {note}" for note in t.notes]


def render(t: TrainingCost, schedule: Schedule | None = None, style: str = "simple", prediction=None) -> str:
    """The step as text: the verdict first (`summary`), then per layer, totals, memory, the schedule
    and (given a prediction) the hardware (``style="pipe"``: Markdown tables)."""
    schedule = schedule or t.schedule()
    out = [summary(t, schedule, prediction), f"kept tensors as torch keeps them on {_where(t)}", "",
           render_table(*layer_table(t), style), "", *details(t, schedule)]
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


# -- several steps side by side, one page ---------------------------------------------------------------

class Trained(NamedTuple):
    """One network's step as ``alexcost train`` shows it: the step, its schedule and (with a GPU) the
    prediction."""

    step: TrainingCost
    schedule: Schedule
    prediction: object = None


def _gpu(r: Trained, value):
    return None if r.prediction is None else value(r.prediction)


COMPARE = (
    Column("model", "model", lambda r: r.step.model, align="left"),
    Column("batch", "batch", lambda r: r.step.batch, commas),
    Column("dtype", "dtype", lambda r: r.step.dtype, align="left"),
    count("parameters", "params", lambda r: r.step.params),
    count("FLOPs a step", "train_flops", lambda r: r.step.train_flops),
    Column("peak memory", "peak_bytes", lambda r: r.step.memory.peak, lambda b: bytes_text(b, 2)),
    Column("GPU", "gpu", lambda r: _gpu(r, hardware.where), align="left"),
    Column("fits", "fits", lambda r: _gpu(r, lambda p: p.fits), lambda f: "yes" if f else "NO", align="left"),
    Column("step ms", "step_ms", lambda r: _gpu(r, lambda p: p.step_ms), lambda ms: f"{ms:.2f}"),
    Column("days", "days", lambda r: _gpu(r, lambda p: p.days(r.schedule)), lambda d: f"{d:.3g}"),
)
"""The columns of several training steps side by side (the GPU's only with --gpu)."""


def render_many(trained, fmt: str = "table", summary_only: bool = False) -> str:
    """One step as `render` gives it (or its `summary`); several side by side (JSON: a list); ``html``:
    one page, with each step's memory figure."""
    if fmt == "json":
        data = [to_dict(*r) for r in trained]
        return dumps_json(data[0] if len(data) == 1 else data)
    if fmt == "csv" and len(trained) == 1:
        return to_csv(trained[0].step)
    columns = COMPARE if trained[0].prediction is not None else COMPARE[:6]
    notes = (f"Memory in {BINARY_NOTE}: the memory model's peak of a step; step time and days: the time model "
             f"({trained[0].schedule.images:,} images x {trained[0].schedule.epochs} epochs).",)
    if fmt == "html":
        return html_page(trained, summary_only, columns, notes)
    if len(trained) > 1:
        return compare(columns, trained, fmt, notes)
    if summary_only:
        return summary(*trained[0])
    return render(trained[0].step, trained[0].schedule, "pipe" if fmt == "markdown" else "simple",
                  trained[0].prediction)


def html_page(trained, summary_only: bool, columns, notes) -> str:
    """One page: the summary, the layer table, the details and the hardware (several: side by side),
    and each step's memory figure."""
    from . import html
    from .plot import step_memory_figure

    figures = [html.figure(step_memory_figure(r.step), f"{r.step.model}: a training step's memory, batch "
                                                       f"{r.step.batch}") for r in trained]
    title = "alexcost train: " + ", ".join(dict.fromkeys(r.step.model for r in trained))
    if len(trained) > 1:
        return compare(columns, trained, "html", notes, title, figures)
    r = trained[0]
    parts = [html.lines(summary(*r))]
    if not summary_only:
        parts += [html.table(*layer_table(r.step)), html.lines(details(r.step, r.schedule))]
        if r.prediction is not None:
            parts.append(html.pre(hardware.render(r.prediction, r.step, r.schedule)))
    return html.page(title, parts + figures)
