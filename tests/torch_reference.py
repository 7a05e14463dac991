"""What torch itself gives for a module or a network, for the tests to compare alexcost with."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from alexcost.torch_run.verify_training import measure_training, reconcile_training, render
from alexcost.training import training_cost


def torch_reads(module, x):
    """torch on ``module(x)``: the output's shape, FlopCounterMode's FLOPs, parameters and buffers."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(x)
    params = sum(p.numel() for p in module.parameters()) if isinstance(module, nn.Module) else 0
    buffers = sum(b.numel() for b in module.buffers()) if isinstance(module, nn.Module) else 0
    return tuple(out.shape), counter.get_total_flops(), params, buffers


def check_training(network, batch=2, frozen=()):
    """alexcost's training step against a real one in torch: the saved bytes per layer, the backward
    FLOPs torch counts, the gradients' and optimizer state's bytes."""
    static = training_cost(network, batch, device="cpu", frozen=frozen)
    measured = measure_training(network, device="cpu", batch=batch, frozen=frozen)
    rec = reconcile_training(static, measured)
    assert rec.ok, render(rec)
    assert [r.saved_bytes for r in static.layers] == list(measured.saved_bytes)
    assert static.saved_bytes == measured.saved_total
    return static
