"""`alexcost plot` and alexcost.render.plot: shares by hand arithmetic, the timings reader, valid and
deterministic PNG/SVG files of the expected size, legible layout, and the missing-extra error."""

import json
import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from alexcost import SpecError, load_spec, preset
from alexcost.render.plot import (DPI, STYLE, WIDTH_IN, memory_figure, read_timings, share_rows, share_series,
                           shares_figure, split_shares, timings_from_dict)
from alexcost_cli.main import cli

PRESETS = ("seed", "paper", "torchvision")
GRAPHS = ("resnet18", "resnet50", "googlenet", "mobilenet_v2")

# The seed's counts by hand (the seed table's arithmetic).
CONV_PARAMS = [(11 * 11 * 3 + 1) * 96, (5 * 5 * 96 + 1) * 256, (3 * 3 * 256 + 1) * 384,
               (3 * 3 * 384 + 1) * 384, (3 * 3 * 384 + 1) * 256]
FC_PARAMS = [256 * 6 * 6 * 4096, 4096 * 4096, 4096 * 1000]
CONV_MACS = [11 * 11 * 3 * 96 * 55 * 55, 5 * 5 * 96 * 256 * 27 * 27, 3 * 3 * 256 * 384 * 13 * 13,
             3 * 3 * 384 * 384 * 13 * 13, 3 * 3 * 384 * 256 * 13 * 13]
SEED_PARAMS = sum(CONV_PARAMS) + sum(FC_PARAMS)
SEED_MACS = sum(CONV_MACS) + sum(FC_PARAMS)


def fake_timings(model: str, batches=(1, 64), failed=(4096,)) -> dict:
    """An `alexcost time` record: medians 1, 2, 3, ... ms per layer (times the batch index), plus
    keys the reader must ignore and batches that failed."""
    net = preset(model)
    runs = [{"batch": b, "network_ms": 1.0, "notes": "extra key",
             "layers": [{"name": n, "median_ms": float((i + 1) * (k + 1)), "p10_ms": 0.5, "p90_ms": 9.0,
                         "macs": 0, "params": 0, "bytes": 0} for i, n in enumerate(net.names)]}
            for k, b in enumerate(batches)]
    runs += [{"batch": b, "error": "out of memory"} for b in failed]
    return {"model": model, "device": "Test Device 9000", "dtype": "float32", "torch": "2.13",
            "settings": {"warmup": 1}, "batches": runs}


@pytest.fixture(scope="module")
def plots(tmp_path_factory):
    """Every preset plotted once as PNG (with timings) and once as SVG: {(model, fmt): (shares, memory)}."""
    folder = tmp_path_factory.mktemp("plots")
    out = {}
    for model in PRESETS:
        timings = folder / f"{model}.json"
        timings.write_text(json.dumps(fake_timings(model)))
        for fmt in ("png", "svg"):
            target = folder / f"{model}.{fmt}"
            result = CliRunner().invoke(cli, ["plot", "--model", model, "--timings", str(timings),
                                              "--out", str(target)])
            assert result.exit_code == 0, result.output
            memory = folder / f"{model}-memory.{fmt}"
            assert result.output == f"wrote {target}\nwrote {memory}\n"
            out[model, fmt] = (target, memory)
    return out


# -- shares ------------------------------------------------------------------------------------------

def test_static_shares_match_hand_arithmetic():
    rows = {r.name: r for r in share_rows(preset("seed").cost())}
    assert rows["conv1"].params == pytest.approx(100 * CONV_PARAMS[0] / SEED_PARAMS)
    assert rows["fc6"].params == pytest.approx(100 * FC_PARAMS[0] / SEED_PARAMS)
    assert rows["conv2"].macs == pytest.approx(100 * CONV_MACS[1] / SEED_MACS)
    assert "relu1" not in rows and rows["conv1"].folded == ("relu1",)      # conv1 + ReLU, as the seed writes it
    every = {r.name: r for r in share_rows(preset("seed").cost(), all_layers=True)}
    assert every["relu1"].params == every["relu1"].macs == 0 and every["relu1"].folded == ()
    assert rows["fc8"].time == ()
    split = dict(split_shares(preset("seed").cost()))
    assert split["parameters"]["conv"] == pytest.approx(100 * sum(CONV_PARAMS) / SEED_PARAMS)
    assert split["MACs"]["fc"] == pytest.approx(100 * sum(FC_PARAMS) / SEED_MACS)
    assert split["MACs"]["other"] == 0


