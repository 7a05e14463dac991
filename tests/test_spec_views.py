"""A spec whose View reads a tensor no view can follow (a transposed one) is refused as it is loaded, at
the View layer, in torch's words; torch refuses the same view."""

from __future__ import annotations

import json

import pytest

from alexcost import SpecError, load_spec, network_from_dict

SPEC = {"input_shape": [3, 4, 5], "layers": [
    {"type": "Conv2d", "name": "conv", "out_channels": 2, "kernel_size": 1},
    {"type": "Transpose", "name": "swap", "dim0": 2, "dim1": 3},
    {"type": "View", "name": "flat", "shape": [40]},
]}
TORCH_WORDS = (r"layers\[2\] 'flat' \(View\): view size is not compatible with input tensor's size and stride "
               r"\(at least one dimension spans across two contiguous subspaces\). Use .reshape\(...\) instead.")


def test_transpose_then_view_is_refused_at_the_view_as_the_spec_loads(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    with pytest.raises(SpecError, match=TORCH_WORDS):
        load_spec(path)
    with pytest.raises(SpecError, match=TORCH_WORDS):
        network_from_dict(SPEC)


def test_torch_refuses_the_same_view_and_a_reshape_is_read():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=r"view size is not compatible .* Use .reshape\(...\) instead"):
        torch.randn(2, 2, 4, 5).transpose(2, 3).view(2, 40)
    reshaped = {**SPEC, "layers": [*SPEC["layers"][:2], {"type": "Reshape", "name": "flat", "shape": [40]}]}
    net = network_from_dict(reshaped)
    assert net.output_shape == (40,) and net.storage(2)[-1] is True  # a copy, as torch's reshape makes

