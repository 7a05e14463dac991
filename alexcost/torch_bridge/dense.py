"""The calls of dense and video models, as alexcost layers: convolutions over 1, 2 and 3 spatial
dimensions and the transposed one, the 3-D pools, batch, group and instance normalisation,
``F.interpolate`` and ``F.pad``. Handlers as in `alexcost.torch_bridge.ops`, which adds
`FUNCTIONS` to its table. Imports torch.
"""

from __future__ import annotations

import torch.nn.functional as F

from ..errors import SpecError
from ..layers import (AdaptiveAvgPool3d, AvgPool3d, BatchNorm1d, BatchNorm2d, BatchNorm3d, Conv1d, Conv2d, Conv3d,
                     ConvTranspose2d, GroupNorm, InstanceNorm2d, MaxPool3d, Pad, Upsample)
from . import per_pass
from .calls import REQUIRED, bind, unary, weight_arg

CONVOLUTIONS = (Conv1d, Conv2d, Conv3d, ConvTranspose2d)
"""The kinds whose layer is read from the weight's shape, as torch's functional call reads it."""

_CONV_ARGS = {False: ("stride", "padding", "dilation", "groups"),
              True: ("stride", "padding", "output_padding", "groups", "dilation")}
"""The arguments after the bias, in order, of ``F.conv2d`` and ``F.conv_transpose2d`` (and their kin)."""


def convolution(kind):
    """``F.conv1d``, ``F.conv2d``, ``F.conv3d`` and ``F.conv_transpose2d`` on the module's parameters."""
    transposed = kind is ConvTranspose2d
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "output_padding": 0}

    def handle(r, node, args, kwargs):
        spec = (("input", REQUIRED), ("weight", REQUIRED), ("bias", None),
                *((name, defaults[name]) for name in _CONV_ARGS[transposed]))
        b = bind(r, node, spec, args, kwargs)
        x = r.tensor(b["input"], node)
        bias = weight_arg(r, node, b["bias"], "bias", 1)
        given = {k: r.constant(b[k], node, k) for k in _CONV_ARGS[transposed]}
        w = b["weight"]
        if kind is Conv2d and per_pass.given_weight(r, w):
            return per_pass.convolved(r, node, x, w, bias, given, conv_layer)  # a buffer, or computed once per pass
        weight = weight_arg(r, node, w, "weight", kind.dims + 2)
        return r.emit(node, conv_layer(r, node, kind, x, tuple(weight.tensor.shape), bias, given), [x],
                      params=(("weight", weight), ("bias", bias)))
    return handle


def conv_layer(r, node, kind, x, weight: tuple, bias, args: dict):
    """The convolution of ``kind`` that convolves ``x`` with a weight of shape ``weight`` (which gives the kernel
    and the channels, as torch's functional call reads them) and ``args``."""
    shape = list(weight)
    groups = args.get("groups", 1)
    groups = groups if isinstance(groups, int) and groups > 0 else 1  # a bad value is refused by the kind
    if kind is ConvTranspose2d:
        expected, out = shape[0], shape[1] * groups
    else:
        expected, out = shape[1] * groups, shape[0]
    layer = r.build(node, kind, dict(out_channels=out, kernel_size=tuple(shape[2:]), bias=bias is not None, **args))
    if len(x.shape) == kind.dims + 1 and expected != x.shape[0]:
        given = f"transposed=1, weight of size {shape}" if kind is ConvTranspose2d else \
            f"groups={groups}, weight of size {shape}"
        raise SpecError(f"Given {given}, expected input[N, {', '.join(map(str, x.shape))}] to have {expected} "
                        f"channels, but got {x.shape[0]} channels instead", where=r.where(node, x.shape))
    return layer


