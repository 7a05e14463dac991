"""What the commands write: ``--summary`` (the answer in a few lines, and first in the full output),
``--format html`` (one self-contained page), an ``--out`` extension the command cannot write, ``plot``'s
PDF, and memory in one language (binary units, stated; the activation total called a sum)."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli

SEED_PARAMS, SEED_MACS = 62_369_152, 1_135_256_096
FC6 = 9216 * 4096  # the seed's fc6: 256*6*6 inputs, 4096 outputs, no bias


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def one_error_line(args, *fragments):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# -- --summary ------------------------------------------------------------------------------------------

def test_report_summary_gives_totals_and_what_dominates():
    lines = run("report", "--summary").stdout.splitlines()
    assert len(lines) <= 6
    assert lines[0] == "seed: input 3x227x227, batch 1, float32"
    assert lines[1].startswith(f"parameters: {SEED_PARAMS:,} (62.4 million); conv 6%, FC 94%; most: fc6 "
                               f"{100 * FC6 / SEED_PARAMS:.1f}%")
    assert lines[2].startswith(f"MACs: {SEED_MACS:,} (1.14 billion); conv 95%, FC 5%; most: conv2")
    conv2 = 256 * 27 * 27 * 96 * 5 * 5  # 5x5 on 96 maps of 27x27 (padding 2), 256 filters
    assert lines[2].endswith(f"most: conv2 {100 * conv2 / SEED_MACS:.1f}%")


def test_train_says_the_verdict_first():
    summary = run("train", "--gpu", "h100", "--summary").stdout.splitlines()
    assert len(summary) <= 7
    assert summary[0] == "seed: training step of batch 128, float32, optimizer momentum"
    assert summary[1].startswith("fits on H100 (SXM5): ") and summary[1].endswith(" of 80 GiB per GPU (memory model)")
    assert summary[2].startswith("step: ") and " ms expected (time model; bound " in summary[2]
    full = run("train", "--gpu", "h100").stdout.splitlines()
    assert full[:len(summary)] == summary  # the full output starts with the same answer
    alone = run("train", "--summary").stdout.splitlines()
    assert alone[1].startswith("peak memory (model): ") and "give --gpu" in alone[1]


def test_a_step_that_does_not_fit_says_so_first():
    lines = run("train", "--model", "vgg16", "--batch", "512", "--gpu", "gtx580", "--summary").stdout.splitlines()
    assert lines[1].startswith("DOES NOT FIT on GeForce GTX 580")


def test_predict_gives_the_time_first():
    summary = run("predict", "--gpu", "v100", "--summary").stdout.splitlines()
    assert summary[0].startswith("seed on Tesla V100") and summary[1].startswith("expected: ")
    assert summary[2].startswith("most time: ")
    assert run("predict", "--gpu", "v100").stdout.splitlines()[:3] == summary


@pytest.mark.parametrize("command", [["report"], ["train"], ["predict", "--gpu", "v100"]])
def test_summary_is_text(command):
    one_error_line([*command, "--summary", "--format", "json"], "--summary gives a few lines of text")


# -- html ------------------------------------------------------------------------------------------------

class Page(HTMLParser):
    """What a page holds: its tags, the attributes that could fetch something, its images."""

    def __init__(self):
        super().__init__()
        self.tags, self.fetches, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "data", "action", "srcset") or (name == "style" and "url(" in (value or "")):
                (self.images if tag == "img" and name == "src" else self.fetches).append(value)


def assert_self_contained(text: str) -> Page:
    page = Page()
    page.feed(text)
    assert text.startswith("<!DOCTYPE html>") and page.tags.count("table") >= 1
    assert page.fetches == [] and "script" not in page.tags and "link" not in page.tags
    assert page.images and all(src.startswith("data:image/svg+xml;base64,") for src in page.images)
    assert "@import" not in text and "url(" not in text
    for src in page.images:  # inside each figure, only XML namespaces name an address
        svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        addresses = set(re.findall(r"https?://[^\"'\s<>]+", svg))
        assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, addresses
    return page


@pytest.mark.parametrize("command", [["report"], ["train", "--gpu", "h100"], ["predict", "--gpu", "h100"],
                                     ["report", "--model", "seed", "--model", "paper"],
                                     ["train", "--batch", "32,64"], ["predict", "--gpu", "h100", "--batch", "1,8"]])
def test_html_is_one_self_contained_page(tmp_path, command):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.html"
    result = run(*command, "--out", out)
    assert result.stdout == "" and result.stderr.endswith(f"wrote {out} (html)\n")
    assert_self_contained(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("command", [["report"], ["train", "--batch", "1,2"]])
def test_html_without_matplotlib_is_one_line(tmp_path, command):
    from not_installed import without

    out = tmp_path / "r.html"
    done = without({"matplotlib"}, *command, "--out", out)
    assert (done.returncode, done.stdout) == (2, "") and not out.exists()
    assert done.stderr == (f"error: alexcost {command[0]} needs matplotlib, which is not installed: "
                           f"pip install 'alexcost[plot]'\n")


def test_the_report_page_holds_the_table_and_its_numbers():
    pytest.importorskip("matplotlib")
    text = run("report", "--format", "html").stdout
    page = assert_self_contained(text)
    assert len(page.images) == 2                                   # the shares and the memory figures
    assert f"{SEED_PARAMS:,} = 62.4 million" in text and "Forward Computation" in text
    conv1 = (11 * 11 * 3 + 1) * 96
    assert f"<td class=\"left\">(11*11*3 + 1)*96 = {conv1:,}</td>" in text  # conv1's parameters, as the seed writes them


# -- --out's extension ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["report"], ["train"], ["predict", "--gpu", "v100"], ["export"],
                                     ["verify"]])
def test_an_extension_the_command_cannot_write_is_one_line(tmp_path, command):
    out = tmp_path / "r.pdf"
    one_error_line([*command, "--out", out], "cannot write '.pdf' files", "--out takes")
    assert not out.exists()


@pytest.mark.parametrize("name, fmt", [("r.txt", "table"), ("r.md", "markdown"), ("r.htm", "html"),
                                       ("r.json", "json")])
def test_the_extension_picks_the_format(tmp_path, name, fmt):
    if fmt == "html":
        pytest.importorskip("matplotlib")
    out = tmp_path / name
    assert run("train", "--out", out).stderr == f"wrote {out} ({fmt})\n"


@pytest.mark.slow
def test_plot_writes_pdf(tmp_path):
    pytest.importorskip("matplotlib")
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    assert run("plot", "--out", first).stdout == f"wrote {first}\nwrote {tmp_path / 'a-memory.pdf'}\n"
    run("plot", "--out", second)
    for a, b in ((first, second), (tmp_path / "a-memory.pdf", tmp_path / "b-memory.pdf")):
        assert a.read_bytes().startswith(b"%PDF-") and a.read_bytes() == b.read_bytes()  # byte-identical


# -- memory in one language ------------------------------------------------------------------------------

DECIMAL = re.compile(r"\d (kB|MB|GB|TB)\b(?!/)")  # sizes; rates (GB/s) stay decimal


@pytest.mark.parametrize("command", [["report"], ["report", "--format", "detail"], ["train", "--gpu", "h100"],
                                     ["train", "--model", "paper", "--gpu", "gtx580", "--gpus", "2"],
                                     ["predict", "--gpu", "h100"]])
def test_memory_is_in_binary_units_everywhere(command):
    text = run(*command).stdout
    # the spec sheet's source and a card's product name ("GeForce GTX 580 (3 GB)") are quoted as published
    text = re.sub(r"\(\d+ GB\)", "", "\n".join(line for line in text.splitlines() if not line.startswith("source:")))
    assert not DECIMAL.search(text), DECIMAL.search(text)
    assert "binary units (1 MiB = 1,048,576 bytes)" in text or command[0] == "predict"


def test_the_report_footer_names_the_activation_total_a_sum():
    footer = run("report").stdout.splitlines()[-1]
    weights = 4 * SEED_PARAMS
    assert footer.startswith(f"Memory in binary units (1 MiB = 1,048,576 bytes): weights {weights / 2**20:.1f} MiB, "
                             f"activations ")
    assert "summed over tensors, not a peak" in footer


def test_train_and_its_hardware_state_the_peak_alike():
    data = json.loads(run("train", "--gpu", "h100", "--format", "json").stdout)
    peak = f"{data['hardware']['memory_per_gpu'] / 2**30:.2f} GiB"
    text = run("train", "--gpu", "h100").stdout
    assert f"peak {peak} in the" in text and f"memory per GPU (model): {peak} of 80 GiB: fits" in text
