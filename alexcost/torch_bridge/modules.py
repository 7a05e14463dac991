"""Each layer kind's torch module, as `to_module` builds them for verify and time.

`torch_module` maps a layer to its module: a kind torch.nn has (Conv2d, ReLU, ...) becomes
``torch.nn.<ClassName>(**layer.torch_args(x))``; the kinds torch.nn lacks (Add, Cat, Reshape,
Permute, ...) have a builder in `BUILDERS`, whose module's ``forward`` is the one torch call
the kind stands for; a user's kind may define ``torch_module(x)`` on its class. Imports torch:
the layer kinds never do."""

from __future__ import annotations

import torch
from torch import nn

from .. import layers as kinds
from ..errors import SpecError
from ..layers.pad import INFINITE
from .custom import custom_reads


class Elementwise(nn.Module):
    """``a + b + ...``, ``a - b``, ``a * b * ...`` or ``a / b``; in place into ``a`` with ``inplace``."""

    def __init__(self, op: str, inplace: bool):
        super().__init__()
        self.op, self.inplace = op, inplace

    def forward(self, first, *rest):
        out = first
        for other in rest:
            if self.inplace:
                out = getattr(out, f"{self.op.lower()}_")(other)
            else:
                out = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[self.op](out, other)
        return out



class Arithmetic(nn.Module):
    """``x <op> value`` with a Python number (a `Scalar`): ``x + value``, ``value - x``, ``x ** value``, ``value ** x``,
    ``torch.div(x, value, rounding_mode='floor')``, ...;
    in place with ``inplace`` (``x.mul_(value)``)."""

    def __init__(self, op: str, value, inplace: bool):
        super().__init__()
        self.op, self.value, self.inplace = op, value, inplace

    def forward(self, x):
        if self.op == "rsub":
            return self.value - x
        if self.op == "rpow":
            return self.value ** x
        if self.op == "floordiv":
            return (x.div_ if self.inplace else x.div)(self.value, rounding_mode="floor")
        if self.inplace:
            return getattr(x, f"{self.op}_")(self.value)
        return getattr(x, f"__{ {'div': 'truediv'}.get(self.op, self.op)}__")(self.value)

    def extra_repr(self) -> str:
        return f"op={self.op!r}, value={self.value!r}, inplace={self.inplace}"


class Concatenate(nn.Module):
    """``torch.cat``; a parameter among the tensors (a class token) is expanded over the batch first."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *tensors):
        batch = next(t.shape[0] for t in tensors if not isinstance(t, nn.Parameter))
        return torch.cat([t.expand(batch, *t.shape[1:]) if isinstance(t, nn.Parameter) else t for t in tensors],
                         self.dim)


class Function(nn.Module):
    """``fn(*tensors, **kwargs)``: a torch function of several tensors (matmul, attention)."""

    def __init__(self, fn, **kwargs):
        super().__init__()
        self.fn, self.kwargs = fn, kwargs

    def forward(self, *tensors):
        if self.fn is torch.nn.functional.scaled_dot_product_attention and len(tensors) == 4:
            return self.fn(*tensors[:3], attn_mask=tensors[3], **self.kwargs)
        return self.fn(*tensors, **self.kwargs)


class WeightInput(nn.Module):
    """``F.conv2d(x, weight, self.bias, ...)`` (a `DynamicConv2d`) or ``F.batch_norm(x, None, None, weight,
    training=True)`` (a `Standardize`): the weight is the second input."""

    def __init__(self, layer, x):
        super().__init__()
        self.layer = layer
        conv = isinstance(layer, kinds.DynamicConv2d)
        self.bias = nn.Parameter(torch.zeros(layer.out_channels)) if conv and layer.bias else None

    def forward(self, x, weight):
        layer = self.layer
        if isinstance(layer, kinds.Standardize):
            return torch.nn.functional.batch_norm(x, None, None, weight, training=True, eps=layer.eps)
        return torch.nn.functional.conv2d(x, weight, self.bias, layer.stride, layer.padding, layer.dilation,
                                          layer.groups)


class Indexing(nn.Module):
    """``x[:, e1, e2, ...]`` (a Slice), ``x[:, e1, e2, ...] += y`` (a SliceAdd; ``= y`` without ``accumulate``)
    or ``x.expand(N, *sizes)`` (an Expand)."""

    def __init__(self, index=None, sizes=None, accumulate=True):
        super().__init__()
        self.index = None if index is None else (slice(None), *(slice(*e) if isinstance(e, tuple) else e
                                                               for e in index))
        self.sizes, self.accumulate = sizes, accumulate

    def forward(self, x, y=None):
        if y is not None:  # a SliceAdd: x[:, e1, ...] += y (or = y)
            if self.accumulate:
                x[self.index] += y
            else:
                x[self.index] = y
            return x
        return x[self.index] if self.index is not None else x.expand(x.shape[0], *self.sizes)


class Selected(nn.Module):
    """``torch.index_select(x, dim, index)`` with a fixed index (an `IndexSelect`): its entries run over the
    dimension in turn (the counts do not depend on which)."""

    def __init__(self, dim, index_size, size):
        super().__init__()
        self.dim = dim
        self.register_buffer("index", torch.arange(index_size) % size)

    def forward(self, x):
        return torch.index_select(x, self.dim, self.index)


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` called as ``mha(q, k, v, need_weights=False)[0]``."""

    def __init__(self, **args):
        super().__init__()
        self.attention = nn.MultiheadAttention(**args)

    def forward(self, q, k, v):
        return self.attention(q, k, v, need_weights=False)[0]



