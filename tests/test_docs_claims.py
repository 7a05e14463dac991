"""Claims the docs make in prose, each checked twice: the page says it (and no longer says
the wrong thing it used to), and the thing it says is true, measured on the tool it is
about (fvcore, ptflops, torchvision, pip's metadata) or worked out by hand.

The numbers in the AlexNet pages are checked by tests/test_alexnet_numbers.py and the
examples by tests/test_docs.py; this file holds the sentences.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from math import prod
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def page(name: str) -> str:
    """A page's text with every run of white space made one space (sentences span lines)."""
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


def tables(name: str) -> list[list[list[str]]]:
    """Every Markdown table on a page: its rows (header first) as stripped cells."""
    found, current = [], None
    for line in (DOCS / name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = []
            found.append(current)
        if not re.match(r"^\|[\s:|-]+\|$", line):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return found


def table_rows(name: str) -> list[list[str]]:
    """Every row of every table on a page."""
    return [row for table in tables(name) for row in table]


# -- fvcore: a module called twice; adaptive average pooling ------------------------------------------

def fvcore_by_module(module, x):
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return dict(analysis.by_module())


def test_fvcore_counts_both_calls_of_a_reused_module_under_its_first_name():
    torch = pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    counts = fvcore_by_module(torch.nn.Sequential(conv, torch.nn.ReLU(), conv), torch.randn(1, 8, 6, 6))
    one_call = 8 * 6 * 6 * 8 * 3 * 3
    assert counts["0"] == 2 * one_call and "2" not in counts
    text = page("verify.md")
    assert "fvcore counts both calls and files them under the name of the first" in text
    assert "fvcore counts its operations once" not in text


def test_fvcore_counts_adaptive_average_pooling_and_nothing_else_of_the_pools():
    torch = pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.AvgPool2d(2), torch.nn.MaxPool2d(2))
    counts = fvcore_by_module(net, torch.randn(1, 3, 8, 8))
    assert (counts["0"], counts["1"], counts["2"]) == (3 * 8 * 8, 0, 0)     # one per input element
    text = page("verify.md")
    assert "Neither counts bias adds, pooling," not in text
    assert "The one exception is adaptive average pooling, which fvcore counts" in text


# -- ptflops: its aten backend's hooks; its LRN count -------------------------------------------------

def test_ptflops_aten_backend_leaves_a_hook_and_a_pre_hook_on_every_leaf():
    torch = pytest.importorskip("torch")
    ptflops = pytest.importorskip("ptflops")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ptflops.get_model_complexity_info(model, (3, 8, 8), backend="aten", as_strings=False,
                                          print_per_layer_stat=False, verbose=False)
    leaves = [m for m in model.modules() if not list(m.children())]
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in leaves] == [(1, 1)] * len(leaves)
    row = next(r for r in table_rows("verify.md") if r[0] == "left on your module")
    assert row[6] == "a forward hook and a forward pre-hook on every leaf module"   # the aten backend's column


