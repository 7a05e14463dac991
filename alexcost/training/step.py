"""Training: what one step of SGD costs, derived without running it (no torch).

A step is a forward pass in training mode, the backward pass from the network's output
(the loss is outside the network: its own work and memory are not counted), and the
optimizer's update. Every count is an exact integer for the whole batch.

Conventions (each kind's rules live in its class, see `alexcost.layers`):

* Gradients flow only where torch computes them. The network input needs none; a tensor
  computed only from frozen parameters (``frozen=``) needs none; a frozen weight or bias
  gets no gradient. A layer whose output never reaches the network's output runs no
  backward pass, and what it kept is freed when the forward pass ends.
* ``backward_macs``: the multiply-accumulates of the gradient with respect to a layer's
  input (``grad_input_macs``) plus those with respect to its weight (``grad_weight_macs``);
  each equals the forward MACs for Conv2d and Linear. ``torch_backward_flops`` is what
  ``torch.utils.flop_counter.FlopCounterMode`` counts: 2 per backward MAC, except that
  torch 2.14 counts a grouped convolution's weight gradient ``groups`` times (a counting
  bug; the work is not done). ``train_flops`` = 2 x (forward + backward MACs).
* ``backward_other_ops``: elementwise work of the backward pass (pooling, LRN,
  activations, dropout, normalisation, bias gradients, broadcast sums), per the kinds'
  documented rules, plus one add per element where a tensor read by several layers sums
  their gradients. FlopCounterMode counts none of it.
* ``saved_bytes``: the bytes of the distinct storages autograd keeps for the backward pass
  (what ``torch.autograd.graph.saved_tensors_hooks`` sees, each storage once), parameters
  and buffers excluded. Views and in-place layers share their input's storage; a storage
  kept by several layers counts for the first of them. The rules differ by backend
  (``device``): dropout keeps a bool mask on CUDA and a mask at the dtype on the CPU;
  normalisation statistics are float32 on CUDA for 16-bit dtypes.
* Model state: ``weight_bytes`` (every parameter), ``grad_bytes`` (every parameter that
  receives a gradient), ``optimizer_bytes`` (what torch's optimizer state holds after a
  step: none for SGD, one momentum buffer per parameter for SGD with momentum, two moments
  per parameter plus one float32 step counter per parameter tensor for Adam).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..engine import rules
from ..engine.cost import NetworkCost, dtype_bytes
from ..errors import SpecError
from ..layers import arguments as check
from .autocast import casts_on
from .layout import layout
from .memory import MEMORY_LEFT_OUT, StepMemory, step_memory
from .records import LayerTraining, SavedTensor
from .schedule import DEFAULT_EPOCHS, DEFAULT_IMAGES, Schedule
from .walk import NOT_FROZEN, Options, Walked, walk

DEVICES = ("cuda", "cpu")
"""The torch backends whose saved-tensor rules alexcost knows; ``cuda`` is the default (training runs on GPUs)."""

OPTIMIZERS = {
    "sgd": "SGD without momentum: no state",
    "momentum": "SGD with momentum (the paper's: 0.9, weight decay 0.0005): one buffer per parameter",
    "adam": "Adam: two moments per parameter and a float32 step counter per parameter tensor",
}
"""The optimizers whose state alexcost sizes, as torch.optim keeps it."""

__all__ = ["DEVICES", "MEMORY_LEFT_OUT", "OPTIMIZERS", "LayerTraining", "SavedTensor", "StepMemory", "TrainingCost",
           "training_cost"]


def _total(attr: str) -> property:
    """The sum of a per-layer count over every layer."""
    return property(lambda self: sum(getattr(r, attr) for r in self.layers), doc=f"Total {attr} of the step.")


@dataclass(frozen=True)
class TrainingCost:
    """A training step of ``batch`` samples: the totals, the model state, and (made on first use,
    by the same walk, asked for detail) every layer's part, the memory model and its notes.

    ``frozen`` lists what gets no gradient, as `training_cost` was told it: a layer's name
    (its weight and bias), or ``"layer.weight"`` / ``"layer.bias"`` (one of them)."""

    model: str
    input_shape: tuple[int, ...]
    batch: int
    dtype: str
    device: str
    optimizer: str
    frozen: tuple[str, ...]
    forward_macs: int
    backward_macs: int
    saved_bytes: int
    params: int
    trainable_params: int
    weight_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    buffer_bytes: int
    network: object = field(default=None, repr=False, compare=False)

    grad_input_macs = _total("grad_input_macs")
    grad_weight_macs = _total("grad_weight_macs")
    torch_backward_flops = _total("torch_backward_flops")
    backward_other_ops = _total("backward_other_ops")
    train_other_ops = _total("train_other_ops")

    @cached_property
    def _key(self) -> tuple:
        """What the step's records depend on beyond the network: its options and frozen parameters."""
        return (_options(self.batch, self.dtype, self.device),
                tuple(sorted(frozen_parameters(self.network, self.frozen).items())))

    @cached_property
    def _detail(self) -> Walked:
        options, cold = self._key
        return _kept(self.network, ("training detail", *self._key),
                     lambda: walk(self.network, options, dict(cold), detail=True))

    @property
    def layers(self) -> tuple[LayerTraining, ...]:
        return self._detail.layers

    @cached_property
    def memory(self) -> StepMemory:
        if casts_on(self.network, self.device):
            raise SpecError(f"{self.network.name!r} runs layers under torch.autocast on {self.device}: the memory "
                            f"model sizes every activation at the step's dtype, so alexcost does not model its peak")
        return _kept(self.network, ("training memory", *self._key, self.optimizer_bytes),
                     lambda: step_memory(self.network, layout(self.network, self.batch), self._detail,
                                         dtype_bytes(self.dtype), self.optimizer_bytes))

    @property
    def notes(self) -> tuple[str, ...]:
        return self._detail.notes

    @property
    def train_flops(self) -> int:
        """2 x (forward + backward MACs) for the batch."""
        return 2 * (self.forward_macs + self.backward_macs)

    @cached_property
    def forward(self) -> NetworkCost:
        """The forward pass's records (`Network.cost`) at the same batch and dtype."""
        return self.network.cost(self.batch, self.dtype)

    def __getitem__(self, name: str) -> LayerTraining:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def schedule(self, images: int = None, epochs: int = None) -> "Schedule":
        """The whole training run: ``images`` per epoch (AlexNet's 1.2M by default) for ``epochs``."""
        return Schedule.of(self, DEFAULT_IMAGES if images is None else images,
                           DEFAULT_EPOCHS if epochs is None else epochs)

    def __str__(self) -> str:
        return (f"{self.model}: a training step of {self.batch} at {self.dtype} on {self.device}, {self.optimizer}: "
                f"{self.forward_macs:,} forward + {self.backward_macs:,} backward MACs, "
                f"{self.saved_bytes:,} bytes kept for the backward pass")


