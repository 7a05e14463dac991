"""Cross-checks: the static counts against a real forward pass, fvcore and torch's flop counter.

Two halves:

* `measure` runs the module once (torch, fvcore: imported here, lazily) and returns
  a `Measurement` — plain data: every layer's output shape, parameter count,
  fvcore's count and ops fvcore skipped, torch's FLOPs.
* `reconcile` is pure: a `NetworkCost` and a Measurement in,
  a frozen `Reconciliation` out (one `LayerCheck` per layer, a verdict).

Conventions compared (DESIGN.md section 3): output shape and parameter count exactly;
fvcore counts one "flop" per MAC of Conv2d and Linear (bias excluded), the input
elements of AdaptiveAvgPool2d, and nothing for the other kinds alexcost has;
torch's ``FlopCounterMode`` counts 2 FLOPs per MAC of convolutions and matmuls and
nothing else. `verify_network` and `verify_module` put the halves together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .cost import LayerCost, NetworkCost
from .device import DEVICES, check_fits, memory_free, memory_needed, resolve_device  # noqa: F401 - importable from here too
from .report import commas, dumps_json, size_text
from .textable import render_table

EXACT_FVCORE_KINDS = ("Conv2d", "Linear")
"""Kinds whose MACs must equal fvcore's count exactly."""

FVCORE_DEPRECATION = r"`torch\.jit\.script` is deprecated"
FVCORE_DEPRECATION_CATEGORIES = (DeprecationWarning, FutureWarning)
"""torch 2.13 raises that warning as a DeprecationWarning, 2.14 as a FutureWarning."""
"""The one warning fvcore's import raises under torch >= 2.10 (filtered, nothing broader)."""


def fvcore_expected(row: LayerCost) -> int:
    """What fvcore counts for a layer of alexcost's built-in kinds: MACs for Conv2d and
    Linear, the input elements for AdaptiveAvgPool2d, 0 for everything else."""
    if row.type == "AdaptiveAvgPool2d":
        return row.input_elements
    return row.macs


# -- the measurement (torch) --------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    """What one forward pass showed, per layer (``None``: not measured).

    ``shapes`` include the batch dimension. ``params[i]`` counts the parameters of layer
    ``i``'s module that no earlier layer owns. ``fvcore[i]`` / ``torch_flops[i]`` are the
    counts for layer ``i``'s module, on the layer that first runs it; ``fvcore`` is
    ``None`` when fvcore was skipped (``fvcore_note`` says why).
    """

    device: str
    torch_version: str
    shapes: tuple
    params: tuple[int, ...]
    torch_flops: tuple
    torch_total: int
    fvcore: tuple | None
    fvcore_unsupported: tuple[tuple[str, ...], ...]
    fvcore_total: int | None
    fvcore_note: str


def _first_use(modules) -> list[int]:
    seen: dict[int, int] = {}
    return [seen.setdefault(id(m), i) for i, m in enumerate(modules)]


def _torch_counts(root, paths, first, x):
    """One forward pass under FlopCounterMode with a forward hook on every layer's module.

    Returns (output shapes in layer order, per-layer FLOPs or Nones, total FLOPs).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    modules = [root.get_submodule(p) if p else root for p in paths]
    calls: list[tuple[int, tuple[int, ...]]] = []
    handles = []

    def hook(module, inputs, output):
        calls.append((id(module), tuple(output.shape) if isinstance(output, torch.Tensor) else None))
    try:
        for i, m in enumerate(modules):
            if first[i] == i:
                handles.append(m.register_forward_hook(hook))
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            root(x)
    finally:
        for h in handles:
            h.remove()
    shapes: list = [None] * len(paths)
    if [c[0] for c in calls] == [id(m) for m in modules]:
        shapes = [c[1] for c in calls]
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    total = counts.get("Global", 0)
    top = type(root).__name__
    flops: list = [None] * len(paths)
    for i in range(len(paths)):
        if first[i] == i:
            keys = [f"{top}.{paths[j]}" if paths[j] else top for j in range(len(paths)) if first[j] == i]
            flops[i] = next((counts[k] for k in keys if k in counts), 0)
    if sum(f for f in flops if f is not None) != total:  # torch named the modules otherwise
        flops = [None] * len(paths)
    return shapes, flops, total


