"""alexcost's CUDA code paths, run on the CPU under the stand-in (tests/cuda_standin.py): never skipped.

The stand-in answers the torch.cuda calls alexcost makes and asserts their order; these tests
first show that it catches misuse, then run `alexcost time`, `alexcost verify` and
scripts/gpu-check with `--device cuda` under it. Expected counts are hand arithmetic.
"""

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from cuda_standin import CaptureError, CudaStandIn, standin  # noqa: E402

from alexcost.torch_run import device  # noqa: E402
from alexcost.units import bytes_text  # noqa: E402
from alexcost.torch_run.timing import ESTIMATES, Sampler, calls_for  # noqa: E402
from timing_cases import GIVEN_PEAKS, TINY_SPEC as TINY, invoke, spec  # noqa: E402,F401 - spec: a fixture

ROOT = Path(__file__).resolve().parents[1]


# -- the stand-in catches what a GPU only sometimes does ----------------------------------------

def pair(s):
    return s.Event(enable_timing=True), s.Event(enable_timing=True)


def test_elapsed_time_needs_both_records_then_a_synchronize():
    s = CudaStandIn()
    start, end = pair(s)
    with pytest.raises(AssertionError, match="before both events were recorded"):
        start.elapsed_time(end)
    start.record()
    time.sleep(0.02)
    end.record()
    with pytest.raises(AssertionError, match="before a synchronize after both records"):
        start.elapsed_time(end)
    s.synchronize()
    assert start.elapsed_time(end) >= 20.0  # ms: the sleep between the two records
    s.close()


def test_a_stream_or_event_synchronize_counts_only_for_its_own():
    s = CudaStandIn()
    side = s.Stream()
    start, end = pair(s)
    start.record(), end.record()
    side.synchronize()  # another stream: the events on the default stream may still be pending
    with pytest.raises(AssertionError, match="before a synchronize"):
        start.elapsed_time(end)
    start.synchronize(), end.synchronize()
    assert start.elapsed_time(end) >= 0


def test_an_event_is_not_recorded_again_before_it_is_read():
    s = CudaStandIn()
    start, end = pair(s)
    start.record(), end.record()
    with pytest.raises(AssertionError, match="recorded again before its elapsed time was read"):
        start.record()
    with pytest.raises(AssertionError, match="2 timing event"):
        s.close()


def test_capture_rules():
    s = CudaStandIn()
    with pytest.raises(AssertionError, match="warm-up on a side stream"), s.graph(s.CUDAGraph()):
        pass
    with pytest.raises(AssertionError, match="never captured"):
        s.CUDAGraph().replay()
    for forbidden in (lambda s: s.synchronize(), lambda s: s.mem_get_info(), lambda s: s.empty_cache(),
                      lambda s: s.Event(enable_timing=True).record(), lambda s: torch.ones(1).item()):
        with standin() as s:
            with s.stream(s.Stream()):
                torch.ones(1).add_(1)  # the warm-up on a side stream
            graph = s.CUDAGraph()
            with pytest.raises(CaptureError, match="not permitted when stream is capturing"), s.graph(graph):
                torch.ones(1).add_(1)
                forbidden(s)
            assert not s.capturing


def test_device_cuda_tensors_live_on_the_cpu_and_count():
    with standin() as s:
        x = torch.randn(2, device="cuda")
        m = torch.nn.Linear(2, 2).to("cuda")
        g = torch.Generator(device="cuda")
        assert x.device.type == "cpu" and m.weight.device.type == "cpu" and g.device.type == "cpu"
        assert s.count["placed on cuda"] == 2  # randn(device=), Module.to (the Generator is made apart)
    with pytest.raises(RuntimeError):  # outside, "cuda" is torch's own again: no GPU here
        torch.randn(2, device="cuda")


# -- alexcost.torch_run.device under the stand-in -----------------------------------------------------------

def test_device_queries_go_through_the_stand_in():
    with standin(free=5 * 2**30, total=8 * 2**30, reserved=3 * 2**20, allocated=2**20) as s:
        assert device.resolve_device("auto") == "cuda" and device.resolve_device("cuda") == "cuda"
        assert device.memory_free("cuda") == 5 * 2**30
        assert device.available_bytes("cuda") == 5 * 2**30 + 2 * 2**20
        d = device.describe("cuda")
        assert (d["type"], d["name"], d["capability"], d["memory_bytes"]) == ("cuda", s.name, "9.0", 8 * 2**30)
        device.release("cuda")
        assert s.count["empty_cache"] == 1 and s.count["mem_get_info"] == 2


def test_times_ms_reads_events_after_one_synchronize():
    with standin() as s:
        out = device.times_ms(lambda: time.sleep(0.005), 4, "cuda")
        assert len(out) == 4 and all(t >= 5.0 for t in out)
        assert (s.count["record"], s.count["elapsed_time"], s.count["synchronize"]) == (8, 4, 2)


