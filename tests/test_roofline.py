"""The roofline model and the time-share analysis, on synthetic timings (no clocks involved), and
each layer's time beside its bound on the GPU's spec sheet.

Expected values are hand arithmetic written out here: layer formulas, byte counts, shares.
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from alexcost import Conv2d, Flatten, Linear, Network, ReLU, hardware, preset  # noqa: E402
from alexcost.hardware.roofline import Bound, Peaks, analyse, bytes_moved  # noqa: E402
from alexcost.render.roofline import overall_verdict, render  # noqa: E402
from alexcost.torch_run.peaks import measure_peaks  # noqa: E402
from alexcost.torch_run.timing import BatchFailure, Stats, TimingRun, dumps  # noqa: E402

# The seed's AlexNet by hand (DESIGN.md section 7): conv weights with biases, FC without.
CONV_MACS = (11 * 11 * 3 * 96 * 55 * 55 + 5 * 5 * 96 * 256 * 27 * 27 + 3 * 3 * 256 * 384 * 13 * 13
             + 3 * 3 * 384 * 384 * 13 * 13 + 3 * 3 * 384 * 256 * 13 * 13)
FC_MACS = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
CONV_PARAMS = ((11 * 11 * 3 + 1) * 96 + (5 * 5 * 96 + 1) * 256 + (3 * 3 * 256 + 1) * 384
               + (3 * 3 * 384 + 1) * 384 + (3 * 3 * 384 + 1) * 256)
FC_PARAMS = FC_MACS


def stats(ms):
    return Stats.of([ms])


def test_peaks_ridge_and_dict():
    p = Peaks(2e12, 1e12, "a", "b")
    assert p.ridge == 2.0
    assert p.to_dict() == {"flops_per_s": 2e12, "bytes_per_s": 1e12, "ridge_flop_per_byte": 2.0,
                           "flops_source": "a", "bytes_source": "b"}


def test_linear_bound_by_hand():
    # Linear 8 -> 4 with bias, batch 2, float32.
    row = Network((8,), [Linear(out_features=4)]).cost(2, "float32").layers[0]
    flops = 2 * (2 * 8 * 4) + 2 * 4          # 2*MACs + bias adds
    nbytes = (2 * 8 + (8 * 4 + 4) + 2 * 4) * 4  # input + weights + output
    assert row.input_bytes == 2 * 8 * 4 and bytes_moved(row) == nbytes
    slow_memory = Bound.of(row.flops, bytes_moved(row), Peaks(1e3, 1e3, "", ""))
    assert slow_memory.compute_ms == pytest.approx(flops) and slow_memory.memory_ms == pytest.approx(nbytes)
    assert slow_memory.kind == "memory" and slow_memory.ms == pytest.approx(nbytes)
    assert slow_memory.intensity == pytest.approx(flops / nbytes)
    assert slow_memory.ratio(2 * nbytes) == pytest.approx(2.0)
    fast_memory = Bound.of(row.flops, bytes_moved(row), Peaks(1e3, 1e4, "", ""))
    assert fast_memory.kind == "compute" and fast_memory.ms == pytest.approx(flops)


def test_views_move_nothing():
    cost = Network((2, 4, 4), [Flatten(), ReLU()]).cost(3, "bfloat16")
    flat, relu = cost.layers
    assert bytes_moved(flat) == 0
    assert Bound.of(flat.flops, 0, Peaks(1, 1, "", "")).kind is None
    assert bytes_moved(relu) == (3 * 32 + 3 * 32) * 2  # in + out, 2 bytes each


def seed_analysis(batch, conv_ms, fc_ms, other_ms=0.001, peaks=Peaks(1e13, 1e12, "given", "given")):
    """The seed at ``batch`` with every conv layer taking conv_ms, every fc layer fc_ms."""
    cost = preset("seed").cost(batch, "float32")
    ms = {"conv": conv_ms, "fc": fc_ms, "other": other_ms}
    return analyse(cost, [stats(ms[r.group]) for r in cost.layers], stats(5 * conv_ms + 3 * fc_ms), peaks)


def test_shares_by_hand():
    a = seed_analysis(1, conv_ms=2.0, fc_ms=4.0)
    total = 5 * 2.0 + 3 * 4.0 + 15 * 0.001  # 5 conv, 3 fc, 15 other layers
    conv, fc, other = (a.groups[g] for g in ("conv", "fc", "other"))
    assert conv.time_share == pytest.approx(100 * 10.0 / total)
    assert fc.time_share == pytest.approx(100 * 12.0 / total)
    assert other.time_share == pytest.approx(100 * 0.015 / total)
    assert conv.mac_share == pytest.approx(100 * CONV_MACS / (CONV_MACS + FC_MACS))
    assert conv.param_share == pytest.approx(100 * CONV_PARAMS / (CONV_PARAMS + FC_PARAMS))
    assert sum(r.time_share for r in a.layers) == pytest.approx(100)
    assert sum(r.mac_share for r in a.layers) == pytest.approx(100)
    assert a.layers_ms == pytest.approx(total)
    fc6 = next(r for r in a.layers if r.name == "fc6")
    assert fc6.bound.bytes == (9216 + 9216 * 4096 + 4096) * 4
    assert fc6.bound.flops == 2 * 9216 * 4096


def test_fc_memory_bound_at_batch_1_conv_compute_bound():
    # Ridge 10 FLOP/B: FC at batch 1 does 2 FLOPs per 4-byte weight (0.5 FLOP/B).
    a = seed_analysis(1, 1.0, 1.0)
    assert a.groups["fc"].bound.kind == "memory" and a.groups["conv"].bound.kind == "compute"
    fc_bytes = sum((i + i * o + o) * 4 for i, o in ((9216, 4096), (4096, 4096), (4096, 1000)))
    assert a.groups["fc"].bound.bytes == fc_bytes
    assert a.groups["fc"].bound.intensity == pytest.approx(2 * FC_MACS / fc_bytes)
    # At batch 256 each weight serves 256 samples: past the ridge of 10 FLOP/B.
    assert seed_analysis(256, 1.0, 1.0).groups["fc"].bound.kind == "compute"


def test_overall_verdict_by_hand():
    small, large = seed_analysis(1, 1.0, 3.0), seed_analysis(128, 10.0, 1.0)
    lines = overall_verdict([small, large])
    mac = 100 * CONV_MACS / (CONV_MACS + FC_MACS)
    par = 100 * CONV_PARAMS / (CONV_PARAMS + FC_PARAMS)
    t1 = 100 * 5.0 / (5.0 + 9.0 + 0.015)
    t128 = 100 * 50.0 / (50.0 + 3.0 + 0.015)
    assert lines[0] == f"conv: {mac:.1f}% of MACs, {par:.1f}% of params, {t1:.0f}% of time at batch 1; {t128:.0f}% at batch 128"
    assert lines[0].startswith("conv: 94.8% of MACs, 6.0% of params")
    assert lines[1].startswith(f"fc: {100 - mac:.1f}% of MACs, {100 - par:.1f}% of params")
    assert f"{FC_PARAMS * 4 / 2**20:.2f} MiB" in lines[2] and "memory-bound" in lines[2]
    assert overall_verdict([large, small]) == lines  # smallest batch first, whatever the sweep's order
    assert overall_verdict([]) == ["no batch was measured"]


def test_analyse_needs_one_timing_per_layer():
    cost = preset("seed").cost()
    with pytest.raises(ValueError):
        analyse(cost, [stats(1.0)], stats(1.0), Peaks(1, 1, "", ""))


def test_measure_peaks_given_values_skip_measuring():
    def sample(fn, warmup, repeats):
        raise AssertionError("nothing should be measured")
    p = measure_peaks("cpu", "float32", None, sample, flops_per_s=3e11, bytes_per_s=4e10)
    assert (p.flops_per_s, p.bytes_per_s, p.flops_source, p.bytes_source) == (3e11, 4e10, "given", "given")


@pytest.mark.slow
def test_measure_peaks_arithmetic_with_a_fixed_clock():
    torch = pytest.importorskip("torch")
    calls = []

    def sample(fn, warmup, repeats):  # every call "takes" 2 ms: the matmul grows to its largest size
        fn()
        calls.append(repeats)
        return [2.0] * repeats
    p = measure_peaks("cpu", "float32", torch.float32, sample)
    matmul, conv = 2 * 2048**3 / 2e-3, 2 * 256 * 256 * 9 * 32 * 32 / 2e-3
    assert p.flops_per_s == pytest.approx(max(matmul, conv))
    assert p.bytes_per_s == pytest.approx(2 * 256 * 2**20 / 2e-3)
    assert f"2048x2048 matrix product {matmul / 1e12:.3f} TFLOP/s" in p.flops_source
    assert f"3x3 convolution 256->256 on 1x256x32x32 {conv / 1e12:.3f} TFLOP/s" in p.flops_source
    assert "256 MiB" in p.bytes_source


def test_measure_peaks_convolution_can_win():
    torch = pytest.importorskip("torch")

    def sample(fn, warmup, repeats):  # matrix products (2-D results) "take" 1 s, the rest 1 ms
        return [1000.0 if fn().dim() == 2 else 1.0] * repeats
    p = measure_peaks("cpu", "float32", torch.float32, sample)
    assert p.flops_per_s == pytest.approx(2 * 256 * 256 * 9 * 32 * 32 / 1e-3)
    assert "512x512 matrix product" in p.flops_source  # 1 s is past the 25 ms target: no larger size tried


def synthetic_run():
    net = Network((3, 8, 8), [Conv2d(name="c", out_channels=2, kernel_size=3), ReLU(name="r"), Flatten(name="f"),
                              Linear(name="l", out_features=3)], name="toy")
    peaks = Peaks(1e9, 1e9, "given", "given")
    ok = analyse(net.cost(2, "float32"), [stats(1.0), stats(0.5), stats(0.0), stats(0.5)], stats(2.0), peaks)
    device = {"type": "cpu", "name": "test cpu", "threads": 1, "torch": "x"}
    settings = {"warmup": 0, "repeats": 1, "timer": "perf_counter", "mode": "m", "inputs": "i"}
    return TimingRun("toy", (3, 8, 8), "float32", "math", device, settings, peaks,
                     (ok, BatchFailure(64, "out of memory", "CUDA out of memory")), complete=False)


def test_record_is_json_and_renders_in_both_styles():
    record = json.loads(dumps(synthetic_run().to_dict()))
    assert [b["batch"] for b in record["batches"]] == [2, 64]
    assert record["batches"][1] == {"batch": 64, "error": "out of memory", "detail": "CUDA out of memory"}
    layer = record["batches"][0]["layers"][0]
    assert layer["macs"] == 2 * 2 * 6 * 6 * 3 * 3 * 3 and layer["params"] == 2 * 27 + 2
    text = render(record)
    for name in ("c", "r", "f", "l"):
        assert any(line.split()[1:2] == [name] for line in text.splitlines())
    assert "batch 64: out of memory (CUDA out of memory)" in text and "INCOMPLETE" in text
    assert text.rstrip().splitlines()[-1] == f"verdict: {record['verdict'][-1]}"
    md = render(record, "pipe")
    tables = [line for line in md.splitlines() if line.startswith("|")]
    assert tables and all(line.count("|") in (15, 11, 9) for line in tables)  # 14, 10 and 8 columns
    short = render(record, "pipe", layers=False)
    assert "| c " not in short and "where the time goes" in short


def test_render_flags_layers_below_their_bound_and_at_the_launch_floor():
    record = json.loads(dumps(synthetic_run().to_dict()))
    assert "faster than the roofline bound" not in render(record) and "launch floor" not in render(record)
    # c: 2*MACs + bias adds = 2 * (2*2*6*6*27) + 2*2*36 = 7,920 FLOPs at 1e9 FLOP/s is 0.00792 ms; measured 0.001
    c = record["batches"][0]["layers"][0]
    assert c["flops"] == 7920 and c["bound_ms"] == pytest.approx(0.00792)
    c["median_ms"], c["bound_ratio"] = 0.001, 0.001 / 0.00792
    record["settings"]["launch_floor"] = {"op": "an add", "median_ms": 0.3, "calls": 7}
    text = render(record)
    assert "\nlaunch floor: 0.3000 ms per call (an add; 7 calls per sample)\n" in text
    assert "note: faster than the roofline bound (x bound < 1): c. The peaks are too low for them" in text
    # under 2 x 0.3 ms: c (0.001), r (0.5), f (0.0), l (0.5)
    assert "note: at the launch floor (under 2x its 0.3000 ms): c, r, f, l;" in text


def test_dumps_rounds_to_six_digits_and_keeps_ints():
    text = dumps({"a": [{"x": 1 / 3, "n": 12345678901}], "b": {"c": [1.0, 2.5e-9]}})
    assert json.loads(text) == {"a": [{"x": 0.333333, "n": 12345678901}], "b": {"c": [1.0, 2.5e-9]}}
    assert math.isclose(json.loads(dumps({"v": 123456789.0}))["v"], 123457000.0)


# == each layer's time beside its spec-sheet bound =================================================
# Each layer's time beside its roofline bound on the GPU's spec sheet (issue 11, item 5).


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


@pytest.mark.slow
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


@pytest.mark.slow
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
