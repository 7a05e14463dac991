"""Torch modules read by from_module and trained by alexcost, against a real CPU step: random
modules, and in-place operations written as statements or through views.

Each module's forward runs a random program over a list of tensors (tests/module_step.py
runs the step): module calls (Conv2d, Linear, ReLU) and the same ops in functional, method and
in-place spellings, in-place statements whose result is dropped (``y.relu_()``, ``y += z``,
``y.mul_(self.g)``), in place through a view (``y.flatten(1).relu_()``), views and reshapes
(flatten, view, reshape, transpose, permute, contiguous), residual adds and products,
concatenations, and learned scales. Shapes stay small: C channels of S x S.

For every module: torch's step runs exactly when alexcost counts one (a step torch refuses,
such as a tensor kept for the backward pass and then modified in place, or a view of a
transposed tensor, is refused), and where both run, the forward FLOPs and backward FLOPs
(FlopCounterMode) and the saved bytes (saved_tensors_hooks, each storage once) are equal.

CI draws a few dozen modules; ``ALEXCOST_RANDOM_MODULES=5000`` draws that many.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

F = torch.nn.functional

from module_step import agree, alexcost_step, torch_step  # noqa: E402
from strategies import Program, module_programs  # noqa: E402

COUNT = int(os.environ.get("ALEXCOST_RANDOM_MODULES", "40"))


@pytest.mark.slow
@settings(max_examples=COUNT, deadline=None, suppress_health_check=list(HealthCheck), derandomize=COUNT <= 100)
@given(module_programs())
def test_random_modules_match_a_real_training_step(drawn):
    c, s, program, out, convs, fcs, merges, scales, batch = drawn
    torch.manual_seed(0)
    module = Program(c, s, list(program), out, convs, fcs, merges, scales)
    theirs, ours = torch_step(module, (c, s, s), batch), alexcost_step(module, (c, s, s), batch)
    if theirs.refused:
        assert ours.refused, f"torch refuses ({theirs.refused}); alexcost counts {ours}\n{program}"
    else:
        assert not ours.refused, f"alexcost refuses a step torch runs: {ours.refused}\n{program}"
        assert ours == theirs, f"{program}"


# == in-place statements and writes through views ==================================================
# In-place operations written as statements, and in place through views, read by from_module and
# trained by alexcost, against a real training step on the CPU.
#
# torch mutates the tensor it writes into: ``y.relu_()`` with its result dropped still changes
# ``y`` for every later reader, and writing into a view (``y.flatten(1).relu_()``) changes its
# base, which autograd gives a new history. Each case runs one real step (tests/module_step.py):
# torch's forward FLOPs, backward FLOPs (FlopCounterMode) and saved bytes (saved_tensors_hooks,
# each storage once) must equal alexcost's, and a step torch refuses (a tensor kept for the
# backward pass, modified in place) must be refused.


C, H = 4, 3  # channels, side
SHAPE = (C, H, H)


class Net(nn.Module):
    """A convolution (its output requires grad), a layer scale, and ``body`` as forward."""

    def __init__(self, body):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, padding=1)
        self.conv2 = nn.Conv2d(C, C, 1)
        self.g = nn.Parameter(torch.rand(C, 1, 1) + 0.5)
        self.relu = nn.ReLU(inplace=True)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def _statement_relu(self, x):
    y = self.conv(x)
    y.relu_()
    return torch.cat([y, x], 1)


def _functional_inplace_then_iadd(self, x):
    out = self.conv(x)
    F.relu(out, inplace=True)
    out += x
    return out


def _mul_by_parameter_in_place(self, x):
    y = F.relu(x)
    y.mul_(self.g)
    return y


def _relu_through_flatten(self, x):
    y = self.conv(x)
    y.flatten(1).relu_()
    return y


def _relu_through_flatten_twice(self, x):
    y = self.conv(x)
    y.flatten(1).relu_()
    y.flatten(1).relu_()
    return y


def _silu_statement(self, x):
    y = self.conv(x)
    F.silu(y, inplace=True)
    return torch.cat([y, x], 1)


def _module_statement(self, x):
    y = self.conv(x)
    self.relu(y)
    return self.conv2(y) + x


def _view_read_after_base_written(self, x):
    y = self.conv(x)
    v = y.flatten(1)
    y.relu_()
    return v.view(v.size(0), C, H, H) * self.g


def _through_transpose(self, x):
    y = self.conv(x)
    y.transpose(2, 3).relu_()
    return self.conv2(y)


def _through_permute(self, x):
    y = self.conv(x)
    y.permute(0, 2, 3, 1).relu_()
    return y * self.g


def _copy_not_view(self, x):
    y = self.conv(x)
    y.transpose(2, 3).flatten(1).relu_()  # flatten of a transposed tensor copies: y is untouched
    return torch.cat([y, x], 1)


def _input_written(self, x):
    x.relu_()
    return self.conv(x)


def _kept_then_written(self, x):
    y = self.conv(x)
    z = y * self.g  # keeps y for g's gradient
    y.relu_()
    return z


def _torch_relu_(self, x):
    y = self.conv(x)
    torch.relu_(y)
    return y + x


def _add_method_statement(self, x):
    y = self.conv(x)
    y.add_(x)
    return torch.cat([y, self.conv2(y)], 1)


def _chunk_written(self, x):
    a, b = self.conv(x).chunk(2, 1)
    b.relu_()
    return torch.cat([a, b], 1)


def _dropout_statement(self, x):
    y = self.conv(x)
    F.dropout(y, 0.5, self.training, inplace=True)
    return torch.cat([y, x], 1)


def _iadd_into_view_base_read(self, x):
    y = self.conv(x)
    v = y.view(y.size(0), -1)
    v += x.flatten(1)
    return self.conv2(y)


def _view_made_before_its_base_required_grad(self, x):
    v = x.flatten(1)  # a view of the input, which requires no grad
    x.mul_(self.g)  # now it does
    v.relu_()  # torch: "a leaf Variable that requires grad is being used in an in-place operation"
    return self.conv(x)


def _contiguous_made_before_its_base_required_grad(self, x):
    c = x.contiguous()  # the input itself (it is contiguous), not a view of it
    x.mul_(self.g)  # now it requires grad, and so does c: the same tensor
    c.relu_()
    return self.conv(x)


def _contiguous_read_after_its_base_required_grad(self, x):
    c = x.contiguous()
    x.mul_(self.g)
    c.relu_()
    return self.conv(c)


def _view_of_a_learned_base(self, x):
    y = self.conv(x)
    v = y.flatten(1)
    y.mul_(self.g)
    v.relu_()
    return y


CASES = [_statement_relu, _functional_inplace_then_iadd, _mul_by_parameter_in_place, _relu_through_flatten,
         _relu_through_flatten_twice, _silu_statement, _module_statement, _view_read_after_base_written,
         _through_transpose, _through_permute, _copy_not_view, _input_written, _kept_then_written, _torch_relu_,
         _add_method_statement, _chunk_written, _dropout_statement, _iadd_into_view_base_read,
         _view_made_before_its_base_required_grad, _view_of_a_learned_base,
         _contiguous_made_before_its_base_required_grad, _contiguous_read_after_its_base_required_grad]

TORCH_REFUSES = {"_functional_inplace_then_iadd", "_relu_through_flatten_twice", "_kept_then_written",
                 "_chunk_written", "_view_made_before_its_base_required_grad"}


@pytest.mark.parametrize("body", CASES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("batch", [1, 2])
def test_in_place_matches_a_real_step(body, batch):
    theirs, ours = agree(Net(body), SHAPE, batch)
    assert bool(theirs.refused) == (body.__name__ in TORCH_REFUSES), theirs.refused  # the case is what it says
    if theirs.refused:
        assert ours.refused, f"torch refuses ({theirs.refused}), alexcost counts {ours}"
    else:
        assert ours == theirs


def test_statement_rewires_later_readers():
    """The issue's case: conv -> y.relu_() -> cat([y, x]) reads the ReLU, and its kept output counts."""
    from alexcost.torch_bridge import from_module
    from alexcost.training import training_cost

    imported = from_module(Net(_statement_relu), SHAPE)
    assert imported.network.inputs_of(2) == ("relu_", "input")
    step = training_cost(imported.network, 1, device="cpu")
    element = 4
    assert step.saved_bytes == 2 * C * H * H * element  # the conv's input and the ReLU's output


def test_refusal_names_both_layers():
    from alexcost import SpecError
    from alexcost.torch_bridge import from_module
    from alexcost.training import training_cost

    imported = from_module(Net(_functional_inplace_then_iadd), SHAPE)
    with pytest.raises(SpecError, match=r"'add' \(Add\) modifies in place a tensor that 'relu' \(ReLU\) keeps"):
        training_cost(imported.network, 1, device="cpu")


def test_base_read_after_writing_a_view_is_the_view_undone():
    """y.flatten(1).relu_(); return y: y's new value is a view of the ReLU's output (no copy, no op)."""
    from alexcost.torch_bridge import from_module

    imported = from_module(Net(_relu_through_flatten), SHAPE)
    kinds = [type(layer).__name__ for layer in imported.network.layers]
    assert kinds == ["Conv2d", "Flatten", "ReLU", "View"]
    assert imported.network.output_shape == SHAPE
    cost = imported.cost()
    assert cost.totals.other_ops == C * H * H  # the ReLU's, one per element (the conv's bias adds are apart)
