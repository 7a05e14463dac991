"""The pages about layer kinds, graphs and search, read as claims and checked.

docs/conventions.md's two per-kind tables are parsed cell by cell: every formula is
evaluated on sample layers and must equal alexcost's count and a count worked out by hand
here; the columns about other tools are checked against fvcore and torch's FlopCounterMode
on the same layers, and the storage columns against what torch allocates. docs/spec-format.md's
table of kinds must list every kind with torch's argument names and defaults. The examples
on these pages are run by tests/test_docs.py; the sentences they rest on are checked here.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import warnings
from dataclasses import dataclass
from math import gcd, prod
from pathlib import Path
from typing import Callable

import pytest

from alexcost import (GELU, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool2d, Add, AvgPool2d, AvgPool3d,
                      BatchNorm1d, BatchNorm2d, BatchNorm3d, Cat, Chunk, Clone, Contiguous, Conv1d, Conv2d, Conv3d,
                      ConvTranspose2d, Dropout, Dropout2d, Flatten, GroupNorm, Hardsigmoid, Hardswish, Identity,
                      InstanceNorm2d, LayerNorm, LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, MaxPool3d, Mean, Mul,
                      Network, Pad, Parameter, Permute, ReLU, ReLU6, Reshape, SiLU, Sigmoid, Softmax, SpecError, Split,
                      StochasticDepth, Tanh, Transpose, Upsample, View, ZeroPad2d)
from alexcost import (Embedding, Expand, Matmul, MultiheadAttention, Norm, Roll, ScaledDotProductAttention, Slice, Squeeze,
                      Sum, Unfold, Unsqueeze, WindowAttention)
from alexcost import Amax, CosineWindowAttention, SliceAdd
from alexcost import AvgPool1d, Fold, Normalize, RMSNorm
from alexcost import Buffer, Clamp, Div, Exp, IndexSelect, PositionBias, Repeat, Rsqrt, Scalar, Sqrt, Sub, UnfoldView, Var
from alexcost import DynamicConv2d, Standardize
from alexcost.layers import BUILTIN_KINDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
KINDS = sorted(kind.__name__ for kind in BUILTIN_KINDS)


def page(name: str) -> str:
    """A page's text with every run of white space made one space (sentences span lines)."""
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


def split_row(line: str) -> list[str]:
    """A Markdown table row's cells; a ``|`` inside backticks stays in its cell."""
    cells, current, code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(current.strip())
            current = ""
        else:
            current += ch
    return [*cells, current.strip()]


def table(name: str, header: tuple[str, ...]) -> dict[str, list[str]]:
    """The table of a page whose header row is ``header``: its rows by their first cell's kind."""
    lines = (DOCS / name).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and tuple(split_row(line)) == header:
            rows = {}
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = split_row(row)
                assert len(cells) == len(header), f"docs/{name}: {row}"
                rows[cells[0].strip("`")] = cells[1:]
            return rows
    raise AssertionError(f"docs/{name} has no table headed {header}")


COUNTS_HEADER = ("kind", "params", "macs", "bias_adds", "other_ops (per output element unless noted)", "buffers")
TOOLS_HEADER = ("kind", "fvcore counts", "torch's `FlopCounterMode` counts", "output", "layout of a new output")


# -- the cells' language ---------------------------------------------------------------------------

CLAUSE = re.compile(r"(?:`(?P<expr>[^`]+)`|(?P<bare>\d+|None))(?P<all> in all)?"
                    r"(?: with `(?P<key>\w+)=(?P<value>[^`]+)`(?P<alts>(?: or `[^`]+`)*))?")


@dataclass(frozen=True)
class Clause:
    expr: str                      # Python, ready to evaluate ("None" for fvcore's None)
    in_all: bool                   # a total for one sample (else per output element)
    key: str | None = None         # the clause holds when the layer's `key` is one of `values`
    values: tuple = ()


def clauses(cell: str) -> list[Clause]:
    """A cell as clauses: ``5; 9 with `approximate="tanh"` `` -> two. Anything else is an error:
    a cell the test cannot read is a cell nobody checks."""
    out = []
    for part in cell.split("; "):
        m = CLAUSE.fullmatch(part.strip())
        assert m, f"cannot read the cell {cell!r} (at {part!r})"
        expr = m["expr"] or m["bare"]
        expr = expr.replace("·", "*").replace("−", "-").replace(" / ", " // ")
        values = ()
        if m["key"]:
            values = (ast.literal_eval(m["value"]), *(ast.literal_eval(v) for v in re.findall(r"`([^`]+)`", m["alts"])))
        out.append(Clause(expr, bool(m["all"]), m["key"], values))
    assert sum(c.key is None for c in out) == 1, f"{cell!r}: one clause must hold by default"
    return out


def applicable(cell: str, layer) -> Clause:
    """The clause of ``cell`` that holds for ``layer``."""
    options = clauses(cell)
    for clause in options:
        if clause.key is not None and getattr(layer, clause.key) in clause.values:
            return clause
    return next(c for c in options if c.key is None)


def numel(shape) -> int:
    """Elements of a shape, or of several (a multi-output layer's)."""
    return sum(numel(s) for s in shape) if shape and isinstance(shape[0], tuple) else prod(shape)


# -- sample layers, with their counts worked out by hand ---------------------------------------------
# Most samples read x = (4, 6, 8): C = 4, H = 6, W = 8, 192 elements per sample.

X = (4, 6, 8)
N = 4 * 6 * 8
X1 = (4, 10)           # a (C, L) sample: 40 elements
X3 = (4, 3, 6, 8)      # a (C, D, H, W) sample: 576 elements
N3 = 4 * 3 * 6 * 8


