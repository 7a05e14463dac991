"""Layers against torch (and fvcore) on the CPU: random valid networks (hypothesis), and every
pooling window brute force.

Networks are drawn constructively (groups first, channels as multiples of them, kernels
bounded by the padded input...), so every draw is valid and tensors stay small. The
expected values come from torch's real forward pass, ``sum(p.numel())``, fvcore and
torch's flop counter, never from alexcost. Profiles: see conftest.py.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
from hypothesis import assume, given, strategies as st

torch = pytest.importorskip("torch")

nn = torch.nn

from alexcost import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d,  # noqa: E402
                      Network, ReLU, Sigmoid, Softmax, SpecError, Tanh)
from alexcost.specs.specfile import dumps_spec, network_from_dict, parse_text  # noqa: E402
from alexcost.torch_bridge import from_module, to_module  # noqa: E402

from strategies import PADDING_MODES, chain_networks  # noqa: E402


# -- torch's and fvcore's own numbers -------------------------------------------------

def _torch_facts(network, batch):
    """Per layer: the real output shape (no batch dim), sum(p.numel()), torch's FLOPs; fvcore's counts."""
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    module = to_module(network).eval()
    x = torch.randn(batch, *network.input_shape)
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
             for name, m in module.named_children()]
    with torch.no_grad(), FlopCounterMode(display=False) as counter, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Softmax(dim=None): torch's implicit-dim warning
        module(x)
    for h in hooks:
        h.remove()
    flops = {k.split(".", 1)[1]: sum(v.values()) for k, v in counter.get_flop_counts().items() if "." in k}
    analysis = FlopCountAnalysis(module, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fv = analysis.by_module()
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in module.named_children()}
    return shapes, params, flops, fv


@pytest.mark.slow
@given(chain_networks(), st.integers(1, 3))
def test_static_counts_match_torch_and_fvcore(network, batch):
    shapes, params, flops, fv = _torch_facts(network, batch)
    cost = network.cost(batch=batch)
    for row in cost.layers:
        assert shapes[row.name] == (batch, *row.output_shape), row.name
        assert params[row.name] == row.params, row.name
        assert flops.get(row.name, 0) == 2 * row.macs, row.name
        if row.type == "Conv2d" and isinstance(row.layer.padding, str) and row.layer.padding_mode == "zeros":
            # padding='same'/'valid' traces to aten::_convolution_mode, which fvcore does not count
            assert fv[row.name] == 0, row.name
        elif row.type in ("Conv2d", "Linear"):
            assert fv[row.name] == row.macs, row.name
        elif row.type == "AdaptiveAvgPool2d":  # fvcore counts the input elements
            assert fv[row.name] == batch * math.prod(row.input_shape), row.name
        else:
            assert fv[row.name] == 0, row.name


@pytest.mark.slow
@given(chain_networks(max_spatial=3))
def test_verify_engine_agrees_on_random_networks(network):
    from alexcost.torch_run.verify import verify_network

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = verify_network(network, device="cpu", batch=2)
    assert result.ok, result.problems
    assert len(result.layers) == len(network.layers)


def _cost_rows(cost):
    return [(r.name, r.type, r.input_shape, r.output_shape, r.weight_params, r.bias_params, r.macs,
             r.bias_adds, r.other_ops, r.flops) for r in cost.layers]


@given(chain_networks(), st.sampled_from(["json", "toml"]), st.integers(1, 4))
def test_round_trip_spec_network_module_network(network, fmt, batch):
    try:
        text = dumps_spec(network, fmt)
    except SpecError:  # TOML has no null (output_size with None): JSON carries it
        assume(False)
    loaded = network_from_dict(parse_text(text, fmt), default_name=network.name)
    back = from_module(to_module(loaded), network.input_shape).network
    assert _cost_rows(back.cost(batch)) == _cost_rows(network.cost(batch))
    assert back.cost(batch).totals == network.cost(batch).totals


# -- algebraic laws -----------------------------------------------------------------

@given(chain_networks(), st.integers(1, 64))
def test_counts_scale_linearly_with_batch(network, batch):
    one, many = network.cost(1), network.cost(batch)
    for a, b in zip(one.layers, many.layers):
        assert (b.macs, b.bias_adds, b.other_ops) == (batch * a.macs, batch * a.bias_adds, batch * a.other_ops)
        assert b.params == a.params


@given(chain_networks(), st.integers(1, 8))
def test_row_sums_equal_totals(network, batch):
    cost = network.cost(batch)
    t = cost.totals
    for attr in ("params", "macs", "bias_adds", "other_ops", "flops", "forward", "output_bytes"):
        assert getattr(t, attr) == sum(getattr(r, attr) for r in cost.layers), attr
    for group, totals in cost.split.items():
        assert totals.macs == sum(r.macs for r in cost.layers if r.group == group)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(3, 9),
       st.integers(3, 9))
def test_grouped_conv_macs_times_groups_is_ungrouped(groups, in_per_group, out_per_group, k, h, w):
    k = min(k, h, w)
    x = (groups * in_per_group, h, w)
    grouped = Network(x, [Conv2d(out_channels=groups * out_per_group, kernel_size=k, groups=groups)]).cost()
    plain = Network(x, [Conv2d(out_channels=groups * out_per_group, kernel_size=k)]).cost()
    assert grouped.totals.macs * groups == plain.totals.macs
    assert grouped.layers[0].weight_params * groups == plain.layers[0].weight_params


@given(st.integers(1, 40), st.integers(1, 40))
def test_adaptive_window_total_is_the_sum_of_window_lengths(size, out):
    from alexcost.layers.windows import adaptive_window_total

    # torch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out))
    lengths = [-(-(i + 1) * size // out) - (i * size // out) for i in range(out)]
    assert adaptive_window_total(size, out) == sum(lengths)


# -- invalid draws: alexcost refuses exactly what torch refuses ----------------------

SMALL = st.integers(-1, 6)
SIDE = st.one_of(SMALL, st.tuples(SMALL, SMALL))


def _raw_args(kind):
    """Arguments from wide ranges, valid or not (no bools or floats where torch wants ints)."""
    if kind == "Conv2d":
        return st.fixed_dictionaries(
            {"out_channels": st.integers(0, 6), "kernel_size": SIDE},
            optional={"in_channels": st.integers(0, 6), "stride": SIDE,
                      "padding": st.one_of(SIDE, st.sampled_from(["same", "valid", "full"])),
                      "dilation": SIDE, "groups": st.integers(0, 4), "bias": st.booleans(),
                      "padding_mode": st.sampled_from(PADDING_MODES + ("mirror",))})
    if kind == "MaxPool2d":
        return st.fixed_dictionaries({"kernel_size": SIDE}, optional={
            "stride": st.one_of(st.none(), SIDE), "padding": SIDE, "dilation": SIDE,
            "ceil_mode": st.booleans(), "return_indices": st.booleans()})
    if kind == "AvgPool2d":
        return st.fixed_dictionaries({"kernel_size": SIDE}, optional={
            "stride": st.one_of(st.none(), SIDE), "padding": SIDE, "ceil_mode": st.booleans(),
            "count_include_pad": st.booleans(), "divisor_override": st.one_of(st.none(), st.integers(-2, 3))})
    if kind == "AdaptiveAvgPool2d":
        side = st.one_of(st.none(), st.integers(-1, 5))
        return st.fixed_dictionaries({"output_size": st.one_of(st.integers(-1, 5), st.tuples(side, side))})
    if kind == "LocalResponseNorm":
        return st.fixed_dictionaries({"size": st.integers(-1, 6)},
                                     optional={"alpha": st.floats(-1, 1), "beta": st.floats(-1, 1),
                                               "k": st.floats(-1, 3)})
    if kind == "Linear":
        return st.fixed_dictionaries({"out_features": st.integers(0, 5)},
                                     optional={"in_features": st.integers(0, 30), "bias": st.booleans()})
    if kind == "Dropout":
        return st.fixed_dictionaries({}, optional={"p": st.floats(-0.5, 1.5)})
    if kind == "Softmax":
        return st.fixed_dictionaries({}, optional={"dim": st.one_of(st.none(), st.integers(-5, 4))})
    if kind == "Flatten":
        return st.fixed_dictionaries({}, optional={"start_dim": st.integers(-5, 4), "end_dim": st.integers(-5, 4)})
    return st.fixed_dictionaries({})


KINDS = {"Conv2d": Conv2d, "MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "AdaptiveAvgPool2d": AdaptiveAvgPool2d,
         "LocalResponseNorm": LocalResponseNorm, "Linear": Linear, "Dropout": Dropout, "Softmax": Softmax,
         "Flatten": Flatten, "ReLU": ReLU, "Tanh": Tanh, "Sigmoid": Sigmoid}


def _deliberate(kind, args, x):
    """Why alexcost refuses a layer torch would run (DESIGN: documented in docs/verify.md), or None."""
    rank = len(x) + 1

    def at(dim):
        return dim % rank if -rank <= dim < rank else None
    if kind == "Linear" and args["out_features"] == 0:
        return "a layer with no output elements"
    if kind == "Conv2d" and args["out_channels"] == 0:
        return "a layer with no output elements"
    padding = args.get("padding", 0)
    if kind == "Conv2d" and not isinstance(padding, str) and min(padding if isinstance(padding, tuple) else
                                                                 (padding,)) < 0:
        return "negative padding (torch crops with it when padding_mode is not 'zeros')"
    if kind == "AdaptiveAvgPool2d":
        size = args["output_size"]
        if 0 in (size if isinstance(size, tuple) else (size,)):
            return "a layer with no output elements"
    if kind == "MaxPool2d" and args.get("return_indices"):
        return "return_indices=True returns a tuple"
    if kind == "Flatten" and at(args.get("start_dim", 1)) == 0:
        return "Flatten over the batch dimension"
    if kind == "Softmax" and args.get("dim") is None and len(x) == 2:
        return "Softmax without dim on a rank-2 sample normalises over the batch"
    if kind == "Softmax" and args.get("dim") is not None and at(args["dim"]) == 0:
        return "Softmax over the batch dimension"
    return None


def _torch_runs(kind, args, x) -> bool:
    torch_args = dict(args)
    if kind == "Conv2d":
        torch_args.setdefault("in_channels", x[0])
    if kind == "Linear":
        torch_args.setdefault("in_features", x[-1])
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-element init, implicit softmax dim
            out = getattr(nn, kind)(**torch_args)(torch.randn(2, *x))
        return isinstance(out, torch.Tensor)
    except Exception:  # noqa: BLE001 - any refusal by torch counts
        return False


INPUTS = st.one_of(st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 7)),
                   st.tuples(st.integers(1, 12)))


@st.composite
def raw_layers(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    x = draw(INPUTS)
    if kind in ("Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "LocalResponseNorm"):
        x = draw(INPUTS.filter(lambda s: len(s) == 3))  # torch would read a rank-2 sample as unbatched
    return kind, draw(_raw_args(kind)), x


@given(raw_layers())
def test_alexcost_refuses_exactly_what_torch_refuses(draw):
    kind, args, x = draw
    try:
        Network(x, [KINDS[kind](**args)])
        alexcost_ok = True
    except SpecError:
        alexcost_ok = False
    torch_ok = _torch_runs(kind, args, x)
    reason = _deliberate(kind, args, x)
    if reason:
        assert not alexcost_ok, f"{kind}{args} on {x}: alexcost should refuse ({reason})"
    else:
        assert alexcost_ok == torch_ok, f"{kind}{args} on {x}: alexcost {alexcost_ok}, torch {torch_ok}"


# == pooling windows, tap by tap ===================================================================
# Every pooling configuration on small inputs, brute force: the taps each window reads are
# enumerated here, tap by tap, and compared with alexcost's counts; a window that reads no input
# element (only padding, or a dilation that steps over the input) is refused, and torch, where it
# runs, agrees on the output shape, on the -inf such a window gives, and on every other window
# being finite.

SIZES = (1, 2, 3, 5)
KERNELS = (1, 2, 3, 4)


def _positions(size, k, s, p, d, ceil_mode):
    """Window starts along one axis, by torch's documented output-size rule."""
    room = size + 2 * p - d * (k - 1) - 1
    out = (-(-room // s) if ceil_mode else room // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return [i * s - p for i in range(out)] if out >= 1 else []


def _taps(start, size, k, d):
    return sum(1 for j in range(k) if 0 <= start + j * d < size)


def _configurations(dilations):
    for size_h, size_w in ((1, 1), (1, 2), (2, 1), (1, 3), (2, 2), (2, 5), (3, 3), (4, 1), (5, 2)):
        for k in KERNELS:
            for s in (1, 2, 3):
                for p in range(k // 2 + 1):
                    for d in dilations:
                        for ceil_mode in (False, True):
                            yield size_h, size_w, k, s, p, d, ceil_mode


def _expected(size_h, size_w, k, s, p, d, ceil_mode):
    """Output shape and per-window taps (None when some window reads nothing) by enumeration."""
    rows, cols = _positions(size_h, k, s, p, d, ceil_mode), _positions(size_w, k, s, p, d, ceil_mode)
    if not rows or not cols:
        return None
    taps = [_taps(r, size_h, k, d) * _taps(c, size_w, k, d) for r, c in itertools.product(rows, cols)]
    return (len(rows), len(cols)), taps


MAX_CASES = list(_configurations((1, 2, 3)))
AVG_CASES = list(_configurations((1,)))


def test_the_sweep_has_empty_windows_and_full_ones():
    empty = [c for c in MAX_CASES if _expected(*c) and 0 in _expected(*c)[1]]
    assert len(MAX_CASES) > 1000 and 10 < len(empty) < len(MAX_CASES) // 4
    assert all(c[5] > 1 for c in empty)  # only a dilation can step over the input


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_taps_by_enumeration(pool, kernel):
    cases, check = (MAX_CASES, _check_max_pool) if pool == "max" else (AVG_CASES, _check_avg_pool)
    for case in cases:
        if case[2] == kernel:
            check(case)


def _check_max_pool(case):
    size_h, size_w, k, s, p, d, ceil_mode = case
    channels = 2
    expected = _expected(*case)
    layer = MaxPool2d(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    x = torch.randn(1, channels, size_h, size_w)
    if expected is None:  # no window fits: torch refuses too
        with pytest.raises(SpecError):
            Network((channels, size_h, size_w), [layer])
        with pytest.raises(RuntimeError):
            torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode)
        return
    (oh, ow), taps = expected
    out = torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode)
    assert tuple(out.shape) == (1, channels, oh, ow)
    empty = [t == 0 for t in taps]
    assert out[0, 0].flatten().isinf().tolist() == empty  # torch's -inf is exactly the empty windows
    if any(empty):
        with pytest.raises(SpecError, match=r"reads only padding.*torch returns -inf"):
            Network((channels, size_h, size_w), [layer])
        return
    row = Network((channels, size_h, size_w), [layer]).cost().layers[0]
    assert row.output_shape == (channels, oh, ow), case
    assert row.other_ops == channels * sum(t - 1 for t in taps), case  # one comparison fewer than the taps


def _check_avg_pool(case):
    size_h, size_w, k, s, p, _, ceil_mode = case
    expected = _expected(*case)
    layer = AvgPool2d(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode)
    x = torch.randn(1, 2, size_h, size_w)
    if expected is None:
        with pytest.raises(SpecError):
            Network((2, size_h, size_w), [layer])
        return
    (oh, ow), taps = expected
    assert 0 not in taps  # without a dilation, every window torch keeps reads the input
    out = torch.nn.functional.avg_pool2d(x, k, s, p, ceil_mode)
    assert tuple(out.shape) == (1, 2, oh, ow)
    row = Network((2, size_h, size_w), [layer]).cost().layers[0]
    assert row.other_ops == 2 * sum(taps), case  # the adds and the divide: one op per tap read


def test_issue_case_is_refused_through_from_module():
    from alexcost.torch_bridge import from_module

    pool = torch.nn.MaxPool2d(kernel_size=2, stride=2, padding=1, dilation=2)
    assert torch.isinf(pool(torch.randn(1, 2, 1, 1))).all()
    with pytest.raises(SpecError, match=r"module '\(root\)' \(MaxPool2d\) on input \[2, 1, 1\].*window row 0 of 1 "
                                        r"reads only padding"):
        from_module(pool, (2, 1, 1))

    class Functional(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.max_pool2d(x, 2, 2, 1, 2)

    with pytest.raises(SpecError, match=r"fx node 'max_pool2d'.*reads only padding"):
        from_module(Functional(), (2, 3, 1))


def test_issue_case_is_refused_in_a_spec_file(tmp_path):
    import json

    from alexcost.specs.specfile import load_spec

    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"name": "p", "input_shape": [2, 1, 1], "layers": [
        {"type": "MaxPool2d", "name": "pool", "kernel_size": 2, "stride": 2, "padding": 1, "dilation": 2}]}))
    with pytest.raises(SpecError, match=r"layers\[0\] 'pool' \(MaxPool2d\) on input \[2, 1, 1\]: window row 0"):
        load_spec(path)
