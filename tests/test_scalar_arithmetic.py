"""Arithmetic of a tensor with a Python number (`Scalar`), read from torch modules in every spelling and
checked against torch on the CPU: the output's shape, FlopCounterMode's forward and backward FLOPs and the
bytes autograd keeps in a training step (`module_step`); a hypothesis property over random ops, numbers
and shapes; the counts by hand arithmetic; and what stays refused.
"""

from __future__ import annotations

import operator
from math import prod

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from alexcost import Network, Scalar, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, both_refuse, read_as_torch_runs_it, refused_at_the_node, step_agrees  # noqa: E402


def _iadd(y):
    y += 1e-6
    return y


def _isub(y):
    y -= 2
    return y


def _itruediv(y):
    y /= 4
    return y


def _ipow(y):
    y **= 2
    return y


CALLS = {  # spelling -> (the call, the Scalars it reads as (op, value, inplace))
    "x * c": (lambda y: y * 0.5, [("mul", 0.5, False)]),
    "c * x": (lambda y: 0.5 * y, [("mul", 0.5, False)]),
    "x * 1": (lambda y: y * 1, [("mul", 1, False)]),
    "x + 0": (lambda y: y + 0, [("add", 0, False)]),
    "c + x": (lambda y: 3 + y, [("add", 3, False)]),
    "x - c": (lambda y: y - 2, [("sub", 2, False)]),
    "c - x": (lambda y: 1 - y, [("rsub", 1, False)]),
    "x / c": (lambda y: y / 3.0, [("div", 3.0, False)]),
    "x ** 2": (lambda y: y ** 2, [("pow", 2, False)]),
    "x ** 0": (lambda y: y ** 0, [("pow", 0, False)]),
    "torch.mul": (lambda y: torch.mul(y, 2), [("mul", 2, False)]),
    "torch.add": (lambda y: torch.add(y, 1.5), [("add", 1.5, False)]),
    "torch.sub": (lambda y: torch.sub(y, 1.5), [("sub", 1.5, False)]),
    "torch.div": (lambda y: torch.div(y, 8), [("div", 8, False)]),
    "torch.true_divide": (lambda y: torch.true_divide(y, 8), [("div", 8, False)]),
    "torch.pow": (lambda y: torch.pow(y, 3), [("pow", 3, False)]),
    "c ** x": (lambda y: 2 ** y, [("rpow", 2, False)]),
    "torch.div, rounded down": (lambda y: torch.div(y, 2, rounding_mode="floor"), [("floordiv", 2, False)]),
    "x.div, rounded down": (lambda y: y.div(0.5, rounding_mode="floor") * y, [("floordiv", 0.5, False)]),
    "methods": (lambda y: y.mul(2).add(1).sub(3).div(2).pow(2), [("mul", 2, False), ("add", 1, False),
                                                               ("sub", 3, False), ("div", 2, False),
                                                               ("pow", 2, False)]),
    "in place methods": (lambda y: y.mul_(2).add_(1).sub_(3).div_(2),
                         [("mul", 2, True), ("add", 1, True), ("sub", 3, True), ("div", 2, True)]),
    "x.pow_(2)": (lambda y: (y + 0).pow_(2), [("add", 0, False), ("pow", 2, True)]),
    "x += c": (lambda y: _iadd(y), [("add", 1e-6, True)]),
    "x -= c": (lambda y: _isub(y), [("sub", 2, True)]),
    "x /= c": (lambda y: _itruediv(y), [("div", 4, True)]),
    "x **= c": (lambda y: _ipow(y), [("pow", 2, True)]),
    "a size's scale": (lambda y: y * y.size(-1) ** -0.5, [("mul", 6 ** -0.5, False)]),
}


def _scalars(imported):
    return [(layer.op, layer.value, layer.inplace) for layer in imported.network.layers if isinstance(layer, Scalar)]


@pytest.mark.parametrize("call", CALLS)
def test_each_spelling_reads_as_torch_runs_it(call):
    forward, expected = CALLS[call]
    assert _scalars(read_as_torch_runs_it(lambda: Around(forward), (5, 6))) == expected


def test_a_write_in_place_into_what_autograd_keeps_is_refused_as_torch_refuses_it():
    """ReLU keeps its output; ``pow_`` overwrites it: torch's backward fails, alexcost refuses the step."""
    both_refuse(Around(lambda y: y.relu().pow_(2)), (5, 6), "modified by an inplace operation")


OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv, "pow": operator.pow}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from([*OPS, "rsub"]), value=st.one_of(st.integers(-3, 3), st.floats(-4, 4, width=32)),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), inplace=st.booleans(), reuse=st.booleans())
def test_random_arithmetic_matches_torch(op, value, shape, inplace, reuse):
    """Random op, number and shape, in place or not, its input read again afterwards or not: the
    output's shape, a training step's FLOPs and saved bytes as torch's; other ops one per element."""
    if op == "pow":
        value = abs(value)  # a negative power of a value near 0 is inf: torch runs it, the test would not compare
    inplace = inplace and op != "rsub"
    features = shape[-1]

    def call(y):
        if op == "rsub":
            out = value - y
        elif inplace:
            out = getattr(y, f"{op}_")(value)
        else:
            out = OPS[op](y, value)
        return out + y if reuse else out

    module = Around(call, features)
    shape = (*shape[:-1], features)
    imported = from_module(module.eval(), shape)
    scalar = next(layer for layer in imported.network.layers if isinstance(layer, Scalar))
    assert (scalar.op, scalar.value, scalar.inplace) == (op, value, inplace)
    assert scalar.other_ops(shape, shape) == prod(shape)           # one op per element, whatever the op
    out = module(torch.randn(2, *shape))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    step_agrees(module, shape)