def _fvcore_counts(root, paths, first, x):
    """fvcore's count and skipped ops per layer, its total and a note; or Nones and why it was skipped."""
    import warnings

    try:
        with warnings.catch_warnings():
            for category in FVCORE_DEPRECATION_CATEGORIES:
                warnings.filterwarnings("ignore", message=FVCORE_DEPRECATION, category=category)
            import fvcore
            from fvcore.nn import FlopCountAnalysis
    except Exception as err:  # noqa: BLE001 - any failure to import means: skip fvcore, say why
        reason = "not installed" if isinstance(err, ModuleNotFoundError) else f"import failed: {_one_line(err)}"
        return None, ((),) * len(paths), None, f"fvcore skipped: {reason}"
    try:
        analysis = FlopCountAnalysis(root, (x,))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        by_module = analysis.by_module()
        total = analysis.total()
        counts: list = [None] * len(paths)
        skipped: list = [()] * len(paths)
        for i in range(len(paths)):
            if first[i] != i:
                continue
            group = [paths[j] for j in range(len(paths)) if first[j] == i]
            name = next((p for p in group if p in by_module), group[0])
            counts[i] = int(by_module.get(name, 0))
            skipped[i] = tuple(sorted(analysis.unsupported_ops(name)))
    except Exception as err:  # noqa: BLE001 - fvcore broken by this torch: skip it, say why
        return None, ((),) * len(paths), None, f"fvcore skipped: it failed on this module: {_one_line(err)}"
    return tuple(counts), tuple(skipped), int(total), f"fvcore {getattr(fvcore, '__version__', '?')}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def measure(root, paths, x, *, use_fvcore: bool = True) -> Measurement:
    """Run ``root`` on ``x`` once (plus fvcore's trace) and record every layer.

    ``paths[i]`` is the dotted path of layer ``i``'s module inside ``root`` (``""``: root
    itself). Hooks are removed before returning, whatever happens.
    """
    import torch

    modules = [root.get_submodule(p) if p else root for p in paths]
    first = _first_use(modules)
    seen: set[int] = set()
    params = []
    for m in modules:
        own = [p for p in m.parameters() if id(p) not in seen]
        seen.update(id(p) for p in own)
        params.append(sum(p.numel() for p in own))
    shapes, flops, total = _torch_counts(root, paths, first, x)
    if use_fvcore:
        fv, skipped, fv_total, note = _fvcore_counts(root, paths, first, x)
    else:
        fv, skipped, fv_total, note = None, ((),) * len(paths), None, "fvcore skipped: not asked for"
    device = str(x.device)
    if x.device.type == "cuda":
        device = f"cuda ({torch.cuda.get_device_name(x.device)})"
    return Measurement(device, torch.__version__, tuple(shapes), tuple(params), tuple(flops), int(total),
                       fv, skipped, fv_total, note)


# -- the reconciliation (pure) ------------------------------------------------------

@dataclass(frozen=True)
class LayerCheck:
    """One layer: alexcost's numbers beside the measured ones, and what disagrees.

    ``fvcore_expected`` is what fvcore should report under its own convention;
    ``torch_expected`` is ``2*macs``. Counts of a module that runs several times sit on
    the layer that runs it first (``repeat_of`` names it on the others).
    """

    index: int
    name: str
    type: str
    shape: tuple[int, ...]
    measured_shape: tuple[int, ...] | None
    params: int
    measured_params: int
    macs: int
    bias_adds: int
    other_ops: int
    fvcore_expected: int | None
    fvcore: int | None
    fvcore_unsupported: tuple[str, ...]
    torch_expected: int | None
    torch: int | None
    repeat_of: str | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Reconciliation:
    """Every layer's checks, the totals, and the verdict (``ok``: every comparison agrees)."""

    model: str
    device: str
    batch: int
    torch_version: str
    fvcore_note: str
    fvcore_ran: bool
    layers: tuple[LayerCheck, ...]
    macs: int
    bias_adds: int
    other_ops: int
    fvcore_total: int | None
    torch_total: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def forward(self) -> int:
        """The seed's "Forward Computation": MACs + bias adds."""
        return self.macs + self.bias_adds

    @property
    def fvcore_extra(self) -> int:
        """What fvcore counts beyond the MACs (adaptive pooling), which alexcost files under other_ops."""
        return sum(c.fvcore_expected - c.macs for c in self.layers if c.fvcore_expected is not None)


