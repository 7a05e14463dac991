"""A user's torch module's training step, run by torch on the CPU and derived by alexcost, side by side.

torch's side (`torch_step`): a plain step first (forward, then backward from random output
gradients, no hooks): whether torch runs it at all; then the counts of a step that runs: the
forward FLOPs and the backward FLOPs ``FlopCounterMode`` counts, and the bytes of the storages
``saved_tensors_hooks`` sees still held when the forward pass has returned (each storage once,
parameters and buffers excluded). alexcost's side (`alexcost_step`): the same numbers from
``from_module`` and ``training_cost`` on the CPU's rules, or the `SpecError` it refuses with.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from alexcost import SpecError
from alexcost.torch_bridge import from_module
from alexcost.training import training_cost


class Step(NamedTuple):
    """One training step's counts (whole batch), or why it cannot run (``refused``)."""

    refused: str | None
    forward_flops: int = 0
    backward_flops: int = 0
    saved_bytes: int = 0


def torch_step(module, input_shape, batch: int = 2, seed: int = 0, indices: int | None = None) -> Step:
    """What torch does: see the module docstring. The module is put in training mode. ``indices``: the input
    is integers below it (an embedding's), not random floats."""
    module.train()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *input_shape), generator=generator) if indices is None else \
        torch.randint(indices, (batch, *input_shape), generator=generator)
    try:
        out = module(x.clone())
        out.backward(torch.randn(out.shape, generator=generator))
    except RuntimeError as err:
        return Step(" ".join(str(err).split())[:300])
    module.zero_grad(set_to_none=True)
    persistent = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    kept = []

    class Held:
        __slots__ = ("tensor", "__weakref__")

        def __init__(self, tensor):
            self.tensor = tensor

    def pack(tensor):
        # detached: a holder of a saved output with its history would hold the node that saved it,
        # a cycle that keeps what a dead branch saved alive (torch without hooks frees it)
        holder = Held(tensor.detach())
        kept.append(weakref.ref(holder))
        return holder

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor):
        out = module(x.clone())  # (no backward pass through this one: the counts come from the next)
    sizes = {}
    for holder in (ref() for ref in kept):
        if holder is not None:
            storage = holder.tensor.untyped_storage()
            if storage.data_ptr() not in persistent:
                sizes[storage.data_ptr()] = storage.nbytes()
    del out
    with FlopCounterMode(display=False) as forward:
        out = module(x.clone())
    with FlopCounterMode(display=False) as backward:
        out.backward(torch.randn(out.shape, generator=generator))
    module.zero_grad(set_to_none=True)
    return Step(None, forward.get_total_flops(), backward.get_total_flops(), sum(sizes.values()))


def alexcost_step(module, input_shape, batch: int = 2) -> Step:
    """What alexcost derives for the same step (torch's CPU rules), or the SpecError it refuses with."""
    try:
        imported = from_module(module, input_shape)
        cost = training_cost(imported, batch, device="cpu")
        return Step(None, 2 * cost.forward_macs, cost.torch_backward_flops, cost.saved_bytes)
    except SpecError as err:
        return Step(str(err))


def agree(module, input_shape, batch: int = 2) -> tuple[Step, Step]:
    """Both sides; they agree when both refuse, or both run with equal counts."""
    return torch_step(module, input_shape, batch), alexcost_step(module, input_shape, batch)


def step_agrees(module, input_shape, batch: int = 2) -> None:
    """A training step of ``module`` that both torch and alexcost take, with equal counts."""
    theirs, ours = agree(module, input_shape, batch)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def forward_and_step_agree(build, shape, batch: int = 2) -> None:
    """``build()``'s forward pass (`forward_against_torch`) and a training step (`step_agrees`, on a second
    ``build()``) as torch's, each from seed 0."""
    torch.manual_seed(0)
    forward_against_torch(build(), shape, batch)
    torch.manual_seed(0)
    step_agrees(build(), shape, batch)