def test_ptflops_counts_lrn_as_a_padded_pooling_two_muls_and_an_add():
    torch = pytest.importorskip("torch")
    ptflops = pytest.importorskip("ptflops")
    for c, h in ((6, 12), (96, 27)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            macs, _ = ptflops.get_model_complexity_info(torch.nn.Sequential(torch.nn.LocalResponseNorm(5)), (c, h, h),
                                                        as_strings=False, print_per_layer_stat=False, verbose=False)
        padded = (c + 5 - 1) * h * h           # avg_pool3d's input: the squares, padded by size // 2 on each side
        assert macs == padded + 3 * c * h * h  # + input.mul(input), .mul(alpha), .add(k)
    row = next(r for r in table_rows("conventions.md") if r[0] == "`LocalResponseNorm`" and len(r) == 7)
    assert "two `mul` calls" in row[5] and "one `add`" in row[5] and "avg_pool3d" in row[5]


# -- conventions.md: one answer per layer kind --------------------------------------------------------

def per_element(cell: str) -> int | None:
    """alexcost's count per element as a cell states it: "0", "1", "1 per element", "3 per element"."""
    m = re.fullmatch(r"(\d+)(?: per element)?", cell.strip("` "))
    return int(m[1]) if m else None


def test_conventions_gives_each_kind_one_count():
    """Both tables of conventions.md (and verify.md's) agree with alexcost, kind by kind."""
    from alexcost import Dropout, Flatten, Network, ReLU, Sigmoid, Softmax, Tanh

    kinds = {"ReLU": ReLU(), "Tanh": Tanh(), "Sigmoid": Sigmoid(), "Softmax": Softmax(dim=1),
             "Dropout": Dropout(), "Flatten": Flatten()}
    n = 10
    truth = {name: Network((n,), [layer]).cost().totals.other_ops // n for name, layer in kinds.items()}
    assert truth == {"ReLU": 1, "Tanh": 1, "Sigmoid": 1, "Softmax": 3, "Dropout": 0, "Flatten": 0}
    stated: dict[str, set[int]] = {}
    columns = {"other_ops (per output element unless noted)": 4, "alexcost": 1}   # header cell -> its column
    for name in ("conventions.md", "verify.md"):
        for table in tables(name):
            column = next((k for header, k in columns.items() if len(table[0]) > k and table[0][k] == header), None)
            for row in table[1:] if column is not None else ():
                for kind in re.findall(r"`?(\w+)`?", row[0]):
                    value = per_element(row[column])
                    if kind in truth and value is not None:
                        stated.setdefault(kind, set()).add(value)
    assert set(stated) == set(truth), stated
    assert {kind: values for kind, values in stated.items() if values != {truth[kind]}} == {}


# -- quickstart.md: installing beside a CUDA torch ----------------------------------------------------

def test_quickstart_install_advice_keeps_the_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("click") for d in project["dependencies"])       # what --no-deps would lose
    torch_req = next(d for d in project["optional-dependencies"]["torch"] if d.startswith("torch"))
    assert re.fullmatch(r"torch>=[\d.]+", torch_req)                          # a range: an installed torch stays
    text = page("quickstart.md")
    assert "with `--no-deps`" not in text and "Do not add `--no-deps`" in text
    assert f"(`{torch_req}`)" in text
    assert "pip install '.[torch]' -c keep-torch.txt" in text


# -- seed-table.md: what the report copies and what it does not ---------------------------------------

SEED_CELLS = ("FC8 + Relu", "62.3 million", "1.1 billion", "Max Pooling", "Norm", "Dropout (rate 0.5)",
              "1000 classes", "Conv: 1.08 billion", "256 * 6 * 6")
"""Cells of the seed's table, quoted (the seed document is not part of the repository)."""


def test_seed_table_says_which_cells_differ_on_purpose():
    from click.testing import CliRunner

    from alexcost_cli.main import cli

    text = page("seed-table.md")
    assert "reproduces every cell" not in text
    report = CliRunner().invoke(cli, ["report", "--model", "seed"]).output
    rows = [r for r in table_rows("seed-table.md") if len(r) == 3 and r[0] != "the seed writes"]
    assert len(rows) >= 6
    for seed_side, ours, why in rows:
        for cell in re.findall(r"`([^`]+)`", seed_side):
            assert cell in SEED_CELLS, cell
        for cell in re.findall(r"`([^`]+)`", ours):
            assert cell in report, f"the report does not write {cell!r}"
        assert why
    assert "FC8 + Relu" not in report and "62.3 million" not in report and "1.1 billion" not in report
    assert re.search(r"^fc8 +1000", report, re.M)


# -- the paper, quoted right --------------------------------------------------------------------------

def test_fc8_erratum_quotes_the_paper_and_says_why_implementations_differ():
    text = page("seed-table.md")
    section = text[text.index("## fc8 has no ReLU"):text.index("## \"Forward Computation\"")]
    assert ('"The ReLU non-linearity is applied to the output of every convolutional and fully-connected '
            'layer"') in section
    for needed in ("1000-way softmax", "Caffe", "torchvision", "logits", "loss"):
        assert needed in section, needed


def test_no_preset_and_not_torchvision_puts_a_relu_after_fc8():
    from alexcost import PRESETS, preset

    for name in PRESETS:
        layers = preset(name).layers
        last_linear = max(i for i, layer in enumerate(layers) if type(layer).__name__ == "Linear")
        assert all(type(layer).__name__ != "ReLU" for layer in layers[last_linear:]), name
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.alexnet(weights=None)
    assert type(net.classifier[-1]).__name__ == "Linear"
    assert "One weird trick" in torchvision.models.alexnet.__doc__       # beyond-the-table.md's source 3


def test_two_gpu_gain_is_against_a_half_width_net():
    text = page("alexnet.md")
    assert ('"as compared with a net with half as many kernels in each convolutional layer trained on one GPU"'
            in text)
    assert "not with the same network ungrouped" in text


def test_ilsvrc_2012_result_is_an_ensemble_of_seven():
    alexnet, seed_table = page("alexnet.md"), page("seed-table.md")
    for text in (alexnet, seed_table):
        assert "18.2%" in text and "15.3%" in text and "seven" in text
        assert "a variant of it won" not in text and "for the variant that won" not in text
    assert "two of those pre-trained networks and the five others" in alexnet


def test_two_paper_sentences_lrn_and_batch_norm():
    text = page("beyond-the-table.md")
    assert ('"such normalisation does not improve the performance on the ILSVRC dataset, but leads to '
            'increased memory consumption and computation time"') in text
    for needed in ("data parallelism for the convolutional layers", "model parallelism for the fully connected",
                   "64-192-384-256-256", "cuda-convnet2", "folds into the weights"):
        assert needed in text, needed


def test_receptive_field_recurrence_reaches_195_at_pool5():
    """The recurrence, on the layers of the seed as written in the seed table (no alexcost involved)."""
    layers = [("conv1", 11, 4), ("pool1", 3, 2), ("conv2", 5, 1), ("pool2", 3, 2), ("conv3", 3, 1),
              ("conv4", 3, 1), ("conv5", 3, 1), ("pool5", 3, 2)]
    r, jump = 1, 1
    for _, k, s in layers:
        r, jump = r + (k - 1) * jump, jump * s
    assert (r, jump) == (195, 32)
    assert "| pool5 | 3 | 2 | 195 | 32 |" in (DOCS / "beyond-the-table.md").read_text()
    assert prod((6, 6)) == 36 and "36 overlapping patches" in page("beyond-the-table.md")


# -- timing.md: the roofline's reading, and the one CPU run it describes ---------------------------

def test_an_x_bound_below_one_is_read_as_peaks_too_low():
    text = page("timing.md")
    assert "An `x bound` below 1 means the peaks were too low" in text
    assert "not that the layer beat physics" in text


def test_h200_ridge_points_follow_from_its_spec_sheet():
    """The page's ridges (peak / bandwidth) worked out from the H200 datasheet's figures, written here."""
    fp32, tf32, bf16, bandwidth = 67e12, 494.5e12, 989.5e12, 4.8e12  # FLOP/s dense, B/s
    text = page("timing.md")
    assert "Whether conv is compute-bound at batch 1 depends on the device and the dtype" in text
    for ridge in (fp32, tf32, bf16):
        assert f"a ridge of {round(ridge / bandwidth)} FLOP/B" in text or \
            f"The ridge is {round(ridge / bandwidth)} FLOP/B" in text, round(ridge / bandwidth)
    # the conv intensities the page sets against them (bytes: float32 at batch 1, by hand for conv3)
    flops = 2 * 384 * 256 * 3 * 3 * 13 * 13 + 384 * 13 * 13
    moved = 4 * (256 * 13 * 13 + 384 * 256 * 3 * 3 + 384 + 384 * 13 * 13)
    assert round(flops / moved) == 75 < round(tf32 / bandwidth)
    assert "conv3, conv4 and conv5 (75 to 77 FLOP/B) are memory-bound" in text


def _cpu_run(n: int) -> dict:
    import json

    return json.loads((DOCS / "results" / "cpu-2core" / f"seed-run{n}.json").read_text())


def test_one_cpu_run_page_matches_its_committed_json():
    text, raw = page("timing.md"), (DOCS / "timing.md").read_text()
    runs = {n: _cpu_run(n) for n in (1, 2)}
    first = runs[1]
    assert first["settings"]["method"] == "loop" and "The method was `loop`" in text
    assert f"{first['peaks']['flops_per_s'] / 1e12:.3f} TFLOP/s and {first['peaks']['bytes_per_s'] / 1e9:.1f} GB/s" in text
    assert f"a ridge point of {first['peaks']['ridge_flop_per_byte']:.1f} FLOP/B" in text
    assert f"{first['settings']['launch_floor']['median_ms']:.4f} ms per call" in text
    second = runs[2]["peaks"]
    assert f"({second['flops_per_s'] / 1e12:.3f} TFLOP/s and {second['bytes_per_s'] / 1e9:.1f} GB/s)" in text
    for b in first["batches"]:  # the text table: network, sum of layers and each group's share
        groups = b["groups"]
        row = (f"{b['batch']:>7}  {b['network_ms']:>12.3f}  {b['layers_sum_ms']:>18.3f}  "
               f"{groups['conv']['time_share']:>13.1f}  {groups['fc']['time_share']:>11.1f}  "
               f"{groups['other']['time_share']:>14.1f}  {groups['conv']['mac_share']:>13.1f}  "
               f"{groups['conv']['param_share']:>15.1f}")
        assert row in raw, row
    both = next(t for t in tables("timing.md") if t[0][:2] == ["batch", "conv time % (run 1, run 2)"])
    shares = {row[0]: row[1:] for row in both[1:]}  # the two runs' shares, per batch
    for i, b in enumerate(first["batches"]):
        other = runs[2]["batches"][i]
        assert shares[str(b["batch"])] == [f"{b['groups'][g]['time_share']:.1f}, "
                                           f"{other['groups'][g]['time_share']:.1f}" for g in ("conv", "fc", "other")]
    conv1 = [next(r for r in runs[n]["batches"][1]["layers"] if r["name"] == "conv1") for n in (1, 2)]
    assert f"{conv1[0]['median_ms']:.1f} ms in the first run and {conv1[1]['median_ms']:.1f} ms in the second" in text
    fc6 = next(r for r in first["batches"][0]["layers"] if r["name"] == "fc6")
    assert round(fc6["bound_ratio"], 1) == 0.7 and "fc6 ran at 0.7 times its memory bound at batch 1" in text
    slowest = max(r2["median_ms"] / r1["median_ms"] for b1, b2 in zip(first["batches"], runs[2]["batches"])
                  for r1, r2 in zip(b1["layers"], b2["layers"]))
    assert f"up to {slowest:.1f} times the first run's" in text


# -- sentences that had gone stale --------------------------------------------------------------------

def all_pages() -> dict[str, str]:
    return {p.name: " ".join(p.read_text(encoding="utf-8").split())
            for p in [*DOCS.glob("*.md"), DOCS / "results" / "README.md", ROOT / "README.md"]}


def test_conventions_says_where_training_is_counted():
    """alexcost counts a training step now: the first layer's backward pass is its weight gradient
    alone (its input is the image, whose gradient nobody needs), in + out products."""
    from alexcost import Linear, Network
    from alexcost.training import training_cost

    assert training_cost(Network((20,), [Linear(out_features=10)])).backward_macs == 20 * 10
    text = page("conventions.md")
    assert "It does not count training" not in text
    assert "A training step is counted too, by `alexcost train`" in text and "(training.md)" in text


def test_linear_reads_any_input_and_verify_no_longer_asks_for_a_flatten():
    from alexcost import Linear, Network

    assert Network((7, 20), [Linear(out_features=10)]).cost().totals.macs == 7 * 20 * 10
    assert "asks for a Flatten first" not in page("verify.md")
    assert "Linear on a non-flat input" not in page("verify.md")


def test_torchinfo_counts_a_linear_once_per_sample_not_per_row():
    torch = pytest.importorskip("torch")
    torchinfo = pytest.importorskip("torchinfo")
    from alexcost import Linear, Network

    for shape, rows in (((1, 20), 1), ((1, 7, 20), 7)):
        counted = torchinfo.summary(torch.nn.Linear(20, 10), input_size=shape, verbose=0).total_mult_adds
        assert counted == 20 * 10 + 10                     # weights + biases, once per sample
        ours = Network(shape[1:], [Linear(out_features=10)]).cost().totals.forward
        assert ours == rows * (20 * 10 + 10)               # macs + bias adds, per row
    text = page("conventions.md")
    assert "for `Linear(20, 10)` it reports 210 where alexcost's `forward` is 1,470" in text
    row = next(r for r in table_rows("conventions.md") if r[0] == "`Linear`" and len(r) == 7)
    assert row[4] == "`macs + bias_adds` on a flat input; weights + biases once per sample on any other"


def test_version_labels_name_the_torch_the_suite_runs_on():
    """The side-by-side measurements are rerun by these tests on the torch the README pins."""
    pinned = re.search(r"torch==(\d+\.\d+\.\d+)", (ROOT / "README.md").read_text())[1]
    for name in ("conventions.md", "verify.md"):
        text = page(name)
        assert f"torch {pinned}" in text and "torch 2.13" not in text, name


def test_the_paper_is_cited_as_nips_2012():
    pages = all_pages()
    assert [name for name, text in pages.items() if "NeurIPS 2012" in text] == []
    assert "(NIPS 2012)" in pages["alexnet.md"]


def test_a_gtx_580_had_1_5_gb_and_the_papers_boards_3():
    from alexcost.hardware import CATALOG

    card = CATALOG["gtx580"]
    assert card.memory == 3 * 2**30 and "1.5 GB on NVIDIA's card, 3 GB on the boards" in card.source
    pages = all_pages()
    assert [name for name, text in pages.items() if "A GTX 580 had 3 GB" in text] == []
    assert "The paper's two GTX 580s had 3 GiB each (NVIDIA's reference GTX 580 had 1.5 GiB)" in pages["training.md"]
    assert "3 GB of memory each (NVIDIA's reference GTX 580 had 1.5 GB)" in pages["alexnet.md"]


def test_the_neurons_are_hedged():
    text = page("alexnet.md")
    assert "so the neurons are the 659,272 bias adds" not in text
    assert "The paper does not say how it counted its neurons. If a neuron is one output" in text


def test_alexnet_and_training_agree_that_a_step_would_fit_on_one_card():
    from alexcost import preset
    from alexcost.hardware import CATALOG
    from alexcost.training import training_cost

    assert training_cost(preset("paper"), batch=128).memory.peak < CATALOG["gtx580"].memory
    text = page("alexnet.md")
    assert "The network did not fit on one of the two GTX 580" not in text
    assert "a step of 128 images would fit on one such card" in text
    assert "says that the network was too big to fit on one of them" in text


def test_the_readme_synopses_name_real_options_and_the_ones_that_matter():
    """Each command's synopsis in the README names only options the command has, and names
    --input-shape and --training wherever the command takes them."""
    import click

    from alexcost_cli.main import cli

    readme = (ROOT / "README.md").read_text()
    root = click.Context(cli, info_name="alexcost")
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        options = {o for p in command.params if isinstance(p, click.Option) for o in p.opts}
        row = next(line for line in readme.splitlines() if line.startswith(f"| `alexcost {name}"))
        synopsis = row.split("`")[1]
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", synopsis))
        assert named <= options, (name, named - options)
        for wanted in ("--input-shape", "--training"):
            if wanted in options:
                assert wanted in named, (name, wanted)


def test_the_landing_page_names_every_kind_of_network_and_links_the_other_pages():
    text = page("index.md")
    assert "sequential CNN" not in text
    for target in ("training.md", "successors.md", "from-module.md", "graphs.md", "search.md"):
        assert f"]({target})" in text, target


def test_timing_quotes_the_verdicts_of_its_committed_run():
    """The verdict lines the page shows are the first CPU run's, word for word."""
    run = _cpu_run(1)
    text = page("timing.md")
    first = run["batches"][0]["verdict"]
    assert f"batch 1's reads: {first}." in text
    for line in run["verdict"]:
        assert f"- {line}" in text, line


# -- text for readers ---------------------------------------------------------------------------------

def test_the_docs_speak_to_readers():
    """No instructions for the tools the project was built with, no paths outside the repository, and
    no history of who wrote what."""
    for name, text in all_pages().items():
        for phrase in ("device tool", "../shared", "carry=", "sessions that wrote", "The sessions",
                       "/work/", "worked before)"):
            assert phrase not in text, (name, phrase)