def reconcile(cost: NetworkCost, measured: Measurement, first_use=None) -> Reconciliation:
    """Compare ``cost`` with ``measured`` layer by layer. ``first_use[i]`` is the index of the
    first layer running the same module as layer ``i`` (default: every layer its own)."""
    rows = cost.layers
    n = len(rows)
    first = tuple(range(n)) if first_use is None else tuple(first_use)
    fv_ran = measured.fvcore is not None
    checks, problems = [], []
    for i, row in enumerate(rows):
        group = [j for j in range(n) if first[j] == first[i]]
        macs = sum(rows[j].macs for j in group)
        shape = (cost.batch, *row.output_shape)
        got_shape = measured.shapes[i]
        issues = []
        if got_shape != shape:
            seen = "not seen (the forward pass did not run the layers in order)" if got_shape is None \
                else size_text(got_shape[1:]) + (f" at batch {got_shape[0]}" if got_shape[0] != cost.batch else "")
            issues.append(f"output shape: alexcost {size_text(row.output_shape)}, torch {seen}")
        if row.params != measured.params[i]:
            issues.append(f"params: alexcost {commas(row.params)}, torch numel {commas(measured.params[i])}")
        repeat_of = rows[first[i]].name if first[i] != i else None
        fv_exp = fv = t_exp = t = None
        skipped: tuple[str, ...] = ()
        if repeat_of is None:
            t_exp, t = 2 * macs, measured.torch_flops[i]
            if t is not None and t != t_exp:
                issues.append(f"FLOPs: alexcost 2*MACs = {commas(t_exp)}, torch's counter {commas(t)}")
            if fv_ran:
                fv, skipped = measured.fvcore[i], measured.fvcore_unsupported[i]
                # Not compared: a module that runs twice (fvcore counts it once), and a layer whose
                # op fvcore cannot count (Conv2d with padding='same'/'valid' traces to
                # aten::_convolution_mode, which fvcore 0.1.5 skips); torch still checks both.
                if len(group) == 1 and not (fv == 0 and skipped and fvcore_expected(row)):
                    fv_exp = fvcore_expected(row)
                    if fv != fv_exp:
                        what = "MACs" if row.macs or row.type in EXACT_FVCORE_KINDS else f"fvcore's {row.type} count"
                        issues.append(f"{what}: alexcost {commas(fv_exp)}, fvcore {commas(fv)}")
        checks.append(LayerCheck(i, row.name, row.type, row.output_shape,
                                 None if got_shape is None else tuple(got_shape[1:]), row.params,
                                 measured.params[i], row.macs, row.bias_adds, row.other_ops, fv_exp, fv,
                                 skipped, t_exp, t, repeat_of, tuple(issues)))
        problems += [f"{row.name}: {p}" for p in issues]
    totals = cost.totals
    if 2 * totals.macs != measured.torch_total:
        problems.append(f"total: alexcost 2*MACs = {commas(2 * totals.macs)}, torch's counter "
                        f"{commas(measured.torch_total)}")
    if fv_ran and all(first[i] == i for i in range(n)):
        expected = sum(c.fvcore if c.fvcore_expected is None else c.fvcore_expected for c in checks)
        if expected != measured.fvcore_total:
            problems.append(f"total: alexcost expects fvcore {commas(expected)}, fvcore {commas(measured.fvcore_total)}")
    return Reconciliation(cost.model, measured.device, cost.batch, measured.torch_version, measured.fvcore_note,
                          fv_ran, tuple(checks), totals.macs, totals.bias_adds, totals.other_ops,
                          measured.fvcore_total, measured.torch_total, tuple(problems))


# -- putting it together ------------------------------------------------------------

def _random_input(shape, batch: int, device: str, seed: int):
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn((batch, *shape), generator=generator, device=device)


