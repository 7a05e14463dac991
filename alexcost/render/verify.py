"""`alexcost verify`'s output: the reconciliation as a table for people, or JSON for machines. Pure.

Every number printed adds up: the table's difference column is the printed fvcore count
less the printed MACs (of every call, for a module that runs several times) and the printed
torch count less twice the MACs; the forward computation line is an equation whose terms
are named and sum exactly.
"""

from __future__ import annotations

from ..torch_run.reconcile import LayerCheck, Reconciliation
from ..units import commas, size_text
from .report import dumps_json
from .table import render_table

HEADERS = ("#", "layer", "type", "output", "params", "MACs", "fvcore", "torch FLOPs", "difference", "verdict")
ALIGN = ("right", "left", "left", "left", "right", "right", "right", "right", "right", "left")

LEGEND = ("MACs: alexcost (Conv2d and Linear, bias excluded); fvcore: its count for the module; "
          "torch FLOPs: torch.utils.flop_counter (2 per MAC); difference: fvcore - MACs, torch - 2*MACs.")
LEGEND_CALLS = ("A module that runs several times: fvcore files every call under the first layer that runs it, "
                "and its difference is fvcore - the MACs of all those calls.")


def _difference(c: LayerCheck) -> str:
    parts = []
    if c.fvcore is not None and c.fvcore != c.group_macs:
        parts.append(f"fvcore {c.fvcore - c.group_macs:+,}")
    if c.torch is not None and c.torch != 2 * c.macs:
        parts.append(f"torch {c.torch - 2 * c.macs:+,}")
    return ", ".join(parts) or "0"


def _verdict(c: LayerCheck) -> str:
    if c.problems:
        return "MISMATCH: " + "; ".join(p.split(":")[0] for p in c.problems)
    if c.measured_with and c.measured_with[-1] != c.name:
        return f"ok (measured with {c.measured_with[-1]}: one torch call)"
    if c.measured_with:
        return f"ok (the sum over {len(c.measured_with)} layers: one torch call)"
    if c.fvcore_check == "repeat":
        return f"ok (fvcore counts this call under {c.repeat_of})"
    if c.fvcore_check == "total":
        return "ok (fvcore: checked by its total only)"
    if c.fvcore_check == "calls":
        return f"ok (fvcore: all {c.calls} calls of its module)"
    if c.fvcore_check == "layer" and not c.read and c.fvcore_declared:
        return "ok (nothing reads it: fvcore's trace drops it)"
    if c.fvcore_check == "layer" and c.fvcore_declared is None:
        return "ok (fvcore cannot count it: 0)"
    if c.fvcore_check == "layer" and c.fvcore_declared != c.macs:
        return "ok (fvcore's count, as the kind declares)"
    return "ok"


def _shape_cell(c: LayerCheck) -> str:
    text = size_text(c.shape)
    return text if c.measured_shape in (None, c.shape) else f"{text} (torch {size_text(c.measured_shape)})"


def _table_rows(rec: Reconciliation) -> list[list[str]]:
    def num(value):
        return "-" if value is None else commas(value)
    rows = []
    for c in rec.layers:
        params = commas(c.params) if c.params == c.measured_params else f"{commas(c.params)} (torch {commas(c.measured_params)})"
        fv = "skipped" if not rec.fvcore_ran else num(c.fvcore)
        rows.append([str(c.index), c.name, c.type, _shape_cell(c), params, commas(c.macs), fv, num(c.torch),
                     _difference(c), _verdict(c)])
    fv_total = "skipped" if rec.fvcore_total is None else commas(rec.fvcore_total)
    params = commas(rec.params) if rec.measured_params in (None, rec.params) \
        else f"{commas(rec.params)} (torch {commas(rec.measured_params)})"
    rows.append(["", "total", "", "", params, commas(rec.macs), fv_total, commas(rec.torch_total), "",
                 "ok" if not [p for p in rec.problems if p.startswith("total")] else "MISMATCH"])
    return rows


def _join_names(names: list[str], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit - 1])}, ... {names[-1]} ({len(names)} layers)"


