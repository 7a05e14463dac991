"""``x.dtype`` and ``x.to(dtype)`` in a float32 module, and the sizes of a tensor computed once per pass.

A module whose parameters are float32, run on a float32 input, computes every activation in float32:
alexcost reads ``x.dtype`` there as ``torch.float32`` and ``x.to(torch.float32)`` (``x.to(x.dtype)``) as the
tensor itself, as torch returns it; in a module of another dtype both are refused. ``t.shape`` of a tensor
computed from parameters alone (a position embedding resized) is its whole shape. Each module is checked
against torch on the CPU: forward MACs (FlopCounterMode), parameters, the output shape, and a training step.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import (Around, alexcost_step, forward_against_torch, read_as_torch_runs_it, step_agrees,  # noqa: E402
                         torch_attention_step)  # noqa: E402


class Scaled(nn.Module):
    """timm's EvoNorm pattern without its variance: parameters viewed and converted to the input's dtype."""

    def __init__(self, c=4):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.weight, self.bias = nn.Parameter(torch.randn(c)), nn.Parameter(torch.randn(c))

    def forward(self, x):
        x = self.conv(x)
        x_dtype = x.dtype
        y = x * (x * self.weight.view(1, -1, 1, 1).to(x_dtype)).sigmoid()
        return y.to(x_dtype) + self.bias.view(1, -1, 1, 1).to(dtype=x_dtype)


def test_dtype_and_to_in_a_float32_module_agree_with_torch():
    cost = forward_against_torch(Scaled(), (4, 5, 5), batch=2)
    assert cost.totals.macs == 2 * 4 * 5 * 5 * 4 * 3 * 3  # the convolution's alone: the conversions are none
    torch.manual_seed(0)
    step_agrees(Scaled(), (4, 5, 5))


def test_dtype_in_a_module_of_another_dtype_is_refused():
    with pytest.raises(SpecError, match=r"fx node 'getattr_1'\): reads the tensor's dtype in a module whose "
                                        r"parameters are \['torch.float64'\]"):
        from_module(Scaled().double(), (4, 5, 5))


@pytest.mark.parametrize("call, words", [
    (lambda y: y.to(torch.float16), r"converts .* to torch.float16; alexcost reads x.to\(dtype\) of a tensor made "
                                    r"from constants, or to float32 in a float32 module"),
    (lambda y: y.to("cuda:1"), r"converts with 'cuda:1'; alexcost reads x.to\(dtype\) and x.to\(device\) to the "
                               r"module's own device only"),
    (lambda y: y.to(torch.float32, copy=True), r"converts with copy=True; alexcost reads x.to\(dtype\)"),
])
def test_other_conversions_are_refused(call, words):
    """A named device other than the module's would be a copy to it: refused."""
    with pytest.raises(SpecError, match=r"method 'to' .*" + words):
        from_module(Around(call), (3, 6))


class ResizedEmbedding(nn.Module):
    """SAM 2's Hiera: a position embedding resized to the input, then tiled sizes computed from its shape."""

    def __init__(self, c=4):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 2, stride=2)
        self.pos = nn.Parameter(torch.randn(1, c, 3, 3))

    def forward(self, x):
        x = self.conv(x)
        pos = F.interpolate(self.pos, size=x.shape[2:], mode="bilinear")
        h, w = pos.shape[-2] // 2, pos.shape[-1] // 2  # the sizes of a tensor computed once per pass
        return x + pos * (h * w)


def test_the_sizes_of_a_tensor_computed_once_per_pass_are_its_own():
    """(8, 8) halved by the stride-2 convolution is (4, 4); the embedding resized to it gives h = w = 2."""
    imported = read_as_torch_runs_it(ResizedEmbedding, (3, 8, 8))
    scalar = next(layer for layer in imported.network.layers if type(layer).__name__ == "Scalar")
    assert scalar.value == (4 // 2) * (4 // 2)


NAFLEX = {"depth": 1, "embed_dim": 64, "num_heads": 2, "num_classes": 10}


def test_naflexvit_reads_exactly():
    """timm's NaFlexViT reads ``x.dtype`` in its embedding and converts the position embedding to it: as the
    timm survey compares it (on the meta device), and a CPU training step."""
    timm = pytest.importorskip("timm")
    from zoo_cases import assert_exact

    with torch.device("meta"):
        model = timm.create_model("naflexvit_base_patch16_parfac_gap", pretrained=False, **NAFLEX).eval()
    assert_exact(model, 32, "naflexvit_base_patch16_parfac_gap")
    torch.manual_seed(0)
    model = timm.create_model("naflexvit_base_patch16_parfac_gap", pretrained=False, **NAFLEX)
    theirs, ours = torch_attention_step(model, (3, 32, 32)), alexcost_step(model, (3, 32, 32))
    assert theirs.refused is None and ours == theirs, (theirs, ours)


def test_a_conversion_to_the_modules_own_device_is_the_tensor_itself():
    """``y.to("cpu")`` and ``y.to(device=w.device)`` in a module on the CPU: nothing is copied, as in torch."""
    for call in (lambda y: y.to("cpu"), lambda self, y: y.to(device=self.w.device) * self.w):
        module = Around(call, own=call.__code__.co_argcount == 2)
        forward_against_torch(module, (3, 6), batch=2)
        step_agrees(module, (3, 6), 2)
