"""`alexcost time` and the timing harness, on the CPU (CUDA tests skip without a GPU).

Counts are checked against hand formulas; times only for what must hold of any clock
(order of percentiles, positivity, shares summing to 100%).
"""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from alexcost import LocalResponseNorm, Network, SpecError  # noqa: E402
from alexcost.torch_run import timing  # noqa: E402
from alexcost.torch_run.timing import Stats, Timer, dumps, percentile, sample_ms, time_network  # noqa: E402
from timing_cases import GIVEN_PEAKS, TINY, invoke, spec  # noqa: E402,F401 - spec: a fixture

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")

FAST = dict(device="cpu", warmup=1, repeats=5, peak_flops=1e11, peak_bandwidth=1e10)


def conv_macs(b):
    return b * 4 * 16 * 16 * 3 * 3 * 3


def fc_macs(b):
    return b * 4 * 8 * 8 * 10


# -- statistics --------------------------------------------------------------------------------

@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50), st.sampled_from([0, 10, 50, 90, 100]))
def test_percentile_matches_numpy(samples, q):
    assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)), rel=1e-9, abs=1e-12)


@given(st.lists(st.floats(min_value=0, max_value=1e3), min_size=1, max_size=30))
def test_stats_are_ordered(samples):
    s = Stats.of(samples)
    assert s.min_ms <= s.p10_ms <= s.median_ms <= s.p90_ms and s.repeats == len(samples)


def test_sample_ms_calls_warmup_then_repeats():
    calls = []
    out = sample_ms(lambda: calls.append(1), warmup=3, repeats=7, device="cpu")
    assert len(calls) == 10 and len(out) == 7 and all(t >= 0 for t in out)


# -- the harness on the CPU --------------------------------------------------------------------------

@pytest.mark.slow
def test_cpu_run_is_complete_and_consistent():
    seen = []
    run = time_network(TINY, [1, 3], on_batch=seen.append, **FAST)
    d = json.loads(dumps(run.to_dict()))
    assert [len(r.batches) for r in seen] == [1, 2, 2] and [r.complete for r in seen] == [False, False, True]
    assert d["complete"] and d["model"] == "tiny" and d["dtype"] == "float32" and d["input_shape"] == [3, 16, 16]
    assert d["device"]["type"] == "cpu" and d["device"]["threads"] == torch.get_num_threads()
    assert d["settings"]["timer"] == "perf_counter" and d["settings"]["repeats"] == 5
    assert d["settings"]["method"] == "loop" and d["settings"]["launch_floor"]["method"] == "loop"
    assert d["settings"]["sampling"].startswith("each sample is N back-to-back eager calls")
    assert d["peaks"]["flops_source"] == d["peaks"]["bytes_source"] == "given"
    assert [b["batch"] for b in d["batches"]] == [1, 3]
    for b in d["batches"]:
        n = b["batch"]
        rows = {r["name"]: r for r in b["layers"]}
        assert [r["name"] for r in b["layers"]] == list(TINY.names)
        assert b["network_ms"] > 0 and b["network_p10_ms"] <= b["network_ms"] <= b["network_p90_ms"]
        for r in b["layers"]:
            assert 0 <= r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] and r["repeats"] == 5
            assert r["method"] == "loop" and 1 <= r["calls"] <= timing.DEFAULTS["cpu"]["max_calls"]
        assert b["layers_sum_ms"] == pytest.approx(sum(r["median_ms"] for r in b["layers"]), rel=1e-5)
        for key in ("time_share", "mac_share", "param_share"):
            assert sum(r[key] for r in b["layers"]) == pytest.approx(100, abs=1e-3)
            assert sum(g[key] for g in b["groups"].values()) == pytest.approx(100, abs=1e-3)
        assert rows["conv"]["macs"] == conv_macs(n) and rows["fc"]["macs"] == fc_macs(n)
        assert rows["conv"]["params"] == 4 * 27 + 4 and rows["fc"]["params"] == 256 * 10 + 10
        assert rows["conv"]["mac_share"] == pytest.approx(100 * conv_macs(n) / (conv_macs(n) + fc_macs(n)), rel=1e-5)
        assert rows["conv"]["bytes_moved"] == (n * 3 * 256 + 4 * 27 + 4 + n * 4 * 256) * 4
        assert rows["flat"]["bytes_moved"] == 0 and rows["flat"]["bound"] is None
        assert rows["conv"]["flops"] == 2 * conv_macs(n) + n * 4 * 256
        assert b["groups"]["conv"]["time_ms"] == pytest.approx(rows["conv"]["median_ms"], rel=1e-5)
        assert b["verdict"].startswith(f"batch {n}: conv ")
    assert d["verdict"][0].startswith("conv: ") and "at batch 1; " in d["verdict"][0]