def test_time_shares_are_median_over_the_sum_of_medians():
    net = preset("paper")
    timings = timings_from_dict(fake_timings("paper", batches=(1, 8, 32)))
    n = len(net)
    rows = share_rows(net.cost(), timings, all_layers=True)
    folded = {r.name: r for r in share_rows(net.cost(), timings)}
    for k in range(3):  # layer i has median (i+1)*(k+1) ms; the batch's sum is (k+1)*n*(n+1)/2
        whole = (k + 1) * n * (n + 1) / 2
        assert [r.time[k] for r in rows] == pytest.approx([100 * (i + 1) * (k + 1) / whole for i in range(n)])
        # fc6 (index 16), relu6 and drop6 share a row: the three medians add up
        assert folded["fc6"].time[k] == pytest.approx(100 * (17 + 18 + 19) * (k + 1) / whole)
    labels = [label for label, _ in split_shares(net.cost(), timings)]
    assert labels == ["parameters", "MACs", "time, batch 1", "time, batch 8", "time, batch 32"]
    for _, parts in split_shares(net.cost(), timings):
        assert sum(parts.values()) == pytest.approx(100)


# -- which layers share a row ------------------------------------------------------------------------

def test_rows_fold_layers_that_cost_nothing_of_their_own():
    """The rule: no parameters, no MACs, no bias adds and at most one operation per output element."""
    labels = [r.label for r in share_rows(preset("seed").cost())]
    assert labels == [
        "conv1 (Conv2d) + ReLU", "pool1 (MaxPool2d)", "norm1 (LocalResponseNorm)",
        "conv2 (Conv2d) + ReLU", "pool2 (MaxPool2d)", "norm2 (LocalResponseNorm)",
        "conv3 (Conv2d) + ReLU", "conv4 (Conv2d) + ReLU", "conv5 (Conv2d) + ReLU",
        "pool5 (MaxPool2d) + Flatten\n+ Dropout", "fc6 (Linear) + ReLU + Dropout", "fc7 (Linear) + ReLU",
        "fc8 (Linear)"]
    assert len(share_rows(preset("seed").cost(), all_layers=True)) == len(preset("seed")) == 23
    net = load_spec_dict({"name": "edge", "input_shape": [4, 6, 6], "layers": [
        {"type": "ReLU"}, {"type": "Tanh"}, {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
        {"type": "Sigmoid"}, {"type": "Flatten"}, {"type": "Softmax", "dim": 1}, {"type": "Dropout"}]})
    assert [r.label for r in share_rows(net.cost())] == [
        "relu0 (ReLU) + Tanh",                    # nothing before the first layer: it keeps a row
        "conv2d2 (Conv2d) + Sigmoid\n+ Flatten",   # a long label goes on to a second line
        "softmax5 (Softmax) + Dropout"]           # 3 operations per element: a row of its own


# -- graphs: the layer a row reads, and blocks when there are too many rows --------------------------

def test_graph_rows_fold_into_the_layer_they_read():
    """ResNet-18 as torchvision's BasicBlock runs it: conv, bn, relu; conv, bn; the shortcut (a 1x1
    conv and bn where the shape changes); out += identity; relu. Batch norm and ReLU fold into the
    convolution, the in-place sum into the input computed last (bn2, or the shortcut's bn)."""
    expected = ["conv1 (Conv2d) + BatchNorm2d\n+ ReLU", "maxpool (MaxPool2d)"]
    for stage in (1, 2, 3, 4):
        for block in (0, 1):
            p = f"layer{stage}_{block}"
            expected.append(f"{p}_conv1 (Conv2d)\n+ BatchNorm2d + ReLU")
            if stage > 1 and block == 0:
                expected += [f"{p}_conv2 (Conv2d)\n+ BatchNorm2d", f"{p}_downsample_0 (Conv2d)\n+ BatchNorm2d + Add + ReLU"]
            else:
                expected.append(f"{p}_conv2 (Conv2d)\n+ BatchNorm2d + Add + ReLU")
    expected += ["avgpool (AdaptiveAvgPool2d)\n+ Flatten", "fc (Linear)"]
    assert [r.label for r in share_rows(preset("resnet18").cost())] == expected
    assert len(share_rows(preset("resnet18").cost(), all_layers=True)) == len(preset("resnet18"))


def test_a_branch_reading_the_network_input_starts_a_row():
    net = load_spec_dict({"name": "two", "input_shape": [2, 4, 4], "layers": [
        {"type": "Conv2d", "name": "a", "out_channels": 2, "kernel_size": 1},
        {"type": "ReLU", "name": "b", "inputs": ["input"]},
        {"type": "Add", "name": "sum", "inputs": ["a", "b"]},
        {"type": "ReLU", "name": "r", "inputs": ["a"]}]})
    labels = [r.label for r in share_rows(net.cost())]
    assert labels == ["a (Conv2d) + ReLU", "b (ReLU) + Add"]   # sum joins b, its input computed last


def test_many_rows_become_blocks_named_by_their_prefix():
    """ResNet-50 folds to 2 + 3 * 16 + 4 + 2 = 56 rows (a 3-conv bottleneck per block, plus the
    shortcut conv of each stage's first block), more than 40: one row per torchvision block."""
    folded = 2 + 3 * 16 + 4 + 2
    from alexcost.render.plot import MAX_ROWS, layer_groups

    assert len(layer_groups(preset("resnet50").cost())) == folded > MAX_ROWS
    rows = share_rows(preset("resnet50").cost())
    blocks = [f"layer{s}_{b}" for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3)) for b in range(n)]
    assert [r.name for r in rows] == ["conv1", "maxpool", *blocks, "avgpool", "fc"]
    sizes = {r.name: int(r.label.split("(")[1].split()[0]) for r in rows if r.type == "block"}
    # conv1, bn1, relu, conv2, bn2, relu, conv3, bn3, add, relu; a stage's first block adds its shortcut conv and bn
    assert sizes == {b: 12 if b.endswith("_0") else 10 for b in blocks}
    names = [r.name for r in share_rows(preset("googlenet").cost())]
    assert [n for n in names if n.startswith("inception")] == [
        "inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
        "inception5a", "inception5b"]
    assert [r.name for r in share_rows(preset("mobilenet_v2").cost())][1:18] == [f"features_{i}" for i in range(1, 18)]


