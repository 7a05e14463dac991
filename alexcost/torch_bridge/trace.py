"""Tracing a module's ``forward`` with torch.fx, without data, and refusing what a trace would miss.

A module whose class is a torch.nn class alexcost has a kind for (or a subclass of one that
changes nothing its forward runs) is a leaf: one ``call_module`` node. Other torch.nn modules
are leaves too, refused later by name; every other module is traced through, so its forward
becomes the functions and methods it calls. The trace runs in eval mode (inference counts)
and leaves the module as it was: training flags restored, no attribute left behind.

Refused before tracing, because torch would run code the trace does not see: forward hooks
and pre-hooks (on a module, or torch's global ones), a ``forward`` replaced on an instance,
parametrized weights, lazy modules not yet initialised, TorchScript and ``torch.compile`` wrappers.

What an eval-mode trace cannot see of a training step is found while tracing:

* each node made while ``forward`` has changed torch's modes (grad mode off, inference mode,
  autocast, ``torch.utils.checkpoint`` or other saved-tensor hooks) carries what changed in
  ``node.meta[MODE]`` (`mode_of`), and how a training step counts it in ``node.meta[REGION]``
  (None: not modelled, refused by the reader);
* a module whose forward tests ``self.training`` (``if self.training:``) is recorded with the
  source line (`Trace.branches`), and the module is traced again with the tests answering true:
  where that graph differs, `Trace.train_differs` says how; ``self.training`` passed on as an
  argument (``F.dropout(x, training=self.training)``) is not a test: those calls are read as eval
  mode, which the layer kinds count in both modes;
* calls of ``torch.is_grad_enabled()`` from the module's code are recorded (`Trace.grad_reads`).

Imports torch.
"""

from __future__ import annotations

import collections
import inspect
import os
import sys
import traceback
from dataclasses import dataclass

from ..errors import SpecError
from ..layers import BUILTIN_KINDS, LAYER_KINDS, Pad
from .custom import custom_reads
from .regions import MODE, REGION, Regions, mode_of, modes
from . import third_party
from .shapes import RawCalls, SizedProxy
from .train_graph import batch_norm_training, differences

_HARMLESS = frozenset({"__init__", "__repr__", "extra_repr", "reset_parameters", "__setstate__", "__getstate__",
                       "_get_name", "_save_to_state_dict", "_load_from_state_dict"})
"""Methods a subclass of a known module may override without changing what its forward computes."""

PADDING_MODULES = "torch.nn.modules.padding"
"""Where torch.nn's padding modules live (ConstantPad2d, ReflectionPad2d, ...): each forward is one
``F.pad`` call, so each is read as `alexcost.layers.Pad` (ZeroPad2d as the kind of its name)."""

_KINDS: dict[type, object] = {}
MAX_DEPTH = 1000
"""Deepest module nesting read (torch's own forward runs out of Python's default recursion
limit near 250 levels; alexcost raises the limit while it traces)."""


def where_module(path: str, module) -> str:
    """How messages name a module: ``module 'layer1.0' (BasicBlock)``."""
    return f"module {path or '(root)'!r} ({type(module).__name__})"


def kind_of(cls: type):
    """The alexcost kind a module class is read as, or None.

    A torch.nn class alexcost has a kind of the same name, a class a registered kind names in
    ``torch_reads`` (``register_layer(..., reads=nn.PReLU)``), or a subclass of either that
    overrides none of the methods its forward runs (``class MyConv(nn.Conv2d): pass``); torch.nn's
    padding modules are `Pad`.
    """
    classes = custom_reads()[0]
    if classes:
        for depth, base in enumerate(cls.__mro__):
            if base in classes:
                return None if _overrides(cls, depth, base) else classes[base]
    if cls in _KINDS:
        return _KINDS[cls]
    import torch.nn as nn

    kind = None
    for depth, base in enumerate(cls.__mro__):
        candidate = LAYER_KINDS.get(base.__name__)
        if candidate is not None and candidate in BUILTIN_KINDS and getattr(nn, base.__name__, None) is base:
            kind = None if _overrides(cls, depth, base) else candidate
            break
    if kind is None and cls.__module__ == PADDING_MODULES:
        kind = Pad
    _KINDS[cls] = kind
    return kind


