"""Each layer's time beside its roofline bound on the GPU's spec sheet (issue 11, item 5)."""

from __future__ import annotations

import pytest

from alexcost import hardware
from alexcost.hardware.roofline import bytes_moved

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name, key", [
    ("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA A100-SXM4-80GB", "a100"),
    ("Tesla V100-SXM2-32GB", "v100"), ("Tesla P100-PCIE-16GB", "p100"), ("Tesla K40m", "k40"),
    ("NVIDIA GeForce GTX 580", "gtx580"), ("NVIDIA GeForce RTX 4090", "rtx4090"), ("Stand-in GPU (CPU)", None),
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb"), ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA GeForce RTX 3090", "rtx3090"), ("NVIDIA GeForce GTX 1080 Ti", "gtx1080ti"),
    ("NVIDIA GeForce GTX 1080", "gtx1080"), ("NVIDIA TITAN X (Pascal)", "titanx-pascal"),
    ("GeForce GTX TITAN X", "titanx-maxwell"), ("NVIDIA TITAN V", "titanv"), ("Tesla K80", "k80"),
    ("NVIDIA GeForce RTX 2080 Ti", None),
])
def test_a_device_name_finds_its_spec_sheet(name, key):
    found = hardware.match(name)
    assert (found.key if found else None) == key


def test_each_layer_gets_its_bound_on_the_spec_sheet():
    """max(FLOPs / peak FLOP/s, bytes / bandwidth) per layer, from the H200's sheet, beside the measured time:
    132 SMs of 128 FP32 cores at 1980 MHz (66.9 TFLOPS, the sheet's "67"), 4.8 TB/s."""
    from alexcost import preset
    from alexcost.torch_run.timing import time_network

    net = preset("seed")
    run = time_network(net, [1], device="cpu", warmup=0, repeats=1, gpu="h200").to_dict()
    sheet = run["settings"]["spec_sheet"]
    peak = 132 * 128 * 2 * 1980e6
    assert sheet["gpu"] == "h200" and sheet["flops_per_s"] == pytest.approx(peak) and sheet["bytes_per_s"] == 4800e9
    cost = net.cost(1)
    for row, layer in zip(cost.layers, run["batches"][0]["layers"]):
        if not row.flops and not bytes_moved(row):  # a view: nothing to do, no bound to be near
            assert layer["spec_bound_ms"] == 0 and layer["spec_bound"] is None and layer["spec_ratio"] is None
            continue
        expect = max(row.flops / peak, bytes_moved(row) / 4800e9) * 1e3
        assert layer["spec_bound_ms"] == pytest.approx(expect, rel=1e-12)
        assert layer["spec_ratio"] == pytest.approx(layer["median_ms"] / expect, rel=1e-12)
        assert layer["spec_bound"] == ("compute" if row.flops / peak >= bytes_moved(row) / 4800e9 else "memory")


def test_no_sheet_no_columns_and_half_precision_on_fp32_units():
    from alexcost import Conv2d, Network
    from alexcost.render.roofline import render
    from alexcost.torch_run.timing import time_network

    net = Network((3, 8, 8), [Conv2d(out_channels=2, kernel_size=3)])
    plain = time_network(net, [1], device="cpu", warmup=0, repeats=1).to_dict()
    assert "spec_sheet" not in plain["settings"] and "spec_bound_ms" not in plain["batches"][0]["layers"][0]
    assert "x spec" not in render(plain)
    # the GTX 580 has no half-precision units: bfloat16 is stored in half and computed in FP32, at
    # 512 cores x 1544 MHz x 2
    old = time_network(net, [1], device="cpu", dtype="bfloat16", warmup=0, repeats=1, gpu="gtx580").to_dict()
    assert old["settings"]["spec_sheet"]["flops_per_s"] == pytest.approx(512 * 1544e6 * 2)
    sheet = time_network(net, [1], device="cpu", warmup=0, repeats=1, gpu="v100").to_dict()
    assert "x spec" in render(sheet) and sheet["settings"]["spec_sheet"]["name"].startswith("Tesla V100")