def verify_network(network, *, device: str = "auto", batch: int = 1, seed: int = 0,
                   use_fvcore: bool = True, progress: Callable[[str], None] | None = None) -> Reconciliation:
    """Build ``network`` in torch on ``device``, run one random batch, and reconcile every count."""
    from .torch_bridge import to_module

    say = progress or (lambda message: None)
    cost = network.cost(batch=batch)
    dev = resolve_device(device)
    check_fits(cost, dev)
    say(f"building {network.name} on {dev}")
    module = to_module(network, device=dev).eval()
    x = _random_input(network.input_shape, batch, dev, seed)
    say("forward pass with torch's flop counter" + (" and fvcore" if use_fvcore else ""))
    measured = measure(module, network.names, x, use_fvcore=use_fvcore)
    return reconcile(cost, measured)


def verify_module(module, input_shape, *, batch: int = 1, seed: int = 0, use_fvcore: bool = True,
                  name: str | None = None) -> Reconciliation:
    """Cross-check a user's module in place, on the device its parameters are on.

    The module is read with `from_module`, run once in eval
    mode under ``torch.no_grad()``, and left as it was: training flags restored, every
    hook removed, no buffer or attribute added.
    """
    from .torch_bridge import from_module

    imported = from_module(module, input_shape, name=name)
    cost = imported.cost(batch=batch)
    param = next(module.parameters(), None)
    dev = "cpu" if param is None else str(param.device)
    check_fits(cost, "cuda" if dev.startswith("cuda") else "cpu")
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        x = _random_input(imported.network.input_shape, batch, dev, seed)
        measured = measure(module, imported.paths, x, use_fvcore=use_fvcore)
    finally:
        for m, mode in modes:
            m.training = mode
    return reconcile(cost, measured, imported.first_use)


# -- rendering ----------------------------------------------------------------------

HEADERS = ("#", "layer", "type", "output", "params", "MACs", "fvcore", "torch FLOPs", "difference", "verdict")
ALIGN = ("right", "left", "left", "left", "right", "right", "right", "right", "right", "left")


def _difference(c: LayerCheck) -> str:
    parts = []
    if c.fvcore is not None and c.fvcore_expected is not None and c.fvcore != c.macs:
        parts.append(f"fvcore {c.fvcore - c.macs:+,}")
    if c.torch is not None and c.torch_expected is not None and c.torch != 2 * c.macs:
        parts.append(f"torch {c.torch - 2 * c.macs:+,}")
    return ", ".join(parts) or "0"


def _verdict(c: LayerCheck) -> str:
    if c.problems:
        return "MISMATCH: " + "; ".join(p.split(":")[0] for p in c.problems)
    if c.repeat_of:
        return f"ok (module of {c.repeat_of}, counted there)"
    if c.fvcore_expected is not None and c.fvcore_expected != c.macs:
        return "ok (fvcore counts the input elements)"
    if c.fvcore_expected is None and c.fvcore is not None:
        if c.fvcore_unsupported:
            return "ok (fvcore cannot count it: checked by torch only)"
        return "ok (fvcore counts a reused module once: checked by torch only)"
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
    rows.append(["", "total", "", "", commas(sum(c.params for c in rec.layers)), commas(rec.macs), fv_total,
                 commas(rec.torch_total), "", "ok" if not [p for p in rec.problems if p.startswith("total")]
                 else "MISMATCH"])
    return rows


def _join_names(names: list[str], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit - 1])}, ... {names[-1]} ({len(names)} layers)"


def explain_forward(rec: Reconciliation) -> str:
    """One line: the seed's "Forward Computation" (MACs + bias adds) against fvcore's total
    (or torch's FLOPs / 2 when fvcore was skipped), to the last digit."""
    biased = [c.name for c in rec.layers if c.bias_adds]
    where = f" of {_join_names(biased)}" if biased else ""
    if rec.fvcore_total is None:
        half = rec.torch_total // 2
        return (f"forward computation (MACs + bias adds) {commas(rec.forward)} = torch's FLOPs / 2 {commas(half)} "
                f"+ {commas(rec.forward - half)} bias adds{where} (torch counts no bias adds)")
    line = (f"forward computation (MACs + bias adds) {commas(rec.forward)} - fvcore's total "
            f"{commas(rec.fvcore_total)} = {commas(rec.forward - rec.fvcore_total)}")
    if rec.fvcore_extra:
        line += (f" = {commas(rec.bias_adds)} bias adds{where} (fvcore counts none) - {commas(rec.fvcore_extra)} "
                 f"adaptive_avg_pool2d input elements fvcore counts (alexcost: other_ops, 0 MACs)")
    else:
        line += f": the bias adds{where}, one per output element, which fvcore does not count"
    return line


