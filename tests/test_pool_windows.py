"""Every pooling configuration on small inputs, brute force: the taps each window reads are
enumerated here, tap by tap, and compared with alexcost's counts; a window that reads no input
element (only padding, or a dilation that steps over the input) is refused, and torch, where it
runs, agrees on the output shape, on the -inf such a window gives, and on every other window
being finite.
"""

from __future__ import annotations

import itertools

import pytest

from alexcost import AvgPool2d, MaxPool2d, Network, SpecError

torch = pytest.importorskip("torch")

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