def _term(value: int, text: str, first: bool = False) -> str:
    """`` + 5 text`` or `` - 5 text`` (the sign outside, the number whole)."""
    if first:
        return f"{commas(value)} {text}"
    return f" {'+' if value >= 0 else '-'} {commas(abs(value))} {text}"


def _names(layers, test) -> str:
    return _join_names([c.name for c in layers if test(c)])


def explain_forward(rec: Reconciliation) -> str:
    """One line: the seed's "Forward Computation" (MACs + bias adds) against fvcore's total (or
    torch's when fvcore was skipped), as an equation whose every term is named."""
    biased = _names(rec.layers, lambda c: c.bias_adds)
    where = f" of {biased}" if biased else ""
    head = f"forward computation (MACs + bias adds) {commas(rec.forward)}"
    if rec.fvcore_total is None:
        line = (f"{head} = {commas(rec.macs)} MACs + {commas(rec.bias_adds)} bias adds ({biased + ': ' if biased else ''}"
                f"torch counts none); torch's FLOPs {commas(rec.torch_total)} = 2 * {commas(rec.macs)}")
        if rec.torch_extra:
            line += _term(rec.torch_extra, "declared by kinds whose torch count is not twice their MACs "
                                           f"({_names(rec.layers, lambda c: c.torch_expected != 2 * c.macs)})")
        unexplained = rec.torch_total - rec.torch_expected_total
        if unexplained:
            line += _term(unexplained, "unexplained (a MISMATCH)")
        return line
    difference = rec.forward - rec.fvcore_total
    unexplained = rec.fvcore_expected_total - rec.fvcore_total
    line = f"{head} - fvcore's total {commas(rec.fvcore_total)} = {commas(difference)}"
    uncounted, beyond = rec.fvcore_uncounted_macs, rec.fvcore_beyond_macs
    if not (uncounted or beyond or unexplained):
        what = f"the bias adds{where}, one per output element, which fvcore does not count" if rec.bias_adds \
            else "no bias adds, and fvcore counts the MACs exactly"
        return f"{line}: {what}"
    line += " = " + _term(rec.bias_adds, f"bias adds ({biased + ': ' if biased else ''}fvcore counts none)", True)
    if uncounted:
        line += _term(uncounted, "MACs fvcore does not count ("
                      + _names(rec.layers, lambda c: c.fvcore_share < c.macs) + ")")
    if beyond:
        line += _term(-beyond, "fvcore counts beyond the MACs ("
                      + _names(rec.layers, lambda c: c.fvcore_share > c.macs)
                      + ": as their kinds declare; alexcost files them under other_ops)")
    if unexplained:
        line += _term(unexplained, "unexplained (a MISMATCH)")
    return line


def verdict_line(rec: Reconciliation) -> str:
    """The one-line verdict."""
    where = f"on {rec.device}, batch {rec.batch}, torch {rec.torch_version}, {rec.fvcore_note}"
    if rec.ok:
        return (f"verify {rec.model}: OK: every output shape, parameter count, MAC, bias add, other op and FLOP "
                f"count agrees ({where})")
    bad = list(dict.fromkeys(p.split(":")[0] for p in rec.problems))
    return f"verify {rec.model}: MISMATCH in {len(rec.problems)} comparison(s), layers {', '.join(bad)} ({where})"


def _sections(rec: Reconciliation) -> list[str]:
    """The notes under the table: ops fvcore skips, what it counts beyond the MACs, what only its total checks."""
    out = []
    uncounted = [c for c in rec.layers if c.fvcore_check in ("layer", "calls")
                 and (c.fvcore_unsupported or (c.other_ops and c.fvcore_declared == c.macs))]
    if uncounted:
        out += ["", "Ops fvcore does not count (alexcost's other_ops beside them):"]
        width = max(len(c.name) for c in uncounted)
        for c in uncounted:
            macs = f"MACs {commas(c.macs)}, " if c.fvcore_declared is None and c.macs else ""
            out.append(f"  {c.name:<{width}}  {', '.join(c.fvcore_unsupported) or 'ignored by fvcore (its _IGNORED_OPS)'}: "
                       f"alexcost {macs}other_ops {commas(c.other_ops)}")
    extra = [c for c in rec.layers if c.read and c.fvcore_declared is not None and c.fvcore_declared != c.macs]
    if extra:
        out += ["", "What fvcore counts beyond the MACs (as each kind declares: fvcore_count), which alexcost "
                    "files under other_ops:"]
        out += [f"  {c.name}: fvcore {commas(c.fvcore_declared)} ({c.type}); alexcost {commas(c.macs)} MACs, other_ops "
                f"{commas(c.other_ops)}" for c in extra]
    total_only = [c.name for c in rec.layers if c.fvcore_check == "total"]
    if total_only:
        out += ["", f"Checked by fvcore's total only (its by_module names modules, not function calls or "
                    f"parameters): {', '.join(total_only)}"]
    return out


