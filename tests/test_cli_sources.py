"""Networks from anywhere on the command line: ``--module PKG.MOD:FACTORY``, ``--torchvision NAME``
and ``--timm NAME`` beside ``--model`` and ``--spec``, on every network command; what a torch file
given as a spec gets; refusals in one line. Expected counts come from torch (the modules' own
parameters) or from arithmetic written out here."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alexcost_cli.main import cli
from not_installed import without

torch = pytest.importorskip("torch")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
TINY_PARAMS = (3 * 3 * 3 + 1) * 8 + (8 * 8 * 8 + 1) * 10
TINY_MACS = 8 * 16 * 16 * 3 * 3 * 3 + 8 * 8 * 8 * 10


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_error_line(result, *fragments) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def alexcost(*args, cwd=ROOT):
    """A real process, as a user runs it (not the test's interpreter: sys.path as the command's)."""
    return subprocess.run([sys.executable, "-m", "alexcost", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


# -- --module ---------------------------------------------------------------------------------------------

def test_module_counts_what_torch_holds():
    result = run("report", "--module", "cli_models:tiny_cnn", "--input-shape", "3,16,16", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    import cli_models

    assert data["model"] == "tiny_cnn" and data["input_shape"] == [3, 16, 16]
    assert data["totals"]["params"] == sum(p.numel() for p in cli_models.tiny_cnn().parameters()) == TINY_PARAMS
    assert data["totals"]["macs"] == TINY_MACS
    assert data["output_shape"] == [10]


@pytest.mark.slow
def test_module_from_the_current_folder_in_a_real_process():
    """The console script's sys.path has no current folder; --module looks there first, as python -m does."""
    done = alexcost("report", "--module", "tests.cli_models:Shared", "--input-shape", "4,8,8", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["totals"]["params"] == (3 * 3 * 4 + 1) * 4          # the convolution counted once
    assert data["totals"]["macs"] == 2 * 4 * 8 * 8 * 4 * 3 * 3      # and run twice


def test_a_module_is_read_in_eval_mode():
    """alexcost counts inference: a forward that tests self.training is read as eval() runs it."""
    data = json.loads(run("report", "--module", "cli_models:TrainingBranch", "--input-shape", "3,8,8",
                          "--format", "json").stdout)
    assert [row["type"] for row in data["layers"]] == ["Conv2d"]
    assert data["totals"]["macs"] == 4 * 6 * 6 * 3 * 3 * 3


def test_module_needs_an_input_shape():
    one_error_line(run("report", "--module", "cli_models:tiny_cnn"), "--module cli_models:tiny_cnn needs "
                                                                      "--input-shape")


@pytest.mark.parametrize("name, fragments", [
    ("cli_models", ["--module takes PKG.MOD:FACTORY", "'cli_models'"]),
    ("cli_models:", ["--module takes PKG.MOD:FACTORY"]),
    ("cli models:tiny_cnn", ["--module takes PKG.MOD:FACTORY"]),
    ("no_such_package.models:make", ["cannot import 'no_such_package.models'", "no module named 'no_such_package'",
                                     "PYTHONPATH"]),
    ("cli_models:missing", ["module 'cli_models' has no 'missing'"]),
    ("cli_models:TINY", ["module 'cli_models' has no 'TINY'"]),
    ("cli_models:broken", ["cli_models:broken() raised ValueError: no weights for this size"]),
    ("cli_models:not_a_module", ["cli_models:not_a_module() returned int, not a torch.nn.Module"]),
])
def test_a_module_that_cannot_be_had_is_one_line(name, fragments):
    one_error_line(run("report", "--module", name, "--input-shape", "3,16,16"), *fragments)


def test_a_refusal_names_the_node_in_one_line():
    line = one_error_line(run("report", "--module", "cli_models:cumulative", "--input-shape", "3,8,8"))
    assert "cumsum" in line and "fx node" in line


def test_every_network_command_reads_a_module(tmp_path):
    shape = ("--input-shape", "3,16,16")
    verify = run("verify", "--module", "cli_models:tiny_cnn", *shape, "--no-fvcore", "--format", "json")
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.stdout)["ok"] is True
    train = run("train", "--module", "cli_models:tiny_cnn", *shape, "--batch", "4", "--format", "json")
    assert train.exit_code == 0, train.output
    assert json.loads(train.stdout)["totals"]["trainable_params"] == TINY_PARAMS
    predict = run("predict", "--module", "cli_models:tiny_cnn", *shape, "--gpu", "v100", "--format", "json")
    assert predict.exit_code == 0 and json.loads(predict.stdout)["model"] == "tiny_cnn"
    spec = tmp_path / "tiny.json"
    assert run("export", "--module", "cli_models:tiny_cnn", *shape, "--out", spec).exit_code == 0
    again = json.loads(run("report", "--spec", spec, "--format", "json").stdout)
    assert again["totals"]["params"] == TINY_PARAMS and again["totals"]["macs"] == TINY_MACS
    timed = run("time", "--module", "cli_models:tiny_cnn", *shape, "--device", "cpu", "--batch", "1",
                "--warmup", "0", "--repeats", "1", "--peak-tflops", "1", "--bandwidth-gbs", "10", "--format", "json")
    assert timed.exit_code == 0, timed.output
    assert [b["batch"] for b in json.loads(timed.stdout)["batches"]] == [1]