def test_single_method_times_one_call_per_sample():
    d = time_network(TINY, [1], method="single", **FAST).to_dict()
    assert d["settings"]["method"] == "single" and d["settings"]["launch_floor"]["calls"] == 1
    assert [r["calls"] for r in d["batches"][0]["layers"]] == [1] * len(TINY) and d["batches"][0]["network_calls"] == 1


def test_methods_are_checked():
    with pytest.raises(SpecError, match="--method graph needs CUDA"):
        Timer(TINY, device="cpu", method="graph")
    with pytest.raises(SpecError, match="unknown timing method 'fast'"):
        Timer(TINY, device="cpu", method="fast")


def test_every_layer_is_timed_on_inputs_of_its_input_shapes(monkeypatch):
    seen = []
    real = timing.random_inputs
    monkeypatch.setattr(timing, "random_inputs", lambda shapes, *a: seen.append(shapes) or real(shapes, *a))
    time_network(TINY, [2], method="single", **{**FAST, "repeats": 1})
    # by hand: conv sees 3x16x16, relu and pool 4x16x16, flatten 4x8x8, fc 256; then the network its input
    assert seen == [((3, 16, 16),), ((4, 16, 16),), ((4, 16, 16),), ((4, 8, 8),), ((256,),), ((3, 16, 16),)]


def test_threads_are_set_reported_and_restored():
    before = torch.get_num_threads()
    d = time_network(TINY, [1], threads=1, **FAST).to_dict()
    assert d["device"]["threads"] == 1 and torch.get_num_threads() == before


@pytest.mark.slow
def test_real_out_of_memory_is_recorded_and_the_sweep_goes_on(monkeypatch):
    # 2**40 samples of 3x16x16 floats is beyond any address space: torch's allocator refuses it.
    monkeypatch.setattr(timing, "available_bytes", lambda device: None)  # no estimate: really try
    steps = []
    run = time_network(TINY, [1, 2**40, 2], progress=lambda n, what: steps.append(n), **FAST)
    assert sum(steps) == 1 + 3 * (len(TINY) + 1)  # the progress bar ends full: peaks, then each layer + network
    ok1, oom, ok2 = run.batches
    assert oom.batch == 2**40 and oom.error == "out of memory" and "allocate" in oom.detail
    assert ok1.batch == 1 and ok2.batch == 2 and ok2.network.median_ms > 0


@pytest.mark.slow
def test_forced_cuda_out_of_memory_is_recorded(monkeypatch):
    real = Timer._measure

    def measure(self, batch):
        if batch == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, batch)
    monkeypatch.setattr(Timer, "_measure", measure)
    d = time_network(TINY, [2, 1], **FAST).to_dict()
    assert d["batches"][0] == {"batch": 2, "error": "out of memory",
                               "detail": "CUDA out of memory. Tried to allocate 2.00 GiB"}
    assert d["batches"][1]["batch"] == 1 and len(d["batches"][1]["layers"]) == len(TINY)


