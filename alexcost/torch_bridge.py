"""Network <-> torch.nn.Module, both ways. torch is imported only when these functions run.

* `to_module` builds an ``nn.Sequential`` whose children are named as the layers.
* `from_module` reads an existing module (``nn.Sequential``, nested or not, of
  supported leaf modules) into a `Network` without running it. A module used
  twice counts its parameters once and its MACs twice; a parameter shared by two
  modules counts once; frozen parameters (``requires_grad=False``) are reported apart.
  Nothing is written to the user's module: no hooks, no buffers, no attributes.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace

from .cost import NetworkCost
from .errors import SpecError, describe_layer, format_shape
from .layers import BUILTIN_KINDS, LAYER_KINDS, Layer
from .network import Network


def to_module(network: Network, *, device=None):
    """The network as a torch module whose children are its layers, named as in the network:
    an ``nn.Sequential`` for a chain, else a module that runs the layers in order as wired.

    Weights are torch's default initialisation, in float32, created directly on
    ``device`` (default: the CPU).
    """
    import torch

    from .torch_modules import graph

    probe = torch.nn.Sequential()
    modules = []
    with torch.device(device) if device is not None else nullcontext():
        for i, (name, layer, x) in enumerate(zip(network.names, network.layers, network.input_shapes)):
            if hasattr(probe, name):  # forward, training, to, ...: add_module would refuse it
                raise SpecError(f"torch cannot name a module {name!r}: nn.Module has an attribute of that "
                                f"name; rename the layer", where=describe_layer(i, name, type(layer).__name__))
            modules.append(layer.torch_module(x))
    if network.is_chain:
        return torch.nn.Sequential(OrderedDict(zip(network.names, modules)))
    return graph(network.names, modules, network.sources)


@dataclass(frozen=True)
class ImportedModule:
    """A torch module read as an alexcost `Network`, with what only the module knows.

    ``paths[i]`` is the dotted module path of layer ``i`` (``""`` for a bare leaf module);
    ``first_use[i]`` is the index of the first layer that runs the same module object
    (``i`` itself unless the module is reused). ``weight_params[i]`` / ``bias_params[i]``
    count only parameters no earlier layer already owns (alexcost's formulas, so a reused
    module or a tied weight counts once); ``frozen_params[i]`` is the part of those with
    ``requires_grad=False``.
    """

    network: Network
    paths: tuple[str, ...]
    first_use: tuple[int, ...]
    weight_params: tuple[int, ...]
    bias_params: tuple[int, ...]
    frozen_params: tuple[int, ...]

    @property
    def params(self) -> int:
        """Distinct parameters (each counted once)."""
        return sum(self.weight_params) + sum(self.bias_params)

    @property
    def frozen(self) -> int:
        """Parameters with ``requires_grad=False``."""
        return sum(self.frozen_params)

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

    def cost(self, batch: int = 1, dtype: str = "float32") -> NetworkCost:
        """The network's cost with parameters counted once (MACs count every call)."""
        cost = self.network.cost(batch, dtype)
        rows = tuple(replace(row, weight_params=w, bias_params=b)
                     for row, w, b in zip(cost.layers, self.weight_params, self.bias_params))
        return replace(cost, layers=rows)


def _where(path: str, module) -> str:
    return f"module {path or '(root)'!r} ({type(module).__name__})"


def _leaves(module, path: str = ""):
    """(path, leaf module) in the order an ``nn.Sequential`` runs them, repeats included."""
    import torch.nn as nn

    if type(module) is nn.Sequential:
        # Not named_children(): it drops a module that appears twice.
        for name, child in module._modules.items():
            if child is not None:
                yield from _leaves(child, f"{path}.{name}" if path else name)
        return
    kind = LAYER_KINDS.get(type(module).__name__)
    if kind is None or kind not in BUILTIN_KINDS or type(module) is not getattr(nn, kind.__name__):
        if next(iter(module._modules.values()), None) is not None:
            raise SpecError(f"{_where(path, module)} is a container but not an nn.Sequential: alexcost "
                            f"cannot know the order its forward() calls its children without running it")
        known = ", ".join(sorted(k.__name__ for k in BUILTIN_KINDS))
        raise SpecError(f"{_where(path, module)} is not supported; alexcost reads nn.Sequential "
                        f"containers of {known}")
    yield path, module


def _layer_of(path: str, module) -> Layer:
    """The alexcost layer with the module's own arguments (its attributes, as torch stores them)."""
    kind = LAYER_KINDS[type(module).__name__]
    extra = sorted(set(module._parameters) - {"weight", "bias"})
    if extra:
        raise SpecError(f"{_where(path, module)} has parameters a {kind.__name__} does not have: {', '.join(extra)}")
    args = {}
    for f in fields(kind):
        if not f.init or f.name == "name":
            continue
        if f.name == "bias" and "bias" in module._parameters:
            args["bias"] = module._parameters["bias"] is not None
        elif hasattr(module, f.name):
            args[f.name] = getattr(module, f.name)
    try:
        return kind(name=path.replace(".", "_") or None, **args)
    except SpecError as err:
        raise err.at(_where(path, module)) from None


def from_module(module, input_shape, *, name: str | None = None) -> ImportedModule:
    """Read ``module`` (run on per-sample ``input_shape``) as an alexcost network, without running it.

    Raises `SpecError` naming the first unsupported module (dotted path and class),
    or the first module whose input or parameters do not fit.
    """
    from .arguments import shape as check_shape

    x = check_shape(input_shape)
    leaves = list(_leaves(module))
    layers, paths, first_use = [], [], []
    weight, bias, frozen = [], [], []
    seen_modules: dict[int, int] = {}
    seen_params: set[int] = set()
    taken: set[str] = set()
    for i, (path, leaf) in enumerate(leaves):
        layer = _layer_of(path, leaf)
        unique = layer.name or f"{type(layer).__name__.lower()}{i}"
        n = 2
        while unique in taken:  # "a.b" and "a_b" both exist, or a reused module
            unique, n = f"{layer.name or type(layer).__name__.lower()}_{n}", n + 1
        taken.add(unique)
        layer = replace(layer, name=unique)
        try:
            y = layer.output_shape(x)
        except SpecError as err:
            raise err.at(f"{_where(path, leaf)} on input {format_shape(x)}") from None
        counts = {"weight": layer.weight_params(x), "bias": layer.bias_params(x)}
        new = {"weight": 0, "bias": 0}
        cold = 0
        for pname, formula in counts.items():
            param = leaf._parameters.get(pname)
            if param is None:
                continue
            if param.numel() != formula:
                raise SpecError(f"{_where(path, leaf)} on input {format_shape(x)}: its {pname} has "
                                f"{param.numel()} elements, but {layer.label()} with these arguments has {formula}")
            if id(param) not in seen_params:
                seen_params.add(id(param))
                new[pname] = formula
                cold += 0 if param.requires_grad else formula
        first_use.append(seen_modules.setdefault(id(leaf), i))
        layers.append(layer)
        paths.append(path)
        weight.append(new["weight"])
        bias.append(new["bias"])
        frozen.append(cold)
        x = y
    network = Network(tuple(check_shape(input_shape)), layers, name=name or type(module).__name__)
    return ImportedModule(network, tuple(paths), tuple(first_use), tuple(weight), tuple(bias), tuple(frozen))
