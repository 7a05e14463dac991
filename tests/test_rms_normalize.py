"""RMSNorm (``nn.RMSNorm``, ``F.rms_norm``) and Normalize (``F.normalize``) read from torch modules, against
torch on the CPU: output shape and parameters, FlopCounterMode's forward count, and a training step's forward
and backward FLOPs and saved bytes (`module_step`), on contiguous and transposed inputs, with the weight
trained or frozen. Their other ops are checked by hand arithmetic, written out in each test.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import Normalize, RMSNorm, SpecError  # noqa: E402
from alexcost.layers import Grads, TrainContext  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree, refused_at_the_node  # noqa: E402


class Around(nn.Module):
    """A projection before and after each call, so the step has products to count and gradients to pass."""

    def __init__(self, call, norm=None):
        super().__init__()
        self.call, self.norm = call, norm
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 5)
        self.w = nn.Parameter(torch.randn(8))
        self.w2 = nn.Parameter(torch.randn(6, 8))

    def forward(self, x):
        return self.b(self.call(self, self.a(x)))


CALLS = {
    "F.rms_norm with a weight": (lambda m, y: F.rms_norm(y, (8,), m.w, 1e-6), None),
    "F.rms_norm": (lambda m, y: F.rms_norm(y, [8]), None),
    "F.rms_norm over two dims": (lambda m, y: F.rms_norm(y, (6, 8), m.w2), None),
    "F.rms_norm of a transposed input": (lambda m, y: F.rms_norm(y.transpose(1, 2), (6,)).transpose(1, 2), None),
    "nn.RMSNorm": (lambda m, y: m.norm(y), lambda: nn.RMSNorm(8)),
    "nn.RMSNorm, frozen weight": (lambda m, y: m.norm(y), lambda: nn.RMSNorm(8).requires_grad_(False)),
    "nn.RMSNorm of a transposed input": (lambda m, y: m.norm(y.transpose(1, 2)).transpose(1, 2), lambda: nn.RMSNorm(6)),
    "nn.RMSNorm without weight": (lambda m, y: m.norm(y), lambda: nn.RMSNorm(8, elementwise_affine=False)),
    "F.normalize last dim": (lambda m, y: F.normalize(y, dim=-1), None),
    "F.normalize dim 1, times the input": (lambda m, y: F.normalize(y, dim=1) * y, None),
    "F.normalize p=1": (lambda m, y: F.normalize(y, p=1, dim=2), None),
    "F.normalize of a transposed input": (lambda m, y: F.normalize(y.transpose(1, 2), dim=1).transpose(1, 2), None),
}


def build(name):
    call, norm = CALLS[name]
    torch.manual_seed(0)
    return Around(call, norm() if norm else None)


@pytest.mark.parametrize("name", CALLS)
def test_training_step_matches_torch(name):
    theirs, ours = agree(build(name), (6, 8))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("name", CALLS)
def test_forward_shape_params_and_flops_are_torchs(name):
    module = build(name).eval()
    imported = from_module(module, (6, 8))
    with FlopCounterMode(display=False) as counter:
        out = module(torch.randn(2, 6, 8))
    net = imported.network
    assert (2, *net.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in module.parameters())
    per_sample = sum(layer.torch_flops(x, y) for layer, x, y in zip(net.layers, net.input_shapes, net.output_shapes))
    assert 2 * per_sample == counter.get_total_flops()


@pytest.mark.parametrize("first", [nn.RMSNorm(8), nn.RMSNorm(8, elementwise_affine=False)])
def test_a_first_layer_keeps_only_what_its_weight_needs(first):
    torch.manual_seed(0)
    theirs, ours = agree(nn.Sequential(first, nn.Linear(8, 5)), (6, 8))
    assert theirs.refused is None and ours == theirs


def test_other_ops_by_hand():
    """Per sample of (6, 8), 6 rows of 8. RMSNorm: a square and a multiply per element (and the weight's), per
    row 7 adds, a divide, the eps add and a root. Normalize along the last dim: the 2-norm squares, adds and
    roots (2 per element), a clamp per row, a divide per element; the 1-norm one add fewer per row."""
    x = (6, 8)
    assert RMSNorm(normalized_shape=8).other_ops(x, x) == 3 * 48 + 6 * (7 + 3)
    assert RMSNorm(normalized_shape=8, elementwise_affine=False).other_ops(x, x) == 2 * 48 + 6 * (7 + 3)
    assert RMSNorm(normalized_shape=(6, 8)).other_ops(x, x) == 3 * 48 + 1 * (47 + 3)
    assert Normalize(dim=2).other_ops(x, x) == 2 * 48 + 6 + 48
    assert Normalize(dim=2, p=1).other_ops(x, x) == (48 + 6 * 7) + 6 + 48


def test_cuda_saved_tensors_are_refused():
    grads = Grads((True,), True, False)
    for layer in (RMSNorm(normalized_shape=8), Normalize(dim=2)):
        with pytest.raises(SpecError, match="on cuda depends on the kernel"):
            layer.saved_tensors((6, 8), (6, 8), grads, TrainContext(batch=2, itemsize=4, device="cuda"))


@pytest.mark.parametrize("forward, message", [
    (lambda x: F.normalize(x, p=3, dim=1), r"p=3: alexcost counts the 1- and 2-norms only"),
    (lambda x: F.normalize(x, dim=0), r"dim=0 is the batch dimension"),
    (lambda x: F.rms_norm(x, (6,)), r"expected an input whose last 1 dimension\(s\) are \[6\]"),
])
def test_what_cannot_be_read_is_refused_at_the_node(forward, message):
    refused_at_the_node(forward, (6, 8), message)


def test_a_weight_of_another_shape_is_refused_as_torch_refuses_it():
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return F.rms_norm(x, (8,), self.w)

    with pytest.raises(SpecError, match=r"'w' has shape \[4\], not normalized_shape \[8\]"):
        from_module(Module(), (6, 8))
    with pytest.raises(RuntimeError):
        Module()(torch.randn(2, 6, 8))
