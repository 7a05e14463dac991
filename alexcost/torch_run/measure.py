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

import operator
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
    """A tensor's shape, a tuple of them for a tuple of tensors, None for anything else; of a tuple of
    one tensor and plain values (nn.MultiheadAttention's ``(tensor, None)`` without its weights, a helper's
    ``(tensor, dims)``), the tensor's."""
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    tensors = [v for v in value if isinstance(v, torch.Tensor)] if isinstance(value, tuple) else []
    if len(tensors) == 1 and isinstance(value[0], torch.Tensor) and len(value) > 1 and not any(
            isinstance(v, (tuple, list, dict)) for v in value[1:]):
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


def _bias_mode(biases):
    """A dispatch mode counting bias adds as torch runs them: the output elements of every
    ``addmm``, ``baddbmm`` or ``convolution`` given one of ``biases`` (tensors, matched by their
    storage), and of every ``add`` of one to a product (``F.linear`` on a strided input)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    where = {aten.addmm.default: (0,), aten.baddbmm.default: (0,), aten.convolution.default: (2,),
             aten.add.Tensor: (0, 1), aten.add_.Tensor: (0, 1)}
    storages = {b.untyped_storage().data_ptr() for b in biases}

    def is_bias(value):
        return isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() in storages

    class BiasAdds(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if any(i < len(args) and is_bias(args[i]) for i in where.get(func, ())):
                self.total += out.numel()
            return out

    return BiasAdds()


def _new_params(owners) -> tuple[int, ...]:
    """Per layer, the elements of the parameters in ``owners[i]`` that no earlier layer owns."""
    seen: set[int] = set()
    out = []
    for params in owners:
        own = {id(p): p for p in params if id(p) not in seen}
        seen.update(own)
        out.append(sum(p.numel() for p in own.values()))
    return tuple(out)


class CountedAttention:
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


def _finish(root, device: str, records, n: int, x, params, fvcore_paths, use_fvcore: bool, total: int,
            groups=(None, ())):
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
                       sum(p.numel() for p in root.parameters()), *groups)


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
    with torch.no_grad(), CountedAttention(x.device), FlopCounterMode(display=False) as counter:
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


SHAPE_ONLY = ("expand_as", "view_as", "reshape_as", "type_as")
"""Tensor methods whose second tensor is read for its shape or dtype only: not one of the layer's inputs."""


SIZES = (getattr, "size", "dim", "numel")
"""Calls that read a tensor's size only (``x.shape``, ``x.size(0)``): they belong to no layer."""


def node_groups(graph, fx_nodes) -> tuple[dict, dict]:
    """Which fx nodes each layer node stands for, and which layers each node made.

    A node no layer comes from (a ``gather`` and ``view`` feeding a position bias, a helper function
    feeding a whole attention call) belongs to the one layer node all its users lead to; failing that,
    to the one layer node all its inputs come from (an ``unbind`` and its items, read as layers made
    at the node before them). A node several layers come from (``einsum``: Transpose + Matmul;
    ``stack``: Unsqueeze per tensor + Cat) is measured once, for all of them. Returns ``owner`` (node
    name -> layer node name) and ``layers`` (layer node name -> the indices of its layers, in order).
    """
    layers: dict[str, list[int]] = {}
    for i, name in enumerate(fx_nodes):
        layers.setdefault(name, []).append(i)
    owner = {name: name for name in layers}
    nodes = [n for n in graph.nodes if n.name not in owner and n.op in ("call_function", "call_method", "call_module")
             and n.target not in SIZES  # a size read of a tensor belongs to no layer,
             and not (n.target is operator.getitem and getattr(n.args[0], "name", None) in layers)]  # nor an output
    items = [n for n in nodes if n.target is operator.getitem and getattr(n.args[0], "op", "get_attr") != "get_attr"]
    _absorb_users(reversed([n for n in nodes if n not in items]), owner)
    for node in nodes:  # then the items of a value made at one layer node, with that value
        sources = {owner.get(a.name) for a in node.all_input_nodes if a.op != "get_attr"}
        if node.name not in owner and len(sources) == 1 and None not in sources:
            owner[node.name] = sources.pop()
    _absorb_users(reversed(nodes), owner)
    return owner, layers


def _inputs(env, node, reads, out) -> tuple:
    """The shapes of the tensors ``node`` read from outside its group (``reads``); an item taken from a tuple
    another node returned reads that item alone (``out``)."""
    if node.target is operator.getitem and isinstance(env.get(node.args[0]), (tuple, list)):
        return _tensor_shapes([out]) if reads else ()
    return _tensor_shapes([env[a] for a in reads])


