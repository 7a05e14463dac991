"""GPUs from their spec sheets: units, clocks, bandwidth, memory and links, each with its source (no torch).

Every peak rate is derived from the chip's units and its clock, as the sheets derive them:
FP32 = SMs x FP32 cores per SM x boost clock x 2 (a fused multiply-add is two FLOPs);
a tensor rate = SMs x the tensor cores' dense FLOPs per SM per clock x the clock the sheet
quotes tensor rates at (the boost clock, except on the H100s, whose sheets quote tensor rates
at a lower clock than FP32). Rates are dense (without the sparsity the sheets also quote);
FP16 and BF16 rates are with FP32 accumulation, as frameworks run them (the GeForce cards'
sheets also quote a rate twice as high with FP16 accumulation). Memory sizes are the sheets'
GB read as GiB (GPU memory comes in powers of two).
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import SpecError

GiB = 2**30

ARCHITECTURES = ("fermi", "kepler", "maxwell", "pascal", "volta", "ampere", "ada", "hopper")
"""NVIDIA's architecture generations, oldest first."""

BOOST_HEADROOM = 1.15
"""GeForce and TITAN cards from Maxwell on run up to about 15% above their rated boost clock under
GPU Boost when power and temperature allow (a GTX 1080 rated at 1733 MHz reaches about 1900 MHz,
a TITAN X (Pascal) rated at 1531 MHz about 1800)."""

DTYPES = ("float32", "tf32", "float16", "bfloat16", "amp")
"""The math a prediction can be asked for: amp is FP16 tensor-core math with FP32 master weights."""


class GPU(NamedTuple):
    """One GPU as its spec sheet describes it: clocks in MHz, bandwidths in bytes/s, memory in bytes,
    tensor rates in dense FLOPs per SM per clock (0: the card has none)."""

    key: str
    name: str
    year: int
    arch: str
    sms: int
    fp32_cores_per_sm: int
    boost_mhz: int
    bandwidth: float
    memory: int
    link: float
    link_name: str
    source: str
    fp16_per_sm_clock: int = 0
    tf32_per_sm_clock: int = 0
    bf16_per_sm_clock: int = 0
    tensor_mhz: int = 0
    """The clock the sheet quotes tensor rates at (0: the boost clock)."""
    fp16_on_cuda_cores: bool = False
    """FP16 runs as paired half-precision on the CUDA cores (the P100), not on tensor cores."""
    gpu_boost: bool = False
    """A GeForce or TITAN card whose GPU Boost raises the clock above the rated boost clock while
    power and temperature allow (data-centre cards hold their rated boost clock at most)."""

    @property
    def boost_headroom(self) -> float:
        """How far above its rated clocks the card may run: `BOOST_HEADROOM` with GPU Boost, else 1."""
        return BOOST_HEADROOM if self.gpu_boost else 1.0

    @property
    def fp32(self) -> float:
        """FP32 FLOP/s on the CUDA cores: SMs x cores per SM x boost clock x 2."""
        return self.sms * self.fp32_cores_per_sm * self.boost_mhz * 1e6 * 2

    def _tensor(self, per_sm_clock: int) -> float | None:
        return self.sms * per_sm_clock * (self.tensor_mhz or self.boost_mhz) * 1e6 if per_sm_clock else None

    @property
    def fp16(self) -> float | None:
        return self._tensor(self.fp16_per_sm_clock)

    @property
    def tf32(self) -> float | None:
        return self._tensor(self.tf32_per_sm_clock)

    @property
    def bf16(self) -> float | None:
        return self._tensor(self.bf16_per_sm_clock)

    @property
    def tensor_cores(self) -> bool:
        return bool(self.fp16_per_sm_clock) and not self.fp16_on_cuda_cores

    def unit(self, dtype: str) -> str:
        """The math unit convolutions and matrix products of ``dtype`` run on: ``fp32`` (CUDA cores),
        ``tf32`` or ``fp16`` (tensor cores; the P100's paired half precision). Half precision on a
        card with no faster unit for it is stored in half and computed in FP32, as cuDNN does."""
        if dtype == "float32":
            return "fp32"
        if dtype == "tf32":
            if not self.tf32_per_sm_clock:
                raise SpecError(f"the {self.name} has no TF32 tensor cores (they came with Ampere, 2020); "
                                f"choose float32, float16, bfloat16 or amp")
            return "tf32"
        if dtype in ("float16", "amp"):
            return "fp16" if self.fp16_per_sm_clock else "fp32"
        if dtype == "bfloat16":
            return "fp16" if self.bf16_per_sm_clock else "fp32"
        raise SpecError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")

    def rate(self, unit: str) -> float:
        """FLOP/s of a math unit (see `unit`)."""
        return {"fp32": self.fp32, "tf32": self.tf32, "fp16": self.fp16}[unit]

    def peak(self, dtype: str) -> float:
        """The peak rate of ``dtype``'s convolutions and matrix products (see `unit`)."""
        if dtype == "bfloat16" and self.bf16_per_sm_clock:
            return self.bf16
        return self.rate(self.unit(dtype))

    def peaks(self, dtype: str):
        """The dtype's peak rate and the bandwidth as a roofline's `alexcost.hardware.roofline.Peaks`."""
        from .roofline import Peaks

        return Peaks(self.peak(dtype), self.bandwidth, f"{self.name} spec sheet, {dtype}",
                     f"{self.name} spec sheet")

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "year": self.year, "architecture": self.arch,
                "sms": self.sms, "fp32_cores_per_sm": self.fp32_cores_per_sm, "boost_mhz": self.boost_mhz,
                "tensor_mhz": self.tensor_mhz or self.boost_mhz, "fp32_flops": self.fp32,
                "tf32_flops": self.tf32, "fp16_flops": self.fp16, "bf16_flops": self.bf16,
                "bandwidth_bytes_per_s": self.bandwidth, "memory_bytes": self.memory,
                "link_bytes_per_s": self.link, "link": self.link_name, "source": self.source}