def _overrides(cls: type, depth: int, base: type) -> bool:
    """Does ``cls`` override a method of ``base`` (its ``depth``-th ancestor) that its forward may run?"""
    return any(callable(value) and name not in _HARMLESS and hasattr(base, name)
               for sub in cls.__mro__[:depth] for name, value in vars(sub).items())


class _Tracer:
    """Made on first use: the fx Tracer subclass (importing torch.fx only when a module is read)."""

    cls = None

    @classmethod
    def make(cls, aliases, worlds=None):
        if cls.cls is None:
            cls.cls = _tracer_class(_proxy_class())
        return cls.cls(aliases, worlds)


def _proxy_class():
    """fx's Proxy with in-place operators and known sizes (see `Proxy`'s docstring)."""
    import operator

    import torch.fx

    class Proxy(SizedProxy, torch.fx.Proxy):
        """fx's Proxy has no in-place operators, so ``a += b`` would trace as ``a + b``: a new
        tensor where torch adds in place. These record ``operator.iadd``, ``operator.imul``,
        ``operator.isub``, ``operator.itruediv`` and ``operator.ipow``; and ``x[index] = y``,
        ``operator.setitem``."""

        def __iadd__(self, other):
            return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

        def __imul__(self, other):
            return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

        def __isub__(self, other):
            return self.tracer.create_proxy("call_function", operator.isub, (self, other), {})

        def __itruediv__(self, other):
            return self.tracer.create_proxy("call_function", operator.itruediv, (self, other), {})

        def __ipow__(self, other):
            return self.tracer.create_proxy("call_function", operator.ipow, (self, other), {})

        def __setitem__(self, index, value):
            self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    return Proxy


def _tracer_class(Proxy):
    """The fx Tracer subclass alexcost traces with, making ``Proxy`` values."""
    import torch
    import torch.fx

    Scope = _scope_class()

    class Tracer(RawCalls, torch.fx.Tracer):
        proxy_buffer_attributes = True  # what the forward computes from a buffer is recorded, as a parameter's

        def __init__(self, aliases, worlds=None):
            super().__init__(autowrap_functions=third_party.leaves())
            self.module_stack, self.scope = _Stack(), Scope("", None)
            self.aliases, self.worlds, self.raw = aliases, worlds, False
            if worlds is not None:
                worlds.tracer = self
            self.alias_calls: dict = {}
            self.flag_args = False  # has a node taken self.training as an argument?
            self.modes = modes()
            self.regions = Regions()

        def proxy(self, node):
            return Proxy(node, self)

        def create_arg(self, a):
            return _argument(self, a, Proxy, super().create_arg)

        def create_node(self, *args, **kwargs):
            node = super().create_node(*args, **kwargs)
            now = modes()
            if now != self.modes:
                node.meta[MODE] = mode_of(now, self.modes)
                node.meta[REGION] = self.regions.of(now, self.modes)
            if self.worlds is not None:
                self.worlds.add(node)
            return node

        def getattr(self, attr, attr_val, parameter_proxy_cache):
            """fx's answer: a module's attribute that is no tensor (a submodule, a number) is
            itself, found without fx's test for a parameter."""
            if not isinstance(attr_val, torch.Tensor):
                return attr_val
            return super().getattr(attr, attr_val, parameter_proxy_cache)

        def is_leaf_module(self, m, qualified_name: str) -> bool:
            if kind_of(type(m)) is not None:
                return True
            return super().is_leaf_module(m, qualified_name)

        def path_of_module(self, mod) -> str:
            return _alias_path(self, mod) or super().path_of_module(mod)

    return Tracer


def _scope_class():
    import torch.fx

    class Scope(torch.fx.proxy.Scope):
        """fx's ``Scope`` (the module path and type being traced), copied directly on each module call."""

        def __copy__(self):
            return Scope(self.module_path, self.module_type)

    return Scope


