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

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import counted_attention  # noqa: E402
from zoo_cases import (TRANSFORMER_FAMILIES, TRANSFORMERS, assert_exact, build_transformer,  # noqa: E402
                       transformer_input, transformer_names)

ALL = os.environ.get("ALEXCOST_ZOO") == "all"
MODELS = transformer_names() if ALL else [rep for _, rep in TRANSFORMER_FAMILIES.values()]


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
    assert {n for n in names if n not in read} == set()


def test_a_training_step_through_swin_v2s_cosine_attention_is_refused_naming_the_layer():
    with torch.device("meta"):  # no memory and no initialisation: from_module does not run the model
        model = torchvision.models.get_model("swin_v2_t", weights=None)
    imported = from_module(model, (3, 64, 64))
    from alexcost.training import training_cost

    with pytest.raises(SpecError, match=r"'features_1_0_attn_shifted_window_attention' \(CosineWindowAttention\): "
                                        r"alexcost does not model a training step through Swin V2's cosine window attention"):
        training_cost(imported, 2, device="cpu")


def test_the_docs_table_lists_every_vision_transformer():
    """docs/from-module.md's table: each family's models as torchvision lists them, exact where read."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "from-module.md").read_text()
    start = text.index("| family | models | exact |", text.index("## torchvision's vision transformers"))
    rows = [line.split("|")[1:-1] for line in text[start:].split("\n\n")[0].splitlines()[2:]]
    stated = {cells[0].strip(): (cells[1].strip(), cells[2].strip()) for cells in rows}
    names = [n for n in torchvision.models.list_models(module=torchvision.models) if n.startswith(TRANSFORMERS)]
    read = set(transformer_names())
    prefixes = {"ViT": "vit_", "Swin": ("swin_t", "swin_s", "swin_b"), "Swin V2": "swin_v2_", "MaxViT": "maxvit_"}
    expected = {}
    for family, prefix in prefixes.items():
        models = [n for n in names if n.startswith(prefix)]
        expected[family] = (f"{len(models)}: " + ", ".join(f"`{m}`" for m in models),
                            f"{sum(m in read for m in models)} of {len(models)}")
    assert stated == expected
    assert sorted(n for family in prefixes.values() for n in names if n.startswith(family)) == sorted(names)


def test_a_small_vision_transformer_trains_as_torch_does():
    """torchvision's VisionTransformer, small: a training step's backward FLOPs (attention on the math backend)
    and saved bytes (the default backend) are torch's on the CPU."""
    from module_step import alexcost_step, torch_attention_step

    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)
    theirs, ours = torch_attention_step(model, (3, 32, 32), 2), alexcost_step(model, (3, 32, 32), 2)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


@pytest.mark.parametrize("dims, shift, shape, heads, batch", [
    (2, 0, (8, 8, 16), 2, 2), (2, 2, (8, 8, 16), 2, 1), (2, 2, (7, 9, 12), 3, 2), (2, 2, (4, 8, 16), 2, 1),
    (2, 2, (4, 4, 16), 2, 2), (3, 1, (4, 8, 8, 16), 2, 2)],
    ids=["windows", "shifted", "padded", "one window high", "one window, two samples", "3-D"])
def test_window_attention_trains_as_torch_does(dims, shift, shape, heads, batch):
    """torchvision's shifted-window attention: a training step's backward FLOPs and saved bytes are torch's."""
    from module_step import agree

    from torchvision.models.swin_transformer import ShiftedWindowAttention
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    torch.manual_seed(0)
    if dims == 2:
        attention = ShiftedWindowAttention(shape[-1], [4, 4], [shift, shift], heads)
    else:
        attention = ShiftedWindowAttention3d(shape[-1], [2, 4, 4], [shift, shift, shift], heads)
    theirs, ours = agree(torch.nn.Sequential(torch.nn.Linear(shape[-1], shape[-1]), attention), shape, batch)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_window_attention_training_memory_is_refused_where_not_modelled():
    from module_step import alexcost_step

    from torchvision.models.swin_transformer import ShiftedWindowAttention

    model = torch.nn.Sequential(ShiftedWindowAttention(16, [4, 4], [0, 0], 1))  # one head
    assert "shifted window attention" in alexcost_step(model, (8, 8, 16)).refused
    model = torch.nn.Sequential(ShiftedWindowAttention(16, [4, 4], [0, 0], 2))  # one window in the batch
    assert "shifted window attention" in alexcost_step(model, (4, 4, 16), batch=1).refused


def test_a_small_swin_trains_as_torch_does():
    """torchvision's SwinTransformer, small: a training step's backward FLOPs and saved bytes are torch's."""
    from module_step import agree

    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=[4, 4],
                            num_classes=10)
    theirs, ours = agree(model, (3, 32, 32), 2)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_verify_of_a_training_step_counts_attention_as_torch_runs_it():
    """`verify --training` on the CPU: torch's counter sees attention's backward only on the math backend, so
    the counted passes run there; a small ViT's step then agrees layer by layer, saved bytes included."""
    from alexcost.torch_run.verify_training import verify_training
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)
    checked = verify_training(from_module(model, (3, 32, 32)).network, device="cpu", batch=2)
    assert checked.problems == ()
    assert checked.torch_backward == 2 * checked.backward_macs and checked.saved == checked.saved_expected
