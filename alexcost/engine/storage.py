"""Which layer outputs take new storage, and which are views of (or the same tensor as) an input.

torch decides by strides: Flatten, Reshape and Contiguous copy only when no view is
possible; Permute, Transpose, Chunk and Split always view; in-place and identity layers
return their input. So the plan follows every tensor's strides through the network
(batched, batch dimension first), with torch's rules for the strides of new outputs:
contiguous, or, for elementwise kinds, the dimension order of a dense input (TensorIterator),
or, for convolution, pooling and batch norm, channels-last when the input is (their
suggested memory format), or, for concatenation, channels-last when every input is. Pure Python; used for activation memory and training's saved bytes.
"""

from __future__ import annotations

from ..layers import strides as st
from ..layers import ParameterShape

PARAMETER = "parameter"


def trace(network, batch: int):
    """Per layer: a tuple, per output, of ``(storage, strides)``; ``storage`` is the index of the
    layer that allocated it (-1: the network input; ``("parameter", i)``: a weight)."""
    values = {-1: ((-1, st.contiguous((batch, *network.input_shape))),)}
    out = []
    for i, layer in enumerate(network.layers):
        kind = type(layer)
        x, y = network.input_shapes[i], network.output_shapes[i]
        ins = [values[j][0 if k is None else k] for j, k in network.sources[i]]
        if kind.arity == 0:
            result = (((PARAMETER, i), st.contiguous(y)),)
        else:
            first_storage, first_strides = ins[0]
            viewed = None if isinstance(first_storage, tuple) else layer.view_strides(x, y, first_strides, batch)
            if viewed is not None:
                result = tuple((first_storage, s) for s in viewed) if kind.multi_output \
                    else ((first_storage, viewed),)
            elif kind.multi_output:
                result = tuple((i, st.contiguous((batch, *s))) for s in y)
            else:
                result = ((i, _new_strides(layer.layout, x, y, ins, batch, kind.arity)),)
        values[i] = result
        out.append(result)
    return out


def _new_strides(layout: str, x, y, ins, batch: int, arity):
    shape = (batch, *y)
    if layout == "format":
        storage, strides = ins[0]
        if len(shape) == 4 and len(strides) == 4 and st.is_channels_last((batch, *x), strides):
            return st.channels_last(shape)
    elif layout == "common format":  # torch.cat: channels-last when every input is
        if len(shape) == 4 and all(len(s) == 4 and st.is_channels_last((batch, *xi), s)
                                   for xi, (storage, s) in zip(x, ins)):
            return st.channels_last(shape)
    elif layout == "elementwise":  # torch's TensorIterator, over every activation input
        shapes = (x,) if arity == 1 else x
        return st.elementwise([((batch, *s) if not isinstance(s, ParameterShape) else tuple(s), strides)
                               for s, (storage, strides) in zip(shapes, ins)], shape)
    return st.contiguous(shape)


def plan(network, batch: int) -> tuple[bool, ...]:
    """Per layer: True when its output is new activation storage (a Parameter's is its weight)."""
    fast = contiguous_plan(network)
    if fast is not None:
        return fast
    return tuple(out[0][0] == i for i, out in enumerate(trace(network, batch)))


_RULES: dict = {}


def _rule(kind):
    """How a kind's output is stored when every input is contiguous: "new" (a new contiguous tensor),
    "same" (the input itself, or a contiguous view of it), "inplace" (the input when the layer's
    ``inplace`` is set), or None (it depends on strides: only `trace` can tell)."""
    from ..layers import Contiguous, Flatten, Layer, Reshape
    from ..layers.base import InplaceElementwise, Passthrough
    from ..layers.merge import _Broadcasting

    if kind.multi_output:
        return None
    if kind.view_strides is Layer.view_strides:
        return "new"
    if issubclass(kind, Passthrough) and kind.view_strides is Passthrough.view_strides:
        return "same"
    if issubclass(kind, (InplaceElementwise, _Broadcasting)) and kind.view_strides in (
            InplaceElementwise.view_strides, _Broadcasting.view_strides):
        return "inplace"
    if kind in (Flatten, Reshape, Contiguous) or (issubclass(kind, Reshape) and kind.__module__ == Reshape.__module__):
        return "same"  # a reshape of a contiguous tensor is always a view, and contiguous
    return None


def contiguous_new(layer) -> bool | None:
    """Does ``layer``'s output take new activation storage when every input is contiguous (as in
    every network `contiguous_plan` covers)? None when only `trace` can tell."""
    kind = type(layer)
    rule = _RULES.get(kind, 0)
    if rule == 0:
        rule = _RULES[kind] = _rule(kind)
    if rule is None:
        return None
    return kind.arity != 0 and (rule == "new" or (rule == "inplace" and not layer.inplace))


def contiguous_plan(network) -> tuple[bool, ...] | None:
    """`plan` without strides, for networks whose tensors all stay contiguous (no Permute,
    Transpose, Chunk or Split, no user kind with its own view rule): then every new tensor is
    contiguous and every reshape a view. None when some layer needs the full `trace`."""
    out = [contiguous_new(layer) for layer in network.layers]
    return None if None in out else tuple(out)
