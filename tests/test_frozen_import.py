"""An imported module's ``requires_grad=False`` parameters, carried into its training step, against torch.

torch's reference is a real CPU step: FlopCounterMode's backward FLOPs, the bytes saved_tensors_hooks
sees (tests/module_step.py), and which parameters get a ``.grad``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.training import training_cost  # noqa: E402
from module_step import agree  # noqa: E402


def _backward_flops(module, x) -> int:
    module.train()
    out = module(x)
    with FlopCounterMode(display=False) as counter:
        out.backward(torch.randn(out.shape))
    return counter.get_total_flops()


def test_resnet18_with_all_but_fc_frozen():
    torchvision = pytest.importorskip("torchvision")
    module = torchvision.models.resnet18(num_classes=10)
    for name, p in module.named_parameters():
        p.requires_grad = name.startswith("fc.")
    theirs = _backward_flops(module, torch.randn(1, 3, 64, 64))
    assert theirs == 2 * 512 * 10  # fc's weight gradient only: nothing before it needs one
    imported = from_module(module.eval(), (3, 64, 64))
    for given in (imported, imported.network):
        cost = training_cost(given, 1, device="cpu")
        assert cost.torch_backward_flops == theirs
        assert cost.trainable_params == 512 * 10 + 10 == sum(p.numel() for p in module.parameters() if p.requires_grad)
        assert cost.grad_bytes == 4 * cost.trainable_params
        assert "fc" not in cost.frozen and "conv1" in cost.frozen


def test_frozen_flags_add_to_the_ones_given():
    torchvision = pytest.importorskip("torchvision")
    module = torchvision.models.resnet18(num_classes=10)
    module.conv1.weight.requires_grad = False
    imported = from_module(module.eval(), (3, 64, 64))
    cost = training_cost(imported, 1, frozen=["fc.bias"])
    assert cost.frozen[0] == "conv1" and cost.frozen[-1] == "fc.bias"
    assert cost.trainable_params == sum(p.numel() for p in module.parameters()) - 3 * 64 * 49 - 10


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 5)
        self.scale = nn.Parameter(torch.rand(4, 1, 1) + 0.5)

    def forward(self, x):
        y = torch.relu(self.conv1(x)) * self.scale
        return self.fc(torch.relu(self.conv2(y)).flatten(1))


@pytest.mark.parametrize("frozen", [(), ("conv1.bias",), ("conv1.weight",), ("conv1.weight", "conv1.bias"),
                                    ("conv1.weight", "conv1.bias", "scale"), ("fc.bias",), ("conv2.weight",),
                                    ("scale",), ("conv1.weight", "conv1.bias", "scale", "conv2.bias")])
@pytest.mark.parametrize("batch", [1, 2])
def test_each_parameter_frozen_alone_or_together_matches_torch(frozen, batch):
    torch.manual_seed(0)
    module = Blocks()
    for name in frozen:
        module.get_parameter(name).requires_grad = False
    theirs, ours = agree(module, (3, 6, 6), batch)
    assert theirs.refused is None and ours == theirs
    cost = training_cost(from_module(module, (3, 6, 6)), batch, device="cpu")
    module.train()
    module(torch.randn(batch, 3, 6, 6)).sum().backward()
    got = sum(p.numel() for p in module.parameters() if p.grad is not None)
    assert cost.trainable_params == got and cost.grad_bytes == 4 * got


def test_a_layer_whose_bias_alone_is_frozen():
    module = Blocks()
    module.conv2.bias.requires_grad = False
    imported = from_module(module, (3, 6, 6))
    assert imported.network.modes.frozen == ("conv2.bias",)
    cost = training_cost(imported, 1)
    assert cost.frozen == ("conv2.bias",)
    assert cost["conv2"].grads.weight and not cost["conv2"].grads.bias


def test_everything_frozen_is_refused_as_torch_refuses_it():
    module = Blocks()
    for p in module.parameters():
        p.requires_grad = False
    theirs, ours = agree(module, (3, 6, 6))
    assert "does not require grad" in theirs.refused and "does not require grad" in ours.refused


def test_training_cost_refuses_what_is_not_a_network():
    with pytest.raises(SpecError, match="training_cost takes a Network.*got int"):
        training_cost(3)


FACTORY = '''
import torch
from torch import nn


def make():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    model[0].requires_grad_(False)
    return model
'''


def test_the_command_line_trains_a_module_with_its_frozen_parameters(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from alexcost_cli.main import cli

    (tmp_path / "frozen_factory.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(cli, ["train", "--module", "frozen_factory:make", "--input-shape", "3,6,6",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["frozen"] == ["0"] and data["totals"]["trainable_params"] == 4 * 6 * 6 * 5 + 5
    exported = CliRunner().invoke(cli, ["export", "--module", "frozen_factory:make", "--input-shape", "3,6,6"])
    assert exported.exit_code == 0 and "warning: the spec file holds the layers only" in exported.stderr
