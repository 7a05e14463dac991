"""``torch.square`` and ``x.square()`` (``x.square_()`` in place), which torch computes as ``x ** 2``: read as a
`Scalar` ``pow`` 2 and checked against torch on the CPU (output shape, parameters, a training step's FLOPs and
saved bytes, `module_step`), timm's SquaredReLU among them; the counts by hand arithmetic; a square of a
parameter alone read once per pass.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Scalar  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, both_refuse, read_as_torch_runs_it, refused_at_the_node, step_agrees  # noqa: E402


def _square_in_place(self, y):
    z = y + 1
    z.square_()
    return z


CALLS = {  # spelling -> (the call, the Scalars it reads as (op, value, inplace))
    "torch.square": (lambda self, y: torch.square(y), [("pow", 2, False)]),
    "x.square()": (lambda self, y: y.square(), [("pow", 2, False)]),
    "SquaredReLU (timm's)": (lambda self, y: torch.square(torch.relu(y)), [("pow", 2, False)]),
    "square of an in-place ReLU": (lambda self, y: torch.square(nn.functional.relu(y, inplace=True)),
                                   [("pow", 2, False)]),
    "square then its input again": (lambda self, y: y.square() + y, [("pow", 2, False)]),
    "x.square_()": (_square_in_place, [("add", 1, False), ("pow", 2, True)]),
    "torch.square_": (lambda self, y: torch.square_(y * 2), [("mul", 2, False), ("pow", 2, True)]),
    "square times a parameter": (lambda self, y: torch.square(y) * self.w, [("pow", 2, False)]),
}


def _scalars(imported):
    return [(layer.op, layer.value, layer.inplace) for layer in imported.network.layers if isinstance(layer, Scalar)]


@pytest.mark.parametrize("call", CALLS)
def test_each_spelling_reads_as_torch_runs_it(call):
    forward, expected = CALLS[call]
    assert _scalars(read_as_torch_runs_it(lambda: Around(forward, own=True), (5, 6))) == expected


def test_torch_computes_square_as_pow_two():
    """The premise of reading it as ``x ** 2``: torch's backward node is pow's, with the exponent 2, keeping
    the input."""
    x = torch.randn(3, requires_grad=True)
    for y in (torch.square(x), x.square(), x.clone().square_()):
        assert type(y.grad_fn).__name__ == "PowBackward0" and y.grad_fn._saved_exponent == 2


def test_a_write_in_place_into_what_relu_keeps_is_refused_as_torch_refuses_it():
    both_refuse(Around(lambda self, y: y.relu().square_(), own=True), (5, 6), "modified by an inplace operation")


def test_counts_by_hand():
    """Per sample of (5, 6): one op per element forward; backward ``grad * 2 * x ** 1``, 3 per element."""
    imported = from_module(Around(CALLS["torch.square"][0], own=True), (5, 6))
    layer = next(layer for layer in imported.network.layers if isinstance(layer, Scalar))
    x, batch = (5, 6), 3
    assert layer.other_ops(x, x) == 5 * 6
    assert layer.backward_other_ops(x, x, Grads((True,), False, False), batch) == 3 * batch * 5 * 6


def test_a_square_of_a_parameter_alone_runs_once_per_pass_as_torch_runs_it():
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6))

        def forward(self, x):
            return x * torch.square(self.w)

    step_agrees(Module(), (5, 6), 3)
    assert from_module(Module(), (5, 6)).cost(batch=3).totals.other_ops == 6 + 3 * 5 * 6  # the square once


def test_a_square_with_an_argument_it_does_not_take_is_refused():
    refused_at_the_node(lambda x: torch.square(x, out=None), (5, 6), r"square.*has an argument 'out'")