@pytest.mark.slow
def test_block_shares_equal_torchs_count_per_block():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torch.utils.flop_counter import FlopCounterMode

    model = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 224, 224))
    flops = counter.get_flop_counts()
    total_params = sum(p.numel() for p in model.parameters())
    rows = {r.name: r for r in share_rows(preset("resnet50").cost())}
    for stage, blocks in zip((1, 2, 3, 4), (3, 4, 6, 3)):
        for b in range(blocks):
            module = getattr(model, f"layer{stage}")[b]
            row = rows[f"layer{stage}_{b}"]
            assert row.params == pytest.approx(100 * sum(p.numel() for p in module.parameters()) / total_params)
            block_flops = sum(flops[f"ResNet.layer{stage}.{b}"].values())
            assert row.macs == pytest.approx(100 * block_flops / counter.get_total_flops())


def test_too_many_unnamed_rows_become_runs(tmp_path):
    """100 convolutions named conv2d0 ... conv2d99: no prefix groups them, so runs of
    ceil(100 / 40) = 3 consecutive rows, 34 rows in all."""
    net = load_spec_dict({"name": "deep", "input_shape": [1, 4, 4], "layers": [
        {"type": "Conv2d", "out_channels": 1, "kernel_size": 1}] * 100})
    rows = share_rows(net.cost())
    assert len(rows) == -(-100 // 3) == 34
    assert rows[0].label == "conv2d0 to conv2d2 (3 layers)" and rows[-1].label == "conv2d99 (Conv2d)"
    assert sum(r.params for r in rows) == pytest.approx(100)


@pytest.mark.slow
def test_all_layers_draws_every_layer_of_a_graph(tmp_path):
    out = tmp_path / "r.png"
    result = CliRunner().invoke(cli, ["plot", "--model", "resnet18", "--out", str(out), "--all-layers"])
    assert result.exit_code == 0, result.output
    folded = tmp_path / "f.png"
    CliRunner().invoke(cli, ["plot", "--model", "resnet18", "--out", str(folded)])
    assert png_size(out)[1] > 2.5 * png_size(folded)[1]   # 69 rows against 23


def load_spec_dict(data):
    from alexcost import network_from_dict

    return network_from_dict(data)


def test_every_bar_carries_its_value():
    from matplotlib.text import Text

    cost = preset("paper").cost()
    timings = timings_from_dict(fake_timings("paper", batches=(1, 64)))
    fig = shares_figure(cost, timings)
    texts = [t.get_text() for t in fig.axes[0].findobj(Text)]
    values = [v for _, vs in share_series(share_rows(cost, timings), timings) for v in vs if v > 0]
    expected = sorted("<0.1%" if v < 0.05 else f"{v:.1f}%" for v in values)
    assert sorted(t for t in texts if t.endswith("%")) == expected
    assert "61.9%" in texts            # fc6's parameters: (9216 + 1) * 4096 of 60,965,224, by hand below
    assert f"{100 * (9216 + 1) * 4096 / 60_965_224:.1f}%" == "61.9%"
    memory = memory_figure(cost)
    words = [t.get_text() for t in memory.findobj(Text)]
    assert "96×55×55, 1.1 MiB" in words and "144.0 MiB" in words  # 4 * 96*55*55 B; 4 * (9216 + 1) * 4096 B
    assert (f"{4 * 96 * 55 * 55 / 2**20:.1f}", f"{4 * (9216 + 1) * 4096 / 2**20:.1f}") == ("1.1", "144.0")


def test_figures_fit_a_docs_page_without_shrinking():
    """Drawn no wider than the docs' text column (about 1,000 px in a 1280 px window), so the text
    keeps its size there; tests/test_browser.py checks that the page shows them at full size."""
    assert WIDTH_IN * DPI <= 830


@pytest.mark.slow
def test_all_layers_gives_every_layer_a_row(tmp_path):
    heights = {}
    for flag in ([], ["--all-layers"]):
        out = tmp_path / f"seed{len(flag)}.png"
        result = CliRunner().invoke(cli, ["plot", "--model", "seed", "--out", str(out), *flag])
        assert result.exit_code == 0, result.output
        heights[bool(flag)] = (png_size(out)[1], png_size(tmp_path / f"seed{len(flag)}-memory.png")[1])
    assert heights[True][0] > heights[False][0] and heights[True][1] > heights[False][1]


# -- the timings reader -----------------------------------------------------------------------------

@pytest.mark.slow
def test_reads_what_alexcost_time_writes(tmp_path):
    pytest.importorskip("torch")
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"name": "tiny", "input_shape": [3, 16, 16], "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "ReLU"}, {"type": "Flatten"},
        {"type": "Linear", "out_features": 2}]}))
    timed = CliRunner().invoke(cli, ["time", "--spec", str(spec), "--device", "cpu", "--batch", "1,2",
                                     "--warmup", "0", "--repeats", "2", "--peak-tflops", "1",
                                     "--bandwidth-gbs", "10", "--out", str(tmp_path / "t.json")])
    assert timed.exit_code == 0, timed.output
    timings = read_timings(tmp_path / "t.json")
    assert [b.batch for b in timings.batches] == [1, 2]
    assert [name for name, _ in timings.batches[0].layer_ms] == ["conv2d0", "relu1", "flatten2", "linear3"]
    assert timings.device.endswith("(CPU)") and timings.model == "tiny"
    rows = share_rows(load_spec(spec).cost(), timings)
    assert sum(r.time[1] for r in rows) == pytest.approx(100)
    drawn = CliRunner().invoke(cli, ["plot", "--spec", str(spec), "--timings", str(tmp_path / "t.json"),
                                     "--out", str(tmp_path / "tiny.png")])
    assert drawn.exit_code == 0, drawn.output
    assert png_size(tmp_path / "tiny.png")[0] == round(WIDTH_IN * DPI)


