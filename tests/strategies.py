"""Shared hypothesis strategies and seeded generators: random networks, spec dicts and torch modules.

Every network is drawn constructively (each layer fits the shape it reads), so every draw is valid and
its tensors stay small; the spec-dict strategies also draw invalid and hostile specs, on purpose, for
the tests of refusals. Test modules import from here; no test module imports another.
"""


from __future__ import annotations

import copy
import json
import math
import random
import re
from dataclasses import MISSING, fields
from math import prod

import torch
from hypothesis import assume, strategies as st
from torch import nn

from alexcost import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, Add, AvgPool2d, AvgPool3d, BatchNorm2d, BatchNorm3d,
                      Cat, Chunk, Clone, Contiguous, Conv2d, Conv3d, ConvTranspose2d, Dropout, Dropout2d, Flatten,
                      GELU, GroupNorm, Hardsigmoid, Hardswish, Identity, InstanceNorm2d, LayerNorm, LeakyReLU,
                      Linear, LocalResponseNorm, MaxPool2d, MaxPool3d, Mean, Mul, Network, Pad, Parameter, Permute,
                      ReLU, ReLU6, Reshape, SiLU, Sigmoid, Softmax, SpecError, Split, StochasticDepth, Tanh,
                      Transpose, Upsample, View, ZeroPad2d, network_to_dict, preset)
from alexcost.layers import BUILTIN_KINDS

F = torch.nn.functional


# -- chains of layers (Conv2d, pools, LRN, Flatten, Linear, ...) -----------------------------------

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _form(draw, a, b):
    """An argument as a user may write it: ``a`` when square (sometimes), else the pair."""
    return a if a == b and draw(st.booleans()) else (a, b)