def render_text(rec: Reconciliation) -> str:
    """The reconciliation table, the notes on fvcore, the explanation and the verdict."""
    out = [f"alexcost verify: {rec.model} on {rec.device}, batch {rec.batch} (torch {rec.torch_version}, "
           f"{rec.fvcore_note})", "",
           render_table(HEADERS, _table_rows(rec), ALIGN), "", LEGEND]
    if any(c.fvcore_check == "calls" for c in rec.layers):
        out.append(LEGEND_CALLS)
    out += _sections(rec)
    out += ["", explain_forward(rec)]
    if rec.problems:
        out += [""] + [f"MISMATCH {p}" for p in rec.problems]
    out += ["", verdict_line(rec)]
    return "\n".join(out) + "\n"


def _json_shape(s):
    if s is None:
        return None
    return [list(p) for p in s] if s and isinstance(s[0], tuple) else list(s)


def to_dict(rec: Reconciliation) -> dict:
    """The reconciliation as plain data (``alexcost verify --format json``)."""
    return {
        "model": rec.model, "device": rec.device, "batch": rec.batch, "torch": rec.torch_version,
        "fvcore": {"ran": rec.fvcore_ran, "note": rec.fvcore_note},
        "ok": rec.ok, "verdict": verdict_line(rec),
        "layers": [{"index": c.index, "name": c.name, "type": c.type,
                    "output_shape": _json_shape(c.shape), "measured_shape": _json_shape(c.measured_shape),
                    "params": c.params, "measured_params": c.measured_params,
                    "macs": c.macs, "bias_adds": c.bias_adds, "measured_bias_adds": c.measured_bias_adds,
                    "other_ops": c.other_ops, "measured_other_ops": c.measured_other_ops,
                    "fvcore_expected": c.fvcore_expected, "fvcore_declared": c.fvcore_declared,
                    "fvcore_share": c.fvcore_share, "read": c.read, "fvcore": c.fvcore,
                    "fvcore_check": c.fvcore_check, "fvcore_unsupported": list(c.fvcore_unsupported),
                    "torch_flops_expected": c.torch_expected, "torch_flops": c.torch,
                    "repeat_of": c.repeat_of, "calls": c.calls, "ok": c.ok, "problems": list(c.problems)}
                   for c in rec.layers],
        "totals": {"params": rec.params, "measured_params": rec.measured_params,
                   "macs": rec.macs, "bias_adds": rec.bias_adds, "forward": rec.forward,
                   "other_ops": rec.other_ops, "fvcore": rec.fvcore_total,
                   "fvcore_expected": rec.fvcore_expected_total if rec.fvcore_ran else None,
                   "fvcore_extra": rec.fvcore_extra, "fvcore_beyond_macs": rec.fvcore_beyond_macs,
                   "fvcore_uncounted_macs": rec.fvcore_uncounted_macs,
                   "torch_flops_expected": rec.torch_expected_total, "torch_flops": rec.torch_total},
        "explanation": explain_forward(rec),
        "problems": list(rec.problems),
    }


def render(rec: Reconciliation, fmt: str = "table") -> str:
    """``table`` (text) or ``json``."""
    if fmt == "table":
        return render_text(rec)
    if fmt == "json":
        return dumps_json(to_dict(rec))
    raise ValueError(f"unknown format {fmt!r}; choose table or json")