def in_bounds_taps(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> int:
    """Brute force: over ``out`` windows, the taps ``i*stride - pad + j*dilation`` inside ``[0, size)``."""
    return sum(0 <= i * stride - pad + j * dilation < size for i in range(out) for j in range(kernel))


@dataclass(frozen=True)
class Sample:
    """A network around one layer of the kind: ``build(src, **variant)`` makes its layers, the
    kind's layer at ``at`` (it reads ``src``, the name of what feeds it). ``hand`` holds, per
    variant (a tuple of argument items), the output shape and the counts for one sample."""

    build: Callable[..., list]
    hand: dict
    x: tuple = X
    at: int = -1
    xs: dict = dataclasses.field(default_factory=dict)
    """Per variant, an input other than ``x`` (a mode that needs another rank)."""


def unary(make):
    return lambda src, **kw: [make(**kw)]


S = {
    # AdaptiveAvgPool2d((4, 3)) on 6 x 8: rows [0,2) [1,3) [3,5) [4,6) read 8; columns [0,3) [2,6) [5,8) read 10.
    "AdaptiveAvgPool2d": Sample(unary(lambda **kw: AdaptiveAvgPool2d(output_size=(4, 3), **kw)),
                                {(): dict(y=(4, 4, 3), other_ops=4 * 8 * 10, fvcore=N)}),
    "AdaptiveMaxPool2d": Sample(unary(lambda **kw: AdaptiveMaxPool2d(output_size=(4, 3), **kw)),
                                {(): dict(y=(4, 4, 3), other_ops=4 * 8 * 10 - 4 * 4 * 3)}),
    "Add": Sample(lambda src, inputs=2, **kw: [Add(inputs=(src,) * inputs, **kw)],
                  {(): dict(y=X, other_ops=N), (("inputs", 3),): dict(y=X, other_ops=2 * N),
                   (("inplace", True),): dict(y=X, other_ops=N)}),
    # kernel 3, stride 2, padding 1, ceil_mode on 6: windows start at -1, 1, 3, 5 and read 2, 3, 3, 1 taps;
    # on 8: at -1, 1, 3, 5, 7, reading 2, 3, 3, 3, 1.
    # kernel 3, stride 2, padding 1, ceil_mode on 10: windows start at -1, 1, 3, 5, 7, 9 and read 2, 3, 3, 3, 3, 1
    "AvgPool1d": Sample(unary(lambda **kw: AvgPool1d(kernel_size=3, stride=2, padding=1, ceil_mode=True, **kw)),
                        {(): dict(y=(4, 6), other_ops=4 * (2 + 3 + 3 + 3 + 3 + 1))}, x=X1),
    "AvgPool2d": Sample(unary(lambda **kw: AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True, **kw)),
                        {(): dict(y=(4, 4, 5), other_ops=4 * (2 + 3 + 3 + 1) * (2 + 3 + 3 + 3 + 1))}),
    "BatchNorm2d": Sample(unary(BatchNorm2d),
                          {(): dict(y=X, params=2 * 4, buffers=2 * 4 + 1, other_ops=2 * N, fvcore=2 * N),
                           (("bias", False),): dict(y=X, params=4, buffers=2 * 4 + 1, other_ops=2 * N, fvcore=2 * N),
                           (("affine", False),): dict(y=X, buffers=2 * 4 + 1, other_ops=2 * N, fvcore=N)}),
    "Cat": Sample(lambda src, **kw: [Cat(dim=1, inputs=(src, src), **kw)], {(): dict(y=(8, 6, 8))}),
    "Chunk": Sample(unary(lambda **kw: Chunk(chunks=3, dim=3, **kw)),
                    {(): dict(y=((4, 6, 3), (4, 6, 3), (4, 6, 2)))}),
    "Clone": Sample(unary(Clone), {(): dict(y=X)}),
    "Contiguous": Sample(unary(Contiguous), {(): dict(y=X)}),
    # kernel (3, 2), stride 2, padding 1, groups 2: H_out = (6 + 2 - 3)//2 + 1 = 3, W_out = (8 + 2 - 2)//2 + 1 = 5
    # Conv2d's sample, its weight a second input (a parameter standing in for one computed once per pass)
    "DynamicConv2d": Sample(
        lambda src, **kw: [Parameter(name="w", shape=(6, 2, 3, 2)),
                           DynamicConv2d(**{"out_channels": 6, "kernel_size": (3, 2), "stride": 2, "padding": 1,
                                            "groups": 2, "inputs": (src, "w"), **kw})],
        {(): dict(y=(6, 3, 5), params=6, macs=6 * 3 * 5 * 2 * 3 * 2, bias_adds=6 * 3 * 5,
                  fvcore=6 * 3 * 5 * 2 * 3 * 2, torch=2 * 6 * 3 * 5 * 2 * 3 * 2),
         (("bias", False),): dict(y=(6, 3, 5), macs=6 * 3 * 5 * 2 * 3 * 2, fvcore=6 * 3 * 5 * 2 * 3 * 2,
                                  torch=2 * 6 * 3 * 5 * 2 * 3 * 2)}),
    "Conv2d": Sample(unary(lambda **kw: Conv2d(**{"out_channels": 6, "kernel_size": (3, 2), "stride": 2, "padding": 1,
                                                  "groups": 2, **kw})),
                     {(): dict(y=(6, 3, 5), params=6 * 2 * 3 * 2 + 6, macs=6 * 3 * 5 * 2 * 3 * 2, bias_adds=6 * 3 * 5,
                               fvcore=6 * 3 * 5 * 2 * 3 * 2, torch=2 * 6 * 3 * 5 * 2 * 3 * 2),
                      (("bias", False),): dict(y=(6, 3, 5), params=6 * 2 * 3 * 2, macs=6 * 3 * 5 * 2 * 3 * 2,
                                               fvcore=6 * 3 * 5 * 2 * 3 * 2, torch=2 * 6 * 3 * 5 * 2 * 3 * 2),
                      (("padding", "same"), ("stride", 1)): dict(
                          y=(6, 6, 8), params=6 * 2 * 3 * 2 + 6, macs=6 * 6 * 8 * 2 * 3 * 2, bias_adds=6 * 6 * 8,
                          fvcore=None, torch=2 * 6 * 6 * 8 * 2 * 3 * 2),
                      (("padding", "valid"),): dict(       # (6 - 3)//2 + 1 = 2, (8 - 2)//2 + 1 = 4
                          y=(6, 2, 4), params=6 * 2 * 3 * 2 + 6, macs=6 * 2 * 4 * 2 * 3 * 2, bias_adds=6 * 2 * 4,
                          fvcore=None, torch=2 * 6 * 2 * 4 * 2 * 3 * 2)}),
    "Div": Sample(lambda src, **kw: [Div(inputs=(src, src), **kw)],
                  {(): dict(y=X, other_ops=N), (("inplace", True),): dict(y=X, other_ops=N)}),
    "Dropout": Sample(unary(Dropout), {(): dict(y=X)}),
    "Dropout2d": Sample(unary(Dropout2d), {(): dict(y=X)}),
    "Flatten": Sample(unary(Flatten), {(): dict(y=(N,))}),
    "GELU": Sample(unary(GELU), {(): dict(y=X, other_ops=5 * N),
                                 (("approximate", "tanh"),): dict(y=X, other_ops=9 * N)}),
    "Hardsigmoid": Sample(unary(Hardsigmoid), {(): dict(y=X, other_ops=4 * N), (("inplace", True),): dict(
        y=X, other_ops=4 * N)}),
    "Hardswish": Sample(unary(Hardswish), {(): dict(y=X, other_ops=5 * N), (("inplace", True),): dict(
        y=X, other_ops=5 * N)}),
    "Identity": Sample(unary(Identity), {(): dict(y=X)}),
    "LayerNorm": Sample(unary(lambda **kw: LayerNorm(normalized_shape=8, **kw)),
                        {(): dict(y=X, params=8 + 8, other_ops=7 * N, fvcore=5 * N),
                         (("bias", False),): dict(y=X, params=8, other_ops=6 * N, fvcore=5 * N),
                         (("elementwise_affine", False),): dict(y=X, other_ops=5 * N, fvcore=4 * N)}),
    "LeakyReLU": Sample(unary(LeakyReLU), {(): dict(y=X, other_ops=2 * N), (("inplace", True),): dict(
        y=X, other_ops=2 * N)}),
    # the last dimension, 8, is in_features; 4 * 6 = 24 rows
    "Linear": Sample(unary(lambda **kw: Linear(out_features=5, **kw)),
                     {(): dict(y=(4, 6, 5), params=8 * 5 + 5, macs=24 * 8 * 5, bias_adds=24 * 5, fvcore=24 * 8 * 5,
                               torch=2 * 24 * 8 * 5),
                      (("bias", False),): dict(y=(4, 6, 5), params=8 * 5, macs=24 * 8 * 5, fvcore=24 * 8 * 5,
                                               torch=2 * 24 * 8 * 5)}),
    "LocalResponseNorm": Sample(unary(lambda **kw: LocalResponseNorm(size=3, **kw)), {(): dict(y=X, other_ops=7 * N)}),
    # kernel 2, stride 2, padding 1, dilation 2, ceil_mode: on 6, windows start at -1, 1, 3, 5 and tap
    # {1}, {1, 3}, {3, 5}, {5}: 6 taps; on 8, at -1, 1, 3, 5, 7: {1}, {1, 3}, {3, 5}, {5, 7}, {7}: 8 taps.
    "MaxPool2d": Sample(unary(lambda **kw: MaxPool2d(kernel_size=2, stride=2, padding=1, dilation=2, ceil_mode=True,
                                                     **kw)),
                        {(): dict(y=(4, 4, 5), other_ops=4 * 6 * 8 - 4 * 4 * 5)}),
    "Mean": Sample(unary(lambda **kw: Mean(dim=(2, 3), **kw)),
                   {(): dict(y=(4,), other_ops=N), (("keepdim", True),): dict(y=(4, 1, 1), other_ops=N)}),
    "Mul": Sample(lambda src, inputs=None, **kw: [Parameter(name="gamma", shape=(4, 1, 1)),
                                                  Mul(inputs=inputs or (src, "gamma"), **kw)],
                  {(): dict(y=X, other_ops=N), (("inplace", True),): dict(y=X, other_ops=N)}),
    "Parameter": Sample(lambda src, **kw: [Parameter(name="gamma", shape=(4, 1, 1), **kw),
                                           Mul(inputs=(src, "gamma"))],
                        {(): dict(y=(4, 1, 1), params=4)}, at=0),
    "Buffer": Sample(lambda src, **kw: [Buffer(name="table", shape=(4, 1, 1), **kw), Mul(inputs=(src, "table"))],
                     {(): dict(y=(4, 1, 1), buffers=4)}, at=0),
    "PositionBias": Sample(lambda src, **kw: [PositionBias(name="bias", table=(12, 8), shape=(4, 6, 8), **kw),
                                              Add(inputs=(src, "bias"))],
                            {(): dict(y=(4, 6, 8), params=12 * 8, buffers=4 * 6 * 8 // 8),
                             (("dim", 1),): dict(y=(4, 6, 8), params=12 * 8, buffers=4 * 6 * 8 // 12),
                             (("index_buffer", False),): dict(y=(4, 6, 8), params=12 * 8)}, at=0),
    "Permute": Sample(unary(lambda **kw: Permute(dims=(0, 2, 3, 1), **kw)), {(): dict(y=(6, 8, 4))}),
    "ReLU": Sample(unary(ReLU), {(): dict(y=X, other_ops=N), (("inplace", True),): dict(y=X, other_ops=N)}),
    "ReLU6": Sample(unary(ReLU6), {(): dict(y=X, other_ops=2 * N), (("inplace", True),): dict(y=X, other_ops=2 * N)}),
    "Reshape": Sample(unary(lambda **kw: Reshape(shape=(24, 8), **kw)), {(): dict(y=(24, 8))}),
    "SiLU": Sample(unary(SiLU), {(): dict(y=X, other_ops=2 * N), (("inplace", True),): dict(y=X, other_ops=2 * N)}),
    "Sigmoid": Sample(unary(Sigmoid), {(): dict(y=X, other_ops=N)}),
    "Softmax": Sample(unary(lambda **kw: Softmax(dim=1, **kw)), {(): dict(y=X, other_ops=3 * N)}),
    "Split": Sample(unary(lambda **kw: Split(split_size_or_sections=(1, 3), dim=1, **kw)),
                    {(): dict(y=((1, 6, 8), (3, 6, 8)))}),
    "StochasticDepth": Sample(unary(lambda **kw: StochasticDepth(p=0.2, mode="row", **kw)), {(): dict(y=X)}),
    "Tanh": Sample(unary(Tanh), {(): dict(y=X, other_ops=N)}),
    "Rsqrt": Sample(unary(Rsqrt), {(): dict(y=X, other_ops=N)}),
    "Exp": Sample(unary(Exp), {(): dict(y=X, other_ops=N)}),
    "Sqrt": Sample(unary(Sqrt), {(): dict(y=X, other_ops=N)}),
    "Clamp": Sample(unary(lambda **kw: Clamp(**{"min": 0.0, "max": 6.0, **kw})),
                    {(): dict(y=X, other_ops=2 * N), (("max", None),): dict(y=X, other_ops=N),
                     (("min", None), ("inplace", True)): dict(y=X, other_ops=N)}),
    "Transpose": Sample(unary(lambda **kw: Transpose(dim0=1, dim1=3, **kw)), {(): dict(y=(8, 6, 4))}),
    "View": Sample(unary(lambda **kw: View(shape=(-1,), **kw)), {(): dict(y=(N,))}),
    "ZeroPad2d": Sample(unary(lambda **kw: ZeroPad2d(padding=(1, 0, 2, 1), **kw)), {(): dict(y=(4, 6 + 2 + 1, 8 + 1))}),
    # -- dense and video kinds --
    # kernel 3, stride 2, padding 1, groups 2 on L = 10: L_out = (10 + 2 - 3)//2 + 1 = 5
    "Conv1d": Sample(unary(lambda **kw: Conv1d(**{"out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1,
                                                  "groups": 2, **kw})),
                     {(): dict(y=(6, 5), params=6 * 2 * 3 + 6, macs=6 * 5 * 2 * 3, bias_adds=6 * 5, fvcore=6 * 5 * 2 * 3,
                               torch=2 * 6 * 5 * 2 * 3),
                      (("bias", False),): dict(y=(6, 5), params=6 * 2 * 3, macs=6 * 5 * 2 * 3, fvcore=6 * 5 * 2 * 3,
                                               torch=2 * 6 * 5 * 2 * 3),
                      (("padding", "same"), ("stride", 1)): dict(y=(6, 10), params=6 * 2 * 3 + 6, macs=6 * 10 * 2 * 3,
                                                                 bias_adds=6 * 10, fvcore=None, torch=2 * 6 * 10 * 2 * 3)},
                     x=X1),
    # kernel (2, 3, 2), stride 2, padding 1, groups 2 on 3 x 6 x 8: D_out = (3 + 2 - 2)//2 + 1 = 2,
    # H_out = (6 + 2 - 3)//2 + 1 = 3, W_out = (8 + 2 - 2)//2 + 1 = 5
    "Conv3d": Sample(unary(lambda **kw: Conv3d(**{"out_channels": 6, "kernel_size": (2, 3, 2), "stride": 2, "padding": 1,
                                                  "groups": 2, **kw})),
                     {(): dict(y=(6, 2, 3, 5), params=6 * 2 * 12 + 6, macs=6 * 30 * 2 * 12, bias_adds=6 * 30,
                               fvcore=6 * 30 * 2 * 12, torch=2 * 6 * 30 * 2 * 12),
                      (("bias", False),): dict(y=(6, 2, 3, 5), params=6 * 2 * 12, macs=6 * 30 * 2 * 12,
                                               fvcore=6 * 30 * 2 * 12, torch=2 * 6 * 30 * 2 * 12),
                      (("padding", "same"), ("stride", 1)): dict(
                          y=(6, 3, 6, 8), params=6 * 2 * 12 + 6, macs=6 * 144 * 2 * 12, bias_adds=6 * 144, fvcore=None,
                          torch=2 * 6 * 144 * 2 * 12)},
                     x=X3),
    # kernel (3, 2), stride 2, padding 1, output_padding 1, groups 2: H_out = 5*2 - 2 + 2 + 1 + 1 = 12,
    # W_out = 7*2 - 2 + 1 + 1 + 1 = 15; every input element times its kernel, C_out/groups = 3 of them
    "ConvTranspose2d": Sample(unary(lambda **kw: ConvTranspose2d(**{
        "out_channels": 6, "kernel_size": (3, 2), "stride": 2, "padding": 1, "output_padding": 1, "groups": 2, **kw})),
        {(): dict(y=(6, 12, 15), params=4 * 3 * 3 * 2 + 6, macs=N * 3 * 3 * 2, bias_adds=6 * 12 * 15,
                  fvcore=N * 3 * 3 * 2, torch=2 * N * 3 * 3 * 2),
         (("bias", False),): dict(y=(6, 12, 15), params=4 * 3 * 3 * 2, macs=N * 3 * 3 * 2, fvcore=N * 3 * 3 * 2,
                                  torch=2 * N * 3 * 3 * 2)}),
    # kernel 2, stride 2, padding 1, ceil_mode: on 3, windows start at -1, 1 and read 1, 2 taps; on 6 at -1, 1, 3, 5:
    # 1, 2, 2, 1; on 8 at -1, 1, 3, 5, 7: 1, 2, 2, 2, 1
    "MaxPool3d": Sample(unary(lambda **kw: MaxPool3d(kernel_size=2, stride=2, padding=1, ceil_mode=True, **kw)),
                        {(): dict(y=(4, 2, 4, 5), other_ops=4 * 3 * 6 * 8 - 4 * 2 * 4 * 5)}, x=X3),
    # kernel (1, 3, 3), stride (1, 2, 2), padding (0, 1, 1): depth 3 windows of 1; on 6 at -1, 1, 3: 2, 3, 3 taps;
    # on 8 at -1, 1, 3, 5: 2, 3, 3, 3
    "AvgPool3d": Sample(unary(lambda **kw: AvgPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), **kw)),
                        {(): dict(y=(4, 3, 3, 4), other_ops=4 * 3 * (2 + 3 + 3) * (2 + 3 + 3 + 3))}, x=X3),
    # (2, 4, 3) on 3 x 6 x 8: depth [0,2) [1,3) read 4; rows [0,2) [1,3) [3,5) [4,6) read 8; columns read 10
    "AdaptiveAvgPool3d": Sample(unary(lambda **kw: AdaptiveAvgPool3d(output_size=(2, 4, 3), **kw)),
                                {(): dict(y=(4, 2, 4, 3), other_ops=4 * 4 * 8 * 10)}, x=X3),
    "BatchNorm1d": Sample(unary(BatchNorm1d),
                          {(): dict(y=X1, params=2 * 4, buffers=2 * 4 + 1, other_ops=2 * 40, fvcore=2 * 40),
                           (("affine", False),): dict(y=X1, buffers=2 * 4 + 1, other_ops=2 * 40, fvcore=40)}, x=X1),
    "BatchNorm3d": Sample(unary(BatchNorm3d),
                          {(): dict(y=X3, params=2 * 4, buffers=2 * 4 + 1, other_ops=2 * N3, fvcore=2 * N3),
                           (("affine", False),): dict(y=X3, buffers=2 * 4 + 1, other_ops=2 * N3, fvcore=N3)}, x=X3),
    # per channel (4) of 10: the mean 1, the variance 2, normalising 2, the weight 1 per element
    "Standardize": Sample(lambda src, **kw: [Parameter(name="g", shape=(4,)), Standardize(inputs=(src, "g"), **kw)],
                          {(): dict(y=X1, other_ops=6 * 40, fvcore=5 * 40)}, x=X1),
    "GroupNorm": Sample(unary(lambda **kw: GroupNorm(num_groups=2, **kw)),
                        {(): dict(y=X, params=2 * 4, other_ops=7 * N, fvcore=5 * N),
                         (("bias", False),): dict(y=X, params=4, other_ops=6 * N, fvcore=5 * N),
                         (("affine", False),): dict(y=X, other_ops=5 * N, fvcore=4 * N)}),
    "InstanceNorm2d": Sample(unary(InstanceNorm2d),
                             {(): dict(y=X, other_ops=5 * N, fvcore=4 * N),
                              (("affine", True),): dict(y=X, params=2 * 4, other_ops=7 * N, fvcore=5 * N),
                              (("track_running_stats", True),): dict(y=X, buffers=2 * 4 + 1, other_ops=2 * N,
                                                                    fvcore=4 * N)}),
    # scale 2: (4, 12, 16), 768 elements; (4, 20) from (4, 10); (4, 6, 12, 16), 4608, from X3
    "Upsample": Sample(unary(lambda **kw: Upsample(scale_factor=2, **kw)),
                       {(): dict(y=(4, 12, 16), fvcore=768),
                        (("mode", "bilinear"),): dict(y=(4, 12, 16), other_ops=7 * 768, fvcore=4 * 768),
                        (("mode", "bicubic"),): dict(y=(4, 12, 16), other_ops=31 * 768),
                        (("mode", "linear"),): dict(y=(4, 20), other_ops=3 * 80),
                        (("mode", "trilinear"),): dict(y=(4, 6, 12, 16), other_ops=15 * 4608)},
                       xs={(("mode", "linear"),): X1, (("mode", "trilinear"),): X3}),
    # (1, 2) on the last dimension, (0, 1) on the one before: (4, 6 + 1, 8 + 3)
    "Pad": Sample(unary(lambda **kw: Pad(pad=(1, 2, 0, 1), **kw)),
                  {(): dict(y=(4, 7, 11)), (("mode", "reflect"),): dict(y=(4, 7, 11)),
                   (("mode", "replicate"),): dict(y=(4, 7, 11)), (("mode", "circular"),): dict(y=(4, 7, 11))}),
    # -- reductions, copies, lookups --
    "Embedding": Sample(unary(lambda **kw: Embedding(num_embeddings=10, embedding_dim=5, **kw)),
                        {(): dict(y=(4, 6, 8, 5), params=50)}),
    "Sub": Sample(lambda src, **kw: [Sub(inputs=(src, src), **kw)],
                  {(): dict(y=X, other_ops=N), (("inplace", True),): dict(y=X, other_ops=N)}),
    "Sum": Sample(unary(lambda **kw: Sum(dim=(2, 3), **kw)),
                  {(): dict(y=(4,), other_ops=N - 4), (("keepdim", True),): dict(y=(4, 1, 1), other_ops=N - 4)}),
    "Amax": Sample(unary(lambda **kw: Amax(dim=(2, 3), **kw)),
                   {(): dict(y=(4,), other_ops=N - 4), (("keepdim", True),): dict(y=(4, 1, 1), other_ops=N - 4)}),
    "UnfoldView": Sample(unary(lambda **kw: UnfoldView(dim=3, size=3, step=2, **kw)), {(): dict(y=(4, 6, 3, 3))}),
    "Repeat": Sample(unary(lambda **kw: Repeat(repeats=(1, 2, 3), **kw)), {(): dict(y=(4, 12, 24))}),
    # Var: the mean, a subtract and a square per element, the adds and a divide per output: 4 per element
    "Var": Sample(unary(lambda **kw: Var(dim=(2, 3), **kw)),
                  {(): dict(y=(4,), other_ops=4 * N), (("keepdim", True),): dict(y=(4, 1, 1), other_ops=4 * N),
                   (("correction", 0),): dict(y=(4,), other_ops=4 * N)}),
    "Norm": Sample(unary(lambda **kw: Norm(dim=(2, 3), **kw)),
                   {(): dict(y=(4,), other_ops=2 * N), (("ord", 1.0),): dict(y=(4,), other_ops=2 * N - 4)}),
    # RMSNorm over the last 8: per element a square and a multiply (and the weight's), per row of 8 seven adds,
    # a divide, the eps add and a root: 24 rows
    "RMSNorm": Sample(unary(lambda **kw: RMSNorm(normalized_shape=8, **kw)),
                      {(): dict(y=X, params=8, other_ops=3 * N + N + 24 * 2),
                       (("elementwise_affine", False),): dict(y=X, other_ops=2 * N + N + 24 * 2)}),
    # along the channels (4): 48 rows; the 2-norm squares, adds and roots (2 per element), a clamp per row, a divide
    "Normalize": Sample(unary(Normalize), {(): dict(y=X, other_ops=2 * N + 48 + N),
                                           (("p", 1.0),): dict(y=X, other_ops=(2 * N - 48) + 48 + N)}),
    "Scalar": Sample(unary(lambda **kw: Scalar(op="mul", value=0.5, **kw)),
                     {(): dict(y=X, other_ops=N), (("inplace", True),): dict(y=X, other_ops=N)}),
    "Roll": Sample(unary(lambda **kw: Roll(shifts=(1, -2), dims=(2, 3), **kw)), {(): dict(y=X)}),
    # kernel (3, 2), stride 2, padding 1 on 6 x 8: (6 + 2 - 3)//2 + 1 = 3 by (8 + 2 - 2)//2 + 1 = 5 windows
    "Unfold": Sample(unary(lambda **kw: Unfold(kernel_size=(3, 2), stride=2, padding=1, **kw)),
                     {(): dict(y=(4 * 3 * 2, 3 * 5))}),
    # windows (3, 2) side by side, summed back: every element of the (4, 6, 8) output once
    "Fold": Sample(lambda src, **kw: [Unfold(name="cols", kernel_size=(3, 2), stride=(3, 2)),
                                      Fold(output_size=(6, 8), kernel_size=(3, 2), stride=(3, 2), **kw)],
                   {(): dict(y=X, other_ops=N)}),
    # -- attention and its views --
    "Expand": Sample(lambda src, **kw: [Mean(name="squash", dim=2, keepdim=True), Expand(sizes=(-1, 6, -1), **kw)],
                     {(): dict(y=X)}),
    "Slice": Sample(unary(lambda **kw: Slice(index=(1, (None, None, 2)), **kw)), {(): dict(y=(3, 8))}),
    # x[:, :2] += x[:, 2:4]: 2 * 6 * 8 adds, into the input itself
    "SliceAdd": Sample(lambda src, **kw: [Slice(name="cut", index=((2, 4, None),)),
                                          SliceAdd(index=((None, 2, None),), inputs=(src, "cut"), **kw)],
                       {(): dict(y=X, other_ops=2 * 6 * 8)}, at=1),
    "Unsqueeze": Sample(unary(lambda **kw: Unsqueeze(dim=2, **kw)), {(): dict(y=(4, 1, 6, 8))}),
    "IndexSelect": Sample(unary(lambda **kw: IndexSelect(dim=2, index_size=9, **kw)),
                          {(): dict(y=(4, 9, 8), buffers=9)}),
    "Squeeze": Sample(lambda src, **kw: [Mean(name="squash", dim=2, keepdim=True), Squeeze(dim=2, **kw)],
                      {(): dict(y=(4, 8))}),
    # (4, 6, 8) @ (4, 8, 6): 4 products of 6 x 8 by 8 x 6
    "Matmul": Sample(lambda src, **kw: [Transpose(name="t", dim0=2, dim1=3), Matmul(inputs=(src, "t"), **kw)],
                     {(): dict(y=(4, 6, 6), macs=4 * 6 * 8 * 6, fvcore=4 * 6 * 8 * 6, torch=2 * 4 * 6 * 8 * 6)}),
    # 4 heads, 6 queries and keys of 8 features: 4 * 6 * 6 * (8 + 8) MACs; the scale 4 * 6 * 8, the softmax 3 per score
    "ScaledDotProductAttention": Sample(
        lambda src, **kw: [ScaledDotProductAttention(inputs=(src, src, src), **kw)],
        {(): dict(y=X, macs=4 * 36 * 16, other_ops=4 * (48 + 3 * 36), fvcore=None, torch=2 * 4 * 36 * 16),
         (("is_causal", True),): dict(y=X, macs=4 * 36 * 16, other_ops=4 * (48 + 4 * 36), fvcore=None,
                                      torch=2 * 4 * 36 * 16)}),
    # 6 tokens of 8, 2 heads: projections 4 * 6 * 8 * 8, attention 2 * 6 * 6 * 8
    "MultiheadAttention": Sample(
        lambda src, **kw: [MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True, inputs=(src, src, src), **kw)],
        {(): dict(y=(6, 8), params=4 * 64 + 4 * 8, macs=4 * 6 * 64 + 2 * 36 * 8, bias_adds=4 * 6 * 8,
                  other_ops=6 * 8 + 3 * 2 * 36, fvcore=4 * 6 * 64, torch=2 * (4 * 6 * 64 + 2 * 36 * 8)),
         (("bias", False),): dict(y=(6, 8), params=4 * 64, macs=4 * 6 * 64 + 2 * 36 * 8, other_ops=6 * 8 + 3 * 2 * 36,
                                  fvcore=4 * 6 * 64, torch=2 * (4 * 6 * 64 + 2 * 36 * 8))},
        x=(6, 8)),
    # (H, W, C) = (4, 6, 8), windows of 2 x 3 (T = 6), 4 of them over 24 positions, shifted; a 3 x 5 table per head
    # the same windows, Swin V2's: the bias and the scale computed once per pass, here parameters standing in
    "CosineWindowAttention": Sample(
        lambda src, **kw: [Parameter(name="bias", shape=(1, 2, 6, 6)), Parameter(name="scale", shape=(2, 1, 1)),
                           CosineWindowAttention(**{"window_size": (2, 3), "shift_size": (1, 1), "num_heads": 2,
                                                    "inputs": (src, "bias", "scale"), **kw})],
        {(): dict(y=X, params=4 * 64 + 4 * 8, macs=4 * 24 * 64 + 2 * 4 * 36 * 8, bias_adds=24 * 8,
                  other_ops=3 * 24 * 8 + 2 * (3 * 24 * 8 + 4 * 2 * 6) + 4 * 2 * 36 * 6,
                  fvcore=4 * 24 * 64 + 2 * 4 * 36 * 8,
                  torch=2 * (4 * 24 * 64 + 2 * 4 * 36 * 8))}, at=2),
    "WindowAttention": Sample(
        unary(lambda **kw: WindowAttention(**{"window_size": (2, 3), "shift_size": (1, 1), "num_heads": 2, **kw})),
        {(): dict(y=X, params=4 * 64 + 15 * 2 + 4 * 8, buffers=36, macs=4 * 24 * 64 + 2 * 4 * 36 * 8,
                  bias_adds=24 * 4 * 8, other_ops=24 * 8 + 4 * 2 * 36 * 5, fvcore=4 * 24 * 64 + 2 * 4 * 36 * 8,
                  torch=2 * (4 * 24 * 64 + 2 * 4 * 36 * 8)),
         (("shift_size", (0, 0)),): dict(y=X, params=4 * 64 + 15 * 2 + 4 * 8, buffers=36,
                                         macs=4 * 24 * 64 + 2 * 4 * 36 * 8, bias_adds=24 * 4 * 8,
                                         other_ops=24 * 8 + 4 * 2 * 36 * 4, fvcore=4 * 24 * 64 + 2 * 4 * 36 * 8,
                                         torch=2 * (4 * 24 * 64 + 2 * 4 * 36 * 8))}),
}
CASES = [(kind, variant) for kind in sorted(S) for variant in S[kind].hand]
CASE_IDS = [kind + "".join(f"-{arg}={value}" for arg, value in variant) for kind, variant in CASES]


