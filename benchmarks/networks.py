"""The networks the benchmarks measure: AlexNet presets, generated chains, and bare arithmetic."""

from __future__ import annotations

import json

import harness  # noqa: F401  (puts the checkout on sys.path)

from alexcost import Network, forget_rules, network_from_dict, preset

CHAIN_CYCLE = (
    {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 3, "stride": 1, "padding": 1},
    {"type": "LocalResponseNorm", "size": 3},
    {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "groups": 2},
    {"type": "Tanh"},
    {"type": "AvgPool2d", "kernel_size": 3, "stride": 1, "padding": 1},
    {"type": "Dropout", "p": 0.1},
)
"""Shape-preserving layers on an 8x16x16 input, cycled to any depth."""


def chain_spec(layers: int) -> dict:
    """A spec of exactly ``layers`` layers: the cycle above, then Flatten and Linear(10)."""
    if layers < 2:
        raise ValueError("a chain has at least 2 layers (Flatten, Linear)")
    body = [dict(CHAIN_CYCLE[i % len(CHAIN_CYCLE)]) for i in range(layers - 2)]
    return {"name": f"chain{layers}", "input_shape": [8, 16, 16],
            "layers": body + [{"type": "Flatten"}, {"type": "Linear", "out_features": 10}]}


def chain(layers: int) -> Network:
    return network_from_dict(chain_spec(layers))


def spec_cold(text: str):
    """Spec text -> totals with every rule forgotten first: a network alexcost has never seen."""
    forget_rules()
    return network_from_dict(json.loads(text)).cost().totals


def network(name: str) -> Network:
    """A preset (``seed``, ``paper``, ``torchvision``) or ``chainN``."""
    if name.startswith("chain") and name[5:].isdigit():
        return chain(int(name[5:]))
    return preset(name)


# AlexNet as the seed table counts it, as (kind, out, kernel, stride, padding) rows.
_SEED_ROWS = (("conv", 96, 11, 4, 0), ("pool", 0, 3, 2, 0), ("conv", 256, 5, 1, 2), ("pool", 0, 3, 2, 0),
              ("conv", 384, 3, 1, 1), ("conv", 384, 3, 1, 1), ("conv", 256, 3, 1, 1), ("pool", 0, 3, 2, 0),
              ("fc", 4096, 0, 0, 0), ("fc", 4096, 0, 0, 0), ("fc", 1000, 0, 0, 0))


def bare_alexnet() -> tuple[int, int]:
    """The seed AlexNet's (params, MACs) in plain arithmetic: the floor any analyser pays."""
    c, h = 3, 227
    params = macs = 0
    for kind, out, k, s, p in _SEED_ROWS:
        if kind == "conv":
            h = (h + 2 * p - k) // s + 1
            params += (k * k * c + 1) * out
            macs += k * k * c * out * h * h
            c = out
        elif kind == "pool":
            h = (h - k) // s + 1
        else:
            features = c * h * h
            params += features * out
            macs += features * out
            c, h = out, 1
    return params, macs
