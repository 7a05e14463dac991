"""One forward pass, observed: every layer's inputs, outputs, parameters and counts (imports torch, lazily).

Two ways to see the layers run:

* `measure`: the layers are modules (`to_module`'s children, or the leaves of an
  ``nn.Sequential``): a pre-hook and a hook on each module record every call.
* `measure_graph`: a module read with torch.fx (``ImportedModule.graph_module``): a
  ``torch.fx.Interpreter`` runs the graph node by node and records the nodes that are layers,
  function calls (``torch.cat``, ``+``) and parameters included.

Either way one ``FlopCounterMode`` is open for the whole pass, and a layer's count is what its
total grew by during the call. fvcore traces the user's module apart (`fvcore_counts`).
The result is a plain-data `Measurement`; nothing is left on the module.
"""

from __future__ import annotations

import warnings

from .device import cuda
from .reconcile import Measurement

FVCORE_DEPRECATION = r"`torch\.jit\.script` is deprecated"
"""The one warning fvcore's import raises under torch >= 2.10 (filtered, nothing broader)."""
FVCORE_DEPRECATION_CATEGORIES = (DeprecationWarning, FutureWarning)
"""torch 2.13 raises that warning as a DeprecationWarning, 2.14 as a FutureWarning."""


def device_label(device: str) -> str:
    """The device as verify names it: ``cpu``, or ``cuda (<GPU name>)`` through `alexcost.torch_run.device`."""
    if device.startswith("cuda"):
        c = cuda()
        index = int(device.split(":")[1]) if ":" in device else c.current_device()
        return f"cuda ({c.get_device_name(index)})"
    return device


def _shape(value):
    """A tensor's shape, a tuple of them for a tuple of tensors, None for anything else; of
    ``(tensor, None)`` (nn.MultiheadAttention without its weights), the tensor's."""
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], torch.Tensor) and value[1] is None:
        return tuple(value[0].shape)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(tuple(v.shape) for v in value)
    return None


def _tensor_shapes(values) -> tuple:
    """The shapes of the tensors among ``values`` (nested lists and dicts flattened), in order."""
    import torch
    from torch.utils._pytree import tree_leaves

    return tuple(tuple(v.shape) for v in tree_leaves(values) if isinstance(v, torch.Tensor))


def _numel(shape) -> int:
    from math import prod

    return sum(prod(s) for s in shape) if shape and isinstance(shape[0], tuple) else prod(shape or (0,))


def _holds_bias(module):
    """Does the module read a bias (a parameter named ``bias``)? For nn.MultiheadAttention with biases, a
    function of its input shapes giving its bias adds: the query's and output's over ``L`` tokens, the
    key's and value's over ``S`` (one per element each)."""
    import torch

    if isinstance(module, torch.nn.MultiheadAttention):
        if module.in_proj_bias is None:
            return False
        e = module.embed_dim
        return lambda inputs: sum(e * (2 * q[0] * q[-2] + 2 * k[0] * k[-2]) for q, k in [inputs[:2]])
    return isinstance(getattr(module, "bias", None), torch.Tensor)


class _Calls:
    """Per-call records (inputs, output, FLOPs, bias adds) in the order the calls happen.

    Bias adds: one per output element of a call that ran a convolution or matrix product
    (torch counted FLOPs) and reads a bias (a parameter named ``bias``); 0 otherwise."""

    def __init__(self, counter):
        self.counter, self.records, self.open = counter, [], []

    def start(self, key, inputs):
        self.open.append((key, _tensor_shapes(inputs), self.counter.get_total_flops()))

    def stop(self, output, bias: bool):
        key, inputs, before = self.open.pop()
        flops = self.counter.get_total_flops() - before
        shape = _shape(output)
        adds = (bias(inputs) if callable(bias) else _numel(shape)) if bias and flops else 0
        self.records.append((key, inputs, shape, flops, adds))


def _new_params(owners) -> tuple[int, ...]:
    """Per layer, the elements of the parameters in ``owners[i]`` that no earlier layer owns."""
    seen: set[int] = set()
    out = []
    for params in owners:
        own = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in own)
        out.append(sum(p.numel() for p in own))
    return tuple(out)


