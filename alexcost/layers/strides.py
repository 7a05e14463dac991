"""Strides of batched tensors, as torch computes them, to tell a view from a copy.

Strides are for the batched tensor, the batch dimension first; ``batch`` is the batch
size that matters where torch ignores dimensions of size 1 (a tensor of one sample may
be contiguous where one of two is not). Pure Python; torch's rules, cited per function.
"""

from __future__ import annotations

Strides = tuple[int, ...]


def contiguous(shape) -> Strides:
    """C-order strides of a tensor of ``shape`` (the batched shape, a tuple of ints); remembered
    per shape, as a network's tensors share a few shapes."""
    found = _CONTIGUOUS.get(shape) if shape.__class__ is tuple else None
    if found is None:
        out, step = [], 1
        for d in reversed(shape):
            out.append(step)
            step *= d
        found = tuple(reversed(out))
        if shape.__class__ is tuple:
            if len(_CONTIGUOUS) >= 4096:
                _CONTIGUOUS.clear()
            _CONTIGUOUS[shape] = found
    return found


_CONTIGUOUS: dict = {}


def batched(shape, batch: int) -> tuple[int, ...]:
    return (batch, *shape)


def is_contiguous(shape, strides) -> bool:
    """torch's ``is_contiguous()``: dimensions of size 1 do not count."""
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def is_dense(shape, strides) -> bool:
    """torch's non-overlapping-and-dense: some order of the dimensions is contiguous."""
    order = sorted((i for i in range(len(shape)) if shape[i] != 1), key=lambda i: strides[i])
    expected = 1
    for i in order:
        if strides[i] != expected:
            return False
        expected *= shape[i]
    return True


def like(shape, strides, new_shape) -> Strides:
    """Strides of a new dense tensor of ``new_shape`` with the dimension order of a dense
    ``strides`` (torch's ``empty_like`` with preserve_format, and TensorIterator's output)."""
    order = sorted(range(len(shape)), key=lambda i: (strides[i], -i))  # innermost first
    out, step = [0] * len(new_shape), 1
    for i in order:
        out[i] = step
        step *= new_shape[i]
    return tuple(out)


def _last_order(rank: int) -> tuple[int, ...]:
    """The dimensions of a channels-last tensor of ``rank`` 4 or 5, innermost first: C, then the
    spatial ones from the last, then N."""
    return (1, *range(rank - 1, 1, -1), 0)


def is_channels_last(shape, strides) -> bool:
    """torch's ``is_channels_last_strides_2d`` for a 4-D tensor (channels innermost, then W, H, N)
    and ``is_channels_last_strides_3d`` for a 5-D one (C, W, H, D, N)."""
    if len(shape) not in (4, 5) or strides[1] == 0:
        return False
    low = 0
    for d in _last_order(len(shape)):
        if strides[d] < low or (d == 0 and low == strides[1]):
            return False
        low = strides[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def channels_last(shape) -> Strides:
    """NHWC strides of an NCHW-shaped tensor (NDHWC of an NCDHW one)."""
    out, step = [0] * len(shape), 1
    for d in _last_order(len(shape)):
        out[d] = step
        step *= shape[d]
    return tuple(out)


def view(shape, strides, new_shape) -> Strides | None:
    """The strides ``x.view(new_shape)`` gets, or None when torch cannot view (reshape copies).

    torch's ``computeStride`` (aten/src/ATen/TensorUtils.cpp): a view may split or merge
    dimensions only within chunks that are contiguous in memory.
    """
    new_strides = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base = strides[-1]
    tensor_numel = view_numel = 1
    for tensor_d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[tensor_d]
        if tensor_d == 0 or (shape[tensor_d - 1] != 1 and strides[tensor_d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_strides[view_d] = view_numel * chunk_base
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base = strides[tensor_d - 1]
                tensor_numel = view_numel = 1
    return tuple(new_strides) if view_d == -1 else None


def is_channels_last_contiguous(shape, strides) -> bool:
    """torch's ``is_contiguous(memory_format=torch.channels_last)`` for a 4-D tensor."""
    if len(shape) != 4:
        return False
    expected = 1
    for d in (1, 3, 2, 0):
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def elementwise(inputs, out_shape) -> Strides:
    """The strides torch's TensorIterator gives the output of an elementwise op.

    ``inputs`` are ``(shape, strides)`` of the operands (batched; a shape may have fewer
    dimensions, aligned on the right, as broadcasting does). Same shapes throughout: contiguous
    when every input is, channels-last when every input is, the inputs' own strides when they
    are dense and all alike. Otherwise the dimensions are ordered as TensorIterator's
    ``reorder_dimensions`` orders them, asking the operands in turn (skipping one where it
    broadcasts), and the output is dense in that order.
    """
    rank = len(out_shape)
    if all(shape == out_shape and is_contiguous(shape, strides) for shape, strides in inputs):
        return contiguous(out_shape)  # (the first case below, before aligning anything)
    aligned = []
    for shape, strides in inputs:
        pad = rank - len(shape)
        full = (1,) * pad + tuple(shape)
        strides = tuple(0 if i < pad or (full[i] == 1 and out_shape[i] != 1) else strides[i - pad]
                        for i in range(rank))
        aligned.append((full, strides))
    if all(shape == tuple(out_shape) for shape, _ in aligned):
        if all(is_contiguous(s, t) for s, t in aligned):
            return contiguous(out_shape)
        if rank == 4 and all(is_channels_last_contiguous(s, t) for s, t in aligned):
            return channels_last(out_shape)
        if all(is_dense(s, t) for s, t in aligned) and len({t for _, t in aligned}) == 1:
            return aligned[0][1]

    def should_swap(d0: int, d1: int) -> int:
        for shape, strides in aligned:
            s0, s1 = strides[d0], strides[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 < s1:
                return -1
            if s0 > s1:
                return 1
            if out_shape[d0] > out_shape[d1]:
                return 1
        return 0

    perm = list(range(rank - 1, -1, -1))  # innermost first, as TensorIterator starts
    for i in range(1, rank):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[d0], perm[d1])
            if comparison > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif comparison < 0:
                break
    out, step = [0] * rank, 1
    for d in perm:
        out[d] = step
        step *= out_shape[d]
    return tuple(out)
