"""The peers alexcost is measured against, and what each of them counts.

Each :class:`Peer` runs one tool on a built ``torch.nn.Module`` and returns its
headline count and parameter total. ``rule`` predicts that headline count from
alexcost's own per-layer counts, so the agreement benchmark can show that every
difference between the tools is a convention, not an error. The rules were
read from each peer's source (versions in ``benchmarks/README.md``) and are
checked layer by layer and network by network in ``bench_agreement.py``.

A peer that does not import is reported as unavailable; nothing here is needed
by alexcost itself.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import warnings
from dataclasses import dataclass
from math import prod
from typing import Callable

# fvcore's import runs torch.jit.script, which torch 2.13 deprecates: that warning, and only it.
for _category in (DeprecationWarning, FutureWarning):  # torch 2.13 / 2.14
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=_category)


@dataclass(frozen=True)
class Count:
    """One peer's answer: its headline count, its parameter total, and whether it saw every layer."""

    total: int
    params: int | None
    complete: bool = True


@dataclass(frozen=True)
class Peer:
    """A peer tool: how to run it and how its headline number maps onto alexcost's counts.

    ``prepare(module, input_shape)`` builds whatever the tool needs (an input tensor, a
    meta-device copy) once; ``run(prepared)`` is the call the speed benchmark times.
    ``rule(row)`` gives, for one alexcost :class:`~alexcost.engine.cost.LayerCost`, the
    number this peer should report for that layer.
    """

    name: str
    package: str
    call: str
    unit: str
    convention: str
    prepare: Callable
    run: Callable
    rule: Callable
    script: str
    script_rule: Callable | None = None

    def available(self) -> str | None:
        """``None`` if the peer imports, else why not (one line)."""
        try:
            importlib.import_module(self.package)
        except Exception as err:  # a broken install raises anything
            return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:100]
        return None

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.package)
        except PackageNotFoundError:
            return "?"

    def count(self, module, input_shape) -> Count:
        return self.run(self.prepare(module, input_shape))

    def expected(self, cost) -> int:
        """What this peer should report for a whole network, from alexcost's rows."""
        return sum(self.rule(row) for row in cost.layers)

    def expected_for_script(self, cost) -> int:
        """The same for the plain torch.nn model of bench_process.py (square kernels given as ints)."""
        return sum((self.script_rule or self.rule)(row) for row in cost.layers)


# -- per-layer quantities the rules are written in ------------------------------------------

def _kind(row) -> str:
    return type(row.layer).__name__


def _n_in(row) -> int:
    return row.batch * prod(row.input_shape)


def _n_out(row) -> int:
    return row.output_elements


def _mac_layer(row) -> bool:
    return _kind(row) in ("Conv2d", "Linear")


# -- the peers ----------------------------------------------------------------------------

def _input(module, input_shape):
    import torch

    torch.manual_seed(0)
    return module.eval(), torch.randn(1, *input_shape)