def _kept(network, key: tuple, make):
    """``make()``, kept on the network under ``key`` as its training totals are (see `Network.derived`):
    the network is immutable, so only a change of the rules makes it stale."""
    derived = network.derived()
    found = derived.get(key)
    if found is None:
        found = derived[key] = make()
    return found


def _options(batch: int, dtype: str, device: str) -> Options:
    return Options(batch, dtype_bytes(dtype), dtype, device)


def frozen_parameters(network, frozen) -> dict[int, tuple[bool, bool]]:
    """``frozen`` as layer index -> (weight frozen, bias frozen). Each entry names a layer (its
    weight and bias) or one parameter of it, ``"layer.weight"`` or ``"layer.bias"``; a layer
    name, or a parameter it does not have, is refused."""
    index = {name: i for i, name in enumerate(network.names)}
    out: dict = {}
    for entry in (frozen,) if isinstance(frozen, str) else frozen:
        if not isinstance(entry, str):
            raise SpecError(f"frozen lists {check.shown(entry)}; name a layer, or 'layer.weight' or 'layer.bias'")
        name, dot, which = entry.partition(".")
        i = index.get(name)
        if i is None:
            raise SpecError(f"frozen names {entry!r}, which is not a layer of {network.name!r}")
        if dot and which not in ("weight", "bias"):
            raise SpecError(f"frozen names {entry!r}: a layer's parameters are 'weight' and 'bias'")
        layer, x = network.layers[i], network.input_shapes[i]
        counts = rules.counts(layer, network.layer_rules()[i], x)
        weight, bias = counts.weight_params > 0, counts.bias_params > 0
        if not dot and not (weight or bias):
            raise SpecError(f"frozen names {entry!r} ({type(layer).__name__}), which has no parameters to freeze")
        if dot and not (weight if which == "weight" else bias):
            raise SpecError(f"frozen names {entry!r}, but {name!r} ({type(layer).__name__}) has no {which}")
        cold = out.get(i, (False, False))
        out[i] = (cold[0] or (weight and which != "bias"), cold[1] or (bias and which != "weight"))
    return out


