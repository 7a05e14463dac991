"""Network <-> torch.nn.Module, both ways. torch is imported only when these functions run.

* `to_module` builds an ``nn.Sequential`` whose children are named as the layers.
* `from_module` reads any ``nn.Module`` into a `Network` without running it on data: its
  forward is traced symbolically with torch.fx (`alexcost.torch_bridge.trace`) and each call is
  mapped to a layer kind (`alexcost.torch_bridge.reader`, `alexcost.torch_bridge.ops`). A module used twice
  counts its parameters once and its MACs twice; a parameter shared by two modules
  counts once; frozen parameters (``requires_grad=False``) are reported apart; parameters
  the forward never reads are counted as ``unused``. Nothing is written to the user's
  module: no hooks, no buffers, no attributes; its training flags are restored.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property

from ..engine.cost import NetworkCost
from ..errors import SpecError, describe_layer
from ..engine.network import Network


def to_module(network: Network, *, device=None):
    """The network as a torch module whose children are its layers, named as in the network:
    an ``nn.Sequential`` for a chain, else a module that runs the layers in order as wired.

    Weights are torch's default initialisation, in float32, created directly on
    ``device`` (default: the CPU).
    """
    import torch

    from .modules import graph, torch_module

    probe = torch.nn.Sequential()
    modules = []
    with torch.device(device) if device is not None else nullcontext():
        for i, (name, layer, x) in enumerate(zip(network.names, network.layers, network.input_shapes)):
            if hasattr(probe, name):  # forward, training, to, ...: add_module would refuse it
                raise SpecError(f"torch cannot name a module {name!r}: nn.Module has an attribute of that "
                                f"name; rename the layer", where=describe_layer(i, name, type(layer).__name__))
            modules.append(torch_module(layer, x))
    if network.is_chain:
        return torch.nn.Sequential(OrderedDict(zip(network.names, modules)))
    return graph(network.names, modules, network.sources)


@dataclass(frozen=True)
class ImportedModule:
    """A torch module read as an alexcost `Network`, with what only the module knows.

    Per alexcost layer ``i`` (the network's layers, in an order torch can run them):

    * ``paths[i]``: for a module call, the dotted path of the module it calls (``""`` for a
      bare leaf module given as the root); for a function or method call, the path of the
      module whose forward made the call, ``:``, and the function's name (``layer1.0:add``,
      ``:flatten`` at the root); for a parameter read as an operand (a `Parameter` layer),
      the path of the module holding it, ``:``, and its name (``features.1.0:layer_scale``);
      ``:output`` for an Identity standing for the output when no layer ends the graph.
    * ``first_use[i]``: the index of the first layer that calls the same module object
      (``i`` itself unless the module is reused; always ``i`` for function calls).
    * ``weight_params[i]`` / ``bias_params[i]``: parameters no earlier layer already counted
      (alexcost's formulas, checked against the tensors' sizes, so a reused module or a
      tied weight counts once); ``frozen_params[i]``: the part of those with
      ``requires_grad=False``.
    * ``fx_nodes[i]``: the name of the node of ``graph_module.graph`` the layer comes from
      (``"output"`` for that Identity).

    ``unused`` maps a module path to the parameters it holds that forward never reads (an
    auxiliary head in eval mode, a parameter registered on a container): torch counts them,
    and so do `params` and ``cost().totals.params`` (``unused_frozen``: the part of them with
    ``requires_grad=False``, in `frozen`). ``eval_branches`` says where a module given in eval mode
    tests ``self.training`` in its forward (module, source line): the network is what it runs in
    eval mode; where training mode runs another graph, ``network.modes.refused`` says so and a
    training step is refused. ``network.modes`` also holds the frozen parameters, grad-mode
    regions, checkpoint calls and autocast regions a training step counts
    (`alexcost.engine.modes.StepModes`). ``folds`` maps ``(layer index, output index or None)`` to ``k`` for
    each output torch runs with the batch times ``k`` rows (heads or windows folded into the batch; its
    shape per sample starts with ``k``). ``fvcore_calls``: ``(layer index, equation)`` for each `Matmul` read from a
    ``torch.einsum`` (``equation``) or ``torch.matmul`` (None) made inside a function fx does not trace into,
    which fvcore counts by its own handle of that call (`alexcost.torch_run.reconcile.fvcore_einsum`). ``graph_module`` is the ``torch.fx.GraphModule`` of the eval-mode trace, built on first use over the user's own
    submodules and parameters: running it runs the user's code.
    """

    network: Network
    paths: tuple[str, ...]
    first_use: tuple[int, ...]
    weight_params: tuple[int, ...]
    bias_params: tuple[int, ...]
    frozen_params: tuple[int, ...]
    unused: dict[str, int] = field(default_factory=dict)
    fx_nodes: tuple[str, ...] = ()
    unused_frozen: int = 0
    eval_branches: tuple[str, ...] = ()
    folds: dict = field(default_factory=dict)
    fvcore_calls: tuple = ()
    _trace: object = field(default=None, repr=False, compare=False)

    @property
    def params(self) -> int:
        """Distinct parameters (each counted once), unused ones included: torch's
        ``sum(p.numel() for p in module.parameters())``."""
        return sum(self.weight_params) + sum(self.bias_params) + sum(self.unused.values())

    @property
    def frozen(self) -> int:
        """Parameters with ``requires_grad=False`` (unused ones included)."""
        return sum(self.frozen_params) + self.unused_frozen

    @property
    def trainable(self) -> int:
        return self.params - self.frozen

    @property
    def reused(self) -> dict[str, int]:
        """Module paths that run more than once, with how many times they run."""
        counts: dict[int, int] = {}
        for first in self.first_use:
            counts[first] = counts.get(first, 0) + 1
        return {self.paths[i]: n for i, n in counts.items() if n > 1}

    @cached_property
    def graph_module(self):
        """The traced forward as a ``torch.fx.GraphModule`` sharing the user's modules and parameters."""
        if self._trace is None:
            return None
        import torch.fx

        root, traced = self._trace
        attributes = dict(traced.constants)
        for node in traced.graph.nodes:
            if node.op in ("call_module", "get_attr") and node.target not in attributes:
                owner, _, name = node.target.rpartition(".")
                holder = root.get_submodule(owner) if owner else root
                attributes[node.target] = getattr(holder, name) if name else root
        return torch.fx.GraphModule(attributes, traced.graph, class_name=type(root).__name__)

    def cost(self, batch: int = 1, dtype: str = "float32") -> NetworkCost:
        """The network's cost with parameters counted once (MACs count every call); unused
        parameters are in ``totals.params`` (``totals.unused_params``)."""
        return replace(self.network.cost(batch, dtype), params=tuple(zip(self.weight_params, self.bias_params)),
                       unused_params=sum(self.unused.values()))


