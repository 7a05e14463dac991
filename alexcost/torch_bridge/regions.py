"""torch's modes while a forward is traced: what each fx node was made under, and how a training
step counts it (grad mode, inference mode, autocast, ``torch.utils.checkpoint``, saved-tensor hooks).

Imports torch.
"""

from __future__ import annotations

import os
import sys

MODE = "alexcost_mode"
"""The ``node.meta`` key of what torch's modes were, where the forward changed them (see `mode_of`)."""

REGION = "alexcost_region"
"""The ``node.meta`` key of how a training step counts a node made with torch's modes changed:
``("no_grad",)``, ``("inference",)``, ``("checkpoint", k)`` (the ``k``-th non-reentrant
``torch.utils.checkpoint`` call), ``("autocast", ((device, dtype), ...))`` (each device where
``torch.autocast`` is on, alone, entered where it was off), or None where alexcost does not
model the change (refused)."""


def modes() -> tuple:
    """torch's modes that change what a forward pass computes or keeps: grad mode, inference mode,
    autocast (device and dtype, each device where it is on), the innermost saved-tensor hooks."""
    import torch

    autocast = []
    for device in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device):
            autocast.append((device, str(torch.get_autocast_dtype(device)).removeprefix("torch.")))
    hooks = torch._C._autograd._top_saved_tensors_default_hooks(True)
    return (torch._C.is_grad_enabled(), torch.is_inference_mode_enabled(), tuple(autocast),
            None if hooks is None else hooks[0])


def mode_of(modes: tuple, base: tuple) -> str:
    """What ``forward`` changed (``modes`` against the ``base`` it was traced in), in words."""
    grad, inference, autocast, hooks = modes
    checkpoint = _in_checkpoint()
    if checkpoint or (hooks is not base[3] and "_checkpoint_hook" in getattr(hooks, "__qualname__", "")):
        return ("runs inside torch.utils.checkpoint: torch keeps none of its tensors for the backward pass "
                "and runs its forward again there")
    if inference and not base[1]:
        return "runs under torch.inference_mode(): torch records no autograd history for it"
    if autocast != base[2]:
        on = ", ".join(f"{dtype} on {device}" for device, dtype in autocast) or "off"
        return f"runs under torch.autocast ({on}): torch computes it and keeps its tensors in another dtype"
    if grad != base[0]:
        return (f"runs with grad mode {'on' if grad else 'off'} (torch.no_grad(), set_grad_enabled(), or "
                f"@torch.no_grad() on forward): torch {'computes' if grad else 'keeps no tensor and computes no'} "
                f"gradient through it")
    return ("runs under saved-tensor hooks (torch.autograd.graph.saved_tensors_hooks, save_on_cpu): what "
            "autograd keeps for it is not what torch keeps by default")


class Regions:
    """Which modelled mode a node was made in (`REGION`), each checkpoint call told apart by its hooks."""

    def __init__(self):
        self.calls: list = []  # the hooks of each checkpoint call, held so that no id is reused

    def of(self, modes: tuple, base: tuple):
        grad, inference, autocast, hooks = modes
        if autocast != base[2]:  # modelled alone, entered from no autocast, with torch's weight-cast cache
            plain = grad == base[0] and inference == base[1] and hooks is base[3] and not _in_checkpoint()
            return ("autocast", autocast) if plain and not base[2] and _autocast_cache() else None
        if _in_checkpoint() or (hooks is not base[3] and "_checkpoint_hook" in getattr(hooks, "__qualname__", "")):
            if not grad or inference or hooks is None or "_checkpoint_hook" not in getattr(hooks, "__qualname__", ""):
                return None  # reentrant, or grad mode changed inside
            if not _default_checkpoint():
                return None
            for k, held in enumerate(self.calls):
                if held is hooks:
                    return ("checkpoint", k)
            self.calls.append(hooks)
            return ("checkpoint", len(self.calls) - 1)
        if hooks is not base[3]:
            return None
        if inference and not base[1]:
            return ("inference",)
        if not grad and base[0]:
            return ("no_grad",)
        return None


def _autocast_cache() -> bool:
    """Does autocast keep one cast copy of each parameter per region (``cache_enabled``, its default)?"""
    import torch

    return torch.is_autocast_cache_enabled()


def _default_checkpoint() -> bool:
    """Is the ``torch.utils.checkpoint.checkpoint`` call being traced non-reentrant, with torch's
    defaults for what it keeps and recomputes (no ``context_fn``, early stop on), and not inside another?"""
    from torch.utils import checkpoint as ck

    frame, calls = sys._getframe(2), []
    while frame is not None:
        code = frame.f_code
        if code.co_name == "checkpoint" and code.co_filename.endswith(os.path.join("torch", "utils", "checkpoint.py")):
            calls.append(frame.f_locals)
        frame = frame.f_back
    if len(calls) != 1:  # none seen, or one call inside another (what runs again is not one call's)
        return False
    local, early = calls[0], ck._enable_checkpoint_early_stop
    return (local.get("use_reentrant") is False and local.get("context_fn") is ck.noop_context_fn
            and (local.get("early_stop", True) if early is None else early) is True)


def _in_checkpoint() -> bool:
    """Is the trace inside ``torch.utils.checkpoint`` (reentrant: its forward runs with grad mode off)?"""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(os.path.join("torch", "utils", "checkpoint.py")):
            return True
        frame = frame.f_back
    return False