def test_reader_keeps_failed_batches_apart_and_ignores_extra_keys(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(fake_timings("seed", batches=(1, 128), failed=(512, 1024))))
    timings = read_timings(path)
    assert [b.batch for b in timings.batches] == [1, 128]
    assert timings.failed == ((512, "out of memory"), (1024, "out of memory"))
    assert timings.device == "Test Device 9000" and timings.model == "seed" and timings.dtype == "float32"
    assert timings.batches[1].layer_ms[0] == ("conv1", 2.0)


@pytest.mark.parametrize("data, message", [
    ([], "expected a JSON object"),
    ({"device": "x"}, "no 'batches' list"),
    ({"batches": [{"batch": "1", "layers": []}]}, "needs an integer 'batch'"),
    ({"batches": [{"batch": 1}]}, "has neither 'layers' nor 'error'"),
    ({"batches": [{"batch": 1, "layers": [{"name": "conv1", "median_ms": -1}]}]}, "non-negative number"),
    ({"batches": [{"batch": 1, "layers": [{"median_ms": 1}]}]}, "needs a 'name'"),
])
def test_reader_refuses_malformed_timings(data, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        timings_from_dict(data, "t.json")


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read timings file"):
        read_timings(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="is not valid JSON"):
        read_timings(bad)


# -- files -------------------------------------------------------------------------------------------

def png_size(path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature and chunk CRCs."""
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append(kind)
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    return struct.unpack(">II", data[16:24])


def svg_size_pt(path) -> tuple[float, float]:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return float(root.get("width").removesuffix("pt")), float(root.get("height").removesuffix("pt"))


@pytest.mark.slow
@pytest.mark.parametrize("model", PRESETS)
def test_both_figures_are_valid_images_of_the_expected_size(plots, model):
    from PIL import Image

    for png, svg in zip(plots[model, "png"], plots[model, "svg"]):
        width, height = png_size(png)
        with Image.open(png) as image:
            image.load()  # decodes every pixel
            assert image.size == (width, height)
        assert width == round(WIDTH_IN * DPI) == 800       # 8 inches at 100 dpi
        svg_w, svg_h = svg_size_pt(svg)                     # SVG sizes are in points, 72 per inch
        assert (svg_w, round(svg_h * DPI / 72)) == (WIDTH_IN * 72, height)
    shares_h = png_size(plots[model, "png"][0])[1]
    memory_h = png_size(plots[model, "png"][1])[1]
    assert shares_h > memory_h > 400   # 13 or 14 rows: tall enough for one readable row each


def test_height_grows_with_the_layer_count(tmp_path):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({"name": "tiny", "input_shape": [3, 8, 8], "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "Flatten"},
        {"type": "Linear", "out_features": 2}]}))
    result = CliRunner().invoke(cli, ["plot", "--spec", str(spec), "--out", str(tmp_path / "tiny.png")])
    assert result.exit_code == 0, result.output
    assert png_size(tmp_path / "tiny.png")[0] == round(WIDTH_IN * DPI)
    assert png_size(tmp_path / "tiny.png")[1] < 700


@pytest.mark.slow
def test_output_is_byte_identical_across_runs_and_processes(plots, tmp_path):
    shares, memory = plots["seed", "svg"]
    timings = shares.parent / "seed.json"
    again = tmp_path / "seed.svg"
    env = {**os.environ, "PYTHONHASHSEED": "123"}   # another process, another hash seed
    code = ("from alexcost_cli.main import main; "
            f"main(['plot', '--model', 'seed', '--timings', {str(timings)!r}, '--out', {str(again)!r}])")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    assert again.read_bytes() == shares.read_bytes()
    assert (tmp_path / "seed-memory.svg").read_bytes() == memory.read_bytes()
    text = shares.read_text()
    assert "<dc:date>" not in text and "Matplotlib v" not in text
    png_again = tmp_path / "seed.png"
    CliRunner().invoke(cli, ["plot", "--model", "seed", "--timings", str(timings), "--out", str(png_again)])
    assert png_again.read_bytes() == plots["seed", "png"][0].read_bytes()
    assert b"tEXt" not in png_again.read_bytes()   # no Software (or any other) text chunk


# -- legibility: nothing overlaps, everything is inside the figure ------------------------------------

def text_boxes(fig):
    """Every visible text's box in pixels, laid out exactly as figure_bytes lays it out."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    with matplotlib.rc_context(STYLE):
        canvas.draw()
    renderer = canvas.get_renderer()
    from matplotlib.text import Text

    texts = {id(t): t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()}
    for ax in fig.axes:   # tick labels: only those of ticks inside the view are drawn
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                texts.pop(id(tick.label1), None)
                texts.pop(id(tick.label2), None)
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) * 1e-9
            for tick in axis.get_major_ticks():
                label = tick.label1
                if lo - span <= tick.get_loc() <= hi + span and label.get_visible() and label.get_text().strip():
                    texts[id(label)] = label
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts.values()]


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