def _argument(tracer, a, proxy: type, fx_own):
    """fx's own ``create_arg(a)``, answered at once for what most arguments are (a ``proxy`` of this
    trace, a plain int, float, bool, str or None, a tuple or list of them, keyword arguments), which
    fx answers the same after testing for parameters, tensors, modules and named tuples;
    ``fx_own(a)`` for the rest."""
    kind = type(a)
    if kind is proxy:
        return a.node
    if kind is _TrainingFlag:  # self.training passed on as an argument (fx keeps the int)
        tracer.flag_args = True
        return a
    if kind in _PLAIN:
        return a
    if kind is tuple:
        return tuple([tracer.create_arg(v) for v in a])
    if kind is list:
        return [tracer.create_arg(v) for v in a]
    if kind is dict and all(type(k) is str for k in a):  # keyword arguments
        return {k: tracer.create_arg(v) for k, v in a.items()}
    return fx_own(a)


_PLAIN = frozenset({int, float, bool, str, type(None)})
"""Argument types fx's ``create_arg`` returns as they are (exact types: a subclass takes fx's own path)."""


class _Stack(collections.OrderedDict):
    """fx's module stack, copied onto every node's ``nn_module_stack`` as the same OrderedDict, without
    ``copy.copy``'s generic path."""

    def __copy__(self):
        return collections.OrderedDict(self)


def _alias_path(tracer, mod) -> str | None:
    """A module registered under several names (nn.Sequential(conv, relu, conv)) is named by where
    its caller holds it, in the order the caller calls it; None for any other module."""
    if id(mod) not in tracer.aliases:
        return None
    parent_path = next(reversed(tracer.module_stack.values()))[0] if tracer.module_stack else ""
    parent = tracer.root.get_submodule(parent_path)
    names = [n for n, child in parent._modules.items() if child is mod]
    if not names:
        return None
    key = (id(mod), parent_path)
    calls = tracer.alias_calls.get(key, 0)
    tracer.alias_calls[key] = calls + 1
    name = names[calls % len(names)]
    return f"{parent_path}.{name}" if parent_path else name


@dataclass(frozen=True)
class Trace:
    """What tracing gives: the fx graph, every module by path, and the constants fx stowed
    away (kept here, not on the user's module)."""

    graph: object
    modules: dict
    constants: dict
    branches: tuple = ()
    """``(module path, module, source line)`` of each test of ``self.training`` in a module in eval mode."""
    train_differs: str = ""
    """Where those tests make the forward run another graph in training mode (in words; "" if none)."""
    batch_stats: frozenset = frozenset()
    """The ``F.batch_norm`` nodes that normalise with the batch's statistics in training mode: ``self.training``
    passed as their ``training``, or ``True`` there in the training-mode graph (nn.BatchNorm2d's own code, copied
    into timm's ``BatchNormAct2d``)."""


def _user_frame(frames) -> str:
    """`` (at file:line: source)`` for the innermost frame outside torch and alexcost, or ''."""
    import torch

    torch_dir = os.path.dirname(torch.__file__) + os.sep
    ours = os.path.dirname(os.path.dirname(__file__)) + os.sep
    frames = [f for f in frames if not f.filename.startswith(torch_dir) and not f.filename.startswith(ours)]
    return f" (at {frames[-1].filename}:{frames[-1].lineno}: {(frames[-1].line or '').strip()})" if frames else ""


class _TrainingFlag(int):
    """A traced-through module's ``training`` while its forward is traced: false (eval mode, as
    alexcost reads), each test of its truth recorded with where it was made. As an argument
    (``F.dropout(x, training=self.training)``) it is replaced by False after the trace."""

    def __new__(cls, tests: list, path: str, module, training: bool, answer: bool = False):
        flag = int.__new__(cls, 0)
        flag.tests, flag.path, flag.module, flag.training, flag.answer = tests, path, module, training, answer
        return flag

    def __bool__(self):
        self.tests.append((self.path, self.module, self.training, _user_frame(traceback.extract_stack()[:-1])))
        return self.answer

    def __eq__(self, other):
        return bool(self) == other

    def __ne__(self, other):
        return bool(self) != other

    __hash__ = int.__hash__


