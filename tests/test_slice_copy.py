"""Writing a tensor into a slice of another (``x[:, :, 1:] = y``: a `SliceAdd` with ``accumulate=False``, as timm's
MViT v2 writes its relative position bias into the attention scores). A copy in place: no ops; backward, the
written tensor's gradient passes on with the slice zeroed, and ``y``'s is the slice. Checked against torch on the
CPU: parameters, output shape, forward MACs (FlopCounterMode), a training step's FLOPs and saved bytes
(`module_step`); counted by hand; and the refusals."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SliceAdd, SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, forward_and_step_agree  # noqa: E402


def scores_with_bias(y):
    """MViT v2's pattern: a product's slice viewed, a term added, viewed back and written into the slice."""
    s = y @ y.transpose(-2, -1)
    s[:, 1:, 1:] = (s[:, 1:, 1:].view(y.shape[0], 2, 2, 4) + y[:, 1:, :4].view(y.shape[0], 2, 2, 4)).view(
        y.shape[0], 4, 4)
    return s.softmax(-1) @ y


def whole(y):
    """A slice that is the whole tensor (``x[:, 0:] = ...``, MViT v2 without a class token)."""
    s = y * 2
    s[:, 0:] = y.exp()
    return s + y


def one_row(y):
    s = y.clone()
    s[:, 0] = y[:, -1] * 3
    return s


@pytest.mark.parametrize("call", [scores_with_bias, whole, one_row])
@pytest.mark.parametrize("batch", [1, 2])
def test_forward_and_training_step_match_torch(call, batch):
    forward_and_step_agree(lambda: Around(call), (5, 6), batch)


def test_counts_by_hand():
    """(5, 6) with its rows 1: written by a (4, 6): a copy, no ops; += would add 24."""
    assert SliceAdd(index=((1, None, None),), accumulate=False).other_ops([(5, 6), (4, 6)], (5, 6)) == 0
    assert SliceAdd(index=((1, None, None),)).other_ops([(5, 6), (4, 6)], (5, 6)) == 4 * 6


@pytest.mark.parametrize("call, message", [
    (lambda y: (y.__setitem__((slice(None), None), y[:, None]), y)[1], r"alexcost reads integers and slices"),
    (lambda y: (y.__setitem__(0, y[0]), y)[1], r"indexes the batch dimension"),
])
def test_what_is_not_read_is_refused(call, message):
    with pytest.raises(SpecError, match=message):
        from_module(Around(call), (5, 6))
