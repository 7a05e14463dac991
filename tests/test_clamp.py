"""``torch.clamp`` with Python-number bounds (`Clamp`) in every spelling (``torch.clip``, ``x.clamp_``,
``x.clamp_min``, ...), read from torch modules and checked against torch on the CPU: output shape and values of
the module built back from the layer, parameters, a training step's FLOPs and saved bytes (`module_step`); a
hypothesis property over random bounds and shapes; the counts by hand arithmetic; a tensor bound refused, a clamp
of a parameter alone read once per pass.
"""

from __future__ import annotations

from math import prod

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from alexcost import Clamp, Network, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, both_refuse, read_as_torch_runs_it, refused_at_the_node, step_agrees  # noqa: E402


def _through_view(y):
    z = y * 1
    z.transpose(1, 2).clamp_(max=0.5)
    return z + y


def _in_place(y):
    z = y * 2
    z.clamp_(-0.5, 0.5)
    return z


CALLS = {  # spelling -> (the call, the Clamps it reads as (min, max, inplace))
    "torch.clamp": (lambda y: torch.clamp(y, -1, 1), [(-1, 1, False)]),
    "torch.clamp(min=)": (lambda y: torch.clamp(y, min=0.0), [(0.0, None, False)]),
    "torch.clip(max=)": (lambda y: torch.clip(y, max=0.25), [(None, 0.25, False)]),
    "x.clamp": (lambda y: y.clamp(-0.5, 2), [(-0.5, 2, False)]),
    "x.clip": (lambda y: y.clip(0, 6), [(0, 6, False)]),
    "x.clamp_min": (lambda y: y.clamp_min(1e-3), [(1e-3, None, False)]),
    "x.clamp_max": (lambda y: y.clamp_max(0.1), [(None, 0.1, False)]),
    "torch.clamp_min": (lambda y: torch.clamp_min(y, 0), [(0, None, False)]),
    "x.clamp_ in place": (_in_place, [(-0.5, 0.5, True)]),
    "torch.clamp_": (lambda y: torch.clamp_(y * 2, max=1.0), [(None, 1.0, True)]),
    "x.clamp_min_": (lambda y: (y + 1).clamp_min_(0.5), [(0.5, None, True)]),
    "clamp, then its input again": (lambda y: y.clamp(-1, 1) + y, [(-1, 1, False)]),
    "clamp of a transposed view": (lambda y: y.transpose(1, 2).clamp(-1, 1).transpose(1, 2), [(-1, 1, False)]),
    "clamp_ through a transposed view": (lambda y: _through_view(y), [(None, 0.5, True)]),
    "a bound from the input's size": (lambda y: y.clamp(max=y.shape[-1] / 12), [(None, 0.5, False)]),
}


def _clamps(imported):
    return [(layer.min, layer.max, layer.inplace) for layer in imported.network.layers if isinstance(layer, Clamp)]


@pytest.mark.parametrize("call", CALLS)
def test_each_spelling_reads_as_torch_runs_it(call):
    forward, expected = CALLS[call]
    assert _clamps(read_as_torch_runs_it(lambda: Around(forward), (5, 6))) == expected


@pytest.mark.parametrize("name, inplace", [("hard_mish", False), ("hard_mish", True), ("hard_sigmoid", True)])
def test_timm_activations_written_with_clamp_read_as_torch_runs_them(name, inplace):
    """timm's ``hard_mish`` (``0.5 * x * (x + 2).clamp(0, 2)``) and in-place ``hard_sigmoid``
    (``x.add_(3.).clamp_(0., 6.).div_(6.)``), after a projection whose output they may overwrite."""
    activations = pytest.importorskip("timm.layers.activations")
    function = getattr(activations, name)
    torch.manual_seed(0)
    step_agrees(Around(lambda y: function(y * 1, inplace=inplace)), (5, 6))


def test_a_clamp_in_place_of_what_relu_keeps_is_refused_as_torch_refuses_it():
    both_refuse(Around(lambda y: y.relu().clamp_(max=1.0)), (5, 6), "modified by an inplace operation")