class _GradModeReads:
    """``torch.is_grad_enabled`` while tracing: the same answer, each call from outside torch recorded."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self):
        import torch

        caller = sys._getframe(1).f_code.co_filename
        if not caller.startswith(os.path.dirname(torch.__file__) + os.sep):
            self.calls.append(_user_frame(traceback.extract_stack()[:-1]))
        return self.real()


def _refuse_wrappers(path: str, m) -> None:
    """TorchScript and torch.compile wrappers: what they run is not a forward fx can trace."""
    import torch

    if isinstance(m, torch.jit.ScriptModule):
        raise SpecError(f"{where_module(path, m)} is a TorchScript module (torch.jit.trace or torch.jit.script): "
                        f"alexcost reads a module's Python forward; pass the eager module it was made from")
    if type(m).__name__ == "OptimizedModule" and isinstance(getattr(m, "_orig_mod", None), torch.nn.Module):
        raise SpecError(f"{where_module(path, m)} is compiled with torch.compile: alexcost reads the eager "
                        f"module it compiles; pass module._orig_mod (or the module you compiled)")


def _depth(root) -> int:
    deepest, stack = 0, [(root, 0)]
    seen = set()
    while stack:
        module, depth = stack.pop()
        deepest = max(deepest, depth)
        if id(module) in seen:
            continue
        seen.add(id(module))
        stack.extend((child, depth + 1) for child in module._modules.values() if child is not None)
    return deepest


def _traced_instance_forward(path: str, m) -> bool:
    """Does fx trace the forward set on this instance? It does for a module called from its parent and traced
    through (``nn.Module.__call__`` runs ``self.forward``), not for the root (fx traces its class's forward)
    nor for a leaf (read as its kind, or a torch.nn module fx keeps whole); alexcost reads it where it is a
    method of the module itself, bound to it (``self.forward = self.forward_split_cat``)."""
    forward = m.__dict__["forward"]
    return (bool(path) and kind_of(type(m)) is None and not type(m).__module__.startswith("torch.")
            and getattr(forward, "__self__", None) is m and getattr(type(m), getattr(forward, "__name__", ""),
                                                                     None) is getattr(forward, "__func__", None))


def _refuse_unseen_code(modules) -> None:
    """Refuse what torch would run on a forward pass but a trace would not see."""
    import torch
    from torch.nn.modules import module as torch_module
    from torch.nn.parameter import is_lazy
    from torch.nn.utils import parametrize

    for kind, hooks in (("forward hook", torch_module._global_forward_hooks),
                        ("forward pre-hook", torch_module._global_forward_pre_hooks)):
        if hooks:
            raise SpecError(f"torch has {len(hooks)} global {kind}(s) registered (torch.nn.modules.module."
                            f"register_module_{kind.replace(' ', '_').replace('-', '_')}): they run on every "
                            f"module and alexcost cannot see what they compute; remove them first")
    for path, m in modules.items():
        _refuse_wrappers(path, m)
        for name, t in [*m._parameters.items(), *m._buffers.items()]:
            if isinstance(t, torch.Tensor) and is_lazy(t):
                raise SpecError(f"{where_module(path, m)} has an uninitialized {name!r} (a lazy module): run "
                                f"it once on data so that its shapes are known")
        for kind, hooks in (("forward hook", m._forward_hooks), ("forward pre-hook", m._forward_pre_hooks)):
            if hooks:
                raise SpecError(f"{where_module(path, m)} has {len(hooks)} {kind}(s): torch runs them on "
                                f"every call and they may change its input or output; alexcost cannot see "
                                f"what they compute; remove them first")
        if "forward" in m.__dict__ and not _traced_instance_forward(path, m):
            raise SpecError(f"{where_module(path, m)} has its forward replaced on the instance; alexcost reads "
                            f"a module's class forward only, or, in a module it traces through (not the root, "
                            f"not a layer kind), a method of its own (timm's self.forward = self.forward_split_cat)")
        if _may_hold_parametrizations(m) and parametrize.is_parametrized(m):
            raise SpecError(f"{where_module(path, m)} has parametrized tensors "
                            f"({', '.join(m.parametrizations)}): torch recomputes them on every call; "
                            f"alexcost does not read parametrizations")


def _may_hold_parametrizations(m) -> bool:
    """Could ``getattr(m, "parametrizations")`` find anything (a submodule, an attribute, a class
    attribute)? Where it could not, torch's ``is_parametrized`` is false, found without the exception
    ``nn.Module.__getattr__`` raises for a missing name."""
    return "parametrizations" in m._modules or "parametrizations" in m.__dict__ or \
        hasattr(type(m), "parametrizations")


def _forward_inputs(root):
    """fx's concrete_args: every forward argument after the input, fixed at its default."""
    try:
        signature = inspect.signature(type(root).forward)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    where = where_module("", root)
    if not positional:
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            return None
        raise SpecError(f"{where}: forward() takes no input tensor")
    concrete = {}
    for p in params:
        if p is positional[0] or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise SpecError(f"{where}: forward() needs an argument {p.name!r} besides its input; alexcost "
                            f"reads modules that take one input tensor")
        concrete[p.name] = p.default
    return concrete or None


def _located(err: BaseException, tracer, root) -> SpecError:
    """The trace's failure as one line: the module being traced, the source line, the reason."""
    import torch
    from torch.fx.proxy import TraceError

    path, kind = "", type(root).__name__
    if tracer is not None and tracer.module_stack:
        path, cls = next(reversed(tracer.module_stack.values()))
        kind = getattr(cls, "__name__", str(cls))
    at = _user_frame(traceback.extract_tb(err.__traceback__))
    if isinstance(err, TraceError):
        why = (f"its forward() branches on a traced value (control flow that depends on the data, or on a "
               f"size fx does not fix), which cannot be read without running it [fx: {err}]")
    elif isinstance(err, RecursionError):
        why = "Python's recursion limit was reached while tracing it"
    else:
        why = f"torch.fx cannot trace its forward() without data: {type(err).__name__}: {err}"
    return SpecError(f"{why}{at}", where=f"module {path or '(root)'!r} ({kind})")


def trace(root, input_shape=None) -> Trace:
    """Trace ``root.forward`` symbolically in eval mode; `SpecError` on anything it cannot see.

    Where the plain trace fails and the per-sample ``input_shape`` is given, the module is traced
    again with its sizes known there (`alexcost.torch_bridge.shapes`): the graph then holds for
    that input shape only."""
    import torch

    if not isinstance(root, torch.nn.Module):
        raise SpecError(f"from_module reads a torch.nn.Module, got {type(root).__name__}")
    _refuse_wrappers("", root)
    depth = _depth(root)
    if depth > MAX_DEPTH:
        raise SpecError(f"{where_module('', root)} nests modules {depth} levels deep; alexcost reads at most "
                        f"{MAX_DEPTH} (torch's own forward needs a raised recursion limit beyond about 250)")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 2000 + 16 * depth))
    try:
        modules = dict(root.named_modules())
        _refuse_unseen_code(modules)
        registered: dict[int, int] = {}
        for m in modules.values():
            for child in m._modules.values():
                if child is not None:
                    registered[id(child)] = registered.get(id(child), 0) + 1
        aliases = {key for key, n in registered.items() if n > 1}
        concrete = _forward_inputs(root)
        paths = {id(m): path for path, m in modules.items()}
        modes = [(m, m.training) for m in modules.values()]
        tests: list = []
        known = None  # the input shape the sizes are known at, once the plain trace has failed on them
        try:
            graph, constants, grad_calls, flagged = _traced(root, aliases, concrete, modes, paths, tests, False)
        except SpecError as err:
            if input_shape is None or isinstance(err.__cause__, (SpecError, RecursionError, type(None))):
                raise
            known = input_shape  # sizes fx left symbolic: trace again with the shapes known
            tests.clear()
            graph, constants, grad_calls, flagged = _traced(root, aliases, concrete, modes, paths, tests, False, known)
        differs, batch_stats = "", set()
        if tests:
            differs, batch_stats = _train_graph_differs(root, aliases, concrete, modes, paths, graph, known)
    finally:
        sys.setrecursionlimit(limit)
    if grad_calls:
        raise SpecError(f"its forward() asks torch.is_grad_enabled(){grad_calls[0]}: what it runs depends on "
                        f"the grad mode, which alexcost cannot fix; it does not read such a module",
                        where=where_module("", root))
    branches = []
    for path, m, training, at in tests:
        if training and differs:  # (where training mode runs the same graph, the read is the same)
            raise SpecError(f"its forward() tests self.training{at}, and it is in training mode: torch runs what "
                            f"forward() does in training, which alexcost's eval-mode read cannot see (it does not "
                            f"count a training step through such a branch; {differs}); call .eval() on the module "
                            f"to count inference", where=where_module(path, m))
        branches.append((path, m, at))
    from torch.fx.node import map_aggregate

    for node in graph.nodes if flagged else ():  # self.training passed as an argument: eval mode, as read
        if isinstance(batch_norm_training(node), _TrainingFlag):
            batch_stats.add(node.name)
        node.args = map_aggregate(node.args, _eval_flag)
        node.kwargs = map_aggregate(node.kwargs, _eval_flag)
    return Trace(graph, modules, constants, tuple({(p, id(m), at): (p, m, at) for p, m, at in branches}.values()),
                 differs, frozenset(batch_stats))


