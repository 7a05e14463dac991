"""torch modules for the kinds torch.nn lacks (Add, Cat, Reshape, Permute, ...), as verify and
time run them. Imports torch: only the layer kinds' ``torch_module`` methods load this module.
Each module's ``forward`` is the one torch call the kind stands for."""

from __future__ import annotations

import torch
from torch import nn


class Elementwise(nn.Module):
    """``a + b + ...`` or ``a * b * ...``; in place into ``a`` with ``inplace``."""

    def __init__(self, op: str, inplace: bool):
        super().__init__()
        self.op, self.inplace = op, inplace

    def forward(self, first, *rest):
        out = first
        for other in rest:
            if self.inplace:
                out = out.add_(other) if self.op == "Add" else out.mul_(other)
            else:
                out = out + other if self.op == "Add" else out * other
        return out


def elementwise(op: str, inplace: bool) -> nn.Module:
    return Elementwise(op, inplace)


class Concatenate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *tensors):
        return torch.cat(tensors, self.dim)


def concatenate(dim: int) -> nn.Module:
    return Concatenate(dim)


class Reshape(nn.Module):
    """``x.reshape(N, *shape)``, or ``x.view(N, *shape)``."""

    def __init__(self, shape, view: bool):
        super().__init__()
        self.shape, self.view = tuple(shape), view

    def forward(self, x):
        return x.view(x.shape[0], *self.shape) if self.view else x.reshape(x.shape[0], *self.shape)


def reshape(shape, view: bool) -> nn.Module:
    return Reshape(shape, view)


class Method(nn.Module):
    """``getattr(x, name)(*args)``: permute, transpose, chunk, split, contiguous, mean."""

    def __init__(self, name: str, *args):
        super().__init__()
        self.name, self.args = name, args

    def forward(self, x):
        return getattr(x, self.name)(*self.args)

    def extra_repr(self) -> str:
        return f"{self.name}{self.args}"


def permute(dims) -> nn.Module:
    return Method("permute", *dims)


def transpose(dim0: int, dim1: int) -> nn.Module:
    return Method("transpose", dim0, dim1)


def chunk(chunks: int, dim: int) -> nn.Module:
    return Method("chunk", chunks, dim)


def split(sizes, dim: int) -> nn.Module:
    return Method("split", list(sizes) if isinstance(sizes, tuple) else sizes, dim)


def contiguous() -> nn.Module:
    return Method("contiguous")


def clone() -> nn.Module:
    return Method("clone")


def mean(dims, keepdim: bool) -> nn.Module:
    return Method("mean", list(dims), keepdim)


class Parameter(nn.Module):
    """A learned tensor, returned as it is (its consumers broadcast it)."""

    def __init__(self, shape):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape))

    def forward(self):
        return self.weight


def parameter(shape) -> nn.Module:
    return Parameter(shape)


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth, without torchvision: the input at inference; in training a
    Bernoulli(1 - p) mask per sample ("row") or for the batch ("batch"), scaled by 1/(1 - p)."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise


def stochastic_depth(p: float, mode: str) -> nn.Module:
    return StochasticDepth(p, mode)


class Graph(nn.Module):
    """A network of named child modules wired as a graph: ``sources[i]`` lists the
    ``(layer index, output index)`` pairs layer ``i`` reads (-1: the input). Runs the layers
    in order and drops each value after its last reader, as an eager forward would."""

    def __init__(self, names, modules, sources):
        super().__init__()
        for name, module in zip(names, modules):
            self.add_module(name, module)
        self._order = tuple(names)
        self._sources = tuple(tuple(s) for s in sources)
        last = {}
        for i, refs in enumerate(self._sources):
            for j, _ in refs:
                last[j] = i
        self._free_after = tuple(tuple(j for j, at in last.items() if at == i and j != len(names) - 1)
                                 for i in range(len(names)))

    def forward(self, x):
        values = {-1: x}
        for i, name in enumerate(self._order):
            args = [values[j] if k is None else values[j][k] for j, k in self._sources[i]]
            values[i] = self._modules[name](*args)
            for j in self._free_after[i]:
                del values[j]
        return values[len(self._order) - 1]


def graph(names, modules, sources) -> nn.Module:
    return Graph(names, modules, sources)