def test_counts_by_hand():
    """Per element: one op forward; backward 0 for add and sub (the gradient passes on), 1 for rsub (a
    negation), mul and div (by the number), 3 for pow (``grad * n * x ** (n - 1)``), 0 for ``x ** 0``, 2 for
    rpow (``grad * (y * log(c))``), 0 for floordiv (torch's gradient is zeros)."""
    x, batch, grads = (3, 4, 5), 2, Grads((True,), False, False)
    n = batch * 3 * 4 * 5
    expected = {"add": 0, "sub": 0, "rsub": n, "mul": n, "div": n, "pow": 3 * n, "rpow": 2 * n, "floordiv": 0}
    for op, ops in expected.items():
        layer = Scalar(op=op, value=2)
        assert layer.output_shape(x) == x
        assert layer.other_ops(x, x) == 3 * 4 * 5 and layer.macs(x, x) == 0
        assert layer.fvcore_count(x, x) == 0 and layer.torch_flops(x, x) == 0
        assert layer.backward_other_ops(x, x, grads, batch) == ops, op
        assert layer.backward_other_ops(x, x, Grads((False,), False, False), batch) == 0
    assert Scalar(op="pow", value=0).backward_other_ops(x, x, grads, batch) == 0


def test_a_network_of_scalars_costs_as_the_formulas_say():
    net = Network((4, 6), [Scalar(op="mul", value=0.5), Scalar(op="pow", value=2, inplace=True),
                           Scalar(op="rsub", value=1)])
    cost = net.cost(batch=3)
    assert cost.totals.other_ops == 3 * (3 * 4 * 6)
    assert cost.totals.params == 0
    assert cost.totals.stored_bytes == 2 * (3 * 4 * 6) * 4    # the in-place pow writes into the mul's output


def test_the_torch_module_built_from_a_scalar_computes_it():
    from alexcost.torch_bridge.modules import torch_module

    x = torch.randn(2, 3)
    for op, fn in (("add", lambda t: t + 2), ("sub", lambda t: t - 2), ("rsub", lambda t: 2 - t),
                   ("mul", lambda t: t * 2), ("div", lambda t: t / 2), ("pow", lambda t: t ** 2),
                   ("rpow", lambda t: 2 ** t), ("floordiv", lambda t: torch.div(t, 2, rounding_mode="floor"))):
        for inplace in (False, True) if op not in ("rsub", "rpow") else (False,):
            y = x.clone()
            out = torch_module(Scalar(op=op, value=2, inplace=inplace), (3,))(y)
            assert torch.equal(out, fn(x)), (op, inplace)
            assert (out.data_ptr() == y.data_ptr()) == inplace


@pytest.mark.parametrize("forward, message", [
    (lambda x: x * x.size(0), r"function 'mul' .* its argument 'other' depends on the batch size"),
    (lambda x: 2 / x, r"function 'truediv' .* computes 2 / a tensor \(the number first\)"),
    (lambda x: x ** x.relu(), r"function 'pow' .* computes pow of two tensors"),
    (lambda x: x // x.relu(), r"function .floordiv. .* no layer kind for floordiv on a tensor"),
    (lambda x: torch.div(x, 2, rounding_mode="trunc"), r"rounding_mode='trunc' is not read by alexcost"),
    (lambda x: x.div_(2, rounding_mode="floor"), r"rounding_mode='floor' is not read by alexcost"),
    (lambda x: torch.div(x, x.relu(), rounding_mode="floor"), r"rounding_mode='floor' is not read by alexcost"),
    (lambda x: x.add(1, alpha=2), r"alpha=2 is not read by alexcost"),
    (lambda x: x * (1, 2), r"computes mul of a tensor and \(1, 2\)"),
])
def test_what_cannot_be_read_is_refused_at_the_node(forward, message):
    refused_at_the_node(forward, (5, 6), message)


def test_a_parameter_scaled_by_a_number_runs_once_per_pass_as_torch_runs_it():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.ones(6))

        def forward(self, x):
            return x * (self.p * 2)

    step_agrees(Scaled(), (5, 6), 3)
    assert from_module(Scaled(), (5, 6)).cost(batch=3).totals.other_ops == 6 + 3 * 5 * 6  # the scale once


@pytest.mark.parametrize("args, message", [
    (dict(op="mod", value=2), r"op must be one of"),
    (dict(op="mul", value="2"), r"value must be a number, got '2'"),
    (dict(op="mul", value=True), r"value must be a number, got True"),
    (dict(op="mul", value=float("nan")), r"value must be finite"),
    (dict(op="rsub", value=1, inplace=True), r"rsub \(value - x\) has no in-place form"),
])
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(SpecError, match=message):
        Scalar(**args)