def test_capture_replays_the_captured_work():
    with standin() as s, torch.inference_mode():
        x = torch.zeros(1, device="cuda")
        replay = device.capture(lambda: x.add_(1), calls=4, warmup=3)
        assert x.item() == 3 + 4  # the side-stream warm-up, then the capture (which runs at once on the CPU)
        replay(), replay()
        assert x.item() == 7 + 2 * 4 and s.count["capture"] == 1 and s.count["replay"] == 2


def test_calls_for_by_hand():
    assert calls_for(0.01, 1.0, 200) == 100
    assert calls_for(0.3, 1.0, 200) == 4       # ceil(3.33)
    assert calls_for(5.0, 1.0, 200) == 1
    assert calls_for(1e-6, 1.0, 200) == 200
    assert calls_for(0.0, 2.0, 100) == 100


@pytest.mark.parametrize("method", ["graph", "loop", "single"])
def test_sampler_runs_every_call_it_reports(method):
    # Count the calls by their effect: x grows by one per executed call.
    warmup, repeats = 2, 5
    with standin(), torch.inference_mode():
        x = torch.zeros(1, device="cuda")
        st = Sampler("cuda", method, warmup, repeats, target_ms=0.5, max_calls=50).stats(lambda: x.add_(1))
        n = st.calls
        expected = {"graph": warmup + ESTIMATES + 3 + n + n + repeats * n,   # + side warm-up, capture, 1st replay
                    "loop": warmup + ESTIMATES + n + repeats * n,
                    "single": warmup + repeats}[method]
        assert x.item() == expected and st.method == method and st.repeats == repeats
        assert (n == 1) if method == "single" else (1 <= n <= 50)


def test_graph_capture_failure_falls_back_to_loop_and_says_why():
    with standin(), torch.inference_mode():
        x = torch.ones(1, device="cuda")
        st = Sampler("cuda", "graph", 1, 3, 0.5, 20).stats(lambda: x.add_(1).item())
        assert st.method == "loop" and st.note.startswith("graph capture failed: CUDA error: operation not permitted")
        assert st.to_dict()["note"] == st.note


def test_out_of_memory_in_a_capture_is_not_a_fallback():
    with standin() as s:
        def fn():
            if s.capturing:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        with pytest.raises(torch.cuda.OutOfMemoryError):
            Sampler("cuda", "graph", 0, 2, 0.5, 4).stats(fn)


def test_an_empty_graph_is_timed_without_a_warning():
    with standin() as s, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error")
        x = torch.ones(2, 3, device="cuda")
        st = Sampler("cuda", "graph", 1, 3, 0.5, 8).stats(lambda: x.flatten())  # a view: no kernel
        assert st.method == "graph" and s.count["capture"] == 1


# -- the commands' CUDA branches -----------------------------------------------------------------