def _frozen_names(network, cold: dict) -> tuple[str, ...]:
    """What is frozen, in layer order: a layer's name when every parameter it has is, else its
    frozen parameter (``"layer.weight"``, ``"layer.bias"``)."""
    out = []
    for i in sorted(cold):
        counts = rules.counts(network.layers[i], network.layer_rules()[i], network.input_shapes[i])
        weight, bias = cold[i]
        whole = weight == (counts.weight_params > 0) and bias == (counts.bias_params > 0)
        name = network.names[i]
        out.append(name if whole else f"{name}.weight" if weight else f"{name}.bias")
    return tuple(out)


def _network_of(network):
    """The `Network` to step: ``network`` itself, or the one a module was read as (``from_module``'s result)."""
    from ..engine.network import Network

    if isinstance(network, Network):
        return network
    inner = getattr(network, "network", None)
    if isinstance(inner, Network):
        return inner
    raise SpecError(f"training_cost takes a Network (or a module read by from_module), got {type(network).__name__}")


def training_cost(network, batch: int = 1, dtype: str = "float32", *, device: str = "cuda",
                  optimizer: str = "momentum", frozen=()) -> TrainingCost:
    """One training step of ``network`` on ``batch`` samples at ``dtype``: backward counts,
    saved bytes, model state and the memory model, with torch's ``device`` backend rules
    (``"cuda"`` or ``"cpu"``).

    ``network`` is a `Network`, or what ``from_module`` read (its network, with the module's own
    ``requires_grad=False`` parameters, grad-mode regions and checkpointing: ``Network.modes``).
    ``frozen`` lists the parameters that get no gradient (``requires_grad=False``), beyond those
    ``network.modes`` freezes: a layer's name freezes its weight and its bias; ``"layer.weight"``
    or ``"layer.bias"`` freezes one of them (``["fc8.bias"]``: a frozen bias alone). A tensor computed only from frozen parameters
    needs no gradient, so the layers before the first trainable one compute none for their input.

    The totals are derived at once (refusing, with one `SpecError`, a step torch would fail);
    the per-layer records and the memory model on first use of ``layers`` or ``memory``, by the
    same walk."""
    network = _network_of(network)
    batch = check.integer(batch, "batch")
    if network.modes.refused:
        raise SpecError(f"{network.name!r}: {network.modes.refused}")
    if device not in DEVICES:
        check.choice(device, "device", DEVICES)
    if optimizer not in OPTIMIZERS:
        check.choice(optimizer, "optimizer", tuple(OPTIMIZERS))
    options = _options(batch, dtype, device)
    cold = frozen_parameters(network, frozen) if frozen else {}
    for i, (weight, bias) in (frozen_parameters(network, network.modes.frozen).items() if network.modes.frozen
                              else ()):
        cold[i] = (cold.get(i, NOT_FROZEN)[0] or weight, cold.get(i, NOT_FROZEN)[1] or bias)
    if batch > 1:
        network.check_batch(batch)  # the engine's int64 bound, as Network.cost checks it
    # the totals are kept on the network (immutable), as its forward sums are
    t = _kept(network, ("training", options, tuple(sorted(cold.items()))), lambda: walk(network, options, cold))
    state = {"sgd": 0, "momentum": t.grad_bytes, "adam": 2 * t.grad_bytes + 4 * t.grad_tensors}[optimizer]
    return TrainingCost(network.name, network.input_shape, batch, dtype, device, optimizer,
                        _frozen_names(network, cold), t.forward_macs, t.backward_macs, t.saved_bytes, t.params,
                        t.trainable_params, t.params * options.itemsize, t.grad_bytes, state, t.buffer_bytes,
                        network)