@pytest.mark.slow
@pytest.mark.parametrize("model", PRESETS + ("vgg16",) + GRAPHS)
def test_no_text_overlaps_and_all_text_is_inside_the_figure(model):
    cost = preset(model).cost()
    timings = timings_from_dict(fake_timings(model, batches=(1, 32, 128, 256)))
    for fig in (shares_figure(cost, timings), memory_figure(cost)):
        boxes = text_boxes(fig)
        assert len(boxes) > 2 * len(share_rows(cost))
        frame = fig.bbox
        for label, box in boxes:
            assert frame.x0 - 0.5 <= box.x0 and box.x1 <= frame.x1 + 0.5, label
            assert frame.y0 - 0.5 <= box.y0 and box.y1 <= frame.y1 + 0.5, label
            assert box.height >= 9, label   # at least 7-point text at 100 dpi
        clashes = [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if overlaps(ba, bb)]
        assert clashes == []


# -- the docs' figures: time against MACs, the roofline, a training step, the two-GPU split ------------

def docs_figures():
    """Each of the docs' own figures, drawn from small inputs whose numbers the tests below work out."""
    from alexcost.hardware import CATALOG, predict
    from alexcost.hardware.roofline import Peaks
    from alexcost.render.plot import roofline_figure, step_memory_figure, time_share_figure, two_gpu_figure
    from alexcost.training import training_cost

    roofs = [("GTX 580", CATALOG["gtx580"].peaks("float32")), ("CPU", Peaks(0.165e12, 12.7e9, "test", "test")),
             ("H200", CATALOG["h200"].peaks("float32"))]
    step = training_cost(preset("paper"), batch=128)
    return {"time": time_share_figure(preset("seed").cost(), timings_from_dict(fake_timings("seed"))),
            "roofline": roofline_figure(preset("paper").cost(), roofs, [("fc6 at batch 17", 8.4)]),
            "step": step_memory_figure(step),
            "two": two_gpu_figure(preset("paper").cost(batch=128), predict(step, "gtx580", gpus=2))}