@pytest.mark.slow
def test_time_on_cuda_by_graph(spec, tmp_path):
    out = tmp_path / "t.json"
    with standin() as s:
        r = invoke("time", "--spec", spec, "--device", "cuda", "--dtype", "tf32", "--batch", "1,2", "--warmup", "1",
                   "--repeats", "3", "--out", str(out), "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    st = d["settings"]
    assert d["device"]["type"] == "cuda" and d["device"]["name"] == s.name and d["complete"]
    assert st["timer"] == "cuda events" and st["method"] == "graph" and st["tf32_matmul"] is True
    assert st["launch_floor"]["method"] == "graph" and st["launch_floor"]["calls"] >= 1
    assert "measured" in d["peaks"]["flops_source"]
    for b in d["batches"]:
        assert [r["name"] for r in b["layers"]] == [layer["name"] for layer in TINY["layers"]]
        assert all(r["method"] == "graph" and r["calls"] >= 1 and r["repeats"] == 3 for r in b["layers"])
        assert b["network_calls"] >= 1
    # one capture for the launch floor, then per batch one per layer and one for the network;
    # each capture is replayed once untimed, then once per timed sample
    captures = 1 + 2 * (len(TINY["layers"]) + 1)
    assert s.count["capture"] == captures and s.count["replay"] == captures * (1 + 3)
    assert s.count["get_device_properties"] >= 1 and s.count["placed on cuda"] >= 1
    text = r.stdout
    assert json.loads(text) == d


def test_time_on_cuda_table_says_method_and_floor(spec):
    with standin():
        r = invoke("time", "--spec", spec, "--device", "auto", "--batch", "1", "--repeats", "2", *GIVEN_PEAKS)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("tiny on CUDA: Stand-in GPU (CPU)")
    assert "timer: cuda events, method graph (each sample replays a CUDA graph of N back-to-back calls" in r.stdout
    assert "\nlaunch floor: " in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("method", ["loop", "single"])
def test_time_on_cuda_by_other_methods(spec, method):
    with standin() as s:
        r = invoke("time", "--spec", spec, "--device", "cuda", "--method", method, "--batch", "1", "--repeats", "2",
                   "--format", "json", *GIVEN_PEAKS)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["settings"]["method"] == method and s.count["capture"] == 0
    assert all(r["method"] == method for r in d["batches"][0]["layers"])
    assert all(r["calls"] == 1 for r in d["batches"][0]["layers"]) is (method == "single")


def test_time_on_cuda_skips_a_batch_the_stand_in_cannot_hold(spec):
    # free 1 MiB + (reserved 3 MiB - allocated 1 MiB) = 3 MiB. The batch of 4096 needs, beyond the weights,
    # twice the widest layer's input + output (relu: 4 channels of 16x16 in and out), far more.
    free = 2**20 + 3 * 2**20 - 2**20
    with standin(free=2**20, reserved=3 * 2**20, allocated=2**20):
        r = invoke("time", "--spec", spec, "--device", "cuda", "--batch", "4096", "--format", "json", *GIVEN_PEAKS)
    assert r.exit_code == 1 and "no batch could be measured" in r.stderr
    b = json.loads(r.stdout)["batches"][0]
    assert b["error"] == "skipped: would not fit in memory"
    assert b["detail"] == (f"needs about {bytes_text(2 * 4096 * (4 + 4) * 256 * 4)} beyond the weights, "
                           f"{bytes_text(free)} free on cuda")


def test_graph_on_the_cpu_is_one_line_exit_2(spec):
    r = invoke("time", "--spec", spec, "--device", "cpu", "--method", "graph")
    assert r.exit_code == 2 and r.stderr == "error: --method graph needs CUDA (it replays CUDA graphs); on the CPU " \
                                            "use loop or single\n"


def test_verify_on_cuda(spec):
    with standin() as s:
        r = invoke("verify", "--spec", spec, "--device", "cuda", "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["ok"] is True and d["fvcore"]["ran"] is True
    conv = d["layers"][0]
    assert conv["macs"] == conv["fvcore"] == 4 * 16 * 16 * 3 * 3 * 3 and conv["torch_flops"] == 2 * conv["macs"]
    assert s.count["mem_get_info"] == 1 and s.count["placed on cuda"] >= 2  # check_fits; module and input


def test_verify_on_cuda_refuses_what_cannot_fit(spec):
    with standin(free=1000):
        r = invoke("verify", "--spec", spec, "--device", "cuda")
    assert r.exit_code == 2 and r.stderr.startswith("error: a forward pass of 'tiny' at batch 1 needs at least ")
    assert f"but cuda has {bytes_text(1000)} free" in r.stderr


@pytest.mark.slow
def test_gpu_check_on_cuda(spec, tmp_path):
    """scripts/gpu-check's default device, cuda, end to end: every Python process it starts runs under the
    stand-in (tests/standin_site/sitecustomize.py) and logs its calls."""
    out, log, wheels = tmp_path / "out", tmp_path / "standin.log", tmp_path / "no-wheels"
    wheels.mkdir()
    env = {**os.environ, "ALEXCOST_CUDA_STANDIN": str(log),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "standin_site"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu-check"), str(out), "--quick", "--models", spec,
                           "--dtypes", "float32,tf32", "--batches", "1", "--wheels", str(wheels)],
                          capture_output=True, text=True, timeout=300, env=env)
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("environment", "ok"), ("verify tiny", "ok"),
                                                         ("time tiny float32", "ok"), ("time tiny tf32", "ok"),
                                                         ("zoo verify", "ok"), ("verify --training tiny", "ok"),
                                                         ("time --training tiny", "ok")], \
        (out / "log.txt").read_text()[-3000:]
    assert done.returncode == 0
    env_probe = json.loads((out / "steps.json").read_text())["environment"]["torch"]
    assert env_probe["cuda_available"] is True and env_probe["gpu"] == "Stand-in GPU (CPU)"
    runs = json.loads((out / "time.json").read_text())["runs"]
    assert [r["record"]["settings"]["method"] for r in runs] == ["graph", "graph"]
    assert [r["record"]["settings"]["tf32_cudnn"] for r in runs] == [False, True]
    summary = (out / "summary.md").read_text()
    assert "- GPU: Stand-in GPU (CPU)" in summary and "- fvcore: ran (fvcore " in summary
    # The processes that ran alexcost on "cuda": each read every event it recorded, and captured graphs (time).
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(p["unread"] == 0 for p in logged)
    alexcost = [p for p in logged if p["argv"][0].endswith(os.path.join("alexcost", "__main__.py"))]
    [verify] = [p for p in alexcost if p["argv"][1] == "verify" and "--training" not in p["argv"]]
    timed = [p for p in alexcost if p["argv"][1] == "time" and "--training" not in p["argv"]]
    assert verify["count"]["mem_get_info"] == 1 and "capture" not in verify["count"]
    # per run: the launch floor, then one batch of the layers and the network
    assert len(timed) == 2 and all(p["count"]["capture"] == 1 + len(TINY["layers"]) + 1 for p in timed)
    # training: timed with the loop method (no CUDA graph of a backward pass)
    [trained] = [p for p in alexcost if p["argv"][1] == "time" and "--training" in p["argv"]]
    assert "capture" not in trained["count"] and trained["count"]["synchronize"] >= 1
    assert any(p["argv"][:1] == ["-c"] and p["count"]["is_available"] >= 1 for p in logged)  # the probe