def from_module(module, input_shape, *, name: str | None = None) -> ImportedModule:
    """Read ``module`` (run on per-sample ``input_shape``) as an alexcost network, without running it.

    ``forward`` is traced symbolically with torch.fx, in eval mode (alexcost counts
    inference); each module, function and method call becomes a layer. Raises one
    `SpecError` for the first thing that cannot be read exactly, naming the fx node, the
    module path or function, and why: a call with no layer kind, control flow that depends
    on the data, forward hooks, a parameter used outside any layer, shapes that do not fit;
    a layer run with torch's modes changed where alexcost does not model the change (autocast,
    reentrant or customised checkpointing, saved-tensor hooks); a test of ``self.training`` in a
    module in training mode; ``torch.is_grad_enabled()``;
    TorchScript and ``torch.compile`` wrappers (pass the eager module).
    """
    from ..layers.arguments import shape as check_shape
    from .reader import Reader
    from .trace import trace

    x = check_shape(input_shape)
    traced = trace(module, x)
    reading = Reader(module, traced, x).run()
    network = Network(x, reading.layers, name=name or type(module).__name__, modes=reading.modes)
    return ImportedModule(network, reading.paths, reading.first_use, reading.weight_params, reading.bias_params,
                          reading.frozen_params, reading.unused, reading.fx_nodes, reading.unused_frozen,
                          reading.eval_branches, reading.folds, reading.fvcore_calls, _trace=(module, traced))


# -- modules named on the command line ------------------------------------------------------------------

SOURCES = ("module", "torchvision", "timm")
"""Where a module named by a string comes from: ``module`` (``PKG.MOD:FACTORY``), ``torchvision``
(a model name of ``torchvision.models``) or ``timm`` (a model name of timm)."""


