"""Indexing with a list of numbers written in the code (``x[:, :, [0, 1, 8]]``, CSATv2's zigzag order of DCT
coefficients): an `IndexSelect` whose index torch makes into a new int64 tensor at every call (no buffer; a
training step keeps it). Checked against torch on the CPU: parameters, output shape, forward MACs
(FlopCounterMode), a training step's FLOPs and saved bytes (`module_step`); and the refusals."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import IndexSelect, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import Around, forward_and_step_agree  # noqa: E402

ORDER = [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15]  # a zigzag over 4 x 4

CASES = {
    "last dimension": lambda y: y[:, :, ORDER] * y,
    "a middle dimension, repeated and negative entries": lambda y: y[:, [0, 2, 2, -1]].sum(1, keepdim=True) + y,
    "a copy that is read twice": lambda y: y[:, :, ORDER[::-1]].exp() + y[:, :, ORDER[::-1]],
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_forward_and_training_step_match_torch(case, batch):
    forward_and_step_agree(lambda: Around(CASES[case], features=16), (3, 16), batch)


def test_counts_by_hand():
    """16 entries picked along the last of (3, 16): a copy of 3*16 elements, no ops, no buffer; backward, each
    output element's gradient added back (48 per sample), and the 16 indices kept, 8 bytes each."""
    from alexcost.layers.base import TrainContext

    layer = IndexSelect(dim=2, index_size=16, index_buffer=False)
    assert layer.output_shape((3, 16)) == (3, 16)
    assert layer.buffers((3, 16)) == 0
    assert layer.backward_other_ops((3, 16), (3, 16), Grads((True,), False, False), batch=2) == 2 * 3 * 16
    ctx = TrainContext(batch=2, itemsize=4)
    assert sum(s.bytes for s in layer.saved_tensors((3, 16), (3, 16), Grads((True,), False, False), ctx)) == 16 * 8


@pytest.mark.parametrize("index, message", [
    (lambda y: y[:, [0, 1], [0, 1]], r"a list of numbers as the one entry of an index that is not a whole slice"),
    (lambda y: y[:, 1:, [0, 1]], r"a list of numbers as the one entry of an index that is not a whole slice"),
    (lambda y: y[:, :, [0, 16]], r"index 16 is out of bounds for dimension 2 with size 16"),
    (lambda y: y[:, :, [0.5, 1]], r"alexcost reads a list of integers"),
    (lambda y: y[[0, 1]], r"indexes the batch dimension"),
])
def test_what_is_not_read_is_refused(index, message):
    with pytest.raises(SpecError, match=message):
        from_module(Around(index, features=16), (3, 16))