class _CountedAttention:
    """On the CPU, attention as matrix products FlopCounterMode counts: torch's math backend, and not the fused
    multi-head path it takes under no_grad (FlopCounterMode counts no fused CPU attention kernel; on CUDA it
    counts the fused kernels, which run as they are)."""

    def __init__(self, device):
        self.cpu = getattr(device, "type", device) == "cpu"

    def __enter__(self):
        if self.cpu:
            import torch
            from torch.nn.attention import SDPBackend, sdpa_kernel

            self.fastpath = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
            self.backend = sdpa_kernel(SDPBackend.MATH)
            self.backend.__enter__()
        return self

    def __exit__(self, *exc):
        if self.cpu:
            import torch

            self.backend.__exit__(*exc)
            torch.backends.mha.set_fastpath_enabled(self.fastpath)


def _first_use(modules) -> list[int]:
    seen: dict[int, int] = {}
    return [seen.setdefault(id(m), i) for i, m in enumerate(modules)]


def _finish(root, device: str, records, n: int, x, params, fvcore_paths, use_fvcore: bool, total: int):
    import torch

    shapes, inputs, flops, bias = ([None] * n for _ in range(4))
    for i, record in records.items():
        inputs[i], shapes[i], flops[i], bias[i] = record
    if use_fvcore:
        fv, skipped, fv_total, note = fvcore_counts(root, fvcore_paths, x)
    else:
        fv, skipped, fv_total, note = None, ((),) * n, None, "fvcore skipped: not asked for"
    return Measurement(device_label(device), torch.__version__, tuple(shapes), params, tuple(flops), int(total),
                       fv, skipped, fv_total, note, tuple(inputs), tuple(bias),
                       sum(p.numel() for p in root.parameters()))


