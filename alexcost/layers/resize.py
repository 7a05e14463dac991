"""Resizing: Upsample (``torch.nn.Upsample``, ``F.interpolate``).

An output element of an interpolating mode is a weighted sum of the input elements around its
position: ``taps`` of them, 2 per spatial dimension for the linear modes (``2**d``: linear 2,
bilinear 4, trilinear 8) and 4 per dimension for bicubic (16). Each tap is multiplied by its
weight and the products added: ``2*taps - 1`` ops per output element (linear 3, bilinear 7,
trilinear 15, bicubic 31). The weights depend only on the position, so they are computed once
for every channel and sample and not counted. The nearest modes copy one input element: 0 ops.

Backward (the input's gradient): each output element's gradient is multiplied by each of its
taps' weights and added into that tap's gradient, ``2*taps`` ops per output element; the
nearest modes add it into one element's gradient, 1 op. Autograd keeps nothing: the backward
pass needs only the sizes.
"""

from __future__ import annotations

import math
from math import prod
from typing import ClassVar

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind, register_layer

MODES = {"nearest": 0, "nearest-exact": 0, "linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
"""The modes read, with the spatial dimensions an interpolating mode needs (0: any of 1, 2, 3)."""

FVCORE = {("nearest", 2): 1, ("bilinear", 2): 4}
"""What fvcore 0.1.5 counts per output element, by mode and spatial dimensions (it has no count
for the other upsampling ops, and reports 0 for them)."""


def _given(value, what: str, read):
    """A number, or a non-empty list of them, each read by ``read``; a list becomes a tuple."""
    if isinstance(value, (tuple, list)):
        if not value or len(value) > 3:
            raise SpecError(f"{what} must be a number or a list of 1 to 3 numbers, got {check.shown(value)}")
        return tuple(read(v) for v in value)
    return read(value)


def _scale(value) -> float:
    value = float(check.real(value, "scale_factor"))
    if value <= 0:
        raise SpecError(f"scale_factor must be positive, got {value}")
    return value


@register_layer
@layer_kind
class Upsample(Layer):
    """Resizing to ``size`` or by ``scale_factor`` (one of them), by torch's rule: a size per
    spatial dimension, or ``floor(input size * scale)``. Ops per output element: 0 for the
    nearest modes; ``2*taps - 1`` for the others (linear 3, bilinear 7, trilinear 15, bicubic
    31). fvcore counts 1 per output element of nearest and 4 of bilinear over two dimensions,
    nothing else."""

    size: int | tuple[int, ...] | None = None
    scale_factor: float | tuple[float, ...] | None = None
    mode: str = "nearest"
    align_corners: bool | None = None
    recompute_scale_factor: bool | None = None

    layout: ClassVar[str] = "format"

    def __post_init__(self):
        super().__post_init__()
        put = object.__setattr__.__get__(self)
        if self.mode == "area":
            raise SpecError("mode='area' is adaptive average pooling; use AdaptiveAvgPool2d")
        check.choice(self.mode, "mode", tuple(MODES))
        if self.size is not None and self.scale_factor is not None:
            raise SpecError("only one of size or scale_factor should be defined")
        if self.size is not None:
            put("size", _given(self.size, "size", lambda v: check.integer(v, "size")))
        elif self.scale_factor is not None:
            put("scale_factor", _given(self.scale_factor, "scale_factor", _scale))
        if self.align_corners is not None:
            put("align_corners", check.flag(self.align_corners, "align_corners"))
            if MODES[self.mode] == 0:
                raise SpecError("align_corners option can only be set with the interpolating modes: "
                                "linear | bilinear | bicubic | trilinear")
        if self.recompute_scale_factor is not None:
            put("recompute_scale_factor", check.flag(self.recompute_scale_factor, "recompute_scale_factor"))
            if self.recompute_scale_factor and self.size is not None:
                raise SpecError("recompute_scale_factor is not meaningful with an explicit size.")

    def output_shape(self, x: Shape) -> Shape:
        spatial = x[1:]
        d = len(spatial)
        if not 1 <= d <= 3:
            raise SpecError(f"Upsample expects a (C, L), (C, H, W) or (C, D, H, W) input per sample, got "
                            f"{format_shape(x)}")
        need = MODES[self.mode]
        if need and need != d:
            raise SpecError(f"Got {d + 2}D input, but {self.mode} mode needs {need + 2}D input")
        given = self.size if self.size is not None else self.scale_factor
        if given is None:
            raise SpecError("either size or scale_factor should be defined")
        if not isinstance(given, tuple):  # one number: torch repeats it for every spatial dimension
            given = (given,) * d
        elif len(given) != d:
            what = "output size" if self.size is not None else "scale_factor"
            raise SpecError(f"Input and {what} must have the same number of spatial dimensions, but got input "
                            f"with spatial dimensions of {list(spatial)} and {what} of {list(given)}")
        out = given if self.size is not None else tuple(math.floor(s * f) for s, f in zip(spatial, given))
        if min(out) < 1:
            raise SpecError(f"Input and output sizes should be greater than 0, but got input {list(spatial)} "
                            f"and output {list(out)}")
        if max(out) > check.INT64_MAX:
            raise SpecError(f"the output {list(out)} is larger than torch's int64 limit {check.INT64_MAX}")
        return (x[0], *out)

    def taps(self, x: Shape) -> int:
        """Input elements each output element reads: 1 (nearest), ``2**d`` (linear modes), ``4**d`` (bicubic)."""
        if MODES[self.mode] == 0:
            return 1
        return (4 if self.mode == "bicubic" else 2) ** (len(x) - 1)

    def other_ops(self, x: Shape, y: Shape) -> int:
        taps = self.taps(x)
        return 0 if taps == 1 else prod(y) * (2 * taps - 1)

    def fvcore_count(self, x: Shape, y: Shape) -> int:
        return prod(y) * FVCORE.get((self.mode, len(x) - 1), 0)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.input:
            return 0
        taps = self.taps(x)
        return batch * prod(y) * (1 if taps == 1 else 2 * taps)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return ()

    def label(self) -> str:
        return "Upsample"