G = 1e9
PCIE2 = (8 * G, "PCIe 2.0 x16, 8 GB/s each way")
PCIE3 = (15.75 * G, "PCIe 3.0 x16, 15.75 GB/s each way")
PCIE4 = (31.5 * G, "PCIe 4.0 x16, 31.5 GB/s each way")
PCIE5 = (63 * G, "PCIe 5.0 x16, 63 GB/s each way")
CATALOG = {g.key: g for g in (
    GPU("gtx580", "GeForce GTX 580 (3 GB)", 2010, "fermi", 16, 32, 1544, 192.4 * G, 3 * GiB, *PCIE2,
        "NVIDIA GeForce GTX 580 specifications: 512 CUDA cores (16 SMs of 32) at a 1544 MHz processor clock, "
        "1.581 TFLOPS FP32; 384-bit GDDR5 at 4008 MT/s, 192.4 GB/s; 1.5 GB on NVIDIA's card, 3 GB on the "
        "boards the AlexNet paper used"),
    GPU("k40", "Tesla K40", 2013, "kepler", 15, 192, 875, 288 * G, 12 * GiB, *PCIE3,
        "NVIDIA Tesla K40 GPU accelerator datasheet: 2,880 CUDA cores (15 SMX of 192), 4.29 TFLOPS FP32 at the "
        "745 MHz base clock, 5.04 with GPU Boost at 875 MHz (used here); 12 GB GDDR5, 288 GB/s"),
    GPU("k80", "Tesla K80 (one GK210)", 2014, "kepler", 13, 192, 875, 240 * G, 12 * GiB, *PCIE3,
        "NVIDIA Tesla K80 datasheet: two GK210 GPUs, 4,992 CUDA cores, 8.73 TFLOPS FP32 with GPU Boost at "
        "875 MHz, 24 GB GDDR5, 480 GB/s; per GPU (this entry, what a framework sees as one device): 2,496 "
        "cores (13 SMX of 192), 4.37 TFLOPS, 12 GB, 240 GB/s; the board's two GPUs share one PCIe 3.0 x16 slot"),
    GPU("titanx-maxwell", "GeForce GTX TITAN X (Maxwell)", 2015, "maxwell", 24, 128, 1075, 336.5 * G, 12 * GiB,
        *PCIE3,
        "NVIDIA GeForce GTX TITAN X specifications: 3,072 CUDA cores (GM200, 24 SMs of 128), 1000 MHz base, "
        "1075 MHz boost clock (6.6 TFLOPS FP32); 12 GB GDDR5 at 7.0 Gbps on 384 bits, 336.5 GB/s",
        gpu_boost=True),
    GPU("gtx1080", "GeForce GTX 1080", 2016, "pascal", 20, 128, 1733, 320 * G, 8 * GiB, *PCIE3,
        "NVIDIA GeForce GTX 1080 specifications and GP104 whitepaper: 2,560 CUDA cores (20 SMs of 128), "
        "1607 MHz base, 1733 MHz boost clock (8.87 TFLOPS FP32); 8 GB GDDR5X at 10 Gbps on 256 bits, 320 GB/s; "
        "FP16 at 1/64 of FP32 (frameworks compute half precision in FP32 on it)",
        gpu_boost=True),
    GPU("titanx-pascal", "TITAN X (Pascal)", 2016, "pascal", 28, 128, 1531, 480 * G, 12 * GiB, *PCIE3,
        "NVIDIA TITAN X (Pascal) specifications: 3,584 CUDA cores (GP102, 28 SMs of 128), 1417 MHz base, "
        "1531 MHz boost clock (11 TFLOPS FP32); 12 GB GDDR5X at 10 Gbps on 384 bits, 480 GB/s",
        gpu_boost=True),
    GPU("gtx1080ti", "GeForce GTX 1080 Ti", 2017, "pascal", 28, 128, 1582, 484 * G, 11 * GiB, *PCIE3,
        "NVIDIA GeForce GTX 1080 Ti specifications: 3,584 CUDA cores (GP102, 28 SMs of 128), 1480 MHz base, "
        "1582 MHz boost clock (11.3 TFLOPS FP32); 11 GB GDDR5X at 11 Gbps on 352 bits, 484 GB/s",
        gpu_boost=True),
    GPU("p100", "Tesla P100 (SXM2)", 2016, "pascal", 56, 64, 1480, 732 * G, 16 * GiB, 80 * G,
        "NVLink 1, 160 GB/s both ways",
        "NVIDIA Tesla P100 datasheet (NVLink version) and Pascal GP100 whitepaper: 3,584 CUDA cores (56 SMs of "
        "64) at a 1480 MHz boost clock, 10.6 TFLOPS FP32, 21.2 FP16 (paired half precision on the CUDA cores, "
        "256 FLOPs per SM per clock); 16 GB HBM2, 732 GB/s; NVLink 160 GB/s",
        fp16_per_sm_clock=256, fp16_on_cuda_cores=True),
    GPU("titanv", "TITAN V", 2017, "volta", 80, 64, 1455, 652.8 * G, 12 * GiB, *PCIE3,
        "NVIDIA TITAN V specifications and Volta GV100 whitepaper: 5,120 CUDA cores (80 SMs of 64), 640 tensor "
        "cores (8 per SM, 64 FP16 FMAs per clock each: 1,024 FLOPs per SM per clock), 1200 MHz base, 1455 MHz "
        "boost clock: 14.9 TFLOPS FP32, 119 FP16 tensor (NVIDIA's page rounds to 110 at a lower clock); "
        "12 GB HBM2 on 3,072 bits at 1.7 Gbps, 652.8 GB/s",
        fp16_per_sm_clock=1024,
        gpu_boost=True),
    GPU("v100", "Tesla V100 (SXM2, 32 GB)", 2017, "volta", 80, 64, 1530, 900 * G, 32 * GiB, 150 * G,
        "NVLink 2, 300 GB/s both ways",
        "NVIDIA Tesla V100 datasheet (SXM2) and Volta GV100 whitepaper: 5,120 CUDA cores (80 SMs of 64) and "
        "640 tensor cores (1,024 FP16 FLOPs per SM per clock) at a 1530 MHz boost clock: 15.7 TFLOPS FP32, "
        "125 tensor (FP16); 32 GB HBM2, 900 GB/s; NVLink 300 GB/s",
        fp16_per_sm_clock=1024),
    GPU("a100-40gb", "A100 (SXM4, 40 GB)", 2020, "ampere", 108, 64, 1410, 1555 * G, 40 * GiB, 300 * G,
        "NVLink 3, 600 GB/s both ways",
        "NVIDIA A100 Tensor Core GPU datasheet and architecture whitepaper, 40 GB SXM: 6,912 CUDA cores (108 SMs "
        "of 64), 432 tensor cores (2,048 dense FP16/BF16 FLOPs and 1,024 TF32 per SM per clock), 1410 MHz "
        "boost clock: 19.5 TFLOPS FP32, 156 TF32, 312 BF16 and FP16 (dense; the sheet's 312/624 are with "
        "sparsity); 40 GB HBM2, 1,555 GB/s; NVLink 600 GB/s",
        fp16_per_sm_clock=2048, tf32_per_sm_clock=1024, bf16_per_sm_clock=2048),
    GPU("a100-pcie-40gb", "A100 (PCIe, 40 GB)", 2020, "ampere", 108, 64, 1410, 1555 * G, 40 * GiB, *PCIE4,
        "NVIDIA A100 Tensor Core GPU datasheet, 40 GB PCIe: the SXM4 board's chip and clocks (19.5 TFLOPS "
        "FP32, 156 TF32, 312 FP16/BF16 dense at 1410 MHz) at a 250 W power limit; 40 GB HBM2, 1,555 GB/s; "
        "PCIe 4.0 x16 (an NVLink bridge joins two cards at most)",
        fp16_per_sm_clock=2048, tf32_per_sm_clock=1024, bf16_per_sm_clock=2048),
    GPU("a100", "A100 (SXM4, 80 GB)", 2020, "ampere", 108, 64, 1410, 2039 * G, 80 * GiB, 300 * G,
        "NVLink 3, 600 GB/s both ways",
        "NVIDIA A100 Tensor Core GPU datasheet, 80 GB SXM: 6,912 CUDA cores (108 SMs of 64) at 1410 MHz: "
        "19.5 TFLOPS FP32, 156 TF32, 312 BF16 and FP16 (dense; the sheet's 312/624 are with sparsity); "
        "2,039 GB/s HBM2e; NVLink 600 GB/s",
        fp16_per_sm_clock=2048, tf32_per_sm_clock=1024, bf16_per_sm_clock=2048),
    GPU("rtx3090", "GeForce RTX 3090", 2020, "ampere", 82, 128, 1695, 936 * G, 24 * GiB, *PCIE4,
        "NVIDIA Ampere GA102 GPU architecture whitepaper, RTX 3090: 10,496 CUDA cores (82 SMs of 128), 328 "
        "tensor cores, 1695 MHz boost clock: 35.6 TFLOPS FP32, 35.6 TF32 and 71 FP16/BF16 tensor with FP32 "
        "accumulation (512 FLOPs per SM per clock; 142 with FP16 accumulation), dense; 24 GB GDDR6X at "
        "19.5 Gbps on 384 bits, 936 GB/s",
        fp16_per_sm_clock=512, tf32_per_sm_clock=256, bf16_per_sm_clock=512,
        gpu_boost=True),
    GPU("rtx4090", "GeForce RTX 4090", 2022, "ada", 128, 128, 2520, 1008 * G, 24 * GiB, *PCIE4,
        "NVIDIA Ada GPU architecture whitepaper, RTX 4090: 16,384 CUDA cores (128 SMs of 128), 512 tensor "
        "cores, 2520 MHz boost clock: 82.6 TFLOPS FP32, 82.6 TF32 and 165.2 FP16/BF16 tensor with FP32 "
        "accumulation (330.3 with FP16 accumulation), dense; 24 GB GDDR6X at 21 Gbps on 384 bits, 1,008 GB/s",
        fp16_per_sm_clock=512, tf32_per_sm_clock=256, bf16_per_sm_clock=512,
        gpu_boost=True),
    GPU("h100-pcie", "H100 (PCIe)", 2022, "hopper", 114, 128, 1755, 2000 * G, 80 * GiB, *PCIE5,
        "NVIDIA H100 Tensor Core GPU datasheet and Hopper architecture whitepaper, PCIe: 14,592 CUDA cores "
        "(114 SMs of 128) at a 1755 MHz boost clock, 51.2 TFLOPS FP32; tensor rates at 1620 MHz (4,096 dense "
        "FP16/BF16 and 2,048 TF32 FLOPs per SM per clock): 378 TF32, 756 FP16/BF16 dense (the sheet's 1,513 "
        "is with sparsity); 80 GB HBM2e, 2.0 TB/s; PCIe 5.0 x16 (NVLink bridge optional)",
        fp16_per_sm_clock=4096, tf32_per_sm_clock=2048, bf16_per_sm_clock=4096, tensor_mhz=1620),
    GPU("h100", "H100 (SXM5)", 2022, "hopper", 132, 128, 1980, 3350 * G, 80 * GiB, 450 * G,
        "NVLink 4, 900 GB/s both ways",
        "NVIDIA H100 Tensor Core GPU datasheet and Hopper architecture whitepaper, SXM5: 16,896 CUDA cores "
        "(132 SMs of 128) at a 1980 MHz boost clock, 67 TFLOPS FP32; tensor rates at 1830 MHz (4,096 dense "
        "FP16/BF16 and 2,048 TF32 FLOPs per SM per clock): 494.7 TF32, 989.4 BF16/FP16 (the sheet's 989 TF32 "
        "and 1,979 BF16/FP16 are with sparsity); 80 GB HBM3, 3.35 TB/s; NVLink 900 GB/s",
        fp16_per_sm_clock=4096, tf32_per_sm_clock=2048, bf16_per_sm_clock=4096, tensor_mhz=1830),
    GPU("h200", "H200 (SXM)", 2024, "hopper", 132, 128, 1980, 4800 * G, 141 * GiB, 450 * G,
        "NVLink 4, 900 GB/s both ways",
        "NVIDIA H200 Tensor Core GPU datasheet, SXM: the H100 SXM5's chip and clocks (67 TFLOPS FP32; 989 TF32 "
        "and 1,979 BF16/FP16 with sparsity, half that dense, tensor rates at 1830 MHz); 141 GB HBM3e, "
        "4.8 TB/s; NVLink 900 GB/s",
        fp16_per_sm_clock=4096, tf32_per_sm_clock=2048, bf16_per_sm_clock=4096, tensor_mhz=1830),
)}
"""The GPUs alexcost knows, by key, oldest first within a family (``a100`` and ``h100`` are the 80 GB
SXM boards)."""


