"""The per-layer records of a training step: what each layer keeps, and what its part costs."""

from __future__ import annotations

from typing import NamedTuple

from ..layers import Grads


class SavedTensor(NamedTuple):
    """One tensor a layer keeps, resolved to its storage: ``bytes`` is the whole storage's size;
    ``storage`` names it (``("input",)``, ``(layer, output index or None)``, or ``("new", layer,
    item)`` for a tensor of the layer's own); ``kept_by`` names the first layer that keeps the
    same storage (None: this layer)."""

    what: str
    bytes: int
    storage: tuple
    kept_by: str | None = None
    caveat: str = ""


class LayerTraining(NamedTuple):
    """One layer's part of a training step (counts for the whole batch).

    ``grads`` says which gradients its backward pass computes (None: it runs none).
    ``saved_bytes`` counts the storages this layer is the first to keep; ``saved`` lists
    everything it keeps, shared or not.
    """

    index: int
    name: str
    type: str
    group: str
    forward_macs: int
    grad_input_macs: int
    grad_weight_macs: int
    torch_backward_flops: int
    backward_other_ops: int
    train_other_ops: int
    saved_bytes: int
    saved: tuple
    params: int
    trainable_params: int
    grad_tensors: int
    grads: Grads | None
    recompute_macs: int = 0
    """The forward MACs the backward pass runs again (a layer inside ``torch.utils.checkpoint``)."""

    @property
    def backward_macs(self) -> int:
        """The gradients' MACs, and the forward MACs run again for them (checkpointing)."""
        return self.grad_input_macs + self.grad_weight_macs + self.recompute_macs

    @property
    def runs_backward(self) -> bool:
        return self.grads is not None

    @property
    def train_flops(self) -> int:
        """2 x (forward + backward MACs): what FlopCounterMode would count without its grouped-conv slip."""
        return 2 * (self.forward_macs + self.backward_macs)