def test_a_single_network_command_refuses_two():
    one_error_line(run("verify", "--model", "seed", "--module", "cli_models:tiny_cnn"),
                   "alexcost verify reads one network; got 2 (--model, --module)")


# -- --torchvision and --timm ------------------------------------------------------------------------

def test_torchvision_model_with_the_input_its_weights_were_made_for():
    import torchvision

    result = run("report", "--torchvision", "resnet18", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    crop = torchvision.models.ResNet18_Weights.DEFAULT.transforms().crop_size  # one side: a square
    assert data["input_shape"] == [3, *crop * 2] == [3, 224, 224]
    assert data["totals"]["params"] == sum(p.numel() for p in torchvision.models.resnet18().parameters())


def test_a_torchvision_segmenter_downloads_no_backbone(monkeypatch):
    """A builder that takes ``weights_backbone`` gets None: random weights throughout, nothing fetched."""
    import torchvision

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", no_download)
    result = run("report", "--torchvision", "lraspp_mobilenet_v3_large", "--input-shape", "3,64,64", "--format",
                 "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)
    assert data["totals"]["params"] == sum(p.numel() for p in model.parameters())
    assert data["output_shape"] == [21, 64, 64]


def test_torchvision_default_input_from_the_weights_transforms():
    import torchvision.models as zoo

    from alexcost.torch_bridge.bridge import default_input_shape

    inception = zoo.Inception_V3_Weights.DEFAULT.transforms().crop_size
    assert default_input_shape("torchvision", "inception_v3", None) == (3, *inception * 2) == (3, 299, 299)
    segmenter = zoo.segmentation.FCN_ResNet50_Weights.DEFAULT.transforms().resize_size
    assert default_input_shape("torchvision", "fcn_resnet50", None) == (3, *segmenter * 2) == (3, 520, 520)
    assert default_input_shape("torchvision", "r3d_18", None) is None      # a clip's frames: not in the weights


def test_a_video_model_asks_for_its_input():
    one_error_line(run("report", "--torchvision", "r3d_18"), "--torchvision r3d_18 needs --input-shape")


def test_timm_model_with_its_config_input():
    timm = pytest.importorskip("timm")
    result = run("report", "--timm", "resnet18", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    model = timm.create_model("resnet18", pretrained=False)
    assert data["input_shape"] == list(model.pretrained_cfg["input_size"]) == [3, 224, 224]
    assert data["totals"]["params"] == sum(p.numel() for p in model.parameters())


def test_a_timm_model_with_its_own_norm_layers():
    """timm's BatchNormAct2d tests self.training in its forward: the model is read in eval mode."""
    timm = pytest.importorskip("timm")
    data = json.loads(run("report", "--timm", "mobilenetv3_small_050", "--input-shape", "3,64,64", "--format",
                          "json").stdout)
    model = timm.create_model("mobilenetv3_small_050", pretrained=False)
    assert data["totals"]["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("option, name, suggestion", [("--torchvision", "resnet19", "resnet18"),
                                                      ("--timm", "resnet18x", "resnet18")])
def test_an_unknown_model_name_suggests_close_ones(option, name, suggestion):
    pytest.importorskip(option[2:])
    one_error_line(run("report", option, name), f"has no model {name!r}", f"did you mean {suggestion}")


# -- torch missing, a torch file as a spec -------------------------------------------------------------

@pytest.mark.parametrize("option, value, missing", [("--module", "tests.cli_models:tiny_cnn", "torch"),
                                                     ("--torchvision", "resnet18", "torch"),
                                                     ("--timm", "resnet18", "torch")])
def test_torch_missing_is_one_line(option, value, missing):
    done = without({"torch", "torchvision", "timm", "fvcore"}, "report", option, value, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: alexcost report {option} needs {missing}, which is not installed")
    assert "pip install 'alexcost[torch]'" in done.stderr


@pytest.mark.slow
def test_timm_missing_names_timm():
    done = without({"timm"}, "report", "--timm", "resnet18", cwd=ROOT)
    assert done.returncode == 2 and done.stderr == ("error: alexcost report --timm needs timm, which is not "
                                                    "installed: pip install timm\n")


@pytest.mark.parametrize("name, save", [("model.pt", "module"), ("weights.pth", "state"), ("checkpoint", "state")])
def test_a_torch_file_given_as_a_spec_says_what_it_is(tmp_path, name, save):
    import cli_models

    path = tmp_path / name
    model = cli_models.tiny_cnn()
    torch.save(model if save == "module" else model.state_dict(), path)
    line = one_error_line(run("report", "--spec", path), "is a file torch saves", "not a spec file",
                          "--module PKG.MOD:FACTORY")
    assert "never loads pickles" in line


# -- a kind registered in Python, read from a real model on the command line --------------------------

@pytest.mark.slow
def test_a_registered_kind_reads_its_module_from_the_command_line():
    """docs/examples/prelu_net.py registers PReLU with reads="torch.nn.PReLU" and builds a model with two."""
    done = alexcost("report", "--module", "docs.examples.prelu_net:model", "--input-shape", "3,32,32", "--format",
                    "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    from alexcost import LAYER_KINDS

    sys.path.insert(0, str(ROOT))
    kinds = dict(LAYER_KINDS)
    try:
        from docs.examples import prelu_net

        model = prelu_net.model()
        source = inspect.getsource(prelu_net.PReLU)
    finally:
        sys.path.remove(str(ROOT))
        LAYER_KINDS.clear()
        LAYER_KINDS.update(kinds)
        sys.modules.pop("docs.examples.prelu_net", None)
    assert [row["type"] for row in data["layers"]][:2] == ["Conv2d", "PReLU"]
    assert data["totals"]["params"] == sum(p.numel() for p in model.parameters()) == 5435
    prelu = data["layers"][1]
    assert prelu["params"] == 16 and prelu["other_ops"] == 2 * 16 * 32 * 32
    trained = alexcost("verify", "--training", "--module", "docs.examples.prelu_net:model", "--input-shape",
                       "3,32,32", "--batch", "2", "--format", "json")
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr
    assert json.loads(trained.stdout)["ok"] is True
    page = (ROOT / "docs" / "custom-layers.md").read_text()
    assert source[source.index("class PReLU"):] in page  # the page shows the kind the file holds