def network(kind: str, variant: tuple = (), prefix: tuple = ()) -> tuple[Network, int]:
    """The sample network of ``kind`` (``prefix`` layers first), and the index of the kind's layer."""
    sample = S[kind]
    src = prefix[-1].name if prefix else "input"
    layers = [*prefix, *sample.build(src, **dict(variant))]
    at = len(prefix) + (sample.at if sample.at >= 0 else len(layers) - len(prefix) - 1)
    return Network(sample.xs.get(variant, sample.x), layers), at


def environment(kind: str, layer, x, hand: dict) -> dict:
    """The names a cell may use, for this sample, from its input, the hand output shape and the arguments."""
    y = hand["y"]
    env = {"numel": numel, "gcd": gcd, "y": y, "macs": hand.get("macs", 0)}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        env[f.name] = int(value) if isinstance(value, bool) else value
    if kind not in ("Parameter", "Buffer", "PositionBias"):   # sources: no input
        first = x[0] if isinstance(x[0], tuple) else x
        env.update(x=first, in_features=first[-1], rows=prod(first) // first[-1])
        if isinstance(x[0], tuple):
            env["n_in"] = len(x)
        env.update(zip(SPATIAL.get(len(first), ()), first), d=len(first) - 1)
    if not isinstance(y[0], tuple):
        env.update((f"{name}_out", size) for name, size in zip(SPATIAL.get(len(y), ()), y))
    if hasattr(layer, "kernel_size"):
        env.update(zip(KERNEL[len(layer.kernel_size)], layer.kernel_size))
    env.update(ATTENTION.get(kind, lambda x, y, layer: {})(x, y, layer))
    if kind == "Fold":  # the column elements that land in the output
        env["taps"] = y[0] * prod(in_bounds_taps(size, k, s, p, dl, (size + 2 * p - dl * (k - 1) - 1) // s + 1)
                                  for size, k, s, p, dl in zip(layer.output_size, layer.kernel_size, layer.stride,
                                                               layer.padding, layer.dilation))
    if kind in ("MaxPool2d", "AvgPool1d", "AvgPool2d", "MaxPool3d", "AvgPool3d"):
        dilation = getattr(layer, "dilation", (1,) * len(layer.kernel_size))
        env["taps"] = x[0] * prod(in_bounds_taps(size, k, s, p, dl, out) for size, k, s, p, dl, out in zip(
            x[1:], layer.kernel_size, layer.stride, layer.padding, dilation, y[1:]))
    return env


def _windows(x, y, layer) -> dict:
    padded = [-(-s // w) * w for s, w in zip(x[:-1], layer.window_size)]
    shifted = any(sh and w < p for sh, w, p in zip(layer.shift_size, layer.window_size, padded))
    return {"C": x[-1], "P": prod(padded), "T": prod(layer.window_size), "nW": prod(padded) // prod(layer.window_size),
            "shifted": int(shifted)}


ATTENTION = {
    "Matmul": lambda x, y, layer: {"lead": prod(y[:-2]), "n": x[0][-2], "k": x[0][-1], "m": x[1][-1]},
    "ScaledDotProductAttention": lambda x, y, layer: {"lead": prod(y[:-2]), "L": x[0][-2], "S": x[1][-2],
                                                      "E": x[0][-1], "Ev": x[2][-1]},
    "MultiheadAttention": lambda x, y, layer: {"L": x[0][0], "S": x[1][0]},
    "WindowAttention": _windows,
    "CosineWindowAttention": lambda x, y, layer: _windows(x[0], y, layer),
    "SliceAdd": lambda x, y, layer: {"part": x[1]},
}
"""The sizes an attention kind's cells name (see the page's "How to read a cell")."""

SPATIAL = {2: ("C", "L"), 3: ("C", "H", "W"), 4: ("C", "D", "H", "W")}
"""The names of a sample's sizes, by its rank; ``d`` is the number of spatial dimensions."""
KERNEL = {1: ("k",), 2: ("kH", "kW"), 3: ("kD", "kH", "kW")}


def claim(cell: str, layer, env: dict, per_element: bool = False):
    """What ``cell`` says for this layer: its applicable clause evaluated on ``env``."""
    clause = applicable(cell, layer)
    value = eval(clause.expr, {"__builtins__": {}}, env)  # noqa: S307 - our own page's formulas
    if per_element and not clause.in_all and value is not None:
        value *= numel(env["y"])
    return value


def test_the_tables_list_every_kind_once():
    counts, tools = table("conventions.md", COUNTS_HEADER), table("conventions.md", TOOLS_HEADER)
    assert len(KINDS) == 85
    assert list(counts) == KINDS and list(tools) == KINDS
    assert sorted(S) == KINDS


@pytest.mark.parametrize("kind, variant", CASES, ids=CASE_IDS)
def test_each_count_cell_equals_alexcost_and_hand_arithmetic(kind, variant):
    counts, tools = table("conventions.md", COUNTS_HEADER), table("conventions.md", TOOLS_HEADER)
    net, at = network(kind, variant)
    layer, x = net.layers[at], net.input_shapes[at]
    hand = S[kind].hand[variant]
    assert net.output_shapes[at] == hand["y"]
    env = environment(kind, layer, x, hand)
    row = net.cost().layers[at]
    params, macs, bias_adds, other_ops, buffers = counts[kind]
    fvcore, torch_count = tools[kind][:2]
    y = hand["y"]
    said = {"params": claim(params, layer, env), "macs": claim(macs, layer, env),
            "bias_adds": claim(bias_adds, layer, env), "other_ops": claim(other_ops, layer, env, per_element=True),
            "buffers": claim(buffers, layer, env), "fvcore": claim(fvcore, layer, env),
            "torch": claim(torch_count, layer, env)}
    ours = {"params": row.params, "macs": row.macs, "bias_adds": row.bias_adds, "other_ops": row.other_ops,
            "buffers": row.buffers, "fvcore": layer.fvcore_count(x, y), "torch": layer.torch_flops(x, y)}
    by_hand = {k: hand.get(k, 0) for k in said}
    assert said == by_hand, "the page's cells against hand arithmetic"
    assert ours == by_hand, "alexcost against hand arithmetic"


# -- the same cells against torch and fvcore ------------------------------------------------------------

def run_torch(net: Network, batch: int, counted: bool = False):
    """Run ``net`` as torch modules: (module, input, every layer's output by name, FlopCounterMode's total).
    ``counted``: attention as matrix products FlopCounterMode counts (the math backend), as it counts torch's
    fused attention kernels on CUDA; it counts none on the CPU. Multi-head attention runs as with grad enabled
    (torch's fused inference path is off)."""
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from alexcost.torch_bridge import to_module

    module = to_module(net).eval()
    outputs = {}
    for name, child in module.named_children():
        child.register_forward_hook(lambda m, args, out, name=name: outputs.__setitem__(name, (args, out)))
    x = torch.randn(batch, *net.input_shape)
    lookup = next((layer for layer in net.layers if isinstance(layer, Embedding)), None)
    if lookup is not None:  # an embedding's input: indices
        x = torch.randint(lookup.num_embeddings, (batch, *net.input_shape))
    backend = sdpa_kernel(SDPBackend.MATH) if counted else contextlib.nullcontext()
    torch.backends.mha.set_fastpath_enabled(False)  # the path torch takes with grad enabled, as in training
    try:
        with torch.no_grad(), backend, FlopCounterMode(display=False) as counter, warnings.catch_warnings():
            warnings.simplefilter("ignore")   # padding="same" with an even kernel: a note about a copy
            module(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    return module, x, outputs, counter.get_total_flops()


def fvcore_of(module, x, name: str) -> tuple[int, set]:
    """fvcore's count for the module ``name``, and the ops it could not count there."""
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, (x,))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        return int(analysis.by_module().get(name, 0)), set(analysis.unsupported_ops(name))


@pytest.mark.parametrize("kind, variant", CASES, ids=CASE_IDS)
def test_the_tools_columns_against_torch_and_fvcore(kind, variant):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    counts, tools = table("conventions.md", COUNTS_HEADER), table("conventions.md", TOOLS_HEADER)
    net, at = network(kind, variant)
    layer, x, name = net.layers[at], net.input_shapes[at], net.names[at]
    hand = S[kind].hand[variant]
    env = environment(kind, layer, x, hand)
    batch = 2
    module, inp, outputs, flops = run_torch(net, batch, counted=True)
    out = outputs[name][1]
    shapes = [tuple(o.shape) for o in out] if isinstance(out, tuple) else [tuple(out.shape)]
    expected = list(hand["y"]) if isinstance(hand["y"][0], tuple) else [hand["y"]]
    if kind in ("Parameter", "Buffer", "PositionBias"):      # its full shape: no batch dimension
        assert shapes == expected
    else:
        assert shapes == [(batch, *s) for s in expected]
    child = dict(module.named_children())[name]
    assert sum(p.numel() for p in child.parameters()) == claim(counts[kind][0], layer, env)
    assert sum(b.numel() for b in child.buffers()) == claim(counts[kind][4], layer, env)
    assert flops == batch * claim(tools[kind][1], layer, env)      # the sample's other layers count nothing
    said = claim(tools[kind][0], layer, env)
    count, unsupported = fvcore_of(module, inp, name)
    if said is None:
        assert count == 0 and unsupported & {"aten::_convolution_mode", "aten::scaled_dot_product_attention"}
    else:
        assert count == batch * said


def shares(args, out) -> bool:
    """Does a module's (first) output use its first input's storage?"""
    first = out[0] if isinstance(out, tuple) else out
    return first.untyped_storage().data_ptr() == args[0].untyped_storage().data_ptr()


def channels_last(rank: int = 4) -> tuple:
    """A prefix giving the sample's layer a tensor of ``rank`` dimensions (batched) stored channels-last
    (innermost: C, then the last dimensions backwards, then N: NHWC for an NCHW tensor)."""
    return (Permute(name="nhwc", dims=(0, *range(2, rank), 1)), Contiguous(name="dense"),
            Permute(name="nchw", dims=(0, rank - 1, *range(1, rank - 1))))


def first_inside(rank: int = 4) -> tuple:
    """A prefix giving it a tensor stored with its first spatial dimension innermost (H of an NCHW
    tensor: innermost H, W, C, N), dense and permuted; of an NCL tensor, C innermost."""
    a, b = (2, rank - 1) if rank > 3 else (1, 2)
    return (Transpose(name="swap", dim0=a, dim1=b), Contiguous(name="dense"), Transpose(name="back", dim0=a, dim1=b))


def orders(rank: int) -> dict:
    """The two prefixes for a sample of ``rank`` dimensions (batched), with the dimension order each stores
    (innermost first)."""
    inside = (2, *range(3, rank), 1, 0) if rank > 3 else (1, 2, 0)
    return {channels_last(rank): (1, *range(rank - 1, 1, -1), 0), first_inside(rank): inside}


def rank_of(kind: str) -> int:
    """The batched rank of a kind's sample input."""
    return len(S[kind].x) + 1


CHANNELS_LAST = channels_last()
"""The prefix for an NCHW tensor stored channels-last (innermost: C, W, H, N)."""
H_INSIDE = first_inside()
"""The prefix for an NCHW tensor stored with H innermost (innermost: H, W, C, N): dense, permuted."""
OUTPUT_RULES = {
    # phrase: [(variant, shares on a contiguous input?, on a dense permuted one?), ...]; None: refused
    "new": [((), False, False)],
    "new; the input with `inplace=True`": [((), False, False), ((("inplace", True),), True, True)],
    "new; the first input with `inplace=True`": [((), False, False), ((("inplace", True),), True, True)],
    "the first input": [((), True, True)],
    "the input": [((), True, True)],
    "a view": [((), True, True)],
    "views": [((), True, True)],
    "a view where torch can make one, else new": [((), True, False)],
    "a view; refused where torch cannot make one": [((), True, None)],
    "the input when it is contiguous, else new": [((), True, False)],
    "its weight, not an activation": [],
    "gathered from its table once, not an activation": [],
    "its buffer, not an activation": [],
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_output_column_is_what_torch_allocates(kind):
    """Each phrase of the output column, on the sample fed a contiguous tensor and a permuted one:
    alexcost's storage plan and torch's own pointers."""
    torch = pytest.importorskip("torch")
    phrase = table("conventions.md", TOOLS_HEADER)[kind][2]
    assert phrase in OUTPUT_RULES, f"{kind}: the output cell {phrase!r} says something no test checks"
    if phrase.startswith(("its weight", "gathered", "its buffer")):
        net, at = network(kind)
        module, _, outputs, _ = run_torch(net, 2)
        weight = isinstance(outputs[net.names[at]][1], torch.nn.Parameter)
        assert weight == phrase.startswith("its weight") and net.storage(2)[at] is False
        held = any(outputs[net.names[at]][1] is b for b in module.buffers())
        assert held == phrase.startswith("its buffer")
        assert type(net.layers[at]).arity == 0
    for batch in (1, 2):
        for variant, *expected in OUTPUT_RULES[phrase]:
            for prefix, shared in zip(((), first_inside(rank_of(kind))), expected):
                if shared is None:  # refused as the network is built (no batch could view it), at the layer
                    with pytest.raises(SpecError, match=r"\(View\): view size is not compatible"):
                        network(kind, variant, prefix)
                    sample = S[kind]
                    view = sample.build(prefix[-1].name, **dict(variant))[sample.at]
                    _, _, outputs, _ = run_torch(Network(sample.xs.get(variant, sample.x), prefix), batch)
                    with pytest.raises(RuntimeError, match="view size is not compatible"):
                        outputs[prefix[-1].name][1].view(batch, *view.shape)
                    continue
                net, at = network(kind, variant, prefix)
                name = net.names[at]
                _, _, outputs, _ = run_torch(net, batch)
                assert shares(*outputs[name]) == shared, (batch, variant, prefix, "torch")
                assert net.storage(batch)[at] == (not shared), (batch, variant, prefix, "alexcost")


# -- the layout of a new output -------------------------------------------------------------------------

def strides_in_order(shape, order) -> tuple:
    """Dense strides of ``shape`` with ``order`` listing the dimensions innermost first."""
    out, step = [0] * len(shape), 1
    for d in order:
        out[d] = step
        step *= shape[d]
    return tuple(out)


def contiguous_strides(shape) -> tuple:
    """C order: the last dimension innermost."""
    return strides_in_order(shape, range(len(shape) - 1, -1, -1))


def same_strides(a, b, shape) -> bool:
    """Equal where it matters: torch ignores the stride of a dimension of size 1."""
    return all(p == q for p, q, size in zip(a, b, shape) if size != 1)


def expected_strides(rule: str, shape, order, every_input_permuted: bool = True) -> tuple:
    """The strides a layout rule (as the page states it) gives a new output of ``shape`` (batched)
    when its input is stored in ``order``: channels-last, for the formats, is a 4-D or 5-D order."""
    if rule == "elementwise":
        return strides_in_order(shape, order)
    if rule == "sequence first":   # (N, L, E) stored as (L, N, E)
        return (shape[2], shape[0] * shape[2], 1)
    if rule == "query":   # the query's order when its last dimension is innermost
        return strides_in_order(shape, order) if order[0] == len(shape) - 1 else contiguous_strides(shape)
    last = (1, *range(len(shape) - 1, 1, -1), 0)
    if rule == "unsqueezed format":   # (N, C, L) pooled as (N, C, 1, L): channels-last there, C innermost here
        return strides_in_order(shape, order) if len(shape) == 3 and order == (1, 2, 0) else contiguous_strides(shape)
    if rule in ("format", "common format") and len(shape) in (4, 5) and order == last and every_input_permuted:
        return strides_in_order(shape, order)
    return contiguous_strides(shape)


LAYOUTS = ("contiguous", "elementwise", "format", "common format", "query", "sequence first", "unsqueezed format")


@pytest.mark.parametrize("kind", KINDS)
def test_the_layout_column_is_the_kinds_rule_and_torchs(kind):
    """For each kind that makes new outputs: the page's rule is the kind's ``layout``, and it gives
    the strides torch gives the output of a channels-last input and of a permuted one."""
    pytest.importorskip("torch")
    from alexcost.layers import LAYER_KINDS

    rule = table("conventions.md", TOOLS_HEADER)[kind][3]
    if rule == "none":     # a view, an identity or a weight: never a new tensor
        phrase = table("conventions.md", TOOLS_HEADER)[kind][2]
        assert not phrase.startswith("new") and "else new" not in phrase
        return
    assert rule in LAYOUTS, f"{kind}: the layout cell {rule!r} is no rule"
    for prefix, order in orders(rank_of(kind)).items():
        cases = [(prefix, True)]
        if rule == "common format":   # one input permuted, the other the contiguous network input
            cases.append((prefix, False))
        for batch in (1, 2):
            for pre, all_permuted in cases:
                net, at = network(kind, (), pre)
                if not all_permuted:
                    layer = net.layers[at]
                    net = Network(net.input_shape, [*net.layers[:at], dataclasses.replace(
                        layer, inputs=(layer.inputs[0], "input"))])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _, _, outputs, _ = run_torch(net, batch)
                out = outputs[net.names[at]][1]
                want = expected_strides(rule, tuple(out.shape), order, all_permuted)
                assert same_strides(out.stride(), want, out.shape), (batch, order, all_permuted, "torch",
                                                                     out.stride(), want)
    sample, _ = network(kind, (), next(iter(orders(rank_of(kind)))))
    layout = sample.layers[_].layout  # an instance's: Conv2d's depends on its padding_mode
    assert rule == layout, f"{kind}: the page says {rule!r}, as torch does; alexcost's layout is {layout!r}"
    assert LAYER_KINDS[kind]  # a registered kind
    for prefix, order in orders(rank_of(kind)).items():
        net, at = network(kind, (), prefix)
        for batch in (1, 2):
            out_shape = (batch, *net.output_shapes[at])
            assert same_strides(_traced_strides(net, batch, at), expected_strides(rule, out_shape, order),
                                out_shape), (batch, order, "alexcost's stride trace")


def _traced_strides(net: Network, batch: int, at: int) -> tuple:
    from alexcost.engine.storage import trace

    return trace(net, batch)[at][0][1]


# -- activation memory where a layout decides it: what torch allocates ------------------------------------

def new_storages(net: Network, batch: int) -> list[bool]:
    """Per layer, as torch runs it: is its (first) output in storage no earlier tensor uses?"""
    _, x, outputs, _ = run_torch(net, batch)
    seen, out = {x.untyped_storage().data_ptr()}, []
    for name in net.names:
        result = outputs[name][1]
        pointers = [o.untyped_storage().data_ptr() for o in (result if isinstance(result, tuple) else (result,))]
        out.append(pointers[0] not in seen and not isinstance(result, __import__("torch").nn.Parameter))
        seen.update(pointers)
    return out


def test_flatten_after_local_response_norm_of_a_channels_last_tensor_copies():
    """torch computes LRN as elementwise ops ending in ``input / div``: its output keeps a dense
    input's dimension order (TensorIterator), so a channels-last input gives a channels-last output,
    which Flatten cannot view. Found while documenting: LocalResponseNorm's ``layout`` says
    "contiguous", so alexcost calls the Flatten a view and leaves its copy out of the memory."""
    pytest.importorskip("torch")
    net = Network(X, [*CHANNELS_LAST, LocalResponseNorm(size=3), Flatten()])
    batch = 2
    torch_says = new_storages(net, batch)
    # Permute: view; Contiguous: a copy; Permute: view; LRN: new; Flatten: a copy of a channels-last tensor
    assert torch_says == [False, True, False, True, True]
    assert list(net.storage(batch)) == torch_says
    assert net.cost(batch=batch).totals.stored_bytes == 3 * batch * N * 4


def test_an_activation_of_a_channels_last_slice_keeps_its_order():
    """A Chunk of a channels-last tensor is not dense, but torch's TensorIterator still orders the
    output's dimensions by the input's strides: ReLU's output is channels-last, and Flatten copies.
    alexcost takes the order only from a dense input, so it makes the ReLU output contiguous and
    calls the Flatten a view."""
    pytest.importorskip("torch")
    net = Network(X, [*CHANNELS_LAST, Chunk(name="halves", chunks=2, dim=1), ReLU(inputs=("halves.1",)), Flatten()])
    batch = 2
    torch_says = new_storages(net, batch)
    assert torch_says == [False, True, False, False, True, True]
    assert list(net.storage(batch)) == torch_says
    assert net.cost(batch=batch).totals.stored_bytes == batch * (N + N // 2 + N // 2) * 4


def test_a_broadcast_first_operand_takes_part_in_ordering_the_output():
    """torch's TensorIterator orders the output's dimensions pair by pair, asking the inputs in turn
    and skipping one only for the dimensions it broadcasts: a (C, 1, W) first operand orders C and W
    by its own strides (W innermost), not by the channels-last second operand's. alexcost takes the
    whole order from the first input of the output's shape, so the output it traces is
    channels-last, and a Flatten of W and C after a Permute to NHWC looks like a view; torch copies."""
    pytest.importorskip("torch")
    net = Network(X, [*CHANNELS_LAST, Mean(name="rows", dim=2, keepdim=True, inputs=("input",)),
                      Add(name="sum", inputs=("rows", "nchw")), Permute(dims=(0, 2, 3, 1)), Flatten(start_dim=2)])
    batch = 2
    torch_says = new_storages(net, batch)
    assert torch_says == [False, True, False, True, True, False, True]
    assert list(net.storage(batch)) == torch_says


# -- docs/search.md: what evaluate remembers is safe to remember ------------------------------------------

def test_evaluate_refuses_what_network_from_dict_refuses_whatever_came_before():
    """search.md: a layer entry is parsed once per call, and reusing it is safe because an entry
    that reads the same builds the same layer. Found while documenting: the memo's key compares
    values with ``==``, so ``3.0`` (refused: sizes must be ints) finds the layer built from ``3``,
    and ``true`` the one built from ``1``; the second candidate is then costed, not refused."""
    from alexcost import network_from_dict
    from alexcost.search import evaluate

    good = {"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 1, "kernel_size": 3}]}
    for entry in ({"type": "Conv2d", "out_channels": 1, "kernel_size": 3.0},
                  {"type": "Conv2d", "out_channels": True, "kernel_size": 3}):
        bad = {"input_shape": [3, 8, 8], "layers": [entry]}
        with pytest.raises(SpecError) as refused:
            network_from_dict(bad)
        alone, after = evaluate([bad]).rows[0], evaluate([good, bad]).rows[1]
        assert not alone.ok and alone.error == str(refused.value)
        assert not after.ok and after.error == str(refused.value), entry


# -- docs/spec-format.md: every kind with torch's argument names and defaults ----------------------------

SPEC_HEADER = ("`type`", "what torch runs", "arguments (torch's defaults)")
ARGUMENT = re.compile(r"`([a-z_][a-z_0-9]*)(?:=([^`]*))?`")


def test_spec_format_lists_every_kind_with_its_arguments_and_defaults():
    rows = table("spec-format.md", SPEC_HEADER)
    assert list(rows) == KINDS
    from alexcost.layers import LAYER_KINDS

    for kind, (_, arguments) in rows.items():
        fields = {f.name: f for f in dataclasses.fields(LAYER_KINDS[kind])
                  if f.init and f.name not in ("name", "inputs")}
        named = {}
        for name, default in ARGUMENT.findall(arguments):
            if name == "inputs":
                continue
            assert name in fields, f"{kind}: the page lists `{name}`, which is no argument"
            if default:
                named[name] = json.loads(default)
            else:
                named.setdefault(name, dataclasses.MISSING)
        assert set(named) == set(fields), f"{kind}: the page lists {sorted(named)}, the kind takes {sorted(fields)}"
        if not fields:
            assert arguments == "none"
        for name, default in named.items():
            if default is not dataclasses.MISSING:
                assert fields[name].default == default, f"{kind}.{name}: the page says {default!r}"
            else:   # written without a default: required, or inferred from the input (None)
                assert fields[name].default in (dataclasses.MISSING, None), f"{kind}.{name} has a default"


def fenced(name: str, lang: str) -> list[str]:
    """The code blocks of one language on a page."""
    from doc_pages import blocks

    return [b.code for b in blocks((DOCS / name).read_text(encoding="utf-8"), name) if b.lang == lang]


def test_spec_format_shows_the_residual_example_as_it_is():
    assert (DOCS / "examples" / "residual.json").read_text() in fenced("spec-format.md", "json")
    text = page("spec-format.md")
    assert "Linear` on an input that has not been flattened is not refused any more" in text
    assert "torch would apply it to the last dimension only" not in text
    from alexcost import load_spec

    net = load_spec(DOCS / "examples" / "residual.json")
    cost = net.cost()
    conv = 3 * 3 * 64 * 64
    assert cost.totals.params == 2 * conv + 2 * (2 * 64) and cost.totals.macs == 2 * conv * 56 * 56
    assert cost.totals.stored_bytes == 5 * 64 * 56 * 56 * 4           # the ReLUs write in place
    assert net.inputs_of(5) == ("bn2", "input")


@pytest.mark.parametrize("spec, message", [
    ('{"input_shape": [3], "layers": []}', "a network needs at least one layer"),
    ('{"name": " ", "input_shape": [3], "layers": [{"type": "ReLU"}]}', "name must not be empty"),
    ('{"input_shape": [3], "layers": [{"type": "ReLU", "inplace": true, "inplace": false}]}',
     "duplicate key 'inplace' in one object"),
])
def test_spec_format_refusals(spec, message, tmp_path):
    from alexcost import load_spec

    path = tmp_path / "spec.json"
    path.write_text(spec)
    with pytest.raises(SpecError, match=message):
        load_spec(path)
    assert Network((4, 6, 8), [Linear(out_features=3)]).output_shape == (4, 6, 3)   # no longer refused


# -- docs/graphs.md: the patterns are torchvision's blocks -----------------------------------------------

@pytest.fixture(scope="module")
def graphs_page():
    """The networks graphs.md builds: its python blocks run in one namespace, from the repository root."""
    import os

    from doc_pages import blocks

    namespace: dict = {"__name__": "graphs_page"}
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        for block in blocks((DOCS / "graphs.md").read_text(encoding="utf-8"), "graphs.md"):
            if block.lang == "python":
                exec(compile(block.code, "graphs.md", "exec"), namespace)  # noqa: S102 - our own page
    finally:
        os.chdir(here)
    return namespace


def test_graphs_page_shows_the_inception_example_as_it_is():
    assert (DOCS / "examples" / "inception-block.toml").read_text() in fenced("graphs.md", "toml")


@pytest.mark.parametrize("name, build", [
    ("se", lambda tv: tv.ops.misc.SqueezeExcitation(32, 8)),
    ("shuffle", lambda tv: tv.models.shufflenetv2.InvertedResidual(116, 116, 1)),
    ("convnext", lambda tv: tv.models.convnext.CNBlock(96, 1e-6, 0.1)),
])
def test_graphs_page_networks_cost_what_torchvisions_blocks_cost(graphs_page, name, build):
    """Each pattern on the page against the torchvision block it follows, read by from_module:
    the same parameters, MACs, other ops and activation bytes."""
    tv = pytest.importorskip("torchvision")
    from alexcost.torch_bridge import from_module

    ours = graphs_page[name]
    theirs = from_module(build(tv).eval(), ours.input_shape).cost(batch=2).totals
    mine = ours.cost(batch=2).totals
    assert (mine.params, mine.macs, mine.bias_adds, mine.other_ops, mine.stored_bytes) == (
        theirs.params, theirs.macs, theirs.bias_adds, theirs.other_ops, theirs.stored_bytes)


def test_graphs_page_residual_block_is_resnets_with_an_in_place_add(graphs_page):
    """The page: torchvision adds in place, and with Add(inplace=True) four tensors remain."""
    tv = pytest.importorskip("torchvision")
    from alexcost.torch_bridge import from_module

    ours = graphs_page["residual"]
    theirs = from_module(tv.models.resnet.BasicBlock(64, 64).eval(), ours.input_shape).cost().totals
    in_place = Network(ours.input_shape, [dataclasses.replace(layer, inplace=True) if isinstance(layer, Add)
                                          else layer for layer in ours.layers]).cost().totals
    assert (in_place.params, in_place.macs, in_place.other_ops) == (theirs.params, theirs.macs, theirs.other_ops)
    assert in_place.stored_bytes == theirs.stored_bytes == 4 * 64 * 56 * 56 * 4
    assert "`out += identity`" in page("graphs.md") and "leaving four tensors" in page("graphs.md")


@pytest.mark.parametrize("candidate", [
    None, 5, [], {}, {"input_shape": "abc", "layers": []}, {"input_shape": [3, 8, 8], "layers": [None]},
    {"input_shape": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": {"a": 1}, "kernel_size": 3}]},
    {"input_shape": [3, 8, 8], "layers": [{"type": "Reshape", "shape": [[2]]}]},
    {"input_shape": [3, 8, 8], "layers": [{"type": "ReLU"}], "name": 3},
    {"input_shape": [3, 8, 8], "layers": [{"type": "Linear", "out_features": 2**62}]},
])
def test_evaluate_reports_a_bad_candidate_in_its_row(candidate):
    """search.md: an invalid candidate is not an exception; its row holds the error building it raises."""
    from alexcost import network_from_dict
    from alexcost.search import evaluate

    good = {"name": "good", "input_shape": [3, 8, 8], "layers": [{"type": "ReLU"}]}
    rows = evaluate([candidate, good]).rows
    assert not rows[0].ok and rows[0].params is None and rows[0].error
    with pytest.raises(SpecError) as refused:
        network_from_dict(candidate if isinstance(candidate, dict) else {})
    assert rows[0].error == str(refused.value)
    assert rows[1].ok and rows[1].activation_bytes == 3 * 8 * 8 * 4


def test_evaluate_raises_only_for_its_own_arguments():
    from alexcost.search import evaluate

    spec = {"input_shape": [3, 8, 8], "layers": [{"type": "ReLU"}]}
    for bad in (dict(batch=0), dict(batch=1.5), dict(dtype="float8")):
        with pytest.raises(SpecError):
            evaluate([spec], **bad)
    assert "raises only for its own arguments" in page("search.md")


def test_search_page_names_the_benchmark_that_exists():
    assert (ROOT / "benchmarks" / "bench_search.py").is_file()
    assert "benchmarks/bench_search.py" in page("search.md")


# -- docs/custom-layers.md: the defaults of the rules a kind may override ---------------------------------

def test_custom_layers_rules_table_states_the_base_defaults():
    from dataclasses import dataclass as frozen_dataclass

    from alexcost import Layer

    @frozen_dataclass(frozen=True, kw_only=True)
    class Scale(Layer):     # defines only its shape and its MACs
        def output_shape(self, x):
            return x

        def macs(self, x, y):
            return 3 * prod(y)

    layer, x = Scale(), (4, 5)
    assert layer.torch_flops(x, x) == 2 * layer.macs(x, x) and layer.fvcore_count(x, x) == layer.macs(x, x)
    assert layer.buffers(x) == 0 and layer.buffer_bytes(x, 2) == 0
    assert layer.view_strides(x, x, (20, 5, 1), 1) is None
    assert (Scale.layout, Scale.arity, Scale.multi_output, Scale.group) == ("contiguous", 1, False, "other")
    rows = {r[0]: r for r in (split_row(line) for line in (DOCS / "custom-layers.md").read_text().splitlines()
                              if line.startswith("| `"))}
    assert rows["`torch_flops(x, y)`"][2] == "`2 * macs(x, y)`"
    assert rows["`buffer_bytes(x, itemsize)`"][2] == "`buffers(x) * itemsize`"
    assert rows["`view_strides(x, y, strides, batch)`"][2] == "None"
    assert rows["`layout` (class attribute)"][2] == '`"contiguous"`'
    assert Scale.storage == "new" and rows["`storage` (class attribute)"][2] == '`"new"`'
    assert rows["`arity` (class attribute)"][2] == "1" and rows["`multi_output` (class attribute)"][2] == "False"


def test_graphs_page_quotes_torchvisions_code_rightly():
    pytest.importorskip("torchvision")
    import inspect

    from torchvision.models import convnext, resnet, shufflenetv2
    from torchvision.ops.misc import SqueezeExcitation

    assert "return scale * input" in inspect.getsource(SqueezeExcitation.forward)
    shuffle = inspect.getsource(shufflenetv2.channel_shuffle)
    steps = (shuffle.index(".view("), shuffle.index("transpose("), shuffle.index(".contiguous()"),
             shuffle.rindex(".view("))
    assert list(steps) == sorted(steps) and len(set(steps)) == 4
    block = inspect.getsource(convnext.CNBlock.forward)
    assert "self.layer_scale * self.block(input)" in block and "result += input" in block
    assert "out += identity" in inspect.getsource(resnet.BasicBlock.forward)
    text = page("graphs.md")
    for quoted in ("computes `scale * input`", "shuffles with `view`, `transpose`, `contiguous` and `view` again",
                   "multiplies `layer_scale * result`, then adds the input in place", "(`out += identity`)"):
        assert quoted in text, quoted


@pytest.mark.parametrize("name", ["residual.json", "inception-block.toml", "bad-wiring.json"])
def test_example_specs_follow_the_published_schema(name):
    """The examples these pages show are valid spec files by the JSON Schema (bad-wiring.json too:
    its mistake is in the wiring, which only building the network finds)."""
    jsonschema = pytest.importorskip("jsonschema")
    import tomllib

    text = (DOCS / "examples" / name).read_text()
    data = tomllib.loads(text) if name.endswith(".toml") else json.loads(text)
    jsonschema.validate(data, json.loads((DOCS / "spec.schema.json").read_text()))