def test_counts_by_hand():
    """Per sample of (5, 6): one comparison per bound per element forward, one per bound backward."""
    x, batch, grads = (5, 6), 3, Grads((True,), False, False)
    for layer, bounds in ((Clamp(min=-1, max=1), 2), (Clamp(min=0), 1), (Clamp(max=2.5, inplace=True), 1)):
        assert layer.output_shape(x) == x
        assert layer.other_ops(x, x) == bounds * 5 * 6 and layer.macs(x, x) == 0
        assert layer.torch_flops(x, x) == 0
        assert layer.backward_other_ops(x, x, grads, batch) == bounds * batch * 5 * 6
        assert layer.backward_other_ops(x, x, Grads((False,), False, False), batch) == 0
    cost = Network((5, 6), [Clamp(min=0, max=6), Clamp(max=1, inplace=True)]).cost(batch=2)
    assert cost.totals.other_ops == 2 * (2 * 30 + 30)
    assert cost.totals.stored_bytes == 2 * 30 * 4          # the in-place clamp writes into the first's output


def test_the_torch_module_built_from_a_clamp_computes_it():
    from alexcost.torch_bridge.modules import torch_module

    x = torch.randn(2, 3, 4)
    for layer, expected in ((Clamp(min=-0.5, max=0.5), x.clamp(-0.5, 0.5)), (Clamp(min=0), x.clamp(min=0)),
                            (Clamp(max=0.1, inplace=True), x.clamp(max=0.1))):
        y = x.clone()
        out = torch_module(layer, (3, 4))(y)
        assert torch.equal(out, expected)
        assert (out.data_ptr() == y.data_ptr()) == layer.inplace


def test_a_clamp_without_bounds_is_refused_as_torch_refuses_it():
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        torch.clamp(torch.randn(2))
    with pytest.raises(SpecError, match="At least one of 'min' or 'max' must not be None"):
        Clamp()
    refused_at_the_node(lambda x: x.clamp(), (5, 6), "At least one of 'min' or 'max' must not be None")


@pytest.mark.parametrize("forward, message", [
    (lambda x: x.clamp(min=x.mean(-1, keepdim=True)), r"clamp.*its min is .*Python-number bounds only"),
    (lambda x: torch.clamp(x, 0, x.relu()), r"clamp.*its max is .*Python-number bounds only"),
    (lambda x: x.clamp(0, 1, out=None), r"has an argument 'out'"),
])
def test_what_cannot_be_read_is_refused_at_the_node(forward, message):
    refused_at_the_node(forward, (5, 6), message)


def test_a_clamp_of_a_parameter_alone_runs_once_per_pass_as_torch_runs_it():
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6))

        def forward(self, x):
            return x * self.w.clamp(min=0)

    step_agrees(Module(), (5, 6), 3)
    assert from_module(Module(), (5, 6)).cost(batch=3).totals.other_ops == 6 + 3 * 5 * 6  # the clamp once


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(low=st.one_of(st.none(), st.floats(-2, 2, width=32)), high=st.one_of(st.none(), st.floats(-2, 2, width=32)),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), inplace=st.booleans(), reuse=st.booleans())
def test_random_clamps_match_torch(low, high, shape, inplace, reuse):
    """Random bounds (either left out), shapes, in place or not, the input read again afterwards or not: the
    output's shape and a training step's FLOPs and saved bytes as torch's; other ops one per bound per element."""
    if low is None and high is None:
        low = 0.0

    def call(y):
        z = y * 2
        out = z.clamp_(low, high) if inplace else z.clamp(low, high)
        return out + y if reuse else out

    shape = (*shape[:-1], 6)
    module = Around(call)
    imported = from_module(module.eval(), shape)
    layer = next(layer for layer in imported.network.layers if isinstance(layer, Clamp))
    assert (layer.min, layer.max, layer.inplace) == (low, high, inplace)
    assert layer.other_ops(shape, shape) == ((low is not None) + (high is not None)) * prod(shape)
    with torch.no_grad():
        out = module(torch.randn(2, *shape))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    step_agrees(module, shape)
