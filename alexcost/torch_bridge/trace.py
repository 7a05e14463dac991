"""Tracing a module's ``forward`` with torch.fx, without data, and refusing what a trace would miss.

A module whose class is a torch.nn class alexcost has a kind for (or a subclass of one that
changes nothing its forward runs) is a leaf: one ``call_module`` node. Other torch.nn modules
are leaves too, refused later by name; every other module is traced through, so its forward
becomes the functions and methods it calls. The trace runs in eval mode (inference counts)
and leaves the module as it was: training flags restored, no attribute left behind.

Refused before tracing, because torch would run code the trace does not see: forward hooks
and pre-hooks (on a module, or torch's global ones), a ``forward`` replaced on an instance,
parametrized weights, lazy modules not yet initialised. Imports torch.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from dataclasses import dataclass

from ..errors import SpecError
from ..layers import BUILTIN_KINDS, LAYER_KINDS

_HARMLESS = frozenset({"__init__", "__repr__", "extra_repr", "reset_parameters", "__setstate__", "__getstate__",
                       "_get_name", "_save_to_state_dict", "_load_from_state_dict"})
"""Methods a subclass of a known module may override without changing what its forward computes."""

_KINDS: dict[type, object] = {}
MAX_DEPTH = 1000
"""Deepest module nesting read (torch's own forward runs out of Python's default recursion
limit near 250 levels; alexcost raises the limit while it traces)."""


def where_module(path: str, module) -> str:
    """How messages name a module: ``module 'layer1.0' (BasicBlock)``."""
    return f"module {path or '(root)'!r} ({type(module).__name__})"


def kind_of(cls: type):
    """The alexcost kind a module class is read as, or None.

    A torch.nn class alexcost has a kind of the same name, or a subclass of one that
    overrides none of the methods its forward runs (``class MyConv(nn.Conv2d): pass``).
    """
    if cls in _KINDS:
        return _KINDS[cls]
    import torch.nn as nn

    kind = None
    for depth, base in enumerate(cls.__mro__):
        candidate = LAYER_KINDS.get(base.__name__)
        if candidate is not None and candidate in BUILTIN_KINDS and getattr(nn, base.__name__, None) is base:
            overridden = {name for sub in cls.__mro__[:depth] for name, value in vars(sub).items()
                          if callable(value) and name not in _HARMLESS and hasattr(base, name)}
            kind = None if overridden else candidate
            break
    _KINDS[cls] = kind
    return kind


class _Tracer:
    """Made on first use: the fx Tracer subclass (importing torch.fx only when a module is read)."""

    cls = None

    @classmethod
    def make(cls, aliases):
        if cls.cls is None:
            import operator

            import torch.fx

            class Proxy(torch.fx.Proxy):
                """fx's Proxy has no in-place operators, so ``a += b`` would trace as ``a + b``: a new
                tensor where torch adds in place. These record ``operator.iadd`` and ``operator.imul``."""

                def __iadd__(self, other):
                    return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

                def __imul__(self, other):
                    return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

            class Tracer(torch.fx.Tracer):
                def __init__(self, aliases):
                    super().__init__()
                    self.aliases = aliases
                    self.alias_calls: dict = {}

                def proxy(self, node):
                    return Proxy(node, self)

                def is_leaf_module(self, m, qualified_name: str) -> bool:
                    if kind_of(type(m)) is not None:
                        return True
                    return super().is_leaf_module(m, qualified_name)

                def path_of_module(self, mod) -> str:
                    # A module registered under several names (nn.Sequential(conv, relu, conv)) is
                    # named by where its caller holds it, in the order the caller calls it.
                    if id(mod) not in self.aliases:
                        return super().path_of_module(mod)
                    parent_path = next(reversed(self.module_stack.values()))[0] if self.module_stack else ""
                    parent = self.root.get_submodule(parent_path)
                    names = [n for n, child in parent._modules.items() if child is mod]
                    if not names:
                        return super().path_of_module(mod)
                    key = (id(mod), parent_path)
                    calls = self.alias_calls.get(key, 0)
                    self.alias_calls[key] = calls + 1
                    name = names[calls % len(names)]
                    return f"{parent_path}.{name}" if parent_path else name

            cls.cls = Tracer
        return cls.cls(aliases)


@dataclass(frozen=True)
class Trace:
    """What tracing gives: the fx graph, every module by path, and the constants fx stowed
    away (kept here, not on the user's module)."""

    graph: object
    modules: dict
    constants: dict


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
        for name, t in [*m._parameters.items(), *m._buffers.items()]:
            if isinstance(t, torch.Tensor) and is_lazy(t):
                raise SpecError(f"{where_module(path, m)} has an uninitialized {name!r} (a lazy module): run "
                                f"it once on data so that its shapes are known")
        for kind, hooks in (("forward hook", m._forward_hooks), ("forward pre-hook", m._forward_pre_hooks)):
            if hooks:
                raise SpecError(f"{where_module(path, m)} has {len(hooks)} {kind}(s): torch runs them on "
                                f"every call and they may change its input or output; alexcost cannot see "
                                f"what they compute; remove them first")
        if "forward" in m.__dict__:
            raise SpecError(f"{where_module(path, m)} has its forward replaced on the instance; alexcost reads "
                            f"a module's class forward only")
        if parametrize.is_parametrized(m):
            raise SpecError(f"{where_module(path, m)} has parametrized tensors "
                            f"({', '.join(m.parametrizations)}): torch recomputes them on every call; "
                            f"alexcost does not read parametrizations")


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
    torch_dir = os.path.dirname(torch.__file__) + os.sep
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.startswith(torch_dir) and not f.filename.startswith(os.path.dirname(__file__))]
    at = f" (at {frames[-1].filename}:{frames[-1].lineno}: {(frames[-1].line or '').strip()})" if frames else ""
    if isinstance(err, TraceError):
        why = (f"its forward() branches on a traced value (control flow that depends on the data, or on a "
               f"size fx does not fix), which cannot be read without running it [fx: {err}]")
    elif isinstance(err, RecursionError):
        why = "Python's recursion limit was reached while tracing it"
    else:
        why = f"torch.fx cannot trace its forward() without data: {type(err).__name__}: {err}"
    return SpecError(f"{why}{at}", where=f"module {path or '(root)'!r} ({kind})")


def trace(root) -> Trace:
    """Trace ``root.forward`` symbolically in eval mode; `SpecError` on anything it cannot see."""
    import torch

    if not isinstance(root, torch.nn.Module):
        raise SpecError(f"from_module reads a torch.nn.Module, got {type(root).__name__}")
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
        modes = [(m, m.training) for m in root.modules()]
        before = set(root.__dict__)
        tracer = None
        try:
            for m, _ in modes:
                m.training = False
            tracer = _Tracer.make(aliases)
            graph = tracer.trace(root, concrete_args=concrete)
        except SpecError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever user code raises under fx becomes one SpecError
            raise _located(err, tracer, root) from err
        finally:
            for m, mode in modes:
                m.training = mode
            constants = {key: root.__dict__.pop(key) for key in set(root.__dict__) - before}
    finally:
        sys.setrecursionlimit(limit)
    return Trace(graph, modules, constants)
