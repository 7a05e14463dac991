"""Published GPU timings: the file the time model is fitted on and checked against, each row read
as `alexcost predict`'s options.

The file is ``benchmarks/data/gpu-times/published.csv`` (its columns are explained beside it); set
``ALEXCOST_GPU_TIMES`` to read another file of the same columns. Its networks are alexcost presets,
``NAME@H`` (the preset on a 3xHxH input) and ``spec:NAME`` (the spec file ``benchmarks/data/NAME.json``);
its GPU keys are the catalog's, ``2xKEY`` meaning two of them (the paper's model split).
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from alexcost.prediction import named_network  # noqa: E402

ENV = "ALEXCOST_GPU_TIMES"
DATA = os.path.join(HERE, "data", "gpu-times", "published.csv")
PHASES = {"forward": "forward", "inference_throughput": "forward", "train_step": "train_step",
          "train_throughput": "train_iteration"}
"""The file's phases -> `alexcost predict --phase`."""


def data_path() -> str:
    """``$ALEXCOST_GPU_TIMES``, else the published timings kept beside the benchmarks."""
    return os.environ.get(ENV) or DATA


class Row(NamedTuple):
    """One published timing, as `alexcost predict` is asked about it."""

    network: str
    gpu: str
    gpus: int
    batch: int
    dtype: str
    phase: str
    measured_ms: float
    framework: str
    source: str
    published_phase: str

    @property
    def source_key(self) -> str:
        """The source's repository or publication, for leave-one-source-out fits."""
        text = self.source.split(" (")[0]
        return text.split("/blob/")[0].split("/tree/")[0]

    def stored(self) -> list:
        """The row as the shipped coefficients record it: network, GPU, GPUs, batch, dtype, phase, measured ms."""
        return [self.network, self.gpu, self.gpus, self.batch, self.dtype, self.phase, self.measured_ms]

    def arguments(self) -> list[str]:
        """This row as ``alexcost predict`` options."""
        name, _, height = self.network.partition("@")
        if name.startswith("spec:"):
            net = ["--spec", spec_path(name[5:])]
        else:
            net = ["--model", name] + (["--input-shape", f"3,{height},{height}"] if height else [])
        return net + ["--gpu", self.gpu, "--gpus", str(self.gpus), "--batch", str(self.batch), "--dtype", self.dtype,
                      "--phase", self.phase]


def spec_path(name: str) -> str:
    return os.path.join(HERE, "data", f"{name}.json")


def specs(table: list[Row]) -> dict:
    """The spec files the rows' ``spec:NAME`` networks name, as dicts by NAME."""
    import json

    names = {r.network.partition("@")[0][5:] for r in table if r.network.startswith("spec:")}
    out = {}
    for name in sorted(names):
        with open(spec_path(name), encoding="utf-8") as f:
            out[name] = json.load(f)
    return out


def network(name: str, spec_dicts: dict | None = None):
    """A row's network: a preset, ``NAME@H`` or ``spec:NAME`` (benchmarks/data/NAME.json)."""
    if spec_dicts is None and name.startswith("spec:"):
        import json

        with open(spec_path(name.partition("@")[0][5:]), encoding="utf-8") as f:
            spec_dicts = {name.partition("@")[0][5:]: json.load(f)}
    return named_network(name, spec_dicts)


def rows(path: str | None = None) -> list[Row]:
    out = []
    with open(path or data_path(), newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            gpu, gpus = r["gpu"], 1
            if "x" in gpu.split("-")[0] and gpu[0].isdigit():
                count, _, gpu = gpu.partition("x")
                gpus = int(count)
            out.append(Row(r["network"], gpu, gpus, int(r["batch"]), r["precision"], PHASES[r["phase"]],
                           float(r["measured_ms_per_batch"]), r["framework"], r["source"], r["phase"]))
    return out


def sha256(path: str | None = None) -> str:
    with open(path or data_path(), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def plans(table: list[Row]):
    """Each row's `alexcost.hardware.model.Plan` (the kernels the time model times), in order."""
    from alexcost.prediction import plan_for

    nets: dict = {}
    dicts = specs(table)
    out = []
    for r in table:
        net = nets.get(r.network) or nets.setdefault(r.network, network(r.network, dicts))
        out.append(plan_for(net, r.gpu, batch=r.batch, dtype=r.dtype, phase=r.phase, gpus=r.gpus))
    return out
