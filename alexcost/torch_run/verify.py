"""Cross-checks: the static counts against a real forward pass, fvcore and torch's flop counter.

Three parts, each in a module of its own:

* `alexcost.torch_run.measure` runs the module once (torch, fvcore: imported there, lazily) and
  returns a `Measurement`, plain data: every layer's inputs, outputs, parameters, bias adds,
  torch's count for each call and fvcore's for each module.
* `alexcost.torch_run.reconcile` is pure: a `NetworkCost` and a Measurement in, a frozen
  `Reconciliation` out (one `LayerCheck` per layer, a verdict).
* `alexcost.render.verify` prints it (a table, or JSON).

`verify_network` and `verify_module` put them together; the names of all three parts can be
imported from here too.
"""

from __future__ import annotations

from typing import Callable

from .device import DEVICES, check_fits, memory_free, memory_needed, resolve_device  # noqa: F401 - importable from here too
from ..errors import SpecError
from .measure import FVCORE_DEPRECATION, FVCORE_DEPRECATION_CATEGORIES, device_label, measure, measure_graph  # noqa: F401
from .reconcile import (LayerCheck, Measurement, Reconciliation, declared_fvcore, declared_torch,  # noqa: F401
                        fvcore_expected, reconcile)
from ..render.verify import explain_forward, render, render_text, to_dict, verdict_line  # noqa: F401

DTYPES = {"float32": "float32", "float64": "float64", "bfloat16": "bfloat16", "float16": "float16"}
"""torch dtypes (by their name in torch) a module can be verified in, as `cost` names them."""


def _random_input(shape, batch: int, device: str, seed: int, dtype=None):
    """``randn`` from a seeded generator, drawn in float32 (the same numbers for every dtype), then cast."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn((batch, *shape), generator=generator, device=device)
    return x if dtype is None else x.to(dtype)


def verify_network(network, *, device: str = "auto", batch: int = 1, seed: int = 0,
                   use_fvcore: bool = True, progress: Callable[[str], None] | None = None) -> Reconciliation:
    """Build ``network`` in torch on ``device``, run one random batch, and reconcile every count."""
    from ..torch_bridge.bridge import to_module

    say = progress or (lambda message: None)
    cost = network.cost(batch=batch)
    dev = resolve_device(device)
    check_fits(cost, dev)
    say(f"building {network.name} on {dev}")
    module = to_module(network, device=dev).eval()
    x = _random_input(network.input_shape, batch, dev, seed)
    say("forward pass with torch's flop counter" + (" and fvcore" if use_fvcore else ""))
    measured = measure(module, network.names, x, use_fvcore=use_fvcore, device=dev)
    return reconcile(cost, measured)


def _where_it_runs(module) -> tuple[str, object]:
    """The device and dtype of the module's parameters and floating-point buffers, or one SpecError."""
    import torch

    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]
    devices = sorted({str(t.device) for t in tensors})
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors if t.is_floating_point()})
    what = f"module {type(module).__name__}"
    if "meta" in devices:
        raise SpecError(f"{what} is on the meta device: its parameters hold no data, so there is no forward pass "
                        f"to run; move it with .to_empty(device='cpu') and initialise it, or use "
                        f"from_module(...).cost() for the static counts")
    if len(devices) > 1:
        raise SpecError(f"{what} has parameters on several devices ({', '.join(devices)}); verify runs it on one")
    if len(dtypes) > 1:
        raise SpecError(f"{what} has parameters of several dtypes ({', '.join(dtypes)}); verify runs it in one")
    dtype = dtypes[0] if dtypes else "float32"
    if dtype not in DTYPES:
        raise SpecError(f"{what} is in {dtype}; verify runs {', '.join(DTYPES)}")
    return (devices[0] if devices else "cpu"), getattr(torch, dtype)


def verify_module(module, input_shape, *, batch: int = 1, seed: int = 0, use_fvcore: bool = True,
                  name: str | None = None) -> Reconciliation:
    """Cross-check a user's module in place, on the device and in the dtype of its parameters.

    The module is read with `from_module`, run once in eval mode under ``torch.no_grad()``
    with an input of its dtype, and left as it was: training flags restored, every hook
    removed, no buffer or attribute added. A module on the meta device (nothing to run), or
    with parameters on several devices or of several dtypes, is refused with a SpecError.
    """
    from ..torch_bridge.bridge import from_module

    _where_it_runs(module)
    imported = from_module(module, input_shape, name=name)
    return verify_imported(imported, module, batch=batch, seed=seed, use_fvcore=use_fvcore)


def verify_imported(imported, module, *, batch: int = 1, seed: int = 0,
                    use_fvcore: bool = True) -> Reconciliation:
    """`verify_module` for a module already read by `from_module` (``imported``).

    With ``imported.graph_module`` (a torch.fx graph over ``module``) the layers are observed node
    by node, function calls included; without it, by hooks on the modules at ``imported.paths``.
    """
    dev, dtype = _where_it_runs(module)
    cost = imported.cost(batch=batch, dtype=DTYPES[str(dtype).removeprefix("torch.")])
    check_fits(cost, "cuda" if dev.startswith("cuda") else "cpu")
    graph_module = getattr(imported, "graph_module", None)
    owners = [module] if graph_module is None else [module, graph_module]
    modes = [(m, m.training) for owner in owners for m in owner.modules()]
    try:
        for owner in owners:
            owner.eval()
        x = _random_input(imported.network.input_shape, batch, dev, seed, dtype)
        try:
            if graph_module is None:
                measured = measure(module, imported.paths, x, use_fvcore=use_fvcore, device=dev)
            else:
                measured = measure_graph(imported, module, x, use_fvcore=use_fvcore, device=dev)
        except (RuntimeError, NotImplementedError) as err:
            if "not implemented for" not in str(err):
                raise
            raise SpecError(f"torch cannot run module {type(module).__name__} in {dtype} on {dev}: "
                            f"{' '.join(str(err).split())[:200]}") from None
    finally:
        for m, mode in modes:
            m.training = mode
    return reconcile(cost, measured, imported.first_use, imported.folds, imported.fvcore_calls)
