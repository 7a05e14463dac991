"""What a GPU runs for each layer: its kernels, derived from the static counts (no torch).

One `Kernel` is one launch: its FLOPs, the bytes it reads and writes, the kind of work
(which decides its efficiency) and how many output elements its tiles cover (which
decides how well it fills the SMs). Counts come from the cost records only
(`alexcost.engine.cost.LayerCost` rows and, for training, the public fields of
`alexcost.training.LayerTraining`); nothing here re-derives a count.

* Forward, per layer: a Conv2d or Linear is one kernel of ``2*macs + bias_adds`` FLOPs
  that reads its input and weights and writes its output; any other layer that does
  arithmetic is one memory-bound kernel over its input, weights, buffers and output
  (in training also the tensors it makes for the backward pass; a normalisation reads
  its input twice, once for the batch statistics); a layer that makes new memory
  without arithmetic (Cat) is one copy; views and identities (Flatten, Dropout at
  inference) launch nothing.
* Backward, per layer in reverse: a Conv2d or Linear is two kernels, the input's
  gradient (``2*grad_input_macs``: output gradient and weights in, input gradient out)
  and the weights' (``2*grad_weight_macs`` and the bias gradient: output gradient and
  input in, weight gradient out), the first skipped where nothing needs it; any other
  layer with backward arithmetic is one memory-bound kernel (output gradient and the
  tensors it kept in; input gradient out).
* The optimizer's update: one memory-bound kernel per trainable tensor (weight, bias).
* Mixed precision (``amp``): each Conv2d and Linear also casts its FP32 weights to FP16
  before the forward pass (one kernel each).
* Fusion (`fusion`): a BatchNorm2d right after the convolution it alone reads is folded
  into it at inference, and an activation right after a convolution (or a folded or
  training batch norm) runs in that kernel's epilogue.
"""

from __future__ import annotations

from typing import NamedTuple

