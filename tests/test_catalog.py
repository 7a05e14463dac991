"""The GPU catalog: every peak derived from units and clocks lands on the figure its spec sheet
prints; device names find their entry; what a card cannot run is refused.

The expected figures are typed from NVIDIA's spec sheets and whitepapers (TFLOPS, dense; GB/s),
never read from alexcost.
"""

from __future__ import annotations

import pytest

from alexcost import SpecError
from alexcost.hardware import CATALOG, gpu, match
from alexcost.hardware.catalog import BOOST_HEADROOM, GiB

SHEETS = {
    # key: (FP32 TFLOPS, TF32 tensor, FP16 tensor (FP32 accumulation), memory GB/s, memory GB)
    "gtx580": (1.581, None, None, 192.4, 3),
    "k40": (5.04, None, None, 288, 12),
    "k80": (8.73 / 2, None, None, 480 / 2, 24 / 2),        # the board's two GK210s, one of them
    "titanx-maxwell": (6.6, None, None, 336.5, 12),
    "gtx1080": (8.873, None, None, 320, 8),
    "titanx-pascal": (11.0, None, None, 480, 12),
    "gtx1080ti": (11.34, None, None, 484, 11),
    "p100": (10.6, None, 21.2, 732, 16),                  # FP16 on the CUDA cores, paired
    "titanv": (14.9, None, None, 652.8, 12),
    "v100": (15.7, None, 125, 900, 32),
    "a100-40gb": (19.5, 156, 312, 1555, 40),
    "a100-pcie-40gb": (19.5, 156, 312, 1555, 40),
    "a100": (19.5, 156, 312, 2039, 80),
    "rtx3090": (35.58, 35.6, 71, 936, 24),
    "rtx4090": (82.58, 82.6, 165.2, 1008, 24),
    "h100-pcie": (51.2, 756 / 2, 1513 / 2, 2000, 80),     # the sheet's tensor figures are with sparsity
    "h100": (67, 989 / 2, 1979 / 2, 3350, 80),
    "h200": (67, 989 / 2, 1979 / 2, 4800, 141),
}


def test_every_card_has_a_sheet_here():
    assert set(CATALOG) == set(SHEETS)


@pytest.mark.parametrize("key", sorted(SHEETS))
def test_peaks_from_units_and_clocks_land_on_the_sheet(key):
    card = CATALOG[key]
    fp32, tf32, fp16, bandwidth, memory = SHEETS[key]
    # the arithmetic: SMs x FP32 cores per SM x boost clock x 2 FLOPs per fused multiply-add
    assert card.fp32 == card.sms * card.fp32_cores_per_sm * card.boost_mhz * 1e6 * 2
    assert card.fp32 == pytest.approx(fp32 * 1e12, rel=0.01)
    clock = (card.tensor_mhz or card.boost_mhz) * 1e6
    for rate, per_sm, sheet in ((card.tf32, card.tf32_per_sm_clock, tf32), (card.fp16, card.fp16_per_sm_clock, fp16)):
        assert rate == (card.sms * per_sm * clock if per_sm else None)
        if sheet is not None:
            assert rate == pytest.approx(sheet * 1e12, rel=0.01)
    assert card.bandwidth == pytest.approx(bandwidth * 1e9, rel=0.001)
    assert card.memory == memory * GiB
    assert card.source and card.year and card.arch in ("fermi", "kepler", "maxwell", "pascal", "volta", "ampere",
                                                        "ada", "hopper")


def test_units_on_the_cards_and_their_generations():
    # 80 Volta SMs with 8 tensor cores of 64 FP16 FMAs a clock: 1,024 FLOPs per SM per clock at 1530 MHz
    assert CATALOG["v100"].fp16 == pytest.approx(80 * 8 * 64 * 2 * 1530e6)
    # the TITAN V: the V100's units at 1455 MHz (NVIDIA's page rounds its tensor rate down to 110 TFLOPS)
    assert CATALOG["titanv"].fp16 == pytest.approx(80 * 1024 * 1455e6)
    # the H100 SXM5's sheet quotes FP32 at 1980 MHz and tensor rates at 1830
    assert CATALOG["h100"].fp32 == pytest.approx(132 * 128 * 2 * 1980e6)
    assert CATALOG["h100"].fp16 == pytest.approx(132 * 4096 * 1830e6)
    assert [CATALOG[k].arch for k in ("gtx580", "k80", "titanx-maxwell", "gtx1080", "titanv", "rtx3090", "rtx4090",
                                      "h100-pcie")] == ["fermi", "kepler", "maxwell", "pascal", "volta", "ampere",
                                                        "ada", "hopper"]


def test_math_units_and_what_a_card_cannot_run():
    assert CATALOG["a100"].unit("tf32") == "tf32" and CATALOG["a100"].unit("amp") == "fp16"
    assert CATALOG["v100"].unit("float16") == "fp16" and CATALOG["v100"].unit("bfloat16") == "fp32"
    # no FP16 unit faster than FP32 (a GTX 1080 runs FP16 at 1/64 rate): half precision is computed in FP32
    assert CATALOG["gtx1080"].unit("amp") == "fp32" and CATALOG["gtx1080"].peak("float16") == CATALOG["gtx1080"].fp32
    assert CATALOG["p100"].peak("float16") == pytest.approx(2 * CATALOG["p100"].fp32)
    with pytest.raises(SpecError, match="has no TF32 tensor cores"):
        CATALOG["v100"].unit("tf32")
    with pytest.raises(SpecError, match="unknown dtype 'int8'"):
        CATALOG["a100"].unit("int8")
    with pytest.raises(SpecError, match="unknown GPU 'rtx2080'; choose from gtx580, k40"):
        gpu("rtx2080")


def test_boost_headroom_only_where_gpu_boost_exceeds_the_rated_clock():
    boosted = {k for k, c in CATALOG.items() if c.boost_headroom > 1}
    assert boosted == {"titanx-maxwell", "gtx1080", "titanx-pascal", "gtx1080ti", "titanv", "rtx3090", "rtx4090"}
    assert {CATALOG[k].boost_headroom for k in boosted} == {BOOST_HEADROOM}
    # a GTX 1080 rated at 1733 MHz reaches about 1900 under GPU Boost 3.0: within the headroom
    assert 1733 * BOOST_HEADROOM >= 1900


@pytest.mark.parametrize("name, key", [
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb"),
    ("NVIDIA A100 80GB PCIe", "a100"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA GeForce RTX 3090", "rtx3090"), ("NVIDIA GeForce RTX 4090", "rtx4090"), ("TITAN V", "titanv"),
    ("NVIDIA TITAN X (Pascal)", "titanx-pascal"), ("GeForce GTX TITAN X", "titanx-maxwell"), ("TITAN Xp", "titanx-pascal"),
    ("GeForce GTX 1080", "gtx1080"), ("GeForce GTX 1080 Ti", "gtx1080ti"), ("Tesla K80", "k80"), ("Tesla K40c", "k40"),
    ("Tesla P100-SXM2-16GB", "p100"), ("Tesla V100-PCIE-16GB", "v100"), ("NVIDIA H200", "h200"),
    ("NVIDIA GeForce GTX 580", "gtx580"), ("NVIDIA TITAN RTX", None), ("NVIDIA L4", None),
])
def test_a_device_name_finds_its_entry(name, key):
    found = match(name)
    assert (found.key if found else None) == key


def test_the_cli_lists_the_catalog():
    from alexcost_cli.predict import GPUS

    assert GPUS == tuple(CATALOG)