def test_time_share_figure_puts_each_row_at_its_mac_and_time_shares():
    from alexcost.render.plot import time_share_figure

    cost = preset("seed").cost()
    timings = timings_from_dict(fake_timings("seed", batches=(1,)))
    fig = time_share_figure(cost, timings)
    points = [tuple(p) for p in fig.axes[0].collections[0].get_offsets()]
    rows = share_rows(cost, timings)
    conv2 = next(i for i, r in enumerate(rows) if r.name == "conv2")
    # conv2's MACs by hand; its time: layers conv2 (index 4) and relu2 (5) take 5 and 6 ms of 1 + ... + 23
    assert points[conv2][0] == pytest.approx(100 * CONV_MACS[1] / SEED_MACS)
    assert points[conv2][1] == pytest.approx(100 * (5 + 6) / sum(range(1, 24)))
    assert len(points) == len(rows)


def test_roofline_places_each_layer_at_flops_over_bytes_on_the_chosen_roof():
    from alexcost.hardware import CATALOG
    from alexcost.render.plot import roofline_figure, roofline_points

    points = {name: x for name, _, x in roofline_points(preset("paper").cost())}
    fc6_flops, fc6_bytes = 2 * 9216 * 4096 + 4096, 4 * (9216 * 4096 + 4096 + 9216 + 4096)
    assert points["fc6"] == pytest.approx(fc6_flops / fc6_bytes)
    assert "flatten" not in points and "drop6" not in points          # they move nothing
    fig = roofline_figure(preset("paper").cost(), [("GTX 580", CATALOG["gtx580"].peaks("float32"))])
    roof = fig.axes[0].lines[0].get_xydata()
    peak = 512 * 1544e6 * 2  # the GTX 580's 512 cores at 1544 MHz: 1.581 TFLOP/s
    assert roof[1][0] == pytest.approx(peak / 192.4e9) and roof[1][1] == pytest.approx(peak / 1e12)
    fc = next(note for note in fig.axes[0].texts if "fc6" in note.get_text().split(", "))
    assert fc.get_text() == "fc8, fc7, fc6"                 # within 15% of each other: one label
    x, y = fc.xy
    assert x == pytest.approx(fc6_flops / fc6_bytes, rel=0.01) and y == pytest.approx(x * 192.4e9 / 1e12)