def gpu(key: str) -> GPU:
    try:
        return CATALOG[key]
    except (KeyError, TypeError):
        raise SpecError(f"unknown GPU {key!r}; choose from {', '.join(CATALOG)}") from None


def match(device_name: str) -> GPU | None:
    """The catalog entry a CUDA device's name stands for ("NVIDIA H200" -> h200, "Tesla
    V100-SXM2-32GB" -> v100, "NVIDIA A100-SXM4-40GB" -> a100-40gb, "NVIDIA H100 PCIe" -> h100-pcie,
    "NVIDIA GeForce RTX 4090" -> rtx4090), or None. Variants the catalog does not list (a 16 GB V100,
    an 80 GB PCIe A100) match their family's nearest entry, whose spec sheet is then only close: the
    record names the entry used."""
    words = "".join(ch if ch.isalnum() else " " for ch in device_name.lower()).split()
    joined = "".join(words)
    if "titan" in words:
        if "v" in words:
            return CATALOG["titanv"]
        if "x" in words or "xp" in words:
            return CATALOG["titanx-maxwell" if "pascal" not in words and "gtx" in words else "titanx-pascal"]
        return None
    if "a100" in joined:
        if "80gb" in joined:
            return CATALOG["a100"]
        return CATALOG["a100-pcie-40gb" if "pcie" in joined else "a100-40gb"]
    if "h100" in joined:
        return CATALOG["h100-pcie" if "pcie" in joined else "h100"]
    for key in ("gtx1080ti", "gtx1080", "gtx580", "rtx3090", "rtx4090", "k40", "k80", "p100", "v100", "h200"):
        if key in words or key in joined:
            return CATALOG[key]
    return None