def test_other_errors_are_not_swallowed(monkeypatch):
    monkeypatch.setattr(Timer, "_measure", lambda self, batch: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        time_network(TINY, [1], **FAST)


def test_batch_that_cannot_fit_is_skipped_without_allocating(monkeypatch):
    tried = []
    real = Timer._measure
    monkeypatch.setattr(Timer, "_measure", lambda self, batch: tried.append(batch) or real(self, batch))
    run = time_network(TINY, [2**40, 1], **FAST)
    skipped = run.batches[0]
    assert skipped.error == "skipped: would not fit in memory" and " TiB beyond the weights" in skipped.detail  # 2**54 bytes
    assert tried == [1]
    # The estimate: twice the largest input + output of one layer (relu: 4 channels of 16x16 in and out).
    assert timing.batch_bytes(TINY.cost(2**40)) == 2 * 2**40 * (4 + 4) * 256 * 4


def test_is_out_of_memory():
    assert timing.is_out_of_memory(MemoryError())
    assert timing.is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert timing.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
    assert not timing.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_tf32_refused_on_cpu_and_unknown_device():
    with pytest.raises(SpecError, match="tf32 needs CUDA"):
        Timer(TINY, device="cpu", dtype="tf32")
    with pytest.raises(SpecError, match="unknown dtype"):
        Timer(TINY, device="cpu", dtype="int8")
    with pytest.raises(SpecError, match="unknown device"):
        Timer(TINY, device="tpu")


def test_dtype_torch_cannot_run_is_one_error_naming_the_layer():
    net = Network((4, 4, 4), [LocalResponseNorm(name="lrn", size=3)], name="lrn")
    try:
        torch.nn.LocalResponseNorm(3)(torch.randn(1, 4, 4, 4, dtype=torch.bfloat16))
        supported = True
    except RuntimeError:
        supported = False
    if supported:
        assert time_network(net, [1], **{**FAST, "dtype": "bfloat16"}).batches[0].network.median_ms > 0
    else:
        with pytest.raises(SpecError, match=r"layers\[0\] 'lrn' \(LocalResponseNorm\).*bfloat16 on cpu"):
            time_network(net, [1], **{**FAST, "dtype": "bfloat16"})


@pytest.mark.slow
def test_bfloat16_run_on_cpu():
    d = time_network(TINY, [2], **{**FAST, "dtype": "bfloat16"}).to_dict()
    conv = d["batches"][0]["layers"][0]
    assert d["math"] == "module and inputs cast to bfloat16"
    assert conv["bytes_moved"] == (2 * 3 * 256 + 4 * 27 + 4 + 2 * 4 * 256) * 2


# -- the command ------------------------------------------------------------------------------

CONV_MACS = (11 * 11 * 3 * 96 * 55 * 55 + 5 * 5 * 96 * 256 * 27 * 27 + 3 * 3 * 256 * 384 * 13 * 13
             + 3 * 3 * 384 * 384 * 13 * 13 + 3 * 3 * 384 * 256 * 13 * 13)
FC_MACS = 9216 * 4096 + 4096 * 4096 + 4096 * 1000


@pytest.mark.slow
def test_alexnet_on_cpu_end_to_end(tmp_path):
    out = tmp_path / "t.json"
    r = invoke("time", "--device", "cpu", "--batch", "1,2", "--warmup", "1", "--repeats", "2",
               "--format", "json", "--out", str(out))
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d == json.loads(out.read_text())
    assert d["model"] == "seed" and d["complete"] and "measured" in d["peaks"]["flops_source"]
    assert d["peaks"]["flops_per_s"] > 0 and d["peaks"]["bytes_per_s"] > 0
    b1 = d["batches"][0]
    assert len(b1["layers"]) == 23
    assert b1["groups"]["conv"]["mac_share"] == pytest.approx(100 * CONV_MACS / (CONV_MACS + FC_MACS), rel=1e-5)
    assert d["verdict"][0].startswith(f"conv: {100 * CONV_MACS / (CONV_MACS + FC_MACS):.1f}% of MACs, 6.0% of params")
    assert "timing seed on cpu" not in r.stdout  # progress goes to stderr


@pytest.mark.slow
def test_table_output(spec):
    r = invoke("time", "--spec", spec, "--device", "cpu", "--batch", "1,2", "--repeats", "3", *GIVEN_PEAKS)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("tiny on CPU: ") and "peaks: 0.100 TFLOP/s (given); 10.0 GB/s (given)" in out
    for needle in ("batch 1: network", "batch 2: network", "where the time goes", "verdict: conv: "):
        assert needle in out
    md = invoke("time", "--spec", spec, "--device", "cpu", "--batch", "1", "--repeats", "2", "--format", "markdown",
                *GIVEN_PEAKS).stdout
    assert "| conv " in md and md.startswith("- tiny on CPU")


@pytest.mark.slow
def test_interrupt_keeps_measured_batches(spec, tmp_path, monkeypatch):
    out = tmp_path / "t.json"
    real = Timer._measure

    def measure(self, batch):
        if batch == 2:
            raise KeyboardInterrupt
        return real(self, batch)
    monkeypatch.setattr(Timer, "_measure", measure)
    r = invoke("time", "--spec", spec, "--device", "cpu", "--batch", "1,2,3", "--repeats", "2", "--out", str(out),
               *GIVEN_PEAKS)
    assert r.exit_code == 130
    assert r.stderr.splitlines()[-1] == "error: interrupted" and r.stderr.count("error:") == 1
    d = json.loads(out.read_text())
    assert [b["batch"] for b in d["batches"]] == [1] and d["complete"] is False
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_no_measurable_batch_exits_1(spec):
    r = invoke("time", "--spec", spec, "--device", "cpu", "--batch", str(2**40), *GIVEN_PEAKS)
    assert r.exit_code == 1 and "no batch could be measured" in r.stderr
    assert "skipped: would not fit in memory" in r.stdout


@pytest.mark.parametrize("args, message", [
    (("--dtype", "tf32"), "error: tf32 needs CUDA"),
    (("--batch", "1,x"), "error: Invalid value for '--batch'"),
    (("--batch", "0"), "error: Invalid value for '--batch'"),
    (("--repeats", "0"), "error: Invalid value for '--repeats'"),
    (("--out", "no/such/folder/t.json"), "error: cannot write 'no/such/folder/t.json': no such folder"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(spec, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Timer, "__enter__", lambda self: pytest.fail("measured despite bad input"))
    r = invoke("time", "--spec", spec, "--device", "cpu", *args)
    assert r.exit_code == 2 and r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.output
    assert r.stdout == "" and sorted(os.listdir(tmp_path)) == ["tiny.json"]


@pytest.mark.skipif(CUDA, reason="checks the message given when there is no CUDA device")
def test_cuda_without_a_gpu_is_exit_2(spec):
    r = invoke("time", "--spec", spec, "--device", "cuda")
    assert r.exit_code == 2 and r.stderr.startswith("error: --device cuda: CUDA is not available")


def test_command_module_does_not_import_torch():
    code = "import sys, alexcost_cli.timing; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cuda_math_switches_are_explicit_and_restored():
    # The TF32 switches exist in CPU builds too; this checks the settings logic without a GPU.
    m, c = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (m.allow_tf32, c.allow_tf32, c.benchmark)
    with timing.cuda_math("tf32") as on:
        assert (m.allow_tf32, c.allow_tf32, c.benchmark) == (True, True, True)
        assert on["tf32_matmul"] is True and on["tf32_cudnn"] is True and on["cudnn_benchmark"] is True
    with timing.cuda_math("float32") as off:
        assert (m.allow_tf32, c.allow_tf32) == (False, False) and off["tf32_matmul"] is False
    assert (m.allow_tf32, c.allow_tf32, c.benchmark) == before


# -- CUDA ---------------------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("dtype, tf32", [("float32", False), ("tf32", True)])
def test_cuda_math_mode_is_explicit_and_restored(dtype, tf32):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    d = time_network(TINY, [1, 4], device="cuda", dtype=dtype, warmup=2, repeats=5).to_dict()
    s = d["settings"]
    assert s["tf32_matmul"] is tf32 and s["tf32_cudnn"] is tf32 and s["cudnn_benchmark"] is True
    assert s["timer"] == "cuda events" and d["device"]["type"] == "cuda" and d["device"]["cuda"]
    assert s["method"] == "graph" and s["launch_floor"]["median_ms"] > 0
    assert ("TF32 math on" in d["math"]) is tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark) == before
    for b in d["batches"]:
        assert all(r["p10_ms"] <= r["median_ms"] <= r["p90_ms"] for r in b["layers"]) and b["network_ms"] > 0
        assert all(r["method"] == "graph" for r in b["layers"])  # no capture fell back on a real GPU


@needs_cuda
def test_cuda_bfloat16_and_measured_peaks():
    d = time_network(TINY, [8], device="cuda", dtype="bfloat16", warmup=2, repeats=5).to_dict()
    assert "bfloat16" in d["peaks"]["flops_source"] and d["peaks"]["flops_per_s"] > 1e12
    assert d["batches"][0]["layers"][0]["bytes_moved"] == (8 * 3 * 256 + 4 * 27 + 4 + 8 * 4 * 256) * 2


# -- training: each phase timed on its own ------------------------------------------------------------

def test_phase_times_measure_each_phase_so_none_is_negative():
    """forward sleeps 3 ms and backward 1 ms: each sample's phases are at least that long, and the
    backward phase is a measured interval (never forward+backward less forward)."""
    import time

    log = []
    forward = lambda: (time.sleep(0.003), log.append("f"))  # noqa: E731
    backward = lambda out: (time.sleep(0.001), log.append("b"))  # noqa: E731
    samples = timing.phase_times_ms(forward, backward, calls=2, repeats=3, device="cpu")
    assert log == ["f", "b"] * 6 and len(samples) == 3
    for f, b in samples:
        assert f >= 2 * 3.0 and b >= 2 * 1.0


def test_sampler_phases_are_per_call_and_sum_to_the_step():
    import time

    sampler = timing.Sampler("cpu", "loop", warmup=1, repeats=4, target_ms=2.0, max_calls=10)
    forward, backward, step = sampler.phases(lambda: time.sleep(0.0005), lambda out: time.sleep(0.0002))
    assert forward.calls == backward.calls == step.calls >= 2  # samples of at least 2 ms: several calls each
    assert forward.median_ms >= 0.5 and backward.median_ms >= 0.2 and step.median_ms >= 0.7
    assert all(s.min_ms <= s.p10_ms <= s.median_ms <= s.p90_ms for s in (forward, backward, step))


def test_noisy_is_a_spread_wider_than_the_median():
    assert Stats.of([1.0, 1.1, 0.9, 1.0, 1.05]).noisy is False
    assert Stats.of([0.1, 0.1, 3.0, 0.1, 5.0]).noisy is True  # p90 - p10 = 4.2 > median 0.1


@pytest.mark.slow
def test_training_run_times_backward_directly_with_its_spread_and_the_gpus_spec_sheet():
    run = time_network(TINY, (2,), device="cpu", warmup=1, repeats=3, peak_flops=1e11, peak_bandwidth=1e10,
                       training=True, gpu="a100").to_dict()
    batch = run["batches"][0]
    for r in batch["layers"]:
        assert r["forward_ms"] > 0 and r["backward_ms"] >= 0
        if r["backward"] is not None:
            b = r["backward"]
            assert b["p10_ms"] <= b["median_ms"] == r["backward_ms"] <= b["p90_ms"]
            assert r["noisy"] == (b["p90_ms"] - b["p10_ms"] > b["median_ms"] or
                                  r["forward"]["p90_ms"] - r["forward"]["p10_ms"] > r["forward"]["median_ms"])
    assert batch["network_backward_ms"] == batch["network_backward"]["median_ms"] > 0
    assert run["settings"]["spec_sheet"]["gpu"] == "a100"
    conv = batch["layers"][0]
    # the conv's backward on the A100's sheet (19.5 TFLOP/s, 2,039 GB/s), whichever is slower: its weight
    # gradient (2 FLOPs per MAC: 4*16*16*27 MACs per sample, batch 2) and bias gradient (one add per output
    # element); the bytes: its output's gradient, the input it kept, and its weight and bias (float32)
    flops = 2 * (2 * 4 * 16 * 16 * 27) + 2 * 4 * 16 * 16
    nbytes = 4 * (2 * 4 * 16 * 16 + 2 * 3 * 16 * 16 + (4 * 27 + 4))
    assert conv["spec_backward_bound_ms"] == pytest.approx(max(flops / 19.5e12, nbytes / 2039e9) * 1e3)
    assert conv["backward_bound_ms"] == pytest.approx(max(flops / 1e11, nbytes / 1e10) * 1e3)  # the given peaks


@pytest.mark.slow
def test_training_table_shows_the_spread_and_the_spec_sheet(spec):
    r = invoke("time", "--spec", spec, "--device", "cpu", "--batch", "2", "--training", "--repeats", "3",
               "--gpu", "h100", *GIVEN_PEAKS)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "spec sheet: H100 (SXM5), 66.9 TFLOP/s, 3350 GB/s" in out  # 132 SMs x 128 cores x 1980 MHz x 2
    for header in ("bwd ms", "bwd p10-p90 ms", "spec fwd bound ms", "spec bwd bound ms"):
        assert header in out
    assert "batch 2: network forward" in out and "backward" in out.splitlines()[-1]
    record = json.loads(invoke("time", "--spec", spec, "--device", "cpu", "--batch", "2", "--training",
                               "--repeats", "2", "--format", "json", *GIVEN_PEAKS).stdout)
    assert all(r["backward_ms"] >= 0 for r in record["batches"][0]["layers"])
    assert "spec_backward_bound_ms" not in record["batches"][0]["layers"][0]  # no GPU named, none matched on a CPU