def test_step_memory_timeline_walks_forward_then_back_and_peaks_where_the_model_does():
    from alexcost.training import training_cost

    step = training_cost(preset("paper"), batch=2)
    m = step.memory
    names = [r.name for r in step.layers]
    assert [name for phase, name, _ in m.timeline if phase == "forward"] == names
    assert [name for phase, name, _ in m.timeline if phase == "backward"] == names[::-1]
    assert max(b for _, _, b in m.timeline) + m.resident == max(m.peak, m.resident + m.forward_peak)
    # conv1's high point: the input batch and conv1's output, nothing else yet (float32, batch 2)
    assert m.timeline[0] == ("forward", "conv1", 2 * 4 * (3 * 227 * 227 + 96 * 55 * 55))


def test_two_gpu_figure_names_what_crosses_between_the_gpus():
    from matplotlib.text import Text

    words = [t.get_text() for t in docs_figures()["two"].findobj(Text)]
    assert "21.1 MiB\neach way" in words                   # conv3 reads 256 maps of 13 x 13: 128 * 256*13*13 * 4 B
    assert f"{128 * 256 * 13 * 13 * 4 / 2**20:.1f}" == "21.1"
    assert "4.5 MiB\neach way" in words and f"{128 * 256 * 6 * 6 * 4 / 2**20:.1f}" == "4.5"   # fc6
    assert words.count("conv2") == 2 and "128×27×27" in words   # one box per GPU, each with half the kernels


