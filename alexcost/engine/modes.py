"""What a module's forward does to a training step beyond its layers: `StepModes` (``Network.modes``).

A network read from a torch module (``from_module``) carries what torch's flags and modes
change in a training step: parameters with ``requires_grad=False``, layers run with grad
mode off (``torch.no_grad()``, ``torch.set_grad_enabled(False)``, ``torch.inference_mode()``),
layers inside non-reentrant ``torch.utils.checkpoint`` calls, layers run under ``torch.autocast``,
and why no training step can be counted at all. A network written by hand has none of these (`NO_MODES`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from ..layers import arguments as check


@dataclass(frozen=True)
class StepModes:
    """What a training step runs differently from torch's defaults, by layer name.

    * ``frozen``: parameters with ``requires_grad=False``, as ``training_cost(frozen=...)`` takes
      them (a layer's name: its weight and bias; ``"layer.weight"`` or ``"layer.bias"``);
      a training step freezes them whatever else it is told.
    * ``no_grad``: layers run with grad mode off: their outputs require no gradient, they keep
      nothing, and their parameters get no gradient from them.
    * ``inference``: of those, the layers run under ``torch.inference_mode()``: their outputs
      are inference tensors, which torch refuses to keep for a backward pass or to modify in
      place outside inference mode.
    * ``checkpoints``: the layers of each non-reentrant ``torch.utils.checkpoint`` call, in run
      order: they keep nothing, the call keeps its inputs, and the backward pass runs their
      forward again (up to the last tensor they keep).
    * ``autocast``: ``(layer, device, dtype)`` for each layer run under ``torch.autocast`` on
      ``device`` ("cpu" or "cuda") at ``dtype`` ("bfloat16", "float16"): on a step on that device
      its kind decides the dtype it runs in (`Layer.autocast`); a step on another device runs it as is.
    * ``refused``: why a training step of the network cannot be counted ("": it can).
    """

    frozen: tuple[str, ...] = ()
    no_grad: tuple[str, ...] = ()
    inference: tuple[str, ...] = ()
    checkpoints: tuple[tuple[str, ...], ...] = ()
    refused: str = ""
    autocast: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self):
        for name in ("frozen", "no_grad", "inference"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise SpecError(f"modes.{name} is a list of layer names, got {check.shown(value)}")
            object.__setattr__(self, name, tuple(value))
        if isinstance(self.checkpoints, str) or not all(
                not isinstance(c, str) and all(isinstance(v, str) for v in c) for c in self.checkpoints):
            raise SpecError(f"modes.checkpoints is a list of lists of layer names, got {check.shown(self.checkpoints)}")
        object.__setattr__(self, "checkpoints", tuple(tuple(c) for c in self.checkpoints))
        if isinstance(self.autocast, str) or not all(
                not isinstance(a, str) and len(a) == 3 and all(isinstance(v, str) for v in a) for a in self.autocast):
            raise SpecError(f"modes.autocast is a list of (layer, device, dtype), got {check.shown(self.autocast)}")
        object.__setattr__(self, "autocast", tuple(tuple(a) for a in self.autocast))
        if not isinstance(self.refused, str):
            raise SpecError(f"modes.refused is a reason (text), got {check.shown(self.refused)}")
        if not set(self.inference) <= set(self.no_grad):
            raise SpecError("modes.inference names layers that modes.no_grad does not (inference mode is grad mode off)")

    def check(self, names) -> None:
        """Refuse a layer name that ``names`` (the network's layers) does not hold."""
        known = set(names)
        listed = [*self.no_grad, *(n for c in self.checkpoints for n in c), *(a[0] for a in self.autocast),
                  *(f.rpartition(".")[0] if f.rpartition(".")[2] in ("weight", "bias") and f not in known else f
                    for f in self.frozen)]
        for name in listed:
            if name not in known:
                raise SpecError(f"modes names {name!r}, which is not a layer of the network")

    def __bool__(self) -> bool:
        return bool(self.frozen or self.no_grad or self.checkpoints or self.refused or self.autocast)


NO_MODES = StepModes()
