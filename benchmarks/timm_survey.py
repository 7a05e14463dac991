"""Which of timm's image models `from_module` reads: a broad, deterministic sample, each checked against torch.

The sample takes models from every module ("family") timm registers (``timm.list_modules()``):
per family, its model names sorted, the very large variants (huge, giant, large, high-resolution
names) left out, and ``k`` names spread evenly over what is left (``k`` grows with the family's
size: 1 to 5). Each model is built with ``pretrained=False`` (nothing is downloaded), in eval mode,
at a small input (``--size``, 64 by default; a model whose input size is fixed is built with
``img_size=--size`` where it takes one, else at its own size; a model that cannot run at the
small input is tried at its own size), read with ``alexcost.from_module``, and compared with
one forward pass under torch (on the meta device, which runs torch's shape functions and
counts the same FLOPs without data or initialised weights; on the CPU where an op has no
meta kernel):

* parameters: ``sum(p.numel() for p in model.parameters())`` against alexcost's;
* output shape: the tensor torch returns against the network's output;
* forward count: torch's ``FlopCounterMode`` total (batch 2) against alexcost's ``torch_flops``
  (2 per MAC of convolutions and matrix products) times 2; with ``--fvcore``, also fvcore's
  ``FlopCountAnalysis`` total (batch 1) against alexcost's ``fvcore_count`` (its MACs, as fvcore
  counts them) where every layer declares one.

Each model is **exact** (all agree), **refused** (one ``SpecError``; the reason is grouped by the
node kind it names), **WRONG** (a number differs: a bug) or **crash** (anything else alexcost
raised). Models timm or torch cannot build or run at any size tried are **unavailable**. The
CSV is rewritten atomically after every model, so a run cut short keeps what it measured.

    python benchmarks/timm_survey.py [--out timm_survey.csv] [--size 64] [--per-family K]
                                     [--models NAME,... | --all] [--limit N] [--timeout SECONDS]

Exit code: 0 when no model is WRONG or crashed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import os
import re
import signal
import sys
import time
import warnings
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = re.compile(r"(huge|giant|gigantic|large|xlarge|xxl|_xl|_g_|_h_|_l_|_e_|_l\d|_h\d|_g\d|7b|_so\d|_448|_512|"
                 r"_576|_640|_1024|_384|_336|_320|_288|nfnet_f[3-7]|_l$|_xl$|_h$|_g$|_e$|_big|bigg|"
                 r"dm_nfnet_f[2-7]|_7b|_6b|_1b|_2b|x3_bit|x4_bit|_[3-9]\d\dm|200d|200e|264d|269)")
"""Names left out of the sample: the largest variants (memory and time on a CPU), not other kinds."""
FIELDS = ("model", "family", "status", "input", "device", "group", "reason", "params_torch", "params_alexcost",
          "flops_torch", "flops_alexcost", "fvcore", "fvcore_alexcost", "shape_torch", "shape_alexcost", "seconds")


class _Timeout(Exception):
    pass


def sample(per_family: int | None = None) -> list[tuple[str, str]]:
    """``(family, model)`` pairs: every family timm has, names spread evenly over its smaller variants."""
    import timm

    picked = []
    for family in sorted(timm.list_modules()):
        names = sorted(n for n in timm.list_models(module=family) if not BIG.search(n))
        if not names:
            names = sorted(timm.list_models(module=family))[:1]
        k = per_family or max(1, min(4, round(len(names) / 12) + 1))
        k = min(k, len(names))
        picked += [(family, names[(2 * i + 1) * len(names) // (2 * k)]) for i in range(k)]
    return picked


def _attempts(name: str, size: int) -> list:
    """``(build, input shape, device)`` to try in turn: the small input first, then the model's own
    size; each on the meta device first (shapes only: no weights initialised, no data, the same
    counts), then on the CPU where an op has no meta kernel."""
    import timm

    cfg = timm.get_pretrained_cfg(name)
    own = tuple(getattr(cfg, "input_size", None) or (3, 224, 224)) if cfg is not None else (3, 224, 224)
    fixed = bool(getattr(cfg, "fixed_input_size", False)) if cfg is not None else False
    small = (own[0], size, size)
    plain = lambda: timm.create_model(name, pretrained=False).eval()  # noqa: E731
    first = (lambda: timm.create_model(name, pretrained=False, img_size=size).eval()) if fixed else plain
    builds = [(first, small)] + ([(plain, own)] if small != own else [])
    return [(build, shape, device) for build, shape in builds for device in ("meta", "cpu")]


def _measure(model, shape, device):
    """torch's numbers from a forward pass (batch 2) on ``device``: output shape, FlopCounterMode's total."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    x = torch.randn(2, *shape, device=device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            y = model(x)
    except AssertionError:  # FlopCounterMode's module tracker fails on some models without grad mode
        with torch.enable_grad(), FlopCounterMode(display=False) as counter:
            y = model(x)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"the model returns {type(y).__name__}, not one tensor")
    return tuple(y.shape[1:]), int(counter.get_total_flops())


