"""GPUs from their spec sheets: peak rates, bandwidth, memory and links, each with its source (no torch).

Rates are dense (without the sparsity the sheets also quote); memory sizes are the sheets'
GB read as GiB (GPU memory comes in powers of two).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpecError
from .roofline import Peaks

GiB = 2**30


@dataclass(frozen=True)
class GPU:
    """One GPU as its spec sheet describes it: rates in FLOP/s, bandwidths in bytes/s, memory in bytes."""

    key: str
    name: str
    year: int
    fp32: float
    tf32: float | None
    fp16: float | None
    bf16: float | None
    bandwidth: float
    memory: int
    link: float
    link_name: str
    source: str

    def peak(self, dtype: str) -> float:
        """The peak rate for ``dtype`` (float32 on the FP32 units; tf32, float16 and bfloat16 on tensor cores)."""
        rate = {"float32": self.fp32, "tf32": self.tf32, "float16": self.fp16, "bfloat16": self.bf16}.get(dtype)
        if rate is None:
            what = "this dtype" if dtype not in ("tf32", "float16", "bfloat16", "float32") else dtype
            raise SpecError(f"the {self.name} has no {what} rate on its spec sheet; choose float32"
                            + ("" if self.tf32 is None else ", tf32") + ("" if self.fp16 is None else ", float16")
                            + ("" if self.bf16 is None else ", bfloat16"))
        return rate

    def peaks(self, dtype: str) -> Peaks:
        return Peaks(self.peak(dtype), self.bandwidth, f"{self.name} spec sheet, {dtype}",
                     f"{self.name} spec sheet")

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "year": self.year, "fp32_flops": self.fp32,
                "tf32_flops": self.tf32, "fp16_flops": self.fp16, "bf16_flops": self.bf16,
                "bandwidth_bytes_per_s": self.bandwidth, "memory_bytes": self.memory,
                "link_bytes_per_s": self.link, "link": self.link_name, "source": self.source}


T, G = 1e12, 1e9
CATALOG = {g.key: g for g in (
    GPU("gtx580", "GeForce GTX 580 (3 GB)", 2010, 1.581 * T, None, None, None, 192.4 * G, 3 * GiB, 8 * G,
        "PCIe 2.0 x16, 8 GB/s each way",
        "NVIDIA GeForce GTX 580 specifications: 512 CUDA cores at a 1544 MHz processor clock (FP32 = 2 x 512 x "
        "1.544 GHz), 384-bit GDDR5 at 4008 MT/s, 192.4 GB/s; 1.5 GB on NVIDIA's card, 3 GB on the boards the "
        "AlexNet paper used"),
    GPU("k40", "Tesla K40", 2013, 5.04 * T, None, None, None, 288 * G, 12 * GiB, 15.75 * G,
        "PCIe 3.0 x16, 15.75 GB/s each way",
        "NVIDIA Tesla K40 GPU accelerator datasheet: 4.29 TFLOPS FP32 at the 745 MHz base clock, 5.04 with GPU "
        "Boost (used here); 12 GB GDDR5, 288 GB/s"),
    GPU("p100", "Tesla P100 (SXM2)", 2016, 10.6 * T, None, 21.2 * T, None, 732 * G, 16 * GiB, 80 * G,
        "NVLink 1, 160 GB/s both ways",
        "NVIDIA Tesla P100 datasheet, NVLink version: 10.6 TFLOPS FP32, 21.2 FP16; 16 GB HBM2, 732 GB/s; "
        "NVLink 160 GB/s"),
    GPU("v100", "Tesla V100 (SXM2, 32 GB)", 2017, 15.7 * T, None, 125 * T, None, 900 * G, 32 * GiB, 150 * G,
        "NVLink 2, 300 GB/s both ways",
        "NVIDIA Tesla V100 datasheet, SXM2: 15.7 TFLOPS FP32, 125 tensor (FP16); 32 GB HBM2, 900 GB/s; "
        "NVLink 300 GB/s"),
    GPU("a100", "A100 (SXM4, 80 GB)", 2020, 19.5 * T, 156 * T, 312 * T, 312 * T, 2039 * G, 80 * GiB, 300 * G,
        "NVLink 3, 600 GB/s both ways",
        "NVIDIA A100 Tensor Core GPU datasheet, 80 GB SXM: 19.5 TFLOPS FP32, 156 TF32, 312 BF16 and FP16 "
        "(dense; the sheet's 312/624 are with sparsity); 2,039 GB/s HBM2e; NVLink 600 GB/s"),
    GPU("h100", "H100 (SXM5)", 2022, 67 * T, 494.5 * T, 989.5 * T, 989.5 * T, 3350 * G, 80 * GiB, 450 * G,
        "NVLink 4, 900 GB/s both ways",
        "NVIDIA H100 Tensor Core GPU datasheet, SXM: 67 TFLOPS FP32, 989 TF32 and 1,979 BF16/FP16 with "
        "sparsity (half that dense, used here); 80 GB HBM3, 3.35 TB/s; NVLink 900 GB/s"),
    GPU("h200", "H200 (SXM)", 2024, 67 * T, 494.5 * T, 989.5 * T, 989.5 * T, 4800 * G, 141 * GiB, 450 * G,
        "NVLink 4, 900 GB/s both ways",
        "NVIDIA H200 Tensor Core GPU datasheet, SXM: 67 TFLOPS FP32, 989 TF32 and 1,979 BF16/FP16 with "
        "sparsity (half that dense, used here); 141 GB HBM3e, 4.8 TB/s; NVLink 900 GB/s"),
)}
"""The GPUs alexcost knows, by key, oldest first."""

def gpu(key: str) -> GPU:
    try:
        return CATALOG[key]
    except KeyError:
        raise SpecError(f"unknown GPU {key!r}; choose from {', '.join(CATALOG)}") from None


def match(device_name: str) -> GPU | None:
    """The catalog entry a CUDA device's name stands for ("NVIDIA H200" -> h200, "Tesla
    V100-SXM2-32GB" -> v100, "NVIDIA GeForce GTX 580" -> gtx580), or None. Variants the
    catalog does not list (a PCIe H100, a 40 GB A100) match their family's entry, whose spec
    sheet is then only close: the record names the entry used."""
    words = "".join(ch if ch.isalnum() else " " for ch in device_name.lower()).split()
    joined = "".join(words)
    for key in CATALOG:
        if key in words or key in joined:
            return CATALOG[key]
    return None