def module_conv(r, node, kind, module, weight, bias, x):
    """A leaf convolution module as its forward runs it: its weight's shape, its arguments and, for a
    ``padding_mode`` other than zeros, the padding it applies first."""
    args = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation, "groups": module.groups}
    if kind is ConvTranspose2d:
        args["output_padding"] = module.output_padding
    else:
        args["padding_mode"] = module.padding_mode
        if module.padding_mode != "zeros":
            args["padding"] = _applied_padding(r, node, module, weight)
    return conv_layer(r, node, kind, x, tuple(weight.tensor.shape), bias, args)


def _applied_padding(r, node, module, weight):
    """The padding a convolution with ``padding_mode`` other than zeros applies: ``F.pad`` by the
    ``_reversed_padding_repeated_twice`` the module computed when it was made (not its ``padding``)."""
    flat = module._reversed_padding_repeated_twice
    pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)][::-1]  # first spatial dimension first
    if all(before == after for before, after in pairs):
        return tuple(before for before, _ in pairs)
    same = []
    for k, d in zip(weight.tensor.shape[2:], module.dilation):
        total = d * (k - 1)
        same.append((total // 2, total - total // 2))
    if pairs == same:
        return "same"
    shown = ", ".join(f"{before}, {after}" for before, after in pairs)
    r.refuse(node, f"pads by ({shown}) (before, after per spatial dimension) before it convolves "
                   f"(padding_mode={module.padding_mode!r}); alexcost reads even padding, or 'same'")


def _buffer(r, node, value, name):
    if not r.is_attribute(value) or value.kind != "buffer":
        r.refuse(node, f"its {name} is not a buffer of the module, got {r.show(value)}")


def _affine(r, node, b, kind: str):
    """The weight and bias of a normalisation: both, a weight alone (torch's ``bias=False``), or neither."""
    weight, bias = weight_arg(r, node, b["weight"], "weight", 1), weight_arg(r, node, b["bias"], "bias", 1)
    if weight is None and bias is not None:
        r.refuse(node, f"has a bias without a weight; alexcost's {kind} has a bias only with a weight (affine)")
    return weight, bias, dict(affine=weight is not None, bias=bias is not None)


BATCH_NORMS = {1: BatchNorm1d, 2: BatchNorm1d, 3: BatchNorm2d, 4: BatchNorm3d}
"""The batch norm kind by the rank of its per-sample input."""


def batch_norm(r, node, args, kwargs):
    spec = (("input", REQUIRED), ("running_mean", REQUIRED), ("running_var", REQUIRED), ("weight", None),
            ("bias", None), ("training", False), ("momentum", 0.1), ("eps", 1e-5))
    b = bind(r, node, spec, args, kwargs)
    if (r.constant(b["training"], node, "training") and b["running_mean"] is None and b["running_var"] is None
            and per_pass.computed(r, b["input"])):
        return per_pass.standardised(r, node, b)  # a weight standardised once per pass
    x = r.tensor(b["input"], node)
    if r.constant(b["training"], node, "training"):
        r.refuse(node, "normalises with the batch's statistics (training=True); alexcost counts inference")
    if node.name not in r.batch_stats:
        r.untrainable.append(f"{r.where(node)} normalises with the running statistics (training=False) in training "
                             f"mode too; alexcost counts a training step of batch norm with the batch's statistics")
    for name in ("running_mean", "running_var"):
        _buffer(r, node, b[name], name)
    kind = BATCH_NORMS.get(len(x.shape), BatchNorm2d)
    weight, bias, flags = _affine(r, node, b, kind.__name__)
    layer = r.build(node, kind, dict(eps=r.constant(b["eps"], node, "eps"),
                                     momentum=r.constant(b["momentum"], node, "momentum"), **flags))
    return r.emit(node, layer, [x], params=(("weight", weight), ("bias", bias)))


def group_norm(r, node, args, kwargs):
    spec = (("input", REQUIRED), ("num_groups", REQUIRED), ("weight", None), ("bias", None), ("eps", 1e-5))
    b = bind(r, node, spec, args, kwargs)
    x = r.tensor(b["input"], node)
    weight, bias, flags = _affine(r, node, b, "GroupNorm")
    layer = r.build(node, GroupNorm, dict(num_groups=r.constant(b["num_groups"], node, "num_groups"),
                                          eps=r.constant(b["eps"], node, "eps"), **flags))
    return r.emit(node, layer, [x], params=(("weight", weight), ("bias", bias)))


def instance_norm(r, node, args, kwargs):
    """``F.instance_norm``: by the input's statistics (``use_input_stats``, no running statistics), or
    by the module's running statistics (``use_input_stats=False``, as a module with
    ``track_running_stats`` runs at inference)."""
    spec = (("input", REQUIRED), ("running_mean", None), ("running_var", None), ("weight", None), ("bias", None),
            ("use_input_stats", True), ("momentum", 0.1), ("eps", 1e-5))
    b = bind(r, node, spec, args, kwargs)
    x = r.tensor(b["input"], node)
    tracked = b["running_mean"] is not None or b["running_var"] is not None
    stats = r.constant(b["use_input_stats"], node, "use_input_stats")
    if tracked == bool(stats):
        r.refuse(node, "normalises by the input's statistics while it updates running ones (use_input_stats=True "
                       "with running_mean), which a module runs in training mode only; alexcost counts inference"
                 if tracked else "Expected running_mean and running_var to be defined when use_input_stats is false")
    for name in ("running_mean", "running_var") if tracked else ():
        _buffer(r, node, b[name], name)
    weight, bias, flags = _affine(r, node, b, "InstanceNorm2d")
    layer = r.build(node, InstanceNorm2d, dict(eps=r.constant(b["eps"], node, "eps"),
                                               momentum=r.constant(b["momentum"], node, "momentum"),
                                               track_running_stats=tracked, **flags))
    return r.emit(node, layer, [x], params=(("weight", weight), ("bias", bias)))


PAD_MODES = {"_ConstantPadNd": "constant", "_ReflectionPadNd": "reflect", "_ReplicationPadNd": "replicate",
             "_CircularPadNd": "circular"}
"""The mode of each family of torch.nn's padding modules, by its base class."""


def padding_module(module):
    """torch.nn's padding module (ReflectionPad2d, ConstantPad3d, CircularPad1d, ...) as the `Pad` its
    forward runs: ``F.pad(x, module.padding, mode, module.value)``."""
    mode = next(PAD_MODES[base.__name__] for base in type(module).__mro__ if base.__name__ in PAD_MODES)
    return Pad(pad=tuple(module.padding), mode=mode, value=module.value if mode == "constant" else None)


_POOL = (("kernel_size", REQUIRED), ("stride", None), ("padding", 0))

FUNCTIONS = {
    F.conv1d: convolution(Conv1d), F.conv2d: convolution(Conv2d), F.conv3d: convolution(Conv3d),
    F.conv_transpose2d: convolution(ConvTranspose2d),
    F.max_pool3d: unary(MaxPool3d, (*_POOL, ("dilation", 1), ("ceil_mode", False), ("return_indices", False))),
    F.avg_pool3d: unary(AvgPool3d, (*_POOL, ("ceil_mode", False), ("count_include_pad", True),
                                    ("divisor_override", None))),
    F.adaptive_avg_pool3d: unary(AdaptiveAvgPool3d, (("output_size", REQUIRED),)),
    F.batch_norm: batch_norm, F.group_norm: group_norm, F.instance_norm: instance_norm,
    F.interpolate: unary(Upsample, (("size", None), ("scale_factor", None), ("mode", "nearest"),
                                    ("align_corners", None), ("recompute_scale_factor", None), ("antialias", False)),
                         fixed={"antialias": False}),
    F.pad: unary(Pad, (("pad", REQUIRED), ("mode", "constant"), ("value", None))),
}
"""The functions read, by the object fx records as a call_function node's target."""