def _fvcore(model, shape):
    """fvcore's total (batch 1), or None where its TorchScript trace fails. Run last: a failed
    analysis can leave its hooks on the model."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(model, torch.randn(1, *shape))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            return int(analysis.total())
    except Exception:  # noqa: BLE001 - fvcore cannot trace some models; torch's count stays
        return None


def group_of(message: str) -> str:
    """A refusal's group: the node kind it names (function, method or module class) and why, in short."""
    what = re.search(r"(function|method) '([^']+)' in module", message)
    module = re.search(r"module '[^']*' \(([^)]+)\)", message)
    if "branches on a traced value" in message:
        why = "control flow on a traced value"
    elif "torch.fx cannot trace" in message:
        why = "fx cannot trace: " + (re.search(r"without data: (\w+)", message) or [None, "error"])[1]
    elif "has no layer kind" in message or "no kind" in message:
        why = "no layer kind"
    elif "Python number" in message:
        why = "arithmetic with a Python number"
    elif "reads the parameter" in message or "reads the buffer" in message or "as its input" in message:
        why = "a parameter or buffer used outside a layer"
    else:
        why = re.sub(r"\s+", " ", message.split(": ", 1)[-1])[:70]
    if what:
        return f"{what.group(1)} {what.group(2)}: {why}"
    if module:
        return f"module {module.group(1)}: {why}"
    return why


def one(family: str, name: str, size: int, timeout: int, fvcore: bool = False) -> dict:
    """One model's row: built, run by torch, read by alexcost, compared."""
    start = time.perf_counter()
    signal.alarm(timeout)
    try:
        row = _one(family, name, size, fvcore)
    except _Timeout:
        row = {"model": name, "family": family, "status": "unavailable", "reason": f"over the {timeout} s budget"}
    finally:
        signal.alarm(0)
    gc.collect()
    return {**row, "seconds": round(time.perf_counter() - start, 1)}


def _one(family: str, name: str, size: int, fvcore: bool) -> dict:
    import torch

    from alexcost.errors import SpecError
    from alexcost.torch_bridge import from_module

    row = {"model": name, "family": family}
    measured, failure = None, "no attempt"
    for build, shape, device in _attempts(name, size):
        try:
            with torch.device(device):
                model = build()
        except _Timeout:
            raise
        except Exception as err:  # noqa: BLE001 - timm cannot build it so; try the next
            failure = f"build: {type(err).__name__}: {err}"
            continue
        try:
            measured = _measure(model, shape, device)
            break
        except _Timeout:
            raise
        except Exception as err:  # noqa: BLE001 - torch cannot run it at this size; try the next
            failure = f"torch forward at {shape}: {type(err).__name__}: {err}"
    if measured is None:
        return {**row, "status": "unavailable", "reason": failure[:300]}
    row["input"], row["device"] = "x".join(map(str, shape)), device
    row["shape_torch"], row["flops_torch"] = "x".join(map(str, measured[0])), measured[1]
    row["params_torch"] = sum(p.numel() for p in model.parameters())
    try:
        imported = from_module(model, shape)
    except SpecError as err:
        text = str(err)
        return {**row, "status": "refused", "group": group_of(text), "reason": re.sub(r"\s+", " ", text)[:400]}
    except _Timeout:
        raise
    except Exception as err:  # noqa: BLE001 - anything but a SpecError is a crash, recorded as such
        return {**row, "status": "crash", "reason": f"{type(err).__name__}: {err}"[:400]}
    row["fvcore"] = _fvcore(model, shape) if fvcore and device == "cpu" else None
    return {**row, **_compare(imported, (*measured, row["fvcore"]), row["params_torch"])}


