"""Padding: Pad (``F.pad`` in every mode, and the torch.nn padding modules) and ZeroPad2d.

``pad`` lists (before, after) pairs from the last dimension backwards, as torch's ``F.pad``
takes them; a negative entry crops. Padding copies memory and does no arithmetic (0 ops).

Backward: the gradient of a constant pad is a slice of the output's (0 ops). Reflect,
replicate and circular padding copy input elements into the border, so the gradient of each
border element is added into the element it copies: ``numel(y) - interior`` adds per sample,
``interior`` being the input elements that reach the output unchanged. Autograd keeps the
input for reflect and replicate padding (their backward kernels read it), nothing otherwise.
"""

from __future__ import annotations

import math

from math import prod

from . import arguments as check
from ..errors import SpecError, format_shape
from .base import Grads, KEEPS_INPUT, Layer, Saved, Shape, TrainContext, layer_kind, need_rank, register_layer

MODES = ("constant", "reflect", "replicate", "circular")


@layer_kind
class _Padding(Layer):
    """What every padding kind shares, given its ``_pad()`` (torch's order) and ``_mode()``."""

    def _pad(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _mode(self) -> str:
        return "constant"

    @property
    def layout(self) -> str:
        """Channels-last in, channels-last out; circular padding writes a contiguous tensor; a
        constant pad that only crops (or does nothing) is a copy in the input's own order."""
        if self._mode() == "circular":
            return "contiguous"
        return "elementwise" if self._mode() == "constant" and max(self._pad(), default=0) <= 0 else "format"

    def _sides(self, x: Shape):
        """(size, before, after) per padded dimension of ``x`` (per sample), last dimension first."""
        pad = self._pad()
        return [(x[len(x) - 1 - i], pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]

    def output_shape(self, x: Shape) -> Shape:
        sides = self._sides(x)
        y = list(x)
        for i, (size, before, after) in enumerate(sides):
            if size + min(before, 0) + min(after, 0) < 0 and self._mode() in ("constant", "circular"):
                raise SpecError(f"padding ({before}, {after}) crops more than the {size} elements of dimension "
                                f"{len(x) - i} of input {format_shape(('N', *x))} (torch crops first: narrow(): "
                                f"length must be non-negative)")
            y[len(x) - 1 - i] = size + before + after
        if min(y) < 1:
            raise SpecError(f"input {format_shape(x)} padded by {list(self._pad())} has size "
                            f"{'x'.join(map(str, y))}; sizes must be positive")
        if max(y) > check.INT64_MAX:
            raise SpecError(f"the output {format_shape(tuple(y))} is larger than torch's int64 limit {check.INT64_MAX}")
        return tuple(y)

    def interior(self, x: Shape) -> int:
        """Output elements that are input elements at their own place (not cropped, not border)."""
        kept = list(x)
        for i, (size, before, after) in enumerate(self._sides(x)):
            kept[len(x) - 1 - i] = max(0, size + min(before, 0) + min(after, 0))
        return prod(kept)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        if not grads.input or self._mode() == "constant":
            return 0
        return batch * (prod(y) - self.interior(x))

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return KEEPS_INPUT if self._mode() in ("reflect", "replicate") else ()


INFINITE = {"inf": float("inf"), "-inf": float("-inf")}
"""The infinite fill values, as a spec writes them (JSON has no infinity), and as torch takes them."""


def _fill(value):
    """A constant padding's fill: a finite number as a float, an infinite one as ``"inf"`` or ``"-inf"``."""
    if isinstance(value, str) and value in INFINITE:
        return value
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        raise SpecError(f'value must be a number, "inf" or "-inf", got {check.shown(value)}')
    return float(check.real(value, "value"))


@register_layer
@layer_kind
class Pad(_Padding):
    """``F.pad(x, pad, mode, value)``: ``pad`` lists (before, after) pairs from the last dimension
    backwards (a negative entry crops); ``mode`` is "constant" (any dimensions but the batch's,
    filled with ``value``, default 0), "reflect", "replicate" or "circular" (the last 1, 2 or 3
    dimensions of an input with one or two more). torch.nn's padding modules (ConstantPad2d,
    ReflectionPad2d, ...) are this. ``value`` is a finite number, or ``"-inf"`` / ``"inf"`` (a max
    pool's "same" padding fills with -inf; JSON has no infinity). No ops."""

    pad: tuple[int, ...]
    mode: str = "constant"
    value: float | str | None = None

    def __post_init__(self):
        super().__post_init__()
        value = self.pad
        if not isinstance(value, (tuple, list)) or not value or len(value) % 2 or len(value) > 2 * check.MAX_RANK:
            raise SpecError(f"pad must list (before, after) pairs of integers, got {check.shown(value)}")
        object.__setattr__(self, "pad", tuple(check.integer(v, "pad", minimum=-check.INT64_MAX) for v in value))
        check.choice(self.mode, "mode", MODES)
        if self.value is not None:
            object.__setattr__(self, "value", _fill(self.value))
            if self.mode != "constant" and self.value != 0:
                raise SpecError(f'Padding mode "{self.mode}" doesn\'t take in value argument')

    def _pad(self) -> tuple[int, ...]:
        return self.pad

    def _mode(self) -> str:
        return self.mode

    def output_shape(self, x: Shape) -> Shape:
        pairs, rank = len(self.pad) // 2, len(x) + 1  # torch counts the batch dimension
        if pairs > rank:
            raise SpecError(f"Padding length should be less than or equal to two times the input dimension but "
                            f"got padding length {len(self.pad)} and input of dimension {rank}")
        if pairs == rank:
            raise SpecError(f"pad {list(self.pad)} pads the batch dimension; alexcost analyses each sample on its own")
        if self.mode != "constant":
            if not (1 <= pairs <= 3 and rank - pairs in (1, 2)):
                raise SpecError(f"Padding size {len(self.pad)} is not supported for {rank}D input tensor: "
                                f"mode={self.mode!r} pads the last 1, 2 or 3 dimensions of a 2D to 5D input, "
                                f"with one or two dimensions more")
            for i, (size, before, after) in enumerate(self._sides(x)):
                self._fits(x, i, size, before, after)
        return super().output_shape(x)

    def _fits(self, x: Shape, i: int, size: int, before: int, after: int) -> None:
        """torch's bounds for the non-constant modes, along dimension ``-1 - i``."""
        dim = len(x) - i
        if self.mode == "reflect" and (before >= size or after >= size):
            raise SpecError(f"Padding size should be less than the corresponding input dimension, but got: "
                            f"padding ({before}, {after}) at dimension {dim} of input {format_shape(('N', *x))}")
        if self.mode == "circular" and (before > size or after > size):
            raise SpecError(f"Padding value causes wrapping around more than once: padding ({before}, {after}) "
                            f"at dimension {dim} of input {format_shape(('N', *x))}")

    def label(self) -> str:
        return f"Pad ({self.mode})"


@register_layer
@layer_kind
class ZeroPad2d(_Padding):
    """Zero padding ``(left, right, top, bottom)`` of a (C, H, W) input (an int: all four;
    negative crops, as in torch). A new tensor, no ops."""

    padding: int | tuple[int, int, int, int]

    def __post_init__(self):
        super().__post_init__()
        value = self.padding
        if isinstance(value, (tuple, list)):
            if len(value) != 4:
                raise SpecError(f"padding must be an integer or 4 integers (left, right, top, bottom), got "
                                f"{check.shown(value)}")
            value = tuple(check.integer(v, "padding", minimum=-check.INT64_MAX) for v in value)
        else:
            value = (check.integer(value, "padding", minimum=-check.INT64_MAX),) * 4
        object.__setattr__(self, "padding", value)

    def _pad(self) -> tuple[int, ...]:
        return self.padding

    def output_shape(self, x: Shape) -> Shape:
        need_rank(self, x, 3, "(C, H, W)")
        return super().output_shape(x)

    def label(self) -> str:
        return "Zero padding"