class Reshape(nn.Module):
    """``x.reshape(N, *shape)``, or ``x.view(N, *shape)``."""

    def __init__(self, shape, view: bool):
        super().__init__()
        self.shape, self.view = tuple(shape), view

    def forward(self, x):
        return x.view(x.shape[0], *self.shape) if self.view else x.reshape(x.shape[0], *self.shape)



class Method(nn.Module):
    """``getattr(x, name)(*args)``: permute, transpose, chunk, split, contiguous, mean."""

    def __init__(self, name: str, *args):
        super().__init__()
        self.name, self.args = name, args

    def forward(self, x):
        return getattr(x, self.name)(*self.args)

    def extra_repr(self) -> str:
        return f"{self.name}{self.args}"









class Padding(nn.Module):
    """``F.pad(x, pad, mode, value)``: what torch.nn's padding modules run, in any mode."""

    def __init__(self, pad, mode: str, value):
        super().__init__()
        self.pad, self.mode, self.value = tuple(pad), mode, INFINITE.get(value, value)

    def forward(self, x):
        return torch.nn.functional.pad(x, self.pad, self.mode, self.value)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, mode={self.mode!r}, value={self.value}"


class Parameter(nn.Module):
    """A learned tensor, returned as it is (its consumers broadcast it)."""

    def __init__(self, shape):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(shape))

    def forward(self):
        return self.weight


class Buffer(nn.Module):
    """A fixed table the module holds as a buffer, returned as it is."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("table", torch.randn(shape))

    def forward(self):
        return self.table


class Constant(nn.Module):
    """A tensor made from constants in each forward pass, returned as it is."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self):
        return torch.zeros(self.shape)


class Gathered(nn.Module):
    """A table's rows gathered by a fixed index, viewed as ``shape`` (a `PositionBias`): the index runs over
    the table's rows in turn (the counts do not depend on which rows); a buffer, or, without
    ``index_buffer``, computed in each forward pass."""

    def __init__(self, table, shape, dim=0, index_buffer=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(table))
        self.rows = torch.Size(shape).numel() * table[dim] // torch.Size(table).numel()
        if index_buffer:
            self.register_buffer("index", torch.arange(self.rows) % table[dim])
        else:
            self.index = None
        self.shape, self.dim = tuple(shape), dim

    def forward(self):
        index = self.index if self.index is not None else \
            torch.arange(self.rows, device=self.weight.device) % self.weight.shape[self.dim]
        return self.weight[(slice(None),) * self.dim + (index,)].reshape(self.shape)


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


class Rows(nn.Module):
    """``module`` on each of the ``k`` rows of a sample (a `Folded` layer): run on the ``(N*k, ...)`` view."""

    def __init__(self, module: nn.Module, k: int):
        super().__init__()
        self.module, self.k = module, k

    def forward(self, x):
        return self.module(x.flatten(0, 1)).unflatten(0, (-1, self.k))