def named_module(source: str, name: str):
    """The torch module ``name`` names: ``module``: ``FACTORY()`` of the Python module ``PKG.MOD``
    (imported from the current folder or ``sys.path``; this runs its code); ``torchvision`` and
    ``timm``: the model built with random weights (nothing is downloaded); in eval mode. One
    `SpecError` for a name that names nothing, or code that fails."""
    import torch.nn as nn

    if source == "module":
        module, made = _factory(name)
    elif source == "torchvision":
        module, made = _zoo_model("torchvision", name), f"torchvision's {name}"
    elif source == "timm":
        module, made = _zoo_model("timm", name), f"timm's {name}"
    else:
        raise SpecError(f"unknown module source {source!r}; choose from {', '.join(SOURCES)}")
    if not isinstance(module, nn.Module):
        raise SpecError(f"{made} returned {type(module).__name__}, not a torch.nn.Module")
    return module.eval()  # alexcost counts inference; a training step is costed from the network read


def _failed(what: str, err: BaseException) -> SpecError:
    return SpecError(f"{what} raised {type(err).__name__}: {' '.join(str(err).split())[:300]}")


def _factory(text: str):
    """``FACTORY()`` of ``PKG.MOD:FACTORY``, with what made it, for messages."""
    import importlib
    import os
    import sys

    path, colon, attr = text.partition(":")
    if not colon or not path or not attr or not all(p.isidentifier() for p in (*path.split("."), *attr.split("."))):
        raise SpecError(f"--module takes PKG.MOD:FACTORY (a Python module and a function or class in it that "
                        f"makes the model with no arguments), got {text!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's own folder first
    try:
        holder = importlib.import_module(path)
    except ModuleNotFoundError as err:
        if err.name and path.startswith(err.name):
            raise SpecError(f"cannot import {path!r}: no module named {err.name!r} in the current folder or on "
                            f"sys.path (run alexcost from the folder that holds it, or add that folder to "
                            f"PYTHONPATH)") from None
        raise _failed(f"importing {path!r}", err) from None
    except Exception as err:  # noqa: BLE001 - the user's code, reported in one line
        raise _failed(f"importing {path!r}", err) from None
    made = holder
    try:
        for part in attr.split("."):
            made = getattr(made, part)
    except AttributeError:
        raise SpecError(f"module {path!r} has no {attr!r}") from None
    if not callable(made):
        raise SpecError(f"{text} is {type(made).__name__}, not a function or class that makes the model")
    try:
        return made(), f"{text}()"
    except Exception as err:  # noqa: BLE001
        raise _failed(f"{text}()", err) from None


def _zoo_model(source: str, name: str):
    """torchvision's or timm's model ``name``, with random weights: a torchvision model's backbone
    too (its builder would otherwise download the backbone's weights)."""
    import difflib

    if source == "torchvision":
        import inspect

        import torchvision.models as zoo

        def make():
            builder = zoo.get_model_builder(name)
            backbone = {"weights_backbone": None} if "weights_backbone" in inspect.signature(builder).parameters \
                else {}
            return builder(weights=None, **backbone)

        names = zoo.list_models()
    else:
        import timm

        names, make = timm.list_models(), lambda: timm.create_model(name, pretrained=False)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SpecError(f"{source} has no model {name!r}{hint}")
    try:
        return make()
    except Exception as err:  # noqa: BLE001
        raise _failed(f"building {source}'s {name}", err) from None


def default_input_shape(source: str, name: str, module) -> tuple[int, ...] | None:
    """The per-sample input a model's own configuration gives, or None: timm's ``input_size``;
    torchvision's weights' transforms (a classifier's crop, a segmenter's resize; a video model's
    number of frames is not there, so it has none)."""
    if source == "timm":
        size = (getattr(module, "pretrained_cfg", None) or {}).get("input_size")
        return tuple(size) if size else None
    if source != "torchvision":
        return None
    import torchvision.models as zoo

    try:
        weights = zoo.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        return None
    kind = getattr(weights.transforms, "func", None)
    keywords = getattr(weights.transforms, "keywords", {}) or {}
    size = {"ImageClassification": keywords.get("crop_size"),
            "SemanticSegmentation": keywords.get("resize_size")}.get(getattr(kind, "__name__", ""))
    if size is None:
        return None
    side = (size, size) if isinstance(size, int) else tuple(size) * (2 if len(size) == 1 else 1)
    return (3, *side)