def measure(root, paths, x, *, use_fvcore: bool = True, device: str | None = None) -> Measurement:
    """Run ``root`` on ``x`` once (plus fvcore's trace) and record every layer.

    ``paths[i]`` is the dotted path of layer ``i``'s module inside ``root`` (``""``: root
    itself); the modules must run in that order, one call per layer (a module may be several
    layers). ``device`` names where it runs (default: ``x``'s device). Hooks are removed
    before returning, whatever happens.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    modules = [root.get_submodule(p) if p else root for p in paths]
    first = _first_use(modules)
    handles = []
    with torch.no_grad(), _CountedAttention(x.device), FlopCounterMode(display=False) as counter:
        calls = _Calls(counter)
        try:
            for i, m in enumerate(modules):
                if first[i] == i:
                    handles.append(m.register_forward_pre_hook(lambda mod, args: calls.start(id(mod), args)))
                    handles.append(m.register_forward_hook(lambda mod, args, out: calls.stop(out, _holds_bias(mod))))
            root(x)
        finally:
            for h in handles:
                h.remove()
    records = {}
    if [r[0] for r in calls.records] == [id(m) for m in modules]:  # one call per layer, in order
        records = {i: r[1:] for i, r in enumerate(calls.records)}
    fvcore_paths = [paths[i] if first[i] == i else None for i in range(len(paths))]
    group = {i: [paths[j] for j in range(len(paths)) if first[j] == i] for i in set(first)}
    return _finish(root, device or str(x.device), records, len(paths), x,
                   _new_params(m.parameters() for m in modules), (fvcore_paths, group), use_fvcore,
                   counter.get_total_flops())


def measure_graph(imported, module, x, *, use_fvcore: bool = True, device: str | None = None) -> Measurement:
    """Run ``imported.graph_module`` (a torch.fx graph over ``module``) on ``x`` node by node and
    record the nodes that are layers (``imported.fx_nodes``); fvcore traces ``module`` itself.

    A layer's inputs are the values of the nodes it reads, but for parameters and buffers read
    by ``get_attr`` (a functional layer's weight and bias), which it owns instead.
    """
    import torch
    from torch.fx import Interpreter
    from torch.fx.node import map_arg
    from torch.utils.flop_counter import FlopCounterMode

    graph_module = imported.graph_module
    nodes = {node.name: node for node in graph_module.graph.nodes}
    layer_of = {name: i for i, name in enumerate(imported.fx_nodes)}
    reads, owners, bias = [], [], []
    for name in imported.fx_nodes:
        node = nodes[name]
        args: list = []
        map_arg((node.args, node.kwargs), args.append)
        attributes = [a for a in args if a.op == "get_attr" and a.name not in layer_of]
        reads.append([a for a in args if a not in attributes])
        if node.op == "call_module":
            held = graph_module.get_submodule(node.target)
            owners.append(list(held.parameters()))
            bias.append(_holds_bias(held))
            continue
        values = {a.target: _fetch(graph_module, a.target) for a in attributes}
        if node.op == "get_attr":
            values = {node.target: _fetch(graph_module, node.target)}
        owners.append([v for v in values.values() if isinstance(v, torch.nn.Parameter)])
        bias.append(any(t.rpartition(".")[2] == "bias" and isinstance(v, torch.Tensor) for t, v in values.items()))

    class Observer(Interpreter):
        def run_node(self, node):
            i = layer_of.get(node.name)
            if i is None:
                return super().run_node(node)
            calls.start(i, [self.env[a] for a in reads[i]])
            out = super().run_node(node)
            calls.stop(out, bias[i])
            return out

    with torch.no_grad(), _CountedAttention(x.device), FlopCounterMode(display=False) as counter:
        calls = _Calls(counter)
        Observer(graph_module).run(x)
    records = {r[0]: r[1:] for r in calls.records}
    first = imported.first_use
    fvcore_paths = [imported.paths[i] if first[i] == i and nodes[imported.fx_nodes[i]].op == "call_module"
                    else None for i in range(len(first))]
    group = {i: [imported.paths[j] for j in range(len(first)) if first[j] == i] for i in set(first)}
    return _finish(module, device or str(x.device), records, len(first), x, _new_params(owners),
                   (fvcore_paths, group), use_fvcore, counter.get_total_flops())


def _fetch(root, target: str):
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


# -- fvcore ---------------------------------------------------------------------------------------

def fvcore_counts(root, where, x):
    """fvcore's count and skipped ops per layer, its total and a note; or Nones and why it was skipped.

    ``where`` is ``(paths, groups)``: ``paths[i]`` the module path fvcore's ``by_module`` files layer
    ``i`` under (None: not a module, or not the first layer to run it), ``groups[i]`` every path of
    that module (fvcore uses the first of them it knows).
    """
    paths, groups = where
    n = len(paths)
    try:
        with warnings.catch_warnings():
            for category in FVCORE_DEPRECATION_CATEGORIES:
                warnings.filterwarnings("ignore", message=FVCORE_DEPRECATION, category=category)
            import fvcore
            from fvcore.nn import FlopCountAnalysis
    except Exception as err:  # noqa: BLE001 - any failure to import means: skip fvcore, say why
        reason = "not installed" if isinstance(err, ModuleNotFoundError) else f"import failed: {one_line(err)}"
        return None, ((),) * n, None, f"fvcore skipped: {reason}"
    try:
        analysis = FlopCountAnalysis(root, (x,))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        by_module = analysis.by_module()
        total = analysis.total()
        counts: list = [None] * n
        skipped: list = [()] * n
        for i, path in enumerate(paths):
            if path is None:
                continue
            name = next((p for p in groups[i] if p in by_module), path)
            counts[i] = int(by_module.get(name, 0))
            skipped[i] = tuple(sorted(analysis.unsupported_ops(name)))
    except Exception as err:  # noqa: BLE001 - fvcore broken by this torch: skip it, say why
        return None, ((),) * n, None, f"fvcore skipped: it failed on this module: {one_line(err)}"
    return tuple(counts), tuple(skipped), int(total), f"fvcore {getattr(fvcore, '__version__', '?')}"


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__