def graph(names, modules, sources) -> nn.Module:
    return Graph(names, modules, sources)


BUILDERS = {
    kinds.Add: lambda layer, x: Elementwise("Add", layer.inplace),
    kinds.Mul: lambda layer, x: Elementwise("Mul", layer.inplace),
    kinds.Sub: lambda layer, x: Elementwise("Sub", layer.inplace),
    kinds.Div: lambda layer, x: Elementwise("Div", layer.inplace),
    kinds.Scalar: lambda layer, x: Arithmetic(layer.op, layer.value, layer.inplace),
    kinds.Cat: lambda layer, x: Concatenate(layer.dim),
    kinds.Reshape: lambda layer, x: Reshape(layer.shape, False),
    kinds.View: lambda layer, x: Reshape(layer.shape, True),
    kinds.Permute: lambda layer, x: Method("permute", *layer.dims),
    kinds.Transpose: lambda layer, x: Method("transpose", layer.dim0, layer.dim1),
    kinds.Chunk: lambda layer, x: Method("chunk", layer.chunks, layer.dim),
    kinds.Split: lambda layer, x: Method("split", _sizes(layer.split_size_or_sections), layer.dim),
    kinds.Contiguous: lambda layer, x: Method("contiguous"),
    kinds.Clone: lambda layer, x: Method("clone"),
    kinds.Mean: lambda layer, x: Method("mean", list(layer.dim), layer.keepdim),
    kinds.Parameter: lambda layer, x: Parameter(layer.shape),
    kinds.Buffer: lambda layer, x: Buffer(layer.shape),
    kinds.Constant: lambda layer, x: Constant(layer.shape),
    kinds.PositionBias: lambda layer, x: Gathered(layer.table, layer.shape, layer.dim, layer.index_buffer),
    kinds.Pad: lambda layer, x: Padding(layer.pad, layer.mode, layer.value),
    kinds.StochasticDepth: lambda layer, x: StochasticDepth(layer.p, layer.mode),
    kinds.Matmul: lambda layer, x: Function(torch.matmul),
    kinds.DynamicConv2d: WeightInput,
    kinds.Standardize: WeightInput,
    kinds.ScaledDotProductAttention: lambda layer, x: Function(
        torch.nn.functional.scaled_dot_product_attention, dropout_p=layer.dropout_p, is_causal=layer.is_causal,
        scale=layer.scale),
    kinds.MultiheadAttention: lambda layer, x: SelfAttention(**layer.torch_args(x)),
    kinds.Slice: lambda layer, x: Indexing(index=layer.index),
    kinds.IndexSelect: lambda layer, x: Selected(layer.dim, layer.index_size, (None, *x)[layer.dim]),
    kinds.SliceAdd: lambda layer, x: Indexing(index=layer.index, accumulate=layer.accumulate),
    kinds.Expand: lambda layer, x: _over_the_batch(layer) or Indexing(sizes=layer.sizes),
    kinds.Repeat: lambda layer, x: _over_the_batch(layer) or Method("repeat", 1, *layer.repeats),
    kinds.UnfoldView: lambda layer, x: Method("unfold", layer.dim, layer.size, layer.step),
    kinds.WindowAttention: lambda layer, x: _window_attention(layer, x),
    kinds.CosineWindowAttention: lambda layer, x: CosineWindows(layer, x[0][-1]),
    kinds.Sum: lambda layer, x: Method("sum", list(layer.dim), layer.keepdim),
    kinds.Amax: lambda layer, x: Method("amax", list(layer.dim), layer.keepdim),
    kinds.Norm: lambda layer, x: Method("norm", layer.ord, list(layer.dim), layer.keepdim),
    kinds.Roll: lambda layer, x: Method("roll", list(layer.shifts), list(layer.dims)),
    kinds.Unsqueeze: lambda layer, x: Method("unsqueeze", layer.dim),
    kinds.Squeeze: lambda layer, x: Method("squeeze", layer.dim),
    kinds.Normalize: lambda layer, x: Function(torch.nn.functional.normalize, p=layer.p, dim=layer.dim, eps=layer.eps),
    kinds.Rsqrt: lambda layer, x: Function(torch.rsqrt),
    kinds.Sqrt: lambda layer, x: Function(torch.sqrt),
    kinds.Var: lambda layer, x: Function(torch.var, dim=list(layer.dim), correction=layer.correction,
                                         keepdim=layer.keepdim),
    kinds.Exp: lambda layer, x: Function(torch.exp),
    kinds.Folded: lambda layer, x: Rows(torch_module(layer.layer, x[1:]), x[0]),
    kinds.Sin: lambda layer, x: Function(torch.sin),
    kinds.Cos: lambda layer, x: Function(torch.cos),
    kinds.Clamp: lambda layer, x: Function(torch.clamp_ if layer.inplace else torch.clamp, min=layer.min,
                                           max=layer.max),
}
"""The kinds torch.nn lacks, by class (a subclass of one of them is a kind of its own)."""