def same(theirs: Step, ours: Step) -> bool:
    if theirs.refused or ours.refused:
        return bool(theirs.refused) == bool(ours.refused)
    return theirs == ours


@contextmanager
def counted_attention():
    """Attention as matrix products FlopCounterMode counts: no fused multi-head path, the math backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


def torch_attention_step(module, shape, batch=2) -> Step:
    """FLOPs on the math backend (no fused multi-head path), saved bytes on the default backend."""
    torch.manual_seed(0)
    with counted_attention():
        counted = torch_step(module, shape, batch)
    kept = torch_step(module, shape, batch)
    return counted._replace(saved_bytes=kept.saved_bytes)


def attention_step_agrees(module, shape, batch: int = 2) -> None:
    """A training step of ``module`` that both torch and alexcost take, with equal counts (attention on
    torch's math backend for the FLOPs, `torch_attention_step`)."""
    theirs, ours = torch_attention_step(module, shape, batch), alexcost_step(module, shape, batch)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def forward_against_torch(module, shape, batch: int = 1, grad: bool = False):
    """``module``'s reading against one forward pass of ``batch`` under FlopCounterMode (attention as matrix
    products): parameters, MACs and the output shape; its cost at ``batch``, for the checks by hand. ``grad``:
    torch's pass with grad mode on (under ``no_grad`` a view of a parameter keeps ``requires_grad`` without a
    history, which FlopCounterMode's module tracker cannot hook)."""
    torch.manual_seed(0)
    module.eval()
    imported = from_module(module, shape)
    with torch.set_grad_enabled(grad), counted_attention(), FlopCounterMode(display=False) as counter:
        out = module(torch.randn(batch, *shape))
    cost = imported.cost(batch=batch)
    assert imported.params == cost.totals.params == sum(p.numel() for p in module.parameters())
    assert 2 * cost.totals.macs == counter.get_total_flops()
    assert (batch, *imported.network.output_shape) == tuple(out.shape)
    return cost


class Call(torch.nn.Module):
    """A module whose forward is one function of its input."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class Around(torch.nn.Module):
    """Projections around ``call(y)`` (``call(self, y)`` with ``own``, the module holding a parameter ``w`` of
    ``features`` for the call), so a training step has products to count and gradients to pass."""

    def __init__(self, call, features: int = 6, own: bool = False):
        super().__init__()
        self.call, self.own = call, own
        self.a, self.b = torch.nn.Linear(features, features), torch.nn.Linear(features, 4)
        if own:
            self.w = torch.nn.Parameter(torch.randn(features))

    def forward(self, x):
        y = self.a(x)
        return self.b(self.call(self, y) if self.own else self.call(y))


def read_as_torch_runs_it(build, shape, batch: int = 2):
    """``from_module`` of ``build()``: the output shape and parameters torch's, a training step torch's too
    (`step_agrees`, on a second ``build()`` from the same seed). The reading, for the test's own checks."""
    torch.manual_seed(0)
    module = build().eval()
    imported = from_module(module, shape)
    with torch.no_grad():
        out = module(torch.randn(batch, *shape))
    assert (batch, *imported.network.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in module.parameters())
    torch.manual_seed(0)
    step_agrees(build(), shape, batch)
    return imported


def both_refuse(module, shape, words: str) -> None:
    """torch refuses ``module``'s training step, and so does alexcost, both saying ``words``."""
    theirs, ours = agree(module, shape)
    assert theirs.refused and words in theirs.refused, theirs
    assert ours.refused and words in ours.refused, ours


def refused_at_the_node(function, shape, message: str) -> None:
    """``from_module`` of `Call` (``function``) refuses with one SpecError matching ``message``."""
    import pytest

    with pytest.raises(SpecError, match=message):
        from_module(Call(function), shape)


def relative_position_index(window: int):
    """MaxViT's relative position index over a ``window`` x ``window`` grid: for each pair of tokens, the
    row of their offset in a ``(2*window - 1)**2`` table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]
