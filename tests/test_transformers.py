"""torchvision's vision transformers, read by from_module, against torch and fvcore (as test_zoo.py
reads the CNNs: parameters, MACs against FlopCounterMode, output shape, every linear layer against
fvcore, unused parameters).

torch's fused multi-head attention path (taken at inference) and its CPU attention kernel are not
counted by FlopCounterMode, so torch runs here with the fused path off and attention on its math
backend: matrix products FlopCounterMode counts, as it counts the fused kernels on CUDA. By default
one model per family at a small input (a ViT at two patches a side, a Swin at 64 x 64);
``ALEXCOST_ZOO=all`` runs every ViT and Swin.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from test_zoo import assert_exact  # noqa: E402
from zoo_cases import (TRANSFORMER_FAMILIES, TRANSFORMERS, TRANSFORMERS_REFUSED, build_transformer,  # noqa: E402
                       transformer_input, transformer_names)

ALL = os.environ.get("ALEXCOST_ZOO") == "all"
MODELS = transformer_names() if ALL else [rep for _, rep in TRANSFORMER_FAMILIES.values()]


@contextmanager
def counted_attention():
    """Attention as matrix products FlopCounterMode counts: no fused multi-head path, the math backend."""
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


@pytest.mark.parametrize("name", MODELS)
def test_vision_transformer_is_exact(name):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_transformer(name).eval()
    with counted_attention():
        assert_exact(model, transformer_input(name), name)


def test_every_vision_transformer_is_read_or_refused_by_name():
    """Each of torchvision's vision transformers is in a family read exactly, or listed as refused."""
    names = [n for n in torchvision.models.list_models(module=torchvision.models) if n.startswith(TRANSFORMERS)]
    read = set(transformer_names())
    assert read and all(rep in read for _, rep in TRANSFORMER_FAMILIES.values())
    refused = {n for n in names if n not in read}
    assert {n.replace("_s", "_t").replace("_b", "_t") for n in refused if n.startswith("swin_v2")} <= \
        set(TRANSFORMERS_REFUSED)
    assert {n for n in refused if not n.startswith(("swin_v2", "maxvit"))} == set()


@pytest.mark.parametrize("name", sorted(TRANSFORMERS_REFUSED))
def test_vision_transformers_are_refused_by_node(name):
    with torch.device("meta"):  # no memory and no initialisation: from_module does not run the model
        model = torchvision.models.get_model(name, weights=None)
    with pytest.raises(SpecError, match=TRANSFORMERS_REFUSED[name]):
        from_module(model, (3, 224, 224))