def _conv_side(draw, size, mode, pad_kind):
    """(kernel, dilation, padding) along one side that fit ``size``."""
    d = draw(st.integers(1, 2))
    if pad_kind == "same":
        limit = {"reflect": size - 1, "circular": size}.get(mode)
        ks = [k for k in range(1, 5) if limit is None or d * (k - 1) - d * (k - 1) // 2 <= limit]
        return draw(st.sampled_from(ks)), d, None
    pmax = 0 if pad_kind == "valid" else {"reflect": size - 1, "circular": size}.get(mode, 2)
    p = draw(st.integers(0, min(2, pmax)))
    kmax = (size + 2 * p - 1) // d + 1
    return draw(st.integers(1, min(4, kmax))), d, p


@st.composite
def conv2d(draw, x):
    c, h, w = x
    groups = draw(st.sampled_from([g for g in range(1, min(c, 4) + 1) if c % g == 0]))
    out_channels = groups * draw(st.integers(1, 3))
    mode = draw(st.sampled_from(PADDING_MODES))
    pad_kind = draw(st.sampled_from(["number", "number", "same", "valid"]))
    (kh, dh, ph), (kw, dw, pw) = _conv_side(draw, h, mode, pad_kind), _conv_side(draw, w, mode, pad_kind)
    args = dict(out_channels=out_channels, kernel_size=_form(draw, kh, kw), dilation=_form(draw, dh, dw),
                groups=groups, bias=draw(st.booleans()), padding_mode=mode)
    if pad_kind == "number":
        args["padding"] = _form(draw, ph, pw)
    else:
        args["padding"] = pad_kind
    if pad_kind != "same":
        args["stride"] = _form(draw, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if draw(st.booleans()):
        args["in_channels"] = c
    return Conv2d(**args)


def _pool_side(draw, size, dilated):
    d = draw(st.integers(1, 2)) if dilated else 1
    p = draw(st.integers(0, 2))
    kmax = min(4, (size + 2 * p - 1) // d + 1)
    if kmax < max(1, 2 * p):
        p = 0
        kmax = min(4, (size - 1) // d + 1)
    return draw(st.integers(max(1, 2 * p), kmax)), d, p


def _reads_only_padding(size, k, s, p, d, ceil_mode) -> bool:
    """Does some window along one side read only padding (torch's output size, taps enumerated)?"""
    room = size + 2 * p - d * (k - 1) - 1
    n = (room + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return any(all(not 0 <= i * s - p + j * d < size for j in range(k)) for i in range(n))


@st.composite
def max_pool(draw, x):
    (kh, dh, ph), (kw, dw, pw) = _pool_side(draw, x[1], True), _pool_side(draw, x[2], True)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ceil_mode = draw(st.booleans())
    sh, sw = stride or (kh, kw)
    # a dilated window that reads only padding is refused (torch gives -inf there): dilate no such side
    if _reads_only_padding(x[1], kh, sh, ph, dh, ceil_mode):
        dh = 1
    if _reads_only_padding(x[2], kw, sw, pw, dw, ceil_mode):
        dw = 1
    return MaxPool2d(kernel_size=_form(draw, kh, kw), stride=stride and _form(draw, *stride),
                     padding=_form(draw, ph, pw), dilation=_form(draw, dh, dw), ceil_mode=ceil_mode)


@st.composite
def avg_pool(draw, x):
    (kh, _, ph), (kw, _, pw) = _pool_side(draw, x[1], False), _pool_side(draw, x[2], False)
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    divisor = draw(st.one_of(st.none(), st.integers(1, 5), st.integers(-3, -1)))
    return AvgPool2d(kernel_size=_form(draw, kh, kw), stride=stride and _form(draw, *stride),
                     padding=_form(draw, ph, pw), ceil_mode=draw(st.booleans()),
                     count_include_pad=draw(st.booleans()), divisor_override=divisor)


@st.composite
def adaptive_pool(draw, x):
    side = st.one_of(st.none(), st.integers(1, 7))
    oh, ow = draw(side), draw(side)
    if oh == ow and oh is not None and draw(st.booleans()):
        return AdaptiveAvgPool2d(output_size=oh)
    return AdaptiveAvgPool2d(output_size=(oh, ow))


def lrn(x):
    reals = st.floats(1e-5, 2.0)
    return st.builds(LocalResponseNorm, size=st.integers(1, 6), alpha=reals, beta=st.floats(0.1, 1.0), k=reals)


def _dims(rank):
    """Dims of a batched tensor of ``rank`` dims other than the batch dim, in both spellings."""
    return [d for i in range(1, rank) for d in (i, i - rank)]


def softmax(x):
    # dim=None on a rank-2 sample would normalise over the batch: alexcost refuses it (see _deliberate)
    none = st.none() if len(x) != 2 else st.nothing()
    return st.builds(Softmax, dim=st.one_of(none, st.sampled_from(_dims(len(x) + 1))))


@st.composite
def flatten(draw, x):
    rank = len(x) + 1
    start = draw(st.integers(1, rank - 1))
    end = draw(st.integers(start, rank - 1))
    return Flatten(start_dim=draw(st.sampled_from([start, start - rank])),
                   end_dim=draw(st.sampled_from([end, end - rank])))


def elementwise(x):
    return st.one_of(st.builds(ReLU, inplace=st.booleans()), st.builds(Tanh), st.builds(Sigmoid),
                     st.builds(Dropout, p=st.floats(0, 1)))


@st.composite
def linear(draw, x):
    args = dict(out_features=draw(st.integers(1, 6)), bias=draw(st.booleans()))
    if draw(st.booleans()):
        args["in_features"] = x[0]
    return Linear(**args)


SPATIAL = (conv2d, conv2d, max_pool, avg_pool, adaptive_pool, lrn, elementwise, softmax)
"""Kinds drawn while the per-sample shape is (C, H, W); conv twice as often."""


@st.composite
def chain_networks(draw, max_spatial=4):
    """A valid random network: spatial layers on (C, H, W), a Flatten, maybe a linear head."""
    x = (draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    layers, shape = [], x
    for _ in range(draw(st.integers(0, max_spatial))):
        layer = draw(draw(st.sampled_from(SPATIAL))(shape))
        layers.append(layer)
        shape = layer.output_shape(shape)
    if draw(st.booleans()):
        layer = draw(flatten(shape))
        layers.append(layer)
        shape = layer.output_shape(shape)
        tail = [lrn, elementwise, softmax, flatten] if len(shape) > 1 else [linear, linear, elementwise, softmax]
        for _ in range(draw(st.integers(0, 3))):
            layer = draw(draw(st.sampled_from(tail))(shape))
            layers.append(layer)
            shape = layer.output_shape(shape)
            if len(shape) == 1:
                tail = [linear, linear, elementwise, softmax]
    if not layers:  # a network has at least one layer
        layers.append(draw(elementwise(shape)))
    return Network(x, layers)


# -- graphs: a trunk of residual, SE, concat, shuffle, norm, scale and pad blocks ------------------

@st.composite
def trunk_graphs(draw):
    """A valid random graph on (C, H, W): a trunk with residual, SE, concat and shuffle blocks."""
    c, h, w = draw(st.sampled_from([2, 4, 6])), draw(st.integers(3, 7)), draw(st.integers(3, 7))
    first = (c, h, w)
    layers, shape, last, n = [], first, "input", 0

    def add(layer):
        nonlocal last, shape, n
        layers.append(layer)
        last = layer.name
        n += 1
        return layer.name

    def name(stem):
        return f"{stem}{n}"

    for _ in range(draw(st.integers(1, 4))):
        block = draw(st.sampled_from(["residual", "se", "concat", "shuffle", "norms", "scale", "pad"]))
        c = shape[0]
        if block == "residual":
            start = last
            add(Conv2d(name=name("conv"), out_channels=c, kernel_size=3, padding=1, bias=draw(st.booleans()),
                       inputs=(start,)))
            add(BatchNorm2d(name=name("bn"), affine=draw(st.booleans())))
            act = draw(st.sampled_from([ReLU, ReLU6, SiLU, Hardswish, LeakyReLU]))
            add(act(name=name("act"), inplace=draw(st.booleans())))
            add(StochasticDepth(name=name("sd"), p=0.2, mode="row"))
            add(Add(name=name("add"), inputs=(last, start), inplace=draw(st.booleans())))
        elif block == "se":
            start = last
            add(AdaptiveAvgPool2d(name=name("pool"), output_size=1, inputs=(start,)))
            add(Conv2d(name=name("fc"), out_channels=max(1, c // 2), kernel_size=1))
            add(ReLU(name=name("relu")))
            add(Conv2d(name=name("fc"), out_channels=c, kernel_size=1))
            add(draw(st.sampled_from([Sigmoid, Hardsigmoid]))(name=name("gate")))
            add(Mul(name=name("scale"), inputs=(start, last)))
        elif block == "concat":
            start = last
            a = add(Conv2d(name=name("branch"), out_channels=2, kernel_size=1, inputs=(start,)))
            b = add(MaxPool2d(name=name("branch"), kernel_size=3, stride=1, padding=1, inputs=(start,)))
            add(Cat(name=name("cat"), dim=1, inputs=(a, b)))
            shape = (shape[0] + 2, *shape[1:])
        elif block == "shuffle" and c % 2 == 0:
            start = add(Chunk(name=name("chunk"), chunks=2, dim=1))
            right = add(Conv2d(name=name("conv"), out_channels=c // 2, kernel_size=1, inputs=(f"{start}.1",)))
            add(Cat(name=name("cat"), dim=1, inputs=(f"{start}.0", right)))
            add(Reshape(name=name("view"), shape=(2, c // 2, *shape[1:])))
            add(Transpose(name=name("swap"), dim0=1, dim1=2))
            add(Contiguous(name=name("contig")))
            add(View(name=name("flat"), shape=(c, *shape[1:])))
        elif block == "norms":
            add(Permute(name=name("nhwc"), dims=(0, 2, 3, 1)))
            add(LayerNorm(name=name("ln"), normalized_shape=c))
            add(Linear(name=name("pw"), out_features=c))
            add(GELU(name=name("gelu")))
            add(Permute(name=name("nchw"), dims=(0, 3, 1, 2)))
        elif block == "scale":
            start = last
            p = add(Parameter(name=name("gamma"), shape=(c, 1, 1)))
            add(Mul(name=name("ls"), inputs=(p, start)))
            add(Dropout2d(name=name("drop"), p=0.1))
        elif block == "pad":
            add(ZeroPad2d(name=name("pad"), padding=(1, 0, 0, 1)))
            add(AdaptiveMaxPool2d(name=name("amp"), output_size=shape[1:]))
            add(Identity(name=name("id")))
    if draw(st.booleans()):
        add(Mean(name="mean", dim=(2, 3), keepdim=draw(st.booleans())))
    else:
        add(Split(name="split", split_size_or_sections=(1, shape[0] - 1) if shape[0] > 1 else 1, dim=1))
        add(Flatten(name="flat_end", inputs=("split.0",)))
    return Network(first, layers)


# -- graphs: each layer reads any earlier node of a shape it fits ----------------------------------

@st.composite
def dag_graphs(draw):
    """A valid random graph network: convs, activations, pools, adds, concatenations, chunks and
    layer scales over earlier nodes, drawn so every layer fits the shapes it reads."""

    c, h, w = draw(st.integers(1, 4)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    nodes = {"input": (c, h, w)}  # name -> per-sample shape of every single-output node
    layers = []
    for i in range(draw(st.integers(1, 7))):
        name = f"n{i}"
        src = draw(st.sampled_from(sorted(nodes)))
        sc, sh, sw = nodes[src]
        op = draw(st.sampled_from(["conv", "act", "pool", "add", "cat", "chunk", "scale"]))
        same = sorted(n for n, s in nodes.items() if s == (sc, sh, sw) and n != src)
        spatial = sorted(n for n, s in nodes.items() if s[1:] == (sh, sw) and n != src)
        if op == "add" and same:
            layer, shape = Add(name=name, inputs=(src, draw(st.sampled_from(same)))), (sc, sh, sw)
        elif op == "cat" and spatial:
            other = draw(st.sampled_from(spatial))
            layer, shape = Cat(name=name, dim=1, inputs=(src, other)), (sc + nodes[other][0], sh, sw)
        elif op == "chunk" and sc >= 2:
            layers.append(Chunk(name=name, chunks=2, dim=1, inputs=(src,)))
            for k, part in enumerate((-(-sc // 2), sc - -(-sc // 2))):
                if part:
                    nodes[f"{name}.{k}"] = (part, sh, sw)
            continue
        elif op == "scale":
            layers.append(Parameter(name=f"{name}p", shape=(sc, 1, 1)))
            layer, shape = Mul(name=name, inputs=(src, f"{name}p")), (sc, sh, sw)
        elif op == "pool" and min(sh, sw) >= 2:
            layer, shape = MaxPool2d(name=name, kernel_size=2, inputs=(src,)), (sc, sh // 2, sw // 2)
        elif op == "act":
            kind = draw(st.sampled_from([ReLU, Sigmoid]))
            layer, shape = kind(name=name, inputs=(src,)), (sc, sh, sw)
        else:
            out, k = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))
            layer = Conv2d(name=name, out_channels=out, kernel_size=k, padding=k // 2, bias=draw(st.booleans()),
                           inputs=(src,))
            shape = (out, sh, sw)
        layers.append(layer)
        nodes[name] = shape
    if type(layers[-1]).multi_output:  # the network's output is one tensor
        layers.append(ReLU(name="last", inputs=(f"{layers[-1].name}.0",)))
    return Network((c, h, w), layers)


# -- graphs: a chain of blocks, with skips onto earlier nodes of the same shape --------------------

def padded_conv(name, out, k=3, **kw):
    return Conv2d(name=name, out_channels=out, kernel_size=k, padding=k // 2, **kw)


@st.composite
def block_graphs(draw):
    """A chain of blocks, each valid by construction: convs, residual adds onto an earlier node of the
    same shape, concatenated branches, squeeze-and-excitation, channel shuffles, a layer scale, pooling."""
    c, side = draw(st.sampled_from([2, 4])), draw(st.integers(2, 4))
    layers, shapes, current = [], {"input": (c, side, side)}, "input"

    def put(layer):
        reads = layer.inputs or (current,)
        x = tuple(shapes[r] for r in reads) if len(reads) > 1 else shapes[reads[0]]
        layers.append(layer)
        y = layer.output_shape(x if type(layer).arity != 0 else ())
        if type(layer).multi_output:
            for k, s in enumerate(y):
                shapes[f"{layer.name}.{k}"] = s
        else:
            shapes[layer.name] = y
        return layer.name

    for b in range(draw(st.integers(1, 4))):
        c, h, _ = shapes[current]
        block = draw(st.sampled_from(["conv", "residual", "concat", "se", "shuffle", "scale", "pool"]))
        p = f"b{b}"
        if block == "conv":
            k = draw(st.sampled_from([1, 3]))
            padding = draw(st.sampled_from([k // 2, "same"]))
            current = put(Conv2d(name=f"{p}conv", out_channels=draw(st.sampled_from([2, 4])), kernel_size=k,
                                 padding=padding, bias=draw(st.booleans()), inputs=(current,)))
            if draw(st.booleans()):
                current = put(ReLU(name=f"{p}relu", inputs=(current,)))
        elif block == "residual":
            skip = draw(st.sampled_from([n for n, s in shapes.items() if s == (c, h, h)]))
            body = put(padded_conv(f"{p}conv", c, inputs=(current,)))
            current = put(Add(name=f"{p}add", inputs=(body, skip)))
        elif block == "concat":
            a = put(padded_conv(f"{p}a", draw(st.sampled_from([1, 2])), k=1, inputs=(current,)))
            other = draw(st.sampled_from([current, put(padded_conv(f"{p}b", 2, inputs=(current,)))]))
            current = put(Cat(name=f"{p}cat", dim=1, inputs=(a, other)))
        elif block == "se":
            pool = put(AdaptiveAvgPool2d(name=f"{p}pool", output_size=1, inputs=(current,)))
            gate = put(Sigmoid(name=f"{p}gate", inputs=(put(padded_conv(f"{p}fc", c, k=1, inputs=(pool,))),)))
            current = put(Mul(name=f"{p}mul", inputs=(current, gate)))
        elif block == "shuffle" and c % 2 == 0:
            if draw(st.booleans()):
                parts = put(Chunk(name=f"{p}chunk", chunks=2, dim=1, inputs=(current,)))
                current = put(Cat(name=f"{p}cat", dim=1, inputs=(f"{parts}.1", f"{parts}.0")))
            else:
                g = put(Reshape(name=f"{p}groups", shape=(2, c // 2, h, h), inputs=(current,)))
                t = put(Transpose(name=f"{p}swap", dim0=1, dim1=2, inputs=(g,)))
                current = put(Reshape(name=f"{p}back", shape=(c, h, h), inputs=(put(Contiguous(name=f"{p}copy",
                                                                                          inputs=(t,))),)))
        elif block == "scale":
            gamma = put(Parameter(name=f"{p}gamma", shape=draw(st.sampled_from([(c, 1, 1), (1, h, h)]))))
            current = put(Mul(name=f"{p}scale", inputs=(current, gamma)))
        elif block == "pool" and h >= 2:
            current = put(MaxPool2d(name=f"{p}pool", kernel_size=2, inputs=(current,)))
    if draw(st.booleans()):
        current = put(Linear(name="fc", out_features=3, inputs=(put(Flatten(name="flat", inputs=(current,))),)))
    if not layers:
        put(ReLU(name="relu"))
    return Network(shapes["input"], layers, name="random")


# -- networks for training steps against torch -----------------------------------------------------

def _named(layers: list, layer, inputs=()) -> str:
    """Append ``layer`` to ``layers`` as ``l<index>``, reading ``inputs`` (none: the layer before);
    return its name."""
    name = f"l{len(layers)}"
    layers.append(type(layer)(**{**layer.args(), "name": name, "inputs": tuple(inputs) or None}))
    return name


def _some_frozen(draw, network) -> tuple[str, ...]:
    """About one in four of the layers of ``network`` that have parameters: the names a step freezes."""
    trainable = [n for n, layer, x in zip(network.names, network.layers, network.input_shapes)
                 if layer.weight_params(x) + layer.bias_params(x)]
    return tuple(n for n in trainable if draw(st.integers(0, 3)) == 0)


def _training_conv(draw, shape, out=None, same=False):
    c, h, w = shape
    groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
    out = out or groups * draw(st.integers(1, 3))
    small = min(h, w) < 3
    # not circular: its padding makes a contiguous tensor even from a channels-last input, which the
    # storage plan (alexcost/storage.py) does not yet follow; test_padding_modes covers it on contiguous inputs
    mode = "zeros" if small else draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate"]))
    bias = draw(st.booleans())
    if same or small or draw(st.booleans()):
        return Conv2d(out_channels=out, kernel_size=draw(st.sampled_from([1, 2, 3, (2, 3)])), padding="same",
                      groups=groups, padding_mode=mode, bias=bias)
    return Conv2d(out_channels=out, kernel_size=draw(st.sampled_from([1, 2, 3])), padding=draw(st.integers(0, 1)),
                  groups=groups, padding_mode=mode, bias=bias)


TRAINING_ACTIVATIONS = (
    lambda d: ReLU(inplace=d(st.booleans())), lambda d: ReLU6(inplace=d(st.booleans())),
    lambda d: LeakyReLU(inplace=d(st.booleans()), negative_slope=d(st.sampled_from([0.0, 0.1]))),
    lambda d: SiLU(inplace=d(st.booleans())), lambda d: Hardswish(inplace=d(st.booleans())),
    lambda d: Hardsigmoid(inplace=d(st.booleans())), lambda d: GELU(approximate=d(st.sampled_from(["none", "tanh"]))),
    lambda d: Tanh(), lambda d: Sigmoid(), lambda d: Softmax(dim=1), lambda d: Identity(),
    lambda d: Dropout(p=d(st.sampled_from([0.0, 0.4, 1.0])), inplace=d(st.booleans())),
    lambda d: Dropout2d(p=d(st.sampled_from([0.0, 0.5, 1.0]))),
    lambda d: StochasticDepth(p=d(st.sampled_from([0.0, 0.5])), mode=d(st.sampled_from(["row", "batch"]))),
)


TRAINING_BLOCKS = ("conv", "act", "act", "pool", "norm", "residual", "se", "pieces", "scale", "layernorm", "shape")


@st.composite
def training_networks(draw, max_blocks: int = 4):
    """A small valid network: blocks of layers on a (C, H, W) tensor (a residual Add, a
    squeeze-and-excitation Mul, a Chunk or Split and Cat, a layer-scale Parameter, a channels-last
    LayerNorm and Linear are graphs), then a Flatten and a Linear head."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    input_shape = shape
    layers = []

    def add(layer, inputs=()):
        return _named(layers, layer, inputs)

    last = "input"
    for _ in range(draw(st.integers(1, max_blocks))):
        c, h, w = shape
        block = draw(st.sampled_from(TRAINING_BLOCKS))
        if block == "conv":
            conv = _training_conv(draw, shape)
            shape = Network(shape, [conv]).output_shape
            last = add(conv, (last,))
        elif block == "act":
            last = add(draw(st.sampled_from(TRAINING_ACTIVATIONS))(draw), (last,))
        elif block == "pool":
            kind = draw(st.sampled_from(["max", "avg", "adaptive", "adaptive_max"] if min(h, w) >= 2
                                        else ["adaptive", "adaptive_max"]))
            pool = {"max": lambda: MaxPool2d(kernel_size=2, stride=draw(st.integers(1, 2)),
                                             ceil_mode=draw(st.booleans())),
                    "avg": lambda: AvgPool2d(kernel_size=2, padding=draw(st.integers(0, 1))),
                    "adaptive": lambda: AdaptiveAvgPool2d(output_size=draw(st.sampled_from([1, 2, (2, None)]))),
                    "adaptive_max": lambda: AdaptiveMaxPool2d(output_size=draw(st.sampled_from([1, 2])))}[kind]()
            shape = Network(shape, [pool]).output_shape
            last = add(pool, (last,))
        elif block == "norm":
            last = add(BatchNorm2d(affine=draw(st.booleans())) if draw(st.booleans())
                       else LocalResponseNorm(size=draw(st.integers(1, 4)), k=2.0), (last,))
        elif block == "residual":
            conv = add(_training_conv(draw, shape, out=c, same=True), (last,))
            bn = add(BatchNorm2d(), (conv,))
            last = add(Add(inplace=draw(st.booleans())), (bn, last))
            last = add(ReLU(inplace=draw(st.booleans())), (last,))
        elif block == "se":
            pooled = add(Mean(dim=(2, 3), keepdim=True), (last,))
            squeeze = add(Conv2d(out_channels=max(1, c // 2), kernel_size=1), (pooled,))
            excite = add(Conv2d(out_channels=c, kernel_size=1), (add(ReLU(), (squeeze,)),))
            last = add(Mul(), (last, add(Sigmoid(), (excite,))))
        elif block == "pieces" and c >= 2:
            first = draw(st.integers(1, c - 1))
            split = draw(st.booleans())
            pieces = add(Split(split_size_or_sections=(first, c - first), dim=1) if split
                         else Chunk(chunks=2, dim=1), (last,))
            size = first if split else -(-c // 2)
            conv = add(Conv2d(out_channels=size, kernel_size=3, padding=1), (f"{pieces}.0",))
            last = add(Cat(dim=1), (f"{pieces}.1", conv) if draw(st.booleans()) else (conv, f"{pieces}.1"))
        elif block == "scale":
            scale = add(Parameter(shape=(c, 1, 1)))
            last = add(Mul(inplace=draw(st.booleans())), (last, scale))
        elif block == "layernorm":
            channels_last = add(Permute(dims=(0, 2, 3, 1)), (last,))
            norm = add(LayerNorm(normalized_shape=c), (channels_last,))
            mixed = add(Linear(out_features=c, bias=draw(st.booleans())), (norm,))
            last = add(Permute(dims=(0, 3, 1, 2)), (mixed,))
        elif block == "shape":
            if draw(st.booleans()):
                last = add(Contiguous(), (add(Transpose(dim0=2, dim1=3), (last,)),))
                shape = (c, w, h)
            else:
                last = add(ZeroPad2d(padding=(1, 0, 0, 1)), (last,))
                shape = (c, h + 1, w + 1)
    flat = add(Flatten(), (last,))
    if draw(st.booleans()):
        flat = add(Dropout(p=0.5), (flat,))
    add(Linear(out_features=draw(st.integers(1, 3))), (flat,))
    network = Network(input_shape, layers, name="drawn")
    frozen = _some_frozen(draw, network)
    return network, draw(st.integers(1, 3)), frozen, draw(st.sampled_from(["sgd", "momentum", "adam"]))


# -- networks whose tensors all stay contiguous ----------------------------------------------------

CONTIGUOUS_ACTIVATIONS = (
    lambda d: ReLU(inplace=d(st.booleans())), lambda d: ReLU6(inplace=d(st.booleans())),
    lambda d: LeakyReLU(inplace=d(st.booleans())), lambda d: SiLU(inplace=d(st.booleans())),
    lambda d: Hardswish(inplace=d(st.booleans())), lambda d: GELU(), lambda d: Tanh(), lambda d: Sigmoid(),
    lambda d: Softmax(dim=1), lambda d: Identity(), lambda d: Dropout(p=0.5, inplace=d(st.booleans())),
    lambda d: Dropout2d(p=0.5),
)


CONTIGUOUS_BLOCKS = ("conv", "act", "act", "pool", "norm", "residual", "se", "scale", "tokens", "dead", "fan", "clone")


@st.composite
def contiguous_networks(draw):
    """A small network on a (C, H, W) input whose tensors stay contiguous: convolutions,
    activations (some in place), pooling, normalisation, residual Adds, squeeze-and-excitation
    Muls, layer-scale Parameters, Linear over the last dim of a 3-D tensor and a Reshape back,
    a branch that never reaches the output, a tensor read twice, a copy; then a Linear head.
    Returns the input shape, the layers, and the names a step may freeze."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    input_shape, layers = shape, []

    def add(layer, inputs):
        return _named(layers, layer, inputs)

    last = "input"
    for _ in range(draw(st.integers(1, 5))):
        c, h, w = shape
        block = draw(st.sampled_from(CONTIGUOUS_BLOCKS))
        if block == "conv":
            conv = Conv2d(out_channels=draw(st.integers(1, 4)), kernel_size=draw(st.sampled_from([1, 2, 3])),
                          padding="same", bias=draw(st.booleans()))
            shape = (conv.out_channels, h, w)
            last = add(conv, (last,))
        elif block == "act":
            last = add(draw(st.sampled_from(CONTIGUOUS_ACTIVATIONS))(draw), (last,))
        elif block == "pool":
            pools = [AdaptiveAvgPool2d(output_size=1)]
            if min(h, w) >= 2:
                pools += [MaxPool2d(kernel_size=2, stride=1), AvgPool2d(kernel_size=2, stride=1)]
            pool = draw(st.sampled_from(pools))
            shape = Network(shape, [pool]).output_shape
            last = add(pool, (last,))
        elif block == "norm":
            last = add(draw(st.sampled_from([BatchNorm2d(), BatchNorm2d(affine=False),
                                             LocalResponseNorm(size=draw(st.integers(1, 3)))])), (last,))
        elif block == "residual":
            conv = add(Conv2d(out_channels=c, kernel_size=3, padding="same"), (last,))
            bn = add(BatchNorm2d(), (conv,))
            last = add(Add(inplace=draw(st.booleans())), (bn, last) if draw(st.booleans()) else (last, bn))
            last = add(ReLU(inplace=draw(st.booleans())), (last,))
        elif block == "se":
            pooled = add(Mean(dim=(2, 3), keepdim=True), (last,))
            excite = add(Sigmoid(), (add(Conv2d(out_channels=c, kernel_size=1), (pooled,)),))
            last = add(Mul(inplace=draw(st.booleans())), (last, excite))
        elif block == "scale":
            scale = add(Parameter(shape=(c, 1, 1)), ())
            if draw(st.booleans()):  # in place writes into the first input: the activation
                last = add(Mul(inplace=draw(st.booleans())), (last, scale))
            else:  # never in place: alexcost refuses an in-place merge into a weight
                last = add(Mul(), (scale, last))
        elif block == "tokens":  # (C, H*W): Linear over the last dim, then back to (C, H, W)
            tokens = add(Flatten(start_dim=2), (last,))
            mixed = add(Linear(out_features=h * w, bias=draw(st.booleans())), (tokens,))
            if draw(st.booleans()):
                mixed = add(LayerNorm(normalized_shape=h * w), (mixed,))
            last = add(Reshape(shape=(c, h, w)), (mixed,))
        elif block == "dead":  # read, but never read by anything that reaches the output
            add(draw(st.sampled_from([Conv2d(out_channels=2, kernel_size=1), Sigmoid(), BatchNorm2d()])), (last,))
        elif block == "fan":  # one tensor read by two layers, then by the same layer twice
            other = add(draw(st.sampled_from(CONTIGUOUS_ACTIVATIONS))(draw), (last,))
            last = add(Add(), (last, other))
            if draw(st.booleans()):
                last = add(Mul(), (last, last))
        elif block == "clone":
            last = add(Clone(), (last,))
    flat = add(Flatten(), (last,))
    if draw(st.booleans()):
        flat = add(Dropout(p=0.5, inplace=draw(st.booleans())), (flat,))
    add(Linear(out_features=draw(st.integers(1, 3))), (flat,))
    network = Network(input_shape, layers, name="drawn")
    frozen = _some_frozen(draw, network)
    return input_shape, tuple(layers), frozen


# -- networks of the dense and video kinds ---------------------------------------------------------

def _dense_block(draw, shape, video: bool):
    """One layer of a dense kind, drawn to fit ``shape`` (None: the draw does not fit)."""
    c, rank = shape[0], len(shape) + 1
    block = draw(st.sampled_from(["conv", "transposed", "pool", "norm", "resize", "pad", "last"]))
    if block == "last":    # a channels-last tensor for the next layer
        return [Permute(dims=(0, *range(2, rank), 1)), Contiguous(), Permute(dims=(0, rank - 1, *range(1, rank - 1)))]
    if block == "conv":
        return [(Conv3d if video else Conv2d)(out_channels=draw(st.integers(1, 4)), kernel_size=draw(st.integers(1, 3)),
                                              padding="same", bias=draw(st.booleans()),
                                              padding_mode=draw(st.sampled_from(["zeros", "reflect", "replicate"])))]
    if block == "transposed":
        return [ConvTranspose2d(out_channels=draw(st.integers(1, 3)), kernel_size=draw(st.integers(1, 3)),
                                stride=draw(st.integers(1, 2)))] if not video else []
    if block == "pool":
        return [draw(st.sampled_from([MaxPool3d, AvgPool3d]))(kernel_size=2, ceil_mode=True)] if video else []
    if block == "norm":
        return [draw(st.sampled_from(
            [BatchNorm3d(affine=draw(st.booleans())), GroupNorm(num_groups=1, bias=draw(st.booleans()))] if video else
            [InstanceNorm2d(affine=draw(st.booleans()), track_running_stats=draw(st.booleans())),
             GroupNorm(num_groups=c, affine=draw(st.booleans()))]))]
    if block == "resize":
        modes = ["nearest", "trilinear"] if video else ["nearest", "bilinear", "bicubic", "nearest-exact"]
        return [Upsample(scale_factor=draw(st.sampled_from([1.5, 2.0])), mode=draw(st.sampled_from(modes)))]
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    low = -1 if mode in ("constant", "replicate") else 0
    return [Pad(pad=[draw(st.integers(low, 1)) for _ in range(2 * (len(shape) - 1))], mode=mode)]


@st.composite
def dense_networks(draw):
    """A small valid chain over a (C, H, W) or (C, D, H, W) input: layers of the dense kinds (each drawn
    to fit the shape that reaches it), sometimes fed a channels-last tensor, then a Flatten and a Linear."""
    video = draw(st.booleans())
    x = (draw(st.integers(1, 3)), *(draw(st.integers(2, 4)) for _ in range(3 if video else 2)))
    layers, shape = [], x
    for _ in range(draw(st.integers(1, 4))):
        block = _dense_block(draw, shape, video)
        try:
            shape = Network(shape, block).output_shape if block else shape
        except SpecError:
            continue
        layers += block
    assume(layers and prod(shape) <= 4096)
    return Network(x, [*layers, Flatten(), Linear(out_features=2)], name="drawn"), draw(st.integers(1, 2))


# -- seeded random spec dicts (random.Random): graphs, and search candidates -----------------------

def random_graph_spec(rng: random.Random, layers: int = 16) -> dict:
    """A random CNN on 3x16x16: chain runs, one-input branches, Add and Cat merges, views, splits."""
    c = rng.choice((4, 8))
    out = [{"type": "Conv2d", "name": "stem", "out_channels": c, "kernel_size": 3, "padding": 1}]
    last = "stem"
    while len(out) < layers:
        n = len(out)
        block = rng.choice(["conv", "residual", "branches", "pool", "split", "unnamed"])
        if block == "conv":
            c = rng.choice((4, 8))
            out += [{"type": "Conv2d", "name": f"c{n}", "out_channels": c, "kernel_size": 3, "padding": 1},
                    {"type": "BatchNorm2d", "name": f"b{n}"}, {"type": "ReLU", "name": f"r{n}", "inplace": True}]
            last = f"r{n}"
        elif block == "residual":
            out += [{"type": "Conv2d", "name": f"c{n}", "out_channels": c, "kernel_size": 1, "bias": False},
                    {"type": "Add", "name": f"a{n}", "inputs": [f"c{n}", last]}, {"type": "ReLU", "name": f"r{n}"}]
            last = f"r{n}"
        elif block == "branches":
            out += [{"type": "Conv2d", "name": f"p{n}", "out_channels": 4, "kernel_size": 1, "inputs": [last]},
                    {"type": "Conv2d", "name": f"q{n}", "out_channels": 4, "kernel_size": 3, "padding": 1,
                     "inputs": [last]},
                    {"type": "Cat", "name": f"j{n}", "dim": 1, "inputs": [f"p{n}", f"q{n}"]}]
            c, last = 8, f"j{n}"
        elif block == "pool":
            out.append({"type": "MaxPool2d", "name": f"m{n}", "kernel_size": 2, "stride": 1})
            last = f"m{n}"
        elif block == "split":  # a multi-output layer and a view: the stride trace decides storage
            out += [{"type": "Chunk", "name": f"k{n}", "chunks": 2, "dim": 1, "inputs": [last]},
                    {"type": "Cat", "name": f"u{n}", "dim": 1, "inputs": [f"k{n}.1", f"k{n}.0"]}]
            last = f"u{n}"
        else:  # unnamed layers reading the one before: default names, one layer object reused
            out += [{"type": "ReLU", "inputs": [last]}, {"type": "ReLU"}]
            last = f"relu{n + 1}"
    out += [{"type": "AdaptiveAvgPool2d", "name": "gap", "output_size": 1}, {"type": "Flatten", "name": "flat"},
            {"type": "Linear", "name": "head", "out_features": 10}]
    return {"input_shape": [3, 16, 16], "layers": out}


def search_candidates(n: int, seed: int = 0) -> list[dict]:
    """Random 20-layer candidates from a small search space; some are invalid (pooling to nothing)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        layers = []
        for _ in range(20):
            kind = rng.choice(["conv", "conv", "bn", "relu", "pool"])
            if kind == "conv":
                layers.append({"type": "Conv2d", "out_channels": rng.choice([8, 16, 32]),
                               "kernel_size": rng.choice([1, 3, [3, 5]]), "padding": "same"})
            elif kind == "bn":
                layers.append({"type": "BatchNorm2d"})
            elif kind == "relu":
                layers.append({"type": "ReLU", "inplace": rng.random() < 0.5})
            else:
                layers.append({"type": "MaxPool2d", "kernel_size": 2})
        layers += [{"type": "AdaptiveAvgPool2d", "output_size": 1}, {"type": "Flatten"},
                   {"type": "Linear", "out_features": 10}]
        out.append({"input_shape": [3, 32, 32], "layers": layers})
    return out


# -- torch modules: a random program over a list of tensors ----------------------------------------

def _unary(fn):
    def op(self, env, a):
        env.append(fn(env[a]))
    return op


def _statement(fn):
    def op(self, env, a):
        fn(env[a])  # the result is dropped: torch has changed env[a]
    return op


def _binary(fn):
    def op(self, env, a, b):
        env.append(fn(env[a], env[b]))
    return op


def _binary_statement(fn):
    def op(self, env, a, b):
        fn(env[a], env[b])
    return op


def _iadd(self, env, a, b):
    y = env[a]
    y += env[b]
    env[a] = y  # `y += z` rebinds y to the same tensor


def _imul(self, env, a, b):
    y = env[a]
    y *= env[b]
    env[a] = y


def _scale(spelling):
    def op(self, env, a, k):
        g = getattr(self, f"g{k}")
        env.append(env[a] * g if spelling == "mul" else torch.mul(env[a], g) if spelling == "torch" else env[a].mul(g))
    return op


def _scale_in_place(self, env, a, k):
    env[a].mul_(getattr(self, f"g{k}"))


def _program_conv(self, env, a, k):
    env.append(getattr(self, f"conv{k}")(env[a]))


def _conv_functional(self, env, a, k):
    conv = getattr(self, f"conv{k}")
    env.append(F.conv2d(env[a], conv.weight, conv.bias, padding=1))


def _linear(self, env, a, k):
    env.append(getattr(self, f"fc{k}")(env[a]))


def _merge(self, env, a, b, k):
    env.append(getattr(self, f"merge{k}")(torch.cat([env[a], env[b]], 1)))


def _relu_module(self, env, a):
    env.append(self.relu(env[a]))


def _relu_module_statement(self, env, a):
    self.relu_inplace(env[a])


def _to_4d(self, env, a, how):
    y = env[a]
    env.append(y.view(y.size(0), self.c, self.s, self.s) if how == "view" else y.reshape(y.size(0), self.c, self.s,
                                                                                          self.s))


def _to_2d(self, env, a, how):
    y = env[a]
    env.append(y.flatten(1) if how == "flatten" else y.view(y.size(0), -1) if how == "view"
               else y.reshape(y.size(0), -1))


OPS = {
    # 4-D or 2-D, shape kept
    "relu": _unary(F.relu), "relu_method": _unary(lambda y: y.relu()), "torch_relu": _unary(torch.relu),
    "sigmoid": _unary(torch.sigmoid), "tanh_method": _unary(lambda y: y.tanh()), "silu": _unary(F.silu),
    "relu_module": _relu_module,
    "relu_assigned": _unary(lambda y: y.relu_()), "relu_inplace_assigned": _unary(lambda y: F.relu(y, inplace=True)),
    "relu_": _statement(lambda y: y.relu_()), "torch_relu_": _statement(torch.relu_),
    "relu_inplace": _statement(lambda y: F.relu(y, inplace=True)),
    "silu_inplace": _statement(lambda y: F.silu(y, inplace=True)),
    "hardswish_inplace": _statement(lambda y: F.hardswish(y, inplace=True)),
    "relu_module_statement": _relu_module_statement,
    "add": _binary(lambda y, z: y + z), "torch_add": _binary(torch.add), "add_method": _binary(lambda y, z: y.add(z)),
    "mul": _binary(lambda y, z: y * z), "add_": _binary_statement(lambda y, z: y.add_(z)),
    "mul_": _binary_statement(lambda y, z: y.mul_(z)), "iadd": _iadd, "imul": _imul,
    "contiguous": _unary(lambda y: y.contiguous()),
    # 4-D only
    "conv": _program_conv, "conv_functional": _conv_functional, "merge": _merge,
    "transpose": _unary(lambda y: y.transpose(2, 3)), "permute": _unary(lambda y: y.permute(0, 1, 3, 2)),
    "relu_through_flatten": _statement(lambda y: y.flatten(1).relu_()),
    "relu_through_transpose": _statement(lambda y: y.transpose(2, 3).relu_()),
    "to_2d": _to_2d,
    # 2-D only
    "linear": _linear, "to_4d": _to_4d,
}


IN_PLACE = {"relu_assigned", "relu_inplace_assigned", "relu_", "torch_relu_", "relu_inplace", "silu_inplace",
            "hardswish_inplace", "relu_module_statement", "add_", "mul_", "iadd", "imul", "relu_through_flatten",
            "relu_through_transpose"}


DRAWN = sorted(set(OPS) - IN_PLACE) * 4 + sorted(IN_PLACE)
"""The ops a program draws, about one in seven in place (learned scales are drawn apart, after a slot is made)."""


FOUR_D_ONLY = {"conv", "conv_functional", "merge", "transpose", "permute", "relu_through_flatten",
               "relu_through_transpose", "to_2d"}


TWO_D_ONLY = {"linear", "to_4d"}


BINARY = {"add", "torch_add", "add_method", "mul", "add_", "mul_", "iadd", "imul"}


class Program(nn.Module):
    """Runs ``program`` (op name and arguments) over a list of tensors that starts with the input;
    returns the last tensor made (or the input's slot, written in place)."""

    def __init__(self, c, s, program, out, convs, fcs, merges, scales):
        super().__init__()
        self.c, self.s, self.program, self.out = c, s, program, out
        for k in range(convs):
            self.add_module(f"conv{k}", nn.Conv2d(c, c, 3, padding=1))
        for k in range(merges):
            self.add_module(f"merge{k}", nn.Conv2d(2 * c, c, 1))
        for k in range(fcs):
            self.add_module(f"fc{k}", nn.Linear(c * s * s, c * s * s))
        for k, shape in enumerate(scales):
            setattr(self, f"g{k}", nn.Parameter(torch.rand(shape) + 0.5))
        self.relu, self.relu_inplace = nn.ReLU(), nn.ReLU(inplace=True)

    def forward(self, x):
        env = [x]
        for name, args in self.program:
            OPS[name](self, env, *args)
        return env[self.out]


MAKES_NOTHING = {"relu_", "torch_relu_", "relu_inplace", "silu_inplace", "hardswish_inplace", "relu_module_statement",
                 "relu_through_flatten", "relu_through_transpose", "add_", "mul_", "iadd", "imul"}
"""Statements: they write into a slot and make none."""


@st.composite
def module_programs(draw):
    """A program, with what the module holds for it: ``(c, s, program, out, convs, fcs, merges, scales, batch)``.
    Per slot, its kind ("4d": (N, C, S, S); "2d": (N, C*S*S)) and whether it depends on a parameter;
    slot 1 is a convolution of the input, and the output is mostly a slot that depends on one."""
    c, s = draw(st.integers(2, 3)), draw(st.integers(2, 4))
    kinds, learned = ["4d", "4d"], [False, True]
    program, count = [("conv", (0, 0))], {"conv": 1, "fc": 0, "merge": 0}
    scales = []
    for _ in range(draw(st.integers(1, 9))):
        name = draw(st.sampled_from(DRAWN))
        a = draw(st.integers(0, len(kinds) - 1))
        kind = kinds[a]
        if (name in FOUR_D_ONLY and kind != "4d") or (name in TWO_D_ONLY and kind != "2d"):
            continue
        made, grad = kind, learned[a]
        if name in BINARY or name == "merge":
            b = draw(st.sampled_from([i for i, k in enumerate(kinds) if k == kind]))
            grad = grad or learned[b]
            args = (a, b)
        elif name in ("to_2d", "to_4d"):
            args = (a, draw(st.sampled_from(["flatten", "view", "reshape"] if name == "to_2d" else ["view", "reshape"])))
            made = "2d" if name == "to_2d" else "4d"
        else:
            args = (a,)
        family = {"conv": "conv", "conv_functional": "conv", "linear": "fc", "merge": "merge"}.get(name)
        if family:
            args, grad = (*args, count[family]), True
            count[family] += 1
        program.append((name, args))
        if name in MAKES_NOTHING:
            learned[a] = grad
        else:
            kinds.append(made)
            learned.append(grad)
        if draw(st.integers(0, 4)) == 0:  # now and then, a learned scale of the slot just made (or written)
            slot = len(kinds) - 1 if name not in MAKES_NOTHING else a
            spelling = draw(st.sampled_from(["mul", "torch", "method", "in place"]))
            program.append(("scale_" if spelling == "in place" else f"scale_{spelling}", (slot, len(scales))))
            scales.append((c, 1, 1) if kinds[slot] == "4d" else (c * s * s,))
            if spelling == "in place":
                learned[slot] = True
            else:
                kinds.append(kinds[slot])
                learned.append(True)
    trained = [i for i, grad in enumerate(learned) if grad]
    out = draw(st.sampled_from(trained if draw(st.integers(0, 9)) else range(len(kinds))))
    batch = draw(st.integers(1, 2))
    return c, s, tuple(program), out, count["conv"], count["fc"], count["merge"], tuple(scales), batch


OPS.update({"scale_mul": _scale("mul"), "scale_torch": _scale("torch"), "scale_method": _scale("method"),
            "scale_": _scale_in_place})
"""Learned scales: drawn apart, after a slot is made (not in DRAWN)."""


# -- spec dicts: wild values, layer entries, random, valid and mutated specs, edited texts ---------

SPEC_KINDS = {k.__name__: k for k in BUILTIN_KINDS}


ARG_NAMES = sorted({f.name for k in SPEC_KINDS.values() for f in fields(k) if f.init})


SPECIAL_INTS = [0, 1, 2, 3, -1, -7, 2**31, 2**63 - 1, 2**63, -2**63, 10**12, -10**12, 10**30, 10**400]


SPECIAL_FLOATS = [0.0, -0.0, 0.5, 1.5, 3.0, 1e-300, 1e300, math.inf, -math.inf, math.nan]


SPECIAL_STRINGS = ["", " ", "same", "valid", "zeros", "reflect", "circular", "conv1", "a.b", "x" * 5000,
                   "\u00e9\u4e2d\U0001f600", "\u200d", "\ud800", "\x00", "\n", "\t", "null", "NaN",
                   "__import__('os').system('touch /tmp/alexcost-pwned')", "{{7*7}}", "${HOME}",
                   "../../etc/passwd", "Conv2d", "__class__", "Layer"]


EXTREMES = SPECIAL_INTS + SPECIAL_FLOATS


numbers = st.one_of(st.sampled_from(EXTREMES), st.integers(-10, 300), st.floats(allow_nan=True, allow_infinity=True))


strings = st.one_of(st.sampled_from(SPECIAL_STRINGS), st.text(max_size=12),
                    st.text(st.characters(categories=["Cc", "Cs", "Zs", "Cf", "So"]), min_size=1, max_size=4))


scalars = st.one_of(st.none(), st.booleans(), numbers, numbers, strings)


keys = st.one_of(st.sampled_from(ARG_NAMES + ["type", "input_shape", "layers"]), strings)


wild = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(keys, inner, max_size=4)),
                    max_leaves=10)


sizes = lambda low, high: st.one_of(st.integers(low, high), st.integers(low, high),  # noqa: E731
                                    st.sampled_from([10**6, 10**12, 2**62, 2**63 - 1]))


pair_of = lambda ints: st.one_of(ints, st.lists(ints, min_size=2, max_size=2))  # noqa: E731


reals = lambda low, high: st.one_of(st.floats(low, high), st.sampled_from(EXTREMES))  # noqa: E731


PLAUSIBLE = {
    "in_channels": sizes(1, 16), "out_channels": sizes(1, 16), "in_features": sizes(1, 64),
    "out_features": sizes(1, 16), "size": sizes(1, 6), "groups": st.sampled_from([1, 1, 2, 4]),
    "kernel_size": pair_of(st.integers(1, 5)), "stride": pair_of(sizes(1, 3)),
    "padding": st.one_of(pair_of(st.integers(0, 2)), st.sampled_from(["same", "valid"])),
    "dilation": pair_of(st.integers(1, 2)), "padding_mode": st.sampled_from(["zeros", "reflect", "replicate",
                                                                            "circular"]),
    "bias": st.booleans(), "inplace": st.booleans(), "ceil_mode": st.booleans(),
    "count_include_pad": st.booleans(), "return_indices": st.just(False),
    "p": reals(0, 1), "alpha": reals(1e-6, 1), "beta": reals(0.1, 2), "k": reals(0.5, 3),
    "output_size": st.one_of(sizes(1, 6), st.lists(st.one_of(st.none(), sizes(1, 6)), min_size=2, max_size=2)),
    "divisor_override": st.one_of(st.none(), st.integers(1, 9)), "dim": st.one_of(st.none(), st.integers(-3, 3)),
    "start_dim": st.integers(-3, 3), "end_dim": st.integers(-3, 3),
    "pad": st.lists(st.integers(-2, 3), min_size=1, max_size=6), "value": st.one_of(st.none(), reals(-1, 1)),
    "mode": st.sampled_from(["constant", "reflect", "replicate", "circular", "nearest", "nearest-exact", "linear",
                             "bilinear", "bicubic", "trilinear", "area", "row", "batch"]),
    "scale_factor": st.one_of(st.floats(0.3, 3), st.lists(st.floats(0.3, 3), min_size=1, max_size=3)),
    "align_corners": st.one_of(st.none(), st.booleans()), "recompute_scale_factor": st.one_of(st.none(), st.booleans()),
    "output_padding": pair_of(st.integers(0, 2)), "num_groups": st.sampled_from([1, 2, 4]),
    "num_channels": sizes(1, 16), "num_features": sizes(1, 16), "affine": st.booleans(),
    "track_running_stats": st.booleans(),
    "name": st.one_of(st.sampled_from(["a", "b", "conv1", "relu"]), st.text(min_size=1, max_size=12),
                      st.sampled_from(SPECIAL_STRINGS)),
}


def value_for(arg: str):
    """For ``arg``: 60% a value torch would take, 20% an extreme one, 20% anything at all."""
    extreme = st.sampled_from(EXTREMES + SPECIAL_STRINGS)
    return st.integers(0, 9).flatmap(lambda r: wild if r < 2 else extreme if r < 4 else PLAUSIBLE.get(arg, wild))


shapes = st.one_of(
    st.lists(st.integers(1, 40), min_size=3, max_size=3),
    st.lists(st.integers(1, 12), min_size=1, max_size=4),
    st.lists(st.sampled_from([1, 2, 10**6, 10**12, 2**62, 2**63 - 1]), min_size=1, max_size=4),
    st.lists(st.sampled_from([1, 3, 2**62]), min_size=1, max_size=70),
    wild)


@st.composite
def layer_entries(draw):
    """A layer entry: a real kind with a random subset of its arguments (required ones usually)."""
    bad = ["conv2d", "Relu", "Layer", "_Elementwise", "", "Conv2d "]
    kind = draw(st.sampled_from(sorted(SPEC_KINDS) * 4 + bad) if draw(st.integers(0, 9)) else wild)
    entry = {} if draw(st.integers(0, 30)) == 0 else {"type": kind}
    for f in fields(SPEC_KINDS[kind]) if isinstance(kind, str) and kind in SPEC_KINDS else ():
        required = f.default is MISSING
        if f.init and draw(st.integers(0, 9)) < (9 if required else 3):
            entry[f.name] = draw(value_for(f.name))
    if draw(st.integers(0, 15)) == 0:
        entry[draw(keys)] = draw(wild)
    return entry


@st.composite
def random_specs(draw):
    """A spec dict assembled from real layer kinds, wild values and stray keys."""
    spec = {}
    if draw(st.integers(0, 20)):
        spec["input_shape"] = draw(shapes)
    if draw(st.integers(0, 20)):
        spec["layers"] = draw(wild if draw(st.integers(0, 10)) == 0 else st.lists(layer_entries(), max_size=8))
        if isinstance(spec["layers"], list) and draw(st.integers(0, 2)) == 0:  # reach the FC head more often
            spec["layers"] += [{"type": "Flatten"}, {"type": "Linear", "out_features": draw(value_for("out_features"))}]
    if draw(st.booleans()):
        spec["name"] = draw(value_for("name"))
    if draw(st.integers(0, 10)) == 0:
        spec[draw(keys)] = draw(wild)
    return spec


@st.composite
def valid_specs(draw):
    """A spec that is valid by construction: the spatial size is tracked as layers are added."""
    c, size = draw(st.integers(1, 8)), draw(st.integers(4, 32))
    spec = {"name": "fuzz", "input_shape": [c, size, size], "layers": []}
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["Conv2d", "ReLU", "MaxPool2d", "AvgPool2d", "LocalResponseNorm", "Tanh"]))
        if kind == "Conv2d":
            pad = draw(st.integers(0, 1))
            k = draw(st.integers(1, min(5, size + 2 * pad)))
            spec["layers"].append({"type": kind, "out_channels": draw(st.integers(1, 12)), "kernel_size": k,
                                   "padding": pad})
            size += 2 * pad - k + 1
        elif kind in ("MaxPool2d", "AvgPool2d"):
            if size >= 2:
                spec["layers"].append({"type": kind, "kernel_size": 2})
                size //= 2
        elif kind == "LocalResponseNorm":
            spec["layers"].append({"type": kind, "size": draw(st.integers(1, 5)), "k": 2.0})
        else:
            spec["layers"].append({"type": kind})
    spec["layers"] += [{"type": "Flatten"}, {"type": "Linear", "out_features": draw(st.integers(1, 10))}]
    return spec


BASES = [network_to_dict(preset(name)) for name in ("seed", "paper", "torchvision")]


def _paths(value, here=()):
    """Every path (tuple of keys and indices) inside nested dicts and lists."""
    yield here
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, here + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, here + (i,))


def _get(value, path):
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated_specs(draw):
    """A valid spec (a preset or a generated one) changed one to three times."""
    spec = copy.deepcopy(draw(st.one_of(st.sampled_from(BASES), valid_specs())))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(spec) if p]
        op = draw(st.sampled_from(["replace", "replace", "delete", "insert", "dup_layer", "drop_layer", "swap",
                                   "dup_name", "retype", "nest", "deep"]))
        layers = spec.get("layers") if isinstance(spec.get("layers"), list) else None
        if op in ("replace", "delete", "nest", "deep") and paths:
            path = draw(st.sampled_from(paths))
            parent, last = _get(spec, path[:-1]), path[-1]
            if op == "replace":
                parent[last] = draw(wild)
            elif op == "delete":
                del parent[last]
            elif op == "nest":
                parent[last] = draw(st.sampled_from([[parent[last]], {"value": parent[last]},
                                                     [parent[last], parent[last]]]))
            else:  # a marker to_text() turns into lists nested close to, or past, the parser's limit
                parent[last] = f"@@deep{draw(st.sampled_from([50, 500, 900, 990, 1000, 2000, 100000]))}@@"
        elif op == "insert":
            dicts = [p for p in _paths(spec) if isinstance(_get(spec, p), dict)]
            _get(spec, draw(st.sampled_from(dicts)))[draw(keys)] = draw(wild)
        elif layers:
            i, j = draw(st.integers(0, len(layers) - 1)), draw(st.integers(0, len(layers) - 1))
            if op == "dup_layer":
                layers.insert(i, copy.deepcopy(layers[j]))
            elif op == "drop_layer":
                layers.pop(i)
            elif op == "swap":
                layers[i], layers[j] = layers[j], layers[i]
            elif op == "dup_name" and isinstance(layers[i], dict) and isinstance(layers[j], dict):
                layers[i]["name"] = layers[j].get("name", "dup")
                layers[j]["name"] = layers[i]["name"]
            elif op == "retype" and isinstance(layers[i], dict):
                layers[i]["type"] = draw(st.sampled_from(sorted(SPEC_KINDS)))
    return spec


any_spec = st.one_of(random_specs(), mutated_specs(), valid_specs())


def _toml_value(v) -> str:
    if v is None:
        return "null"  # TOML has no null: a parse error, on purpose
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(spec: dict) -> str:
    """TOML for any spec-like dict: ``[[layers]]`` tables when the layers are objects."""
    layers = spec.get("layers")
    tables = isinstance(layers, list) and all(isinstance(e, dict) for e in layers)
    lines = [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in spec.items() if not (k == "layers" and tables)]
    for entry in layers if tables else ():
        lines += ["", "[[layers]]"] + [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


DEEP = re.compile(r'"@@deep(\\d+)@@"')


def to_text(spec, fmt: str, ascii_only: bool = True) -> str:
    """JSON (NaN and Infinity as JavaScript writes them) or TOML; deep markers become nested lists."""
    text = to_toml(spec) if fmt == "toml" else json.dumps(spec, ensure_ascii=ascii_only)
    return DEEP.sub(lambda m: "[" * int(m.group(1)) + "1" + "]" * int(m.group(1)), text)


@st.composite
def edited_texts(draw):
    """A spec as JSON or TOML text, then cut, spliced or duplicated at random places."""
    fmt = draw(st.sampled_from(["json", "toml"]))
    text = to_text(draw(any_spec), fmt, draw(st.booleans()))
    for _ in range(draw(st.integers(0, 3))):
        n = len(text)
        i, j = sorted(draw(st.tuples(st.integers(0, n), st.integers(0, n))))
        op = draw(st.sampled_from(["cut", "insert", "delete", "dup"]))
        if op == "cut":
            text = text[:i]
        elif op == "insert":
            text = text[:i] + draw(st.one_of(st.text(max_size=4), st.sampled_from(
                ['"', "{", "}", "[", "]", ",", ":", "=", "\n", "\\", "NaN", "1e999", "-", "\x00", "\ufeff"]))) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return fmt, text
