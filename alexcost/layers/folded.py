"""`Folded`: a layer applied to each row of a sample's first dimension (windows or heads folded into the batch).

torch runs a module on a ``(N*k, ...)`` tensor whose rows ``b*k`` to ``b*k + k - 1`` are sample ``b``'s
(MViT's pooling on its heads, a window's convolution): per sample, the ``(k, ...)`` tensor, each of whose
``k`` rows the module reads as a sample of its own. So every count of the layer on one row is counted ``k``
times per sample (for a training step, the layer's rules at a batch ``k`` times as large), its parameters and
buffers once: the factor is applied here, for every kind alike. Not a spec-file kind: `from_module` makes it.
"""

from __future__ import annotations

from ..errors import SpecError, format_shape
from .base import Grads, Layer, Saved, Shape, TrainContext, layer_kind


@layer_kind
class Folded(Layer):
    """``layer`` run on each of the ``k`` rows of a per-sample input ``(k, ...)``: torch's module on the
    ``(N*k, ...)`` tensor. Output ``(k, *layer's output)``; parameters and buffers ``layer``'s; MACs, bias
    adds, other ops (fvcore's and FlopCounterMode's counts too) ``k`` times ``layer``'s on a row; a
    training step's rules ``layer``'s at a batch of ``N*k`` rows. ``layer``: one input, one output, in
    storage of its own."""

    layer: Layer

    def __post_init__(self):
        super().__post_init__()
        inner = self.layer
        if not isinstance(inner, Layer) or isinstance(inner, Folded):
            raise SpecError(f"Folded reads a layer, got {type(inner).__name__}")
        kind = type(inner)
        if kind.arity != 1 or kind.multi_output or kind.storage != "new" or inner.layout not in (
                "contiguous", "format"):
            raise SpecError(f"Folded reads a layer of one input and one output in storage of its own, laid out "
                            f"contiguously; {kind.__name__} is not")

    @property
    def layout(self) -> str:
        """Contiguous; a layer that keeps channels last (a pool, a convolution) keeps the rows channels-last
        where torch's ``(N*k, ...)`` input is."""
        return "rows format" if self.layer.layout == "format" else "contiguous"

    @property
    def group(self) -> str:
        return self.layer.group

    @staticmethod
    def _rows(x: Shape) -> tuple[int, Shape]:
        return x[0], tuple(x[1:])

    # -- shape and counts -----------------------------------------------------------------------------
    def output_shape(self, x: Shape) -> Shape:
        if len(x) < 2:
            raise SpecError(f"Folded expects rows of a tensor per sample (k, ...), got {format_shape(x)}")
        k, row = self._rows(x)
        return (k, *self.layer.output_shape(row))

    def weight_params(self, x: Shape) -> int:
        return self.layer.weight_params(x[1:])

    def bias_params(self, x: Shape) -> int:
        return self.layer.bias_params(x[1:])

    def buffers(self, x: Shape) -> int:
        return self.layer.buffers(x[1:])

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        return self.layer.buffer_bytes(x[1:], itemsize)

    def macs(self, x: Shape, y: Shape) -> int:
        return x[0] * self.layer.macs(x[1:], y[1:])

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return x[0] * self.layer.bias_adds(x[1:], y[1:])

    def other_ops(self, x: Shape, y: Shape) -> int:
        return x[0] * self.layer.other_ops(x[1:], y[1:])

    def fvcore_count(self, x: Shape, y: Shape) -> int | None:
        count = self.layer.fvcore_count(x[1:], y[1:])
        return None if count is None else x[0] * count

    def torch_flops(self, x: Shape, y: Shape) -> int:
        return x[0] * self.layer.torch_flops(x[1:], y[1:])

    # -- training -------------------------------------------------------------------------------------
    def backward_macs(self, x: Shape, y: Shape, grads: Grads) -> int:
        return x[0] * self.layer.backward_macs(x[1:], y[1:], grads)

    def torch_backward_flops(self, x: Shape, y: Shape, grads: Grads, *, groups_counted: bool = True) -> int:
        return x[0] * self.layer.torch_backward_flops(x[1:], y[1:], grads, groups_counted=groups_counted)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return self.layer.backward_other_ops(x[1:], y[1:], grads, batch * x[0])

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        return x[0] * self.layer.train_other_ops(x[1:], y[1:])

    def check_training(self, x: Shape, batch: int) -> None:
        self.layer.check_training(x[1:], batch * x[0])

    def train_copies(self) -> bool:
        return self.layer.train_copies()

    def train_inplace(self) -> bool:
        return self.layer.train_inplace()

    def keeps_weight(self, grads: Grads) -> bool:
        return self.layer.keeps_weight(grads)

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """The layer's at a batch of ``N*k`` rows, its input's strides those of torch's ``(N*k, ...)`` view
        (refused where the rows of the samples are not one run of equal strides: not such a view)."""
        k, strides = x[0], ctx.strides[0]
        if strides is None or (ctx.batch > 1 and strides[0] != k * strides[1]):
            raise SpecError(f"Folded reads rows laid out with strides {strides}, not as one (N*{k}, ...) tensor")
        return self.layer.saved_tensors(x[1:], y[1:], grads, ctx._replace(batch=ctx.batch * k,
                                                                           strides=(strides[1:],)))

    # -- presentation ---------------------------------------------------------------------------------
    def torch_args(self, x: Shape) -> dict:
        return self.layer.torch_args(x[1:])

    def columns(self) -> tuple[str, str, str, str]:
        return self.layer.columns()

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        return self.layer.params_formula(x[1:], x_factors[1:])

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        inner = self.layer.forward_formula(x[1:], x_factors[1:], y[1:])
        return f"{x[0]}*({inner})" if inner else ""

    def label(self) -> str:
        return f"{self.layer.label()} on each of the rows folded into the batch"