def _absorb_users(nodes, owner: dict) -> None:
    """Each node not yet placed goes to the one layer node all its users lead to."""
    for node in nodes:
        if node.name not in owner:
            targets = {owner.get(user.name) for user in node.users}
            if len(targets) == 1 and None not in targets:
                owner[node.name] = targets.pop()


def _reads(graph_module, node, layer_of) -> tuple[list, list]:
    """The nodes ``node`` reads as inputs, and the parameters it owns (those it reads by ``get_attr``,
    or its module's)."""
    import torch
    from torch.fx.node import map_arg

    args: list = []
    map_arg((node.args[:1], node.kwargs) if node.op == "call_method" and node.target in SHAPE_ONLY
            else (node.args, node.kwargs), args.append)
    attributes = [a for a in args if a.op == "get_attr" and a.name not in layer_of]
    reads = [a for a in args if a not in attributes]
    if node.op == "call_module":
        return reads, list(graph_module.get_submodule(node.target).parameters())
    targets = [node.target] if node.op == "get_attr" else [a.target for a in attributes]
    return reads, [v for v in (_fetch(graph_module, t) for t in targets) if isinstance(v, torch.nn.Parameter)]


def measure_graph(imported, module, x, *, use_fvcore: bool = True, device: str | None = None) -> Measurement:
    """Run ``imported.graph_module`` (a torch.fx graph over ``module``) on ``x`` node by node and
    record the nodes that are layers (``imported.fx_nodes``); fvcore traces ``module`` itself.

    The nodes are measured in groups (`node_groups`): a group's FLOPs, bias adds and parameters are
    the sums over its nodes, filed under its last layer (``Measurement.holders``). A group's inputs
    are the values of the nodes it reads from outside, but for parameters and buffers read by
    ``get_attr`` (a functional layer's weight and bias), which it owns instead.
    """
    import torch
    from torch.fx import Interpreter
    from torch.utils.flop_counter import FlopCounterMode

    graph_module = imported.graph_module
    nodes = {node.name: node for node in graph_module.graph.nodes}
    owner, layers = node_groups(graph_module.graph, imported.fx_nodes)
    holder = {name: indices[-1] for name, indices in layers.items()}
    reads, owners = {}, [[] for _ in imported.fx_nodes]
    for name, key in owner.items():
        reads[name], params = _reads(graph_module, nodes[name], layers)
        owners[holder[key]] += params
    mha = {name for name in layers if nodes[name].op == "call_module" and callable(
        _holds_bias(graph_module.get_submodule(nodes[name].target)))}
    seen = {key: [[], 0, 0, None] for key in layers}  # inputs, FLOPs, bias adds, output

    class Observer(Interpreter):
        def run_node(self, node):
            key = owner.get(node.name)
            if key is None:
                return super().run_node(node)
            record = seen[key]
            flops, adds = counter.get_total_flops(), biases.total
            out = super().run_node(node)
            record[0] += _inputs(self.env, node, [a for a in reads[node.name] if owner.get(a.name) != key], out)
            record[1] += counter.get_total_flops() - flops
            record[2] += biases.total - adds
            if _shape(out) is not None:  # the group's output: its last node's tensor
                record[3] = _shape(out)
            return out

    bias_tensors = [p for name, p in module.named_parameters() if name.rpartition(".")[2] == "bias"]
    with torch.no_grad(), CountedAttention(x.device), FlopCounterMode(display=False) as counter, \
            _bias_mode(bias_tensors) as biases:
        Observer(graph_module).run(x)
    records = {}
    for key, (inputs, flops, adds, shape) in seen.items():
        if key in mha:
            adds = _holds_bias(graph_module.get_submodule(nodes[key].target))(tuple(inputs))
        records[holder[key]] = (tuple(inputs), shape, flops, adds if flops else 0)
    holders = tuple(holder[name] for name in imported.fx_nodes)
    einsums = tuple((holder[name], nodes[name].args[0]) for name in layers
                    if nodes[name].target is torch.einsum and isinstance(nodes[name].args[0], str))
    first = imported.first_use
    fvcore_paths = [imported.paths[i] if first[i] == i and nodes[imported.fx_nodes[i]].op == "call_module"
                    else None for i in range(len(first))]
    group = {i: [imported.paths[j] for j in range(len(first)) if first[j] == i] for i in set(first)}
    return _finish(module, device or str(x.device), records, len(first), x, _new_params(owners),
                   (fvcore_paths, group), use_fvcore, counter.get_total_flops(), (holders, einsums))


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