ACTIVATIONS = frozenset({"ReLU", "ReLU6", "LeakyReLU", "SiLU", "GELU", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh"})
"""Elementwise activations a convolution's or a normalisation's kernel can apply in its epilogue."""

NORMS = frozenset({"BatchNorm2d", "LayerNorm"})
"""Normalisations that, in training, read their input twice: batch statistics, then the normalised output."""

WINOGRAD = {(3, 3): 36 / 16, (5, 5): 100 / 36}
"""Multiplies a direct convolution does per multiply of the Winograd algorithm F(2x2, r x r) that cuDNN
runs for stride-1 3x3 and 5x5 convolutions: 2.25 and 2.78."""

UPDATE = {"sgd": (3, 2), "momentum": (5, 6), "adam": (7, 12)}
"""Per parameter element of the optimizer's update: (elements read and written, FLOPs)."""

GROUPS = ("conv", "fc", "other")
"""The groups time and counts are summed in: Conv2d, Linear, everything else."""


def group_of(row) -> str:
    """``conv``, ``fc``, or ``other`` for any other group a custom kind may name."""
    return row.group if row.group in GROUPS else "other"


COMPUTE = ("conv3x3", "conv", "conv1x1", "depthwise", "gemm")
"""Kinds of work of the kernels that multiply (the rest are ``memory``: elementwise, pooling, norms, copies)."""


class Kernel(NamedTuple):
    """One kernel launch. ``layer``: the index of its layer (-1: the optimizer's update); ``stage``:
    ``forward``, ``backward``, ``update`` or ``cast``; ``work``: one of `COMPUTE` or ``memory``;
    ``tiles``: output elements the kernel's tiles cover (0: none, see `tiles_of`); ``winograd``:
    the multiplies a Winograd algorithm saves at best (1: none)."""

    layer: int
    stage: str
    work: str
    flops: int
    bytes: int
    tiles: int = 0
    winograd: float = 1.0


def conv_work(row) -> tuple[str, float]:
    """A Conv2d's kind of work and the multiplies Winograd would save (1 where it does not apply)."""
    layer = row.layer
    groups, k = layer.groups, tuple(layer.kernel_size)
    if groups > 1 and groups == row.input_shape[0]:
        return "depthwise", 1.0
    work = "conv1x1" if k == (1, 1) else "conv3x3" if k == (3, 3) else "conv"
    plain = tuple(layer.stride) == (1, 1) and tuple(layer.dilation) == (1, 1)
    return work, WINOGRAD.get(k, 1.0) if plain else 1.0


def tiles_of(row, work: str) -> int:
    """The output elements a layer's multiplying kernels spread over the SMs in tiles: a convolution's
    output; none for a matrix product (Linear), whose library splits the reduction over the SMs when the
    output is small (split-K), so that even one sample keeps every SM busy."""
    return 0 if work == "gemm" else row.output_elements


def work_of(row) -> tuple[str, float] | None:
    """``(kind of work, Winograd saving)`` of a layer that multiplies, else None."""
    if row.macs == 0:
        return None
    kind = row.type
    if kind == "Conv2d":
        return conv_work(row)
    return "gemm", 1.0


def _inputs(rows) -> list[tuple[int, ...]]:
    """The indices of the layers each layer reads (a layer without named inputs reads the one before)."""
    index = {r.name: i for i, r in enumerate(rows)}
    return [tuple(index[n] for n in r.inputs if n in index) if r.inputs is not None else ((i - 1,) if i else ())
            for i, r in enumerate(rows)]


def fusion(rows, training: bool) -> frozenset[int]:
    """Indices of the layers that launch nothing of their own: at inference a BatchNorm2d that reads
    only a convolution read by nothing else (folded into its weights), and an activation that reads
    only a convolution or a batch norm read by nothing else (applied in that kernel's epilogue; in
    training, its backward goes into the producer's too)."""
    reads = _inputs(rows)
    readers = [0] * len(rows)
    for ins in reads:
        for j in ins:
            readers[j] += 1
    folded: set[int] = set()
    for i, r in enumerate(rows):
        if len(reads[i]) != 1 or readers[reads[i][0]] != 1:
            continue
        producer = rows[reads[i][0]].type
        if r.type == "BatchNorm2d" and producer == "Conv2d" and not training:
            folded.add(i)
        elif r.type in ACTIVATIONS and (producer == "Conv2d" or producer in NORMS):
            folded.add(i)
    return frozenset(folded)


def _copies(row) -> bool:
    """Does the layer write new memory without arithmetic (a concatenation, a contiguous copy)?"""
    return row.new_storage and type(row.layer).arity != 0 and row.input_bytes > 0


def forward_kernels(i: int, row, tr=None) -> list[Kernel]:
    """The forward pass of layer ``i`` (``tr``: its `LayerTraining` in a training step, None at inference)."""
    work = work_of(row)
    if work is not None:
        return [Kernel(i, "forward", work[0], 2 * row.macs + row.bias_adds,
                       row.input_bytes + row.weight_bytes + row.output_bytes, tiles_of(row, work[0]), work[1])]
    ops = row.bias_adds + (row.other_ops if tr is None else tr.train_other_ops)
    moved = row.input_bytes + row.weight_bytes + row.buffer_bytes + row.output_bytes
    if ops:
        if tr is not None:
            moved += sum(t.bytes for t in tr.saved if t.storage[0] == "new")
            if row.type in NORMS:
                moved += row.input_bytes
        return [Kernel(i, "forward", "memory", ops, moved)]
    if _copies(row):
        return [Kernel(i, "forward", "memory", 0, row.input_bytes + row.output_bytes)]
    return []


def backward_kernels(i: int, row, tr) -> list[Kernel]:
    """The backward pass of layer ``i``: its input's and its weights' gradients."""
    if tr.grads is None:
        return []
    work = work_of(row)
    if work is not None:
        out = []
        moved = row.output_bytes + row.weight_bytes + row.input_bytes
        tiles = tiles_of(row, work[0])
        if tr.grad_input_macs:
            out.append(Kernel(i, "backward", work[0], 2 * tr.grad_input_macs, moved, tiles, work[1]))
        if tr.grad_weight_macs:
            bias = row.bias_adds if row.bias_params else 0
            out.append(Kernel(i, "backward", work[0], 2 * tr.grad_weight_macs + bias, moved, tiles, work[1]))
        return out
    if not tr.backward_other_ops:
        return []
    moved = row.output_bytes + sum(t.bytes for t in tr.saved)
    if any(tr.grads.inputs):
        moved += row.input_bytes
    if tr.grads.params:
        moved += row.weight_bytes
    return [Kernel(i, "backward", "memory", tr.backward_other_ops, moved)]


def update_kernels(rows, trainings, optimizer: str, itemsize: int) -> list[Kernel]:
    """The optimizer's update: per trainable weight and bias tensor, its elements read and written
    (the weights, their gradients, the optimizer's state) at the master weights' ``itemsize``."""
    moved, flops = UPDATE[optimizer]
    out = []
    for row, tr in zip(rows, trainings):
        if not tr.trainable_params:
            continue
        for n in (row.weight_params, row.bias_params):
            if n:
                out.append(Kernel(-1, "update", "memory", flops * n, moved * n * itemsize))
    return out


def cast_kernels(rows) -> list[Kernel]:
    """Mixed precision: each multiplying layer's FP32 weights cast to FP16 (4 bytes read, 2 written each)."""
    return [Kernel(i, "cast", "memory", 0, 6 * (row.weight_params + row.bias_params))
            for i, row in enumerate(rows) if work_of(row) is not None and row.params]


def network_kernels(rows, trainings=None, *, fused: frozenset = frozenset(), amp: bool = False) -> list[Kernel]:
    """Every kernel of one pass (``trainings`` None) or one training step (forward in order, then
    backward in reverse), leaving out the layers in ``fused``."""
    out = cast_kernels(rows) if amp else []
    trs = trainings if trainings is not None else [None] * len(rows)
    for i, (row, tr) in enumerate(zip(rows, trs)):
        if i not in fused:
            out += forward_kernels(i, row, tr)
    if trainings is not None:
        for i in range(len(rows) - 1, -1, -1):
            if i not in fused:
                out += backward_kernels(i, rows[i], trainings[i])
    return out


def shared(kernel: Kernel, share: int) -> Kernel:
    """``kernel`` with its work shared out among ``share`` GPUs (each does ``1/share``)."""
    if share == 1:
        return kernel
    return kernel._replace(flops=kernel.flops // share, bytes=kernel.bytes // share, tiles=kernel.tiles // share)