def _fvcore_run(prepared) -> Count:
    from fvcore.nn import FlopCountAnalysis, parameter_count

    module, x = prepared
    analysis = FlopCountAnalysis(module, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return Count(int(analysis.total()), int(parameter_count(module)[""]))


def _fvcore_rule(row) -> int:
    if _mac_layer(row):
        return row.macs
    if _kind(row) == "AdaptiveAvgPool2d":  # fvcore: one flop per input element
        return _n_in(row)
    return 0


def _torch_run(prepared) -> Count:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module, x = prepared
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return Count(int(counter.get_total_flops()), sum(p.numel() for p in module.parameters()))


@contextlib.contextmanager
def math_attention():
    """No grad, and attention as the matrix products FlopCounterMode counts (it counts no fused CPU kernel):
    torch's math backend for scaled dot-product attention, nn.MultiheadAttention's fast path off."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


def _torch_meta_prepare(module, input_shape):
    import torch

    return copy.deepcopy(module).eval().to("meta"), torch.empty(1, *input_shape, device="meta")


def _torch_rule(row) -> int:
    return 2 * row.macs  # a multiply and an add per MAC; bias and everything else uncounted


def _ptflops_run(backend: str):
    def run(prepared) -> Count:
        from ptflops import get_model_complexity_info

        module, x = prepared
        with contextlib.redirect_stdout(io.StringIO()):
            macs, params = get_model_complexity_info(module, tuple(x.shape[1:]), as_strings=False,
                                                     print_per_layer_stat=False, verbose=False,
                                                     backend=backend)
        return Count(int(macs), int(params))
    return run


def _ptflops_aten_rule(row) -> int:
    return row.macs + row.bias_adds if _mac_layer(row) else 0


def _lrn_ptflops(row) -> int:
    """ptflops' functional patches inside LocalResponseNorm: input.mul(input), avg_pool3d on the
    padded squares (counted at its input), .mul(alpha), .add(k); pow and ``/`` are not patched."""
    size = row.layer.size
    c, *rest = row.input_shape
    padded = row.batch * (c + size // 2 + (size - 1) // 2) * prod(rest)
    return 3 * _n_in(row) + padded


def _ptflops_pytorch_rule(row) -> int:
    kind = _kind(row)
    if _mac_layer(row):
        return row.macs + row.bias_adds
    # ReLU and the pools are counted twice: once by ptflops' module hook, once more by its
    # patch of the F.relu / F.*pool* call that module makes.
    if kind == "ReLU":
        return 2 * _n_out(row)
    if kind in ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"):
        return 2 * _n_in(row)
    if kind == "LocalResponseNorm":
        return _lrn_ptflops(row)
    if kind == "Softmax":
        return _n_in(row)
    return 0


def _thop_run(prepared) -> Count:
    import thop

    module, x = prepared
    with contextlib.redirect_stdout(io.StringIO()):
        macs, params = thop.profile(module, inputs=(x,), verbose=False)
    return Count(int(macs), int(params))


def _thop_rule(row) -> int:
    kind = _kind(row)
    if _mac_layer(row):
        return row.macs
    if kind == "Softmax":  # exp, add, divide per feature, one add fewer per softmax
        features = (row.batch, *row.input_shape)[row.layer.dim]  # thop needs an explicit dim
        return (_n_in(row) // features) * (3 * features - 1)
    if kind == "AvgPool2d":
        return _n_out(row)
    if kind == "AdaptiveAvgPool2d":  # float kernel in/out per dim, +1 divide, truncated
        (h, w), (oh, ow) = row.input_shape[1:], row.output_shape[1:]
        return int(((h / oh) * (w / ow) + 1) * _n_out(row))
    return 0


def _torchinfo_run(prepared) -> Count:
    import torchinfo

    module, x = prepared
    stats = torchinfo.summary(module, input_data=x, verbose=0, device="cpu")
    return Count(int(stats.total_mult_adds), int(stats.total_params))


def _torchscan_run(prepared) -> Count:
    import torchscan

    module, x = prepared
    with contextlib.redirect_stdout(io.StringIO()):
        report = torchscan.crawl_module(module, tuple(x.shape[1:]))
    macs, params = report["totals"]["macs"], report["totals"]["parameters"]
    return Count(int(macs["known_value"]), int(params["value"]), macs["status"] == "complete")


def _adaptive_kernel(size: int, out: int) -> int:
    return size // out if size % out == 0 else size % out + 1


def _torchscan_rule(row, int_kernels: bool = False) -> int:
    """torchscan takes a pooling layer's kernel size as stored: a pair gives kH*kW, but an int k
    (``nn.MaxPool2d(3)``, a 3x3 window) gives k, as if the window were 1-D (``int_kernels``)."""
    kind = _kind(row)
    if _mac_layer(row):
        return row.macs
    if kind in ("MaxPool2d", "AvgPool2d"):
        kh, kw = row.layer.kernel_size
        window = kh if int_kernels else kh * kw
        return _n_out(row) * (window - 1 + (2 if kind == "AvgPool2d" else 0))
    if kind == "AdaptiveAvgPool2d":
        (h, w), (oh, ow) = row.input_shape[1:], row.output_shape[1:]
        return _n_out(row) * (_adaptive_kernel(h, oh) * _adaptive_kernel(w, ow) - 1 + 2)
    return 0  # LocalResponseNorm, Softmax: unsupported (torchscan says "partial")


_FILTER = ("import warnings; warnings.filterwarnings('ignore', message=r'`torch\\.jit\\.script` is deprecated', "
           "category=DeprecationWarning)\n")

PEERS = (
    Peer("fvcore", "fvcore", "FlopCountAnalysis(m, x).total()", "flops (= MACs)",
         "Conv2d/Linear MACs, bias excluded; AdaptiveAvgPool2d one per input element; "
         "pooling, LRN, activations, softmax uncounted",
         _input, _fvcore_run, _fvcore_rule,
         _FILTER + "from fvcore.nn import FlopCountAnalysis\n"
         "a = FlopCountAnalysis(m, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)\n"
         "print(a.total())\n"),
    Peer("torch FlopCounterMode", "torch", "FlopCounterMode on a CPU forward", "FLOPs",
         "2 x Conv2d/Linear MACs, bias excluded; nothing else",
         _input, _torch_run, _torch_rule,
         "from torch.utils.flop_counter import FlopCounterMode\n"
         "with torch.no_grad(), FlopCounterMode(display=False) as c: m(x)\n"
         "print(c.get_total_flops())\n"),
    Peer("torch FlopCounterMode (meta)", "torch", "FlopCounterMode on meta tensors", "FLOPs",
         "as FlopCounterMode; no arithmetic runs (meta device)",
         _torch_meta_prepare, _torch_run, _torch_rule,
         "from torch.utils.flop_counter import FlopCounterMode\n"
         "m, x = m.to('meta'), x.to('meta')\n"
         "with torch.no_grad(), FlopCounterMode(display=False) as c: m(x)\n"
         "print(c.get_total_flops())\n"),
    Peer("ptflops (aten)", "ptflops", "get_model_complexity_info(backend='aten')", "MACs",
         "Conv2d/Linear MACs + bias adds; nothing else",
         _input, _ptflops_run("aten"), _ptflops_aten_rule,
         "from ptflops import get_model_complexity_info\n"
         "print(get_model_complexity_info(m, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False, "
         "backend='aten')[0])\n"),
    Peer("ptflops (pytorch)", "ptflops", "get_model_complexity_info(backend='pytorch')", "MACs",
         "Conv2d/Linear MACs + bias adds; ReLU 2 per output and pools 2 per input element "
         "(module hook + functional patch both count); softmax 1 per element; LRN its mul/add/avg_pool3d",
         _input, _ptflops_run("pytorch"), _ptflops_pytorch_rule,
         "from ptflops import get_model_complexity_info\n"
         "print(get_model_complexity_info(m, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False, "
         "backend='pytorch')[0])\n"),
    Peer("thop", "thop", "thop.profile(m, inputs=(x,))", "MACs",
         "Conv2d/Linear MACs, bias excluded; AvgPool2d one per output; AdaptiveAvgPool2d "
         "(kernel + 1) per output; softmax 3n - 1; ReLU, max-pool, LRN uncounted",
         _input, _thop_run, _thop_rule,
         "import thop\nprint(int(thop.profile(m, inputs=(x,), verbose=False)[0]))\n"),
    Peer("torchinfo", "torchinfo", "torchinfo.summary(m, input_data=x)", "mult-adds",
         "Conv2d/Linear MACs + bias adds; nothing else",
         _input, _torchinfo_run, _ptflops_aten_rule,
         "import torchinfo\nprint(torchinfo.summary(m, input_data=x, verbose=0).total_mult_adds)\n"),
    Peer("torchscan", "torchscan", "torchscan.crawl_module(m, shape)", "MACs",
         "Conv2d/Linear MACs, bias excluded; max-pool kH*kW - 1 per output (as alexcost); "
         "avg-pools kernel + 1 per output; LRN and softmax unsupported; an int kernel_size k is "
         "taken as k, not k*k",
         _input, _torchscan_run, _torchscan_rule,
         "import torchscan, contextlib, io\n"
         "with contextlib.redirect_stdout(io.StringIO()): r = torchscan.crawl_module(m, tuple(x.shape[1:]))\n"
         "print(r['totals']['macs']['known_value'])\n",
         lambda row: _torchscan_rule(row, int_kernels=True)),
)
"""Every peer, in the order the benchmarks print them."""


def by_name(names) -> tuple[Peer, ...]:
    """The peers called ``names`` (all of them for ``None``)."""
    if not names:
        return PEERS
    known = {p.name: p for p in PEERS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown peer(s) {unknown}; choose from {list(known)}")
    return tuple(known[n] for n in names)


@contextlib.contextmanager
def quiet():
    """Silence the peers' log records and prints while they run (fvcore logs unsupported ops)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