@pytest.mark.parametrize("name", ["time", "roofline", "step", "two"])
def test_the_docs_figures_keep_their_text_apart_and_inside(name):
    fig = docs_figures()[name]
    boxes = text_boxes(fig)
    frame = fig.bbox
    for label, box in boxes:
        assert frame.x0 - 0.5 <= box.x0 and box.x1 <= frame.x1 + 0.5, label
        assert frame.y0 - 0.5 <= box.y0 and box.y1 <= frame.y1 + 0.5, label
    clashes = [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if overlaps(ba, bb)]
    assert clashes == []


# -- the command's errors ----------------------------------------------------------------------------

def run_cli(*args, cwd=None):
    code = f"import sys; from alexcost_cli.main import main; main({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_missing_matplotlib_is_one_line_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from alexcost_cli.main import main; "
            f"main(['plot', '--out', {str(tmp_path / 'x.png')!r}])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "error: plotting needs matplotlib: pip install 'alexcost[plot]'\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--out", "figure.eps"], "error: --out must name a .png, .svg or .pdf file, got 'figure.eps'"),
    (["--out", ".png"], "error: --out must name a .png, .svg or .pdf file, got '.png'"),
    (["--timings", "nope.json"], "error: cannot read timings file 'nope.json': No such file or directory"),
])
def test_bad_arguments_fail_in_one_line_and_write_nothing(tmp_path, args, message):
    done = run_cli("plot", *args, cwd=tmp_path)
    assert (done.returncode, done.stderr, done.stdout) == (2, message + "\n", "")
    assert list(tmp_path.iterdir()) == []


def test_timings_of_another_model_are_refused(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(fake_timings("seed")))
    done = run_cli("plot", "--model", "paper", "--timings", "t.json", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, "error: t.json was recorded for model 'seed', not 'paper'; "
                                                 "pass the --model or --spec that was timed\n")
    unnamed = fake_timings("torchvision")
    del unnamed["model"]
    (tmp_path / "t.json").write_text(json.dumps(unnamed))
    done = run_cli("plot", "--model", "seed", "--timings", "t.json", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: t.json: layer 'features_0' at batch 1 is not a layer of 'seed'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_networks_too_long_to_draw_are_refused(tmp_path):
    spec = {"name": "long", "input_shape": [4], "layers": [{"type": "ReLU"}] * 301}
    (tmp_path / "long.json").write_text(json.dumps(spec))
    done = run_cli("plot", "--spec", "long.json", "--all-layers", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, "error: plot --all-layers draws one row per layer, at most 300; "
                                                 "'long' has 301 layers (without --all-layers, rows are folded "
                                                 "and grouped into blocks)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json"]
    done = run_cli("plot", "--spec", "long.json", "--out", "long.svg", cwd=tmp_path)   # one row: relu0 + 300 more
    assert done.returncode == 0, done.stderr


def test_networks_without_parameters_still_draw(tmp_path):
    (tmp_path / "flat.json").write_text(json.dumps({"name": "flat", "input_shape": [4],
                                                    "layers": [{"type": "ReLU"}]}))
    done = run_cli("plot", "--spec", "flat.json", "--out", "flat.svg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert svg_size_pt(tmp_path / "flat-memory.svg")[0] == WIDTH_IN * 72


def test_default_file_names_stay_in_the_current_folder(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({"name": "../../evil name", "input_shape": [4],
                                                    "layers": [{"type": "Linear", "out_features": 2}]}))
    done = run_cli("plot", "--spec", "spec.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alexcost-evil_name-memory.png", "alexcost-evil_name.png",
                                                          "spec.json"]


def test_importing_the_plot_module_does_not_import_matplotlib():
    code = "import sys, alexcost.render.plot, alexcost_cli.plot; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "False\n"