def verdict_line(rec: Reconciliation) -> str:
    """The one-line verdict."""
    where = f"on {rec.device}, batch {rec.batch}, torch {rec.torch_version}, {rec.fvcore_note}"
    if rec.ok:
        return f"verify {rec.model}: OK: every output shape, parameter count, MAC and FLOP count agrees ({where})"
    bad = list(dict.fromkeys(p.split(":")[0] for p in rec.problems))
    return f"verify {rec.model}: MISMATCH in {len(rec.problems)} comparison(s), layers {', '.join(bad)} ({where})"


def render_text(rec: Reconciliation) -> str:
    """The reconciliation table, the ops fvcore does not count, the explanation and the verdict."""
    out = [f"alexcost verify: {rec.model} on {rec.device}, batch {rec.batch} (torch {rec.torch_version}, "
           f"{rec.fvcore_note})", "",
           render_table(HEADERS, _table_rows(rec), ALIGN), "",
           "MACs: alexcost (Conv2d and Linear, bias excluded); fvcore: its count for the module; "
           "torch FLOPs: torch.utils.flop_counter (2 per MAC); difference: fvcore - MACs, torch - 2*MACs."]
    uncounted = [c for c in rec.layers if rec.fvcore_ran and c.repeat_of is None
                 and (c.fvcore_unsupported or (c.other_ops and c.fvcore_expected == c.macs))]
    if uncounted:
        out += ["", "Ops fvcore does not count (alexcost's other_ops beside them):"]
        width = max(len(c.name) for c in uncounted)
        out += [f"  {c.name:<{width}}  {', '.join(c.fvcore_unsupported) or 'ignored by fvcore (its _IGNORED_OPS)'}: "
                f"alexcost other_ops {commas(c.other_ops)}" for c in uncounted]
    extra = [c for c in rec.layers if c.fvcore_expected is not None and c.fvcore_expected != c.macs]
    if extra:
        out += ["", "What fvcore adds that alexcost files under other_ops:"]
        out += [f"  {c.name}: fvcore {commas(c.fvcore)} (adaptive_avg_pool2d: its input elements); alexcost "
                f"0 MACs, other_ops {commas(c.other_ops)} (the sum of its window sizes)" for c in extra]
    out += ["", explain_forward(rec)]
    if rec.problems:
        out += [""] + [f"MISMATCH {p}" for p in rec.problems]
    out += ["", verdict_line(rec)]
    return "\n".join(out) + "\n"


def to_dict(rec: Reconciliation) -> dict:
    """The reconciliation as plain data (``alexcost verify --format json``)."""
    def shape(s):
        return None if s is None else list(s)
    return {
        "model": rec.model, "device": rec.device, "batch": rec.batch, "torch": rec.torch_version,
        "fvcore": {"ran": rec.fvcore_ran, "note": rec.fvcore_note},
        "ok": rec.ok, "verdict": verdict_line(rec),
        "layers": [{"index": c.index, "name": c.name, "type": c.type,
                    "output_shape": list(c.shape), "measured_shape": shape(c.measured_shape),
                    "params": c.params, "measured_params": c.measured_params,
                    "macs": c.macs, "bias_adds": c.bias_adds, "other_ops": c.other_ops,
                    "fvcore_expected": c.fvcore_expected, "fvcore": c.fvcore,
                    "fvcore_unsupported": list(c.fvcore_unsupported),
                    "torch_flops_expected": c.torch_expected, "torch_flops": c.torch,
                    "repeat_of": c.repeat_of, "ok": c.ok, "problems": list(c.problems)} for c in rec.layers],
        "totals": {"macs": rec.macs, "bias_adds": rec.bias_adds, "forward": rec.forward,
                   "other_ops": rec.other_ops, "fvcore": rec.fvcore_total, "fvcore_extra": rec.fvcore_extra,
                   "torch_flops": rec.torch_total},
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