def _compare(imported, measured, params_torch: int) -> dict:
    """alexcost's numbers and the verdict: exact, or WRONG with what differs."""
    net = imported.network
    rows = imported.cost(batch=2).layers  # a row run once per pass has batch 1
    flops = sum(r.batch * r.layer.torch_flops(r.input_shape, r.output_shape) for r in rows)
    declared = [r.layer.fvcore_count(r.input_shape, r.output_shape) for r in rows]
    fv = None if any(d is None for d in declared) else sum(declared)
    shape = net.output_shape
    out = {"params_alexcost": imported.params, "flops_alexcost": flops, "fvcore_alexcost": fv,
           "shape_alexcost": "x".join(map(str, shape))}
    torch_shape, torch_flops, torch_fv = measured
    wrong = []
    if imported.params != params_torch:
        wrong.append(f"params {imported.params} != torch {params_torch}")
    if tuple(shape) != tuple(torch_shape):
        wrong.append(f"output {tuple(shape)} != torch {tuple(torch_shape)}")
    if flops != torch_flops:
        wrong.append(f"FlopCounterMode {torch_flops} != alexcost {flops}")
    if fv is not None and torch_fv is not None and fv != torch_fv:
        wrong.append(f"fvcore {torch_fv} != alexcost {fv}")
    return {**out, "status": "WRONG" if wrong else "exact", "reason": "; ".join(wrong)}


def _write(path: str, rows: list[dict]) -> None:
    from alexcost.atomic import write_atomic

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def summary(rows: list[dict]) -> str:
    """The table of statuses and the refusals grouped, most models first."""
    counts = Counter(r["status"] for r in rows)
    read = sum(counts[s] for s in ("exact", "refused", "WRONG", "crash"))
    lines = [f"{len(rows)} models from {len({r['family'] for r in rows})} families; {read} built and run by torch",
             *(f"  {s:<12} {counts[s]:>4}" + (f"  ({100 * counts[s] / read:.1f}% of those run)" if read else "")
               for s in ("exact", "refused", "WRONG", "crash", "unavailable") if counts[s])]
    groups = Counter(r["group"] for r in rows if r["status"] == "refused")
    if groups:
        lines.append("refusals, by the node kind they name:")
        for group, n in groups.most_common():
            models = [r["model"] for r in rows if r.get("group") == group]
            lines.append(f"  {n:>4}  {group}  ({', '.join(models[:4])}{', ...' if len(models) > 4 else ''})")
    for r in rows:
        if r["status"] in ("WRONG", "crash"):
            lines.append(f"  {r['status']}: {r['model']}: {r['reason']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="timm_survey", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="timm_survey.csv")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--per-family", type=int, default=None)
    p.add_argument("--models", default="", help="comma-separated timm names instead of the sample")
    p.add_argument("--all", action="store_true", help="every model timm lists instead of the sample (over an hour)")
    p.add_argument("--limit", type=int, default=None, help="the first N models of the sample only")
    p.add_argument("--timeout", type=int, default=180, help="seconds per model")
    p.add_argument("--fvcore", action="store_true", help="also compare fvcore's total (slower)")
    args = p.parse_args(argv)
    sys.path.insert(0, REPO)
    warnings.filterwarnings("ignore")
    import timm
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Timeout()))
    if args.models or args.all:
        family = _families()
        names = timm.list_models() if args.all else [n for n in args.models.split(",") if n]
        models = [(family.get(n, "?"), n) for n in names]
    else:
        models = sample(args.per_family)
    models = models[:args.limit] if args.limit else models
    rows: list[dict] = []
    width = len(str(len(models)))
    for i, (family, name) in enumerate(models, 1):
        rows.append(one(family, name, args.size, args.timeout, args.fvcore))
        r = rows[-1]
        print(f"[{i:>{width}}/{len(models)}] {r['status']:<11} {name} ({r.get('seconds', 0)} s)"
              + (f"  {r.get('group') or r.get('reason', '')}"[:160] if r["status"] != "exact" else ""),
              flush=True)
        _write(args.out, rows)
    print(summary(rows))
    return 1 if any(r["status"] in ("WRONG", "crash") for r in rows) else 0


def _families() -> dict:
    """Each model name timm lists -> its module (family)."""
    import timm

    return {name: module for module in timm.list_modules() for name in timm.list_models(module=module)}


if __name__ == "__main__":
    sys.exit(main())
