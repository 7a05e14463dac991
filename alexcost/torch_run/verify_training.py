"""A real training step, measured, and reconciled with `alexcost.training.step` layer by layer.

`measure_training` builds the network in torch (training mode, on the CPU or CUDA), runs
one forward pass under ``torch.autograd.graph.saved_tensors_hooks`` and one backward
pass, both under ``FlopCounterMode``, then one optimizer step. It records, per layer:

* the FLOPs FlopCounterMode counts in the backward pass while the autograd nodes its forward
  pass made run (the nodes behind its outputs that no earlier layer made; the backward
  pass runs one node at a time);
* the bytes of the storages autograd keeps for it: every tensor the pack hook sees,
  still held when the forward pass has returned (a layer whose output nothing reads
  frees what it kept), parameters and buffers excluded, each storage once, on the
  first layer that keeps it;
* any kept tensor modified in place afterwards (the hooks bypass torch's check; a step
  without them would fail in the backward pass);

and the bytes of the gradients and of the optimizer's state. `reconcile_training` is
pure; `verify_training` puts the two together; `render` prints it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable

from ..render.report import dumps_json
from ..units import bytes_text, commas
from ..render.table import render_table
from ..training.step import TrainingCost, training_cost


@dataclass(frozen=True)
class TrainingMeasurement:
    """What one real training step showed, per layer (``None``: not measured)."""

    device: str
    torch_version: str
    forward_flops: tuple
    backward_flops: tuple
    forward_total: int
    backward_total: int
    saved_bytes: tuple[int, ...]
    saved_tensors: tuple[tuple[str, ...], ...]
    saved_total: int
    modified: tuple[str, ...]
    grad_bytes: int
    optimizer_bytes: int
    groups_counted: bool
    peak_bytes: int | None = None


class _Kept:
    """What the pack hook hands autograd: the tensor, the layer that kept it, its version then."""

    __slots__ = ("tensor", "layer", "version", "__weakref__")

    def __init__(self, tensor, layer, version):
        self.tensor, self.layer, self.version = tensor, layer, version


def torch_counts_groups() -> bool:
    """Does this torch's FlopCounterMode count a grouped convolution's weight gradient as if it
    were not grouped? (torch 2.14 does; pytorch/pytorch#183405 divides by ``groups``.) Asked of a
    1x1 convolution in two groups whose weight gradient is 2 MACs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(2, 2, 1, groups=2, bias=False)
    with FlopCounterMode(display=False) as counter:
        conv(torch.ones(1, 2, 1, 1)).sum().backward()
    return counter.get_total_flops() - 4 == 8


def _claim_nodes(index: int, nodes: dict):
    """A forward hook: the autograd nodes behind a layer's outputs that no earlier layer made are its."""
    def hook(module, args, output):
        stack = [t.grad_fn for t in (output if isinstance(output, (tuple, list)) else (output,))
                 if getattr(t, "grad_fn", None) is not None]
        while stack:
            node = stack.pop()
            if node is None or node in nodes or type(node).__name__ == "AccumulateGrad":
                continue
            nodes[node] = index
            stack.extend(fn for fn, _ in node.next_functions)
    return hook


def _count_per_node(nodes: dict, counter, totals: list) -> None:
    """Hooks on every node: the counter's growth while a node runs goes to its layer (nodes run one at a time)."""
    start = [0]

    def before(index):
        def hook(grad_outputs):
            start[0] = counter.get_total_flops()
        return hook

    def after(index):
        def hook(grad_inputs, grad_outputs):
            totals[index] += counter.get_total_flops() - start[0]
        return hook
    for node, index in nodes.items():
        node.register_prehook(before(index))
        node.register_hook(after(index))


def _state_bytes(optimizer) -> int:
    import torch

    return sum(v.untyped_storage().nbytes() for state in optimizer.state.values() for v in state.values()
               if isinstance(v, torch.Tensor))


def make_optimizer(name: str, params):
    """The paper's SGD (momentum 0.9, weight decay 5e-4), plain SGD, or Adam, as torch.optim builds them."""
    import torch

    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    return torch.optim.SGD(params, lr=0.01)


def measure_training(network, *, device: str = "cpu", batch: int = 1, dtype: str = "float32", seed: int = 0,
                     frozen=(), optimizer: str = "momentum") -> TrainingMeasurement:
    """Run one training step of ``network`` on ``device`` and record it (see the module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from . import device as devices
    from ..errors import SpecError
    from .timing import torch_dtype
    from ..torch_bridge.bridge import to_module

    tdtype = torch_dtype(dtype)
    torch.manual_seed(seed)
    root = to_module(network, device=device).to(dtype=tdtype).train()
    for name in (frozen,) if isinstance(frozen, str) else frozen:
        for p in root.get_submodule(name).parameters():
            p.requires_grad_(False)
    modules = [root.get_submodule(name) for name in network.names]
    persistent = {t.untyped_storage().data_ptr() for t in (*root.parameters(), *root.buffers())}
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn((batch, *network.input_shape), generator=generator, device=device, dtype=tdtype)

    current = [None]
    kept: list = []
    nodes: dict = {}

    def enter(index):
        def hook(module, args):
            current[0] = index
        return hook

    def pack(tensor):
        holder = _Kept(tensor, current[0], tensor._version)
        kept.append(weakref.ref(holder))
        return holder

    handles = [m.register_forward_pre_hook(enter(i)) for i, m in enumerate(modules)]
    peak = None
    c = devices.cuda() if device == "cuda" else None
    if c is not None:
        c.synchronize()
        if hasattr(c, "reset_peak_memory_stats"):  # (tests' CUDA stand-in keeps no allocator statistics)
            c.reset_peak_memory_stats()
    top = type(root).__name__
    try:
        # Three passes: FlopCounterMode keeps every module's output alive while it is active, which
        # would keep what a layer nothing reads kept; so the kept tensors are measured without it.
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor):
            out = root(x.clone())
        outs = out if isinstance(out, (tuple, list)) else (out,)
        del out
        held = [h for h in (ref() for ref in kept) if h is not None]
        sizes, owner, what = [0] * len(modules), {}, [[] for _ in modules]
        modified = []
        for h in held:
            storage = h.tensor.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
            if ptr in persistent or h.layer is None:
                continue
            if h.tensor._version != h.version:
                modified.append(f"{network.names[h.layer]}: a kept {list(h.tensor.shape)} tensor is at version "
                                f"{h.tensor._version}, kept at {h.version}")
            what[h.layer].append(f"{list(h.tensor.shape)} {str(h.tensor.dtype).replace('torch.', '')}")
            if nbytes and ptr not in owner:
                owner[ptr] = h.layer
                sizes[h.layer] += nbytes
        del held
        grads = [torch.randn(o.shape, generator=generator, device=device, dtype=tdtype) for o in outs]
        if c is not None:  # the whole step, for its peak memory; on the CPU the graph is simply dropped
            torch.autograd.backward(outs, grads)
            c.synchronize()
            peak = c.max_memory_allocated() if hasattr(c, "max_memory_allocated") else None
        # A holder autograd keeps refers to a tensor whose graph keeps the holder: a cycle through
        # C++ that Python's collector cannot see, which would keep the whole step alive. Cut it.
        for ref in kept:
            holder = ref()
            if holder is not None:
                holder.tensor = None
        del outs
        with torch.no_grad(), FlopCounterMode(display=False, depth=None) as forward:
            root(x.clone())
        # The backward pass, each autograd node's FLOPs on the layer whose forward pass made it.
        makers = [m.register_forward_hook(_claim_nodes(i, nodes)) for i, m in enumerate(modules)]
        try:
            out = root(x.clone())
        finally:
            for h in makers:
                h.remove()
        bwd = [0] * len(modules)
        with FlopCounterMode(display=False, depth=None) as backward:
            _count_per_node(nodes, backward, bwd)
            torch.autograd.backward(out if isinstance(out, (tuple, list)) else (out,), grads)
        del out
        nodes.clear()
    except RuntimeError as err:
        if "not implemented for" in str(err):
            raise SpecError(f"torch cannot run this network's training step in {dtype} on {device}: "
                            f"{' '.join(str(err).split())[:200]}") from None
        raise
    finally:
        for h in handles:
            h.remove()
    fwd_counts = {k: sum(v.values()) for k, v in forward.get_flop_counts().items()}
    fwd = tuple(fwd_counts.get(f"{top}.{name}", 0) for name in network.names)
    fwd_total, bwd_total = fwd_counts.get("Global", 0), backward.get_total_flops()
    bwd = tuple(bwd) if sum(bwd) == bwd_total else (None,) * len(modules)  # some work on no layer's node
    params = [p for p in root.parameters() if p.grad is not None]
    grad_bytes = sum(p.grad.untyped_storage().nbytes() for p in params)
    opt = make_optimizer(optimizer, params)
    opt.step()
    device_name = device if device != "cuda" else f"cuda ({devices.cuda().get_device_name()})"
    return TrainingMeasurement(device_name, torch.__version__, fwd, bwd, fwd_total, bwd_total, tuple(sizes),
                               tuple(tuple(w) for w in what), sum(sizes), tuple(modified), grad_bytes,
                               _state_bytes(opt), torch_counts_groups(), peak)


# -- the reconciliation (pure) -------------------------------------------------------------

@dataclass(frozen=True)
class TrainingLayerCheck:
    """One layer: alexcost's backward FLOPs and kept bytes beside torch's."""

    index: int
    name: str
    type: str
    backward_macs: int
    torch_expected: int
    torch: int | None
    saved_expected: int
    saved: int
    kept: tuple[str, ...]
    measured_kept: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class TrainingReconciliation:
    """Every layer's checks and the totals; ``ok`` when everything agrees."""

    model: str
    device: str
    batch: int
    dtype: str
    optimizer: str
    torch_version: str
    groups_counted: bool
    layers: tuple[TrainingLayerCheck, ...]
    backward_macs: int
    torch_backward_expected: int
    torch_backward: int
    saved_expected: int
    saved: int
    grad_bytes_expected: int
    grad_bytes: int
    optimizer_bytes_expected: int
    optimizer_bytes: int
    peak_model: int
    peak_measured: int | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def reconcile_training(t: TrainingCost, m: TrainingMeasurement) -> TrainingReconciliation:
    """Compare the static training step ``t`` with the measured one ``m``, layer by layer."""
    checks, problems = [], []
    layer_of = {r.name: r for r in t.layers}
    expected_total = 0
    for r, got_flops, got_saved, got_kept in zip(t.layers, m.backward_flops, m.saved_bytes, m.saved_tensors):
        layer = t.forward.layers[r.index]
        expected = 0
        if r.grads is not None:
            expected = t.batch * layer.layer.torch_backward_flops(layer.input_shape, layer.output_shape, r.grads,
                                                                  groups_counted=m.groups_counted)
        expected_total += expected
        issues = []
        if got_flops is not None and got_flops != expected:
            issues.append(f"backward FLOPs: alexcost {commas(expected)}, torch's counter {commas(got_flops)}")
        if got_saved != r.saved_bytes:
            issues.append(f"kept bytes: alexcost {commas(r.saved_bytes)}, torch's saved-tensor hooks "
                          f"{commas(got_saved)}")
        kept = tuple(s.what + (f" (= {s.kept_by})" if s.kept_by else "") for s in layer_of[r.name].saved)
        checks.append(TrainingLayerCheck(r.index, r.name, r.type, r.backward_macs, expected, got_flops,
                                         r.saved_bytes, got_saved, kept, got_kept, tuple(issues)))
        problems += [f"{r.name}: {p}" for p in issues]
    if expected_total != m.backward_total:
        problems.append(f"total backward FLOPs: alexcost {commas(expected_total)}, torch's counter "
                        f"{commas(m.backward_total)}")
    if 2 * t.forward_macs != m.forward_total:
        problems.append(f"total forward FLOPs: alexcost 2*MACs = {commas(2 * t.forward_macs)}, torch's counter "
                        f"{commas(m.forward_total)}")
    if t.saved_bytes != m.saved_total:
        problems.append(f"total kept bytes: alexcost {commas(t.saved_bytes)}, torch {commas(m.saved_total)}")
    if t.grad_bytes != m.grad_bytes:
        problems.append(f"gradient bytes: alexcost {commas(t.grad_bytes)}, torch {commas(m.grad_bytes)}")
    if t.optimizer_bytes != m.optimizer_bytes:
        problems.append(f"optimizer state bytes ({t.optimizer}): alexcost {commas(t.optimizer_bytes)}, "
                        f"torch {commas(m.optimizer_bytes)}")
    problems += [f"modified in place after being kept (torch's backward would fail without hooks): {p}"
                 for p in m.modified]
    return TrainingReconciliation(t.model, m.device, t.batch, t.dtype, t.optimizer, m.torch_version, m.groups_counted,
                                  tuple(checks), t.backward_macs, expected_total, m.backward_total, t.saved_bytes,
                                  m.saved_total, t.grad_bytes, m.grad_bytes, t.optimizer_bytes, m.optimizer_bytes,
                                  t.memory.peak, m.peak_bytes, tuple(problems))


def verify_training(network, *, device: str = "auto", batch: int = 1, dtype: str = "float32", seed: int = 0,
                    frozen=(), optimizer: str = "momentum",
                    progress: Callable[[str], None] | None = None) -> TrainingReconciliation:
    """Derive the training step of ``network`` with torch's rules for ``device``, run it there,
    and reconcile backward FLOPs, kept bytes, gradients and optimizer state."""
    from .device import resolve_device
    from .timing import check_dtype

    say = progress or (lambda message: None)
    dev = resolve_device(device)
    check_dtype(dtype, dev)
    static = training_cost(network, batch, "float32" if dtype == "tf32" else dtype, device=dev,
                           optimizer=optimizer, frozen=frozen)
    say(f"one training step of {network.name} on {dev}, batch {batch}, {dtype}")
    measured = measure_training(network, device=dev, batch=batch, dtype=dtype, seed=seed, frozen=frozen,
                                optimizer=optimizer)
    return reconcile_training(static, measured)


# -- rendering -------------------------------------------------------------------------------

HEADERS = ("#", "layer", "type", "bwd MACs", "expected torch FLOPs", "torch FLOPs", "kept bytes", "torch kept",
           "kept", "verdict")


def verdict_line(rec: TrainingReconciliation) -> str:
    where = f"on {rec.device}, batch {rec.batch}, {rec.dtype}, torch {rec.torch_version}"
    if rec.ok:
        return (f"verify --training {rec.model}: OK: every layer's backward FLOPs and kept bytes, the gradients "
                f"and the {rec.optimizer} state agree ({where})")
    return f"verify --training {rec.model}: MISMATCH in {len(rec.problems)} comparison(s) ({where})"


def render_text(rec: TrainingReconciliation) -> str:
    def num(v):
        return "-" if v is None else commas(v)
    rows = [[str(c.index), c.name, c.type, commas(c.backward_macs), commas(c.torch_expected), num(c.torch),
             commas(c.saved_expected), commas(c.saved), ", ".join(c.kept) or "-",
             "ok" if c.ok else "MISMATCH"] for c in rec.layers]
    rows.append(["", "total", "", commas(rec.backward_macs), commas(rec.torch_backward_expected),
                 commas(rec.torch_backward), commas(rec.saved_expected), commas(rec.saved), "", ""])
    out = [f"alexcost verify --training: {rec.model} on {rec.device}, batch {rec.batch}, {rec.dtype} "
           f"(torch {rec.torch_version})", "",
           render_table(HEADERS, rows, ("right", "left", "left", *["right"] * 5, "left", "left")), "",
           "bwd MACs: alexcost's (gradients of input and weight); expected torch FLOPs: 2 per backward MAC"
           + (", a grouped convolution's weight gradient counted groups times, as this torch's FlopCounterMode does"
              if rec.groups_counted else "")
           + "; kept bytes: storages autograd keeps, each once, on the first layer keeping it.",
           f"gradients: alexcost {commas(rec.grad_bytes_expected)} bytes, torch {commas(rec.grad_bytes)}; "
           f"{rec.optimizer} state: alexcost {commas(rec.optimizer_bytes_expected)}, torch {commas(rec.optimizer_bytes)}"]
    if any(c.torch is None for c in rec.layers):
        out.append("torch attributed part of the backward pass to no layer: per-layer backward FLOPs are not "
                   "compared, the total is")
    if rec.peak_measured is not None:
        out.append(f"peak memory: alexcost's model {bytes_text(rec.peak_model)}, torch.cuda.max_memory_allocated "
                   f"{bytes_text(rec.peak_measured)} (the model leaves out workspaces and allocator rounding)")
    if rec.problems:
        out += [""] + [f"MISMATCH {p}" for p in rec.problems]
    out += ["", verdict_line(rec)]
    return "\n".join(out) + "\n"


def to_dict(rec: TrainingReconciliation) -> dict:
    return {"model": rec.model, "device": rec.device, "batch": rec.batch, "dtype": rec.dtype,
            "optimizer": rec.optimizer, "torch": rec.torch_version, "torch_counts_groups": rec.groups_counted,
            "ok": rec.ok, "verdict": verdict_line(rec),
            "layers": [{"index": c.index, "name": c.name, "type": c.type, "backward_macs": c.backward_macs,
                        "torch_backward_flops_expected": c.torch_expected, "torch_backward_flops": c.torch,
                        "saved_bytes": c.saved_expected, "measured_saved_bytes": c.saved, "kept": list(c.kept),
                        "measured_kept": list(c.measured_kept), "ok": c.ok, "problems": list(c.problems)}
                       for c in rec.layers],
            "totals": {"backward_macs": rec.backward_macs, "torch_backward_flops_expected": rec.torch_backward_expected,
                       "torch_backward_flops": rec.torch_backward, "saved_bytes": rec.saved_expected,
                       "measured_saved_bytes": rec.saved, "grad_bytes": rec.grad_bytes_expected,
                       "measured_grad_bytes": rec.grad_bytes, "optimizer_bytes": rec.optimizer_bytes_expected,
                       "measured_optimizer_bytes": rec.optimizer_bytes, "peak_bytes_model": rec.peak_model,
                       "measured_peak_bytes": rec.peak_measured},
            "problems": list(rec.problems)}


def render(rec: TrainingReconciliation, fmt: str = "table") -> str:
    """``table`` (text) or ``json``."""
    if fmt == "table":
        return render_text(rec)
    if fmt == "json":
        return dumps_json(to_dict(rec))
    raise ValueError(f"unknown format {fmt!r}; choose table or json")