def _window_attention(layer, x):
    """torchvision's own shifted-window attention module (2-D or 3-D) for the layer."""
    from torchvision.models.swin_transformer import ShiftedWindowAttention
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    cls = ShiftedWindowAttention if len(layer.window_size) == 2 else ShiftedWindowAttention3d
    module = cls(x[-1], list(layer.window_size), list(layer.shift_size), layer.num_heads, qkv_bias=layer.qkv_bias,
                 proj_bias=layer.proj_bias, attention_dropout=layer.attention_dropout, dropout=layer.dropout)
    if module.relative_position_bias_table.shape[0] != layer.table_size or \
            module.relative_position_index.numel() != layer.index_size:
        raise SpecError(f"WindowAttention with table_size={layer.table_size} and index_size={layer.index_size} has "
                        f"no torchvision module (its window {list(layer.window_size)} makes other sizes)")
    return module


class CosineWindows(nn.Module):
    """torchvision's Swin V2 attention of an input, given its position bias and scale (a `CosineWindowAttention`):
    the function takes the logit scale, whose ``exp`` is the scale."""

    def __init__(self, layer, channels):
        super().__init__()
        self.layer = layer
        self.qkv = nn.Linear(channels, 3 * channels, bias=layer.qkv_bias)
        self.proj = nn.Linear(channels, channels, bias=layer.proj_bias)

    def forward(self, x, bias, scale):
        from torchvision.models.swin_transformer import shifted_window_attention

        layer = self.layer
        return shifted_window_attention(x, self.qkv.weight, self.proj.weight, bias, list(layer.window_size),
                                        layer.num_heads, list(layer.shift_size), layer.attention_dropout,
                                        layer.dropout, self.qkv.bias, self.proj.bias, torch.log(scale),
                                        training=self.training)


def _sizes(value):
    return list(value) if isinstance(value, tuple) else value


def _over_the_batch(layer) -> None:
    """Refuse a layer over the batch (``batch=True``): it reads a tensor made once per pass for every sample of the
    network's batch, which a module timed on its own does not see."""
    if layer.batch:
        raise SpecError(f"a {type(layer).__name__} over the batch (batch=True) reads a tensor made once per pass for "
                        f"every sample of the network's batch; alexcost does not time it as a layer on its own")


def torch_module(layer, x):
    """The torch module that computes ``layer`` on per-sample input ``x``: the kind's own
    ``torch_module(x)`` when its class defines one (a user's kind), its builder in `BUILDERS`,
    or the module class it reads (``register_layer(..., reads=...)``) or ``torch.nn.<ClassName>`` called
    with ``**layer.torch_args(x)``."""
    kind = type(layer)
    own = getattr(kind, "torch_module", None)
    if own is not None:
        return own(layer, x)
    build = BUILDERS.get(kind)
    if build is not None:
        return build(layer, x)
    reads = custom_reads()[0]
    module = next((c for c, k in reads.items() if k is kind), None) or getattr(nn, kind.__name__, None)
    if module is None:
        raise SpecError(f"{kind.__name__} has no torch.nn counterpart; define torch_module() on it")
    return module(**layer.torch_args(x))
