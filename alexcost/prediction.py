"""How long a network takes on a GPU it was never run on: `predict` (no torch).

The static counts of the network (`Network.cost`, and `alexcost.training.training_cost` for a
training step) go through the calibrated time model of `alexcost.hardware`; see
`alexcost.hardware.timemodel` for the model and ``docs/predicting-time.md`` for how well it
does on published measurements.
"""

from __future__ import annotations

from .hardware.catalog import DTYPES
from .hardware.model import Estimate, Plan, per_gpu_batch, plan, resolve_split, timed
from .hardware.timemodel import PHASES, check_choice

STORAGE = {"float32": "float32", "tf32": "tf32", "float16": "float16", "bfloat16": "bfloat16", "amp": "float16"}
"""The element type activations are stored in for each dtype of `DTYPES` (mixed precision keeps them in FP16)."""


def predict(network, gpu: str, *, batch: int = 1, dtype: str = "float32", phase: str = "forward",
            mode: str = "eager", gpus: int = 1, split: str = "auto", optimizer: str = "momentum") -> Estimate:
    """The expected time of ``phase`` (``forward``: one inference pass of the batch; ``train_step``:
    forward and backward; ``train_iteration``: the step, the optimizer's update and the GPUs'
    communication) of ``batch`` samples of ``network`` on ``gpus`` of the catalog's ``gpu``, per layer,
    beside its roofline bound. ``batch`` is the whole step's, split over the GPUs; ``split``: ``auto``
    (the AlexNet paper's model split where the network's grouped convolutions allow it, else data
    parallelism), ``data`` or ``model``.

    >>> from alexcost import preset
    >>> step = predict(preset("resnet50"), "a100", batch=256, dtype="amp", phase="train_iteration")
    >>> step.expected_ms > step.bound_ms
    True
    """
    return timed(plan_for(network, gpu, batch=batch, dtype=dtype, phase=phase, mode=mode, gpus=gpus, split=split,
                          optimizer=optimizer))


def plan_for(network, gpu: str, *, batch: int = 1, dtype: str = "float32", phase: str = "forward",
             mode: str = "eager", gpus: int = 1, split: str = "auto", optimizer: str = "momentum") -> Plan:
    """What `predict` times (`alexcost.hardware.model.Plan`), before any coefficient."""
    check_choice(dtype, "dtype", DTYPES)
    check_choice(phase, "phase", PHASES)
    how = resolve_split(network, gpus, split)
    share = per_gpu_batch(batch, gpus) if how == "data" else batch
    storage = STORAGE[dtype]
    if phase == "forward":
        rows, trainings = network.cost(share, storage).layers, None
    else:
        from .training import training_cost

        step = training_cost(network, share, storage, optimizer=optimizer)
        rows, trainings = step.forward.layers, step.layers
    return plan(rows, trainings, model=network.name, gpu_key=gpu, batch=batch, dtype=dtype, phase=phase, mode=mode,
                gpus=gpus, split=how, optimizer=optimizer)


def named_network(name: str, specs: dict | None = None):
    """A network named as the published timings name them: a preset, ``NAME@H`` (the preset on a 3xHxH
    input) or ``spec:NAME`` (the spec ``specs[NAME]``, a spec file's dict)."""
    from .models import preset

    name, _, height = name.partition("@")
    if name.startswith("spec:"):
        from .specs.specfile import network_from_dict

        net = network_from_dict((specs or {})[name[5:]])
    else:
        net = preset(name)
    return net.with_input_shape((3, int(height), int(height))) if height else net


def train_on_gpu(network, gpu: str, *, batch: int = 128, dtype: str = "float32", optimizer: str = "momentum",
                 device: str = "cuda", frozen=(), gpus: int = 1, split: str = "auto"):
    """A training step of ``batch`` samples of ``network`` (`alexcost.training.training_cost`) and its
    whole iteration on ``gpus`` of the catalog's ``gpu`` (`alexcost.hardware.predict`): time, bound and
    whether it fits. Data parallelism costs each GPU's share of the batch apart."""
    from .hardware import predict as on_gpu
    from .training import training_cost

    step = training_cost(network, batch, dtype, device=device, optimizer=optimizer, frozen=frozen)
    per_gpu = None
    if resolve_split(network, gpus, split) == "data":
        per_gpu = training_cost(network, per_gpu_batch(batch, gpus), dtype, device=device, optimizer=optimizer,
                                frozen=frozen)
    return step, on_gpu(step, gpu, gpus, split, network, per_gpu)


MAX_BATCH = 2**40
"""Where `max_batch` stops looking: a batch this large fits no GPU of the catalog."""


def max_batch(network, gpu: str, *, dtype: str = "float32", optimizer: str = "momentum", device: str = "cuda",
              frozen=(), gpus: int = 1, split: str = "auto") -> int:
    """The largest batch whose training step fits in the memory of each of ``gpus`` of ``gpu`` (by the
    memory model, as `train_on_gpu` says it fits); 0 when not even the smallest does. A data-parallel
    batch is a multiple of ``gpus``. The step's memory grows with the batch, so the search doubles the
    batch until it does not fit, then halves the gap."""
    step = gpus if resolve_split(network, gpus, split) == "data" else 1

    def fits(k: int) -> bool:
        return train_on_gpu(network, gpu, batch=k * step, dtype=dtype, optimizer=optimizer, device=device,
                            frozen=frozen, gpus=gpus, split=split)[1].fits

    if not fits(1):
        return 0
    low, high = 1, 2
    while high * step <= MAX_BATCH and fits(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low * step

