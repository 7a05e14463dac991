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