def _traced(root, aliases, concrete, modes, paths, tests: list, training: bool, known=None):
    """One symbolic trace of ``root`` with every traced-through module's ``self.training`` answering
    ``training`` (each test recorded in ``tests``), its sizes fixed at input shape ``known`` if given:
    the graph, the constants fx stowed away (taken off the module), the calls of
    ``torch.is_grad_enabled()`` from the module's code, whether a node takes ``self.training``
    as an argument."""
    import torch

    worlds = None
    if known is not None:  # every node also run on fake tensors, so sizes become numbers
        from .shapes import Worlds

        worlds = Worlds(root, known, plain=_eval_flag)
    before = set(root.__dict__)
    tracer = None
    grad_reads = _GradModeReads(torch.is_grad_enabled)
    try:
        for m, mode in modes:
            _set_training(m, False if kind_of(type(m)) is not None else
                          _TrainingFlag(tests, paths[id(m)], m, mode, training))
        torch.is_grad_enabled = grad_reads
        with torch.enable_grad(), torch.inference_mode(False):
            tracer = _Tracer.make(aliases, worlds)
            graph = tracer.trace(root, concrete_args=concrete)
    except SpecError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever user code raises under fx becomes one SpecError
        raise _located(err, tracer, root) from err
    finally:
        torch.is_grad_enabled = grad_reads.real
        for m, mode in modes:
            _set_training(m, mode)
        constants = {key: root.__dict__.pop(key) for key in set(root.__dict__) - before}
    return graph, constants, grad_reads.calls, tracer.flag_args


def _set_training(m, value) -> None:
    """``m.training = value``, as ``nn.Module.__setattr__`` sets a plain attribute, without its tests
    for a parameter, module or buffer of that name (a class with its own ``__setattr__``, or with a
    class attribute or property ``training``, gets the assignment as written)."""
    import torch.nn as nn

    cls = type(m)
    if cls.__setattr__ is nn.Module.__setattr__ and not hasattr(cls, "training") and "training" not in \
            m._parameters and "training" not in m._buffers and "training" not in m._modules:
        m.__dict__["training"] = value
    else:
        m.training = value


def _train_graph_differs(root, aliases, concrete, modes, paths, graph, known=None) -> tuple[str, set]:
    """Where the module's forward, traced with ``self.training`` true, runs another graph than the
    eval-mode one (``graph``), and the batch norms that then use the batch's statistics (see
    `alexcost.torch_bridge.train_graph.differences`)."""
    try:
        train = _traced(root, aliases, concrete, modes, paths, [], True, known)[0]
    except SpecError as err:
        return f"in training mode its forward() cannot be read ({err})", set()
    return differences(graph, train, _TrainingFlag)


def _eval_flag(value):
    return False if isinstance(value, _TrainingFlag) else value
