"""Which layer outputs take new storage, and which are views of (or the same tensor as) an input.

torch decides by strides: Flatten, Reshape and Contiguous copy only when no view is
possible; Permute, Transpose, Chunk and Split always view; in-place and identity layers
return their input. So the plan follows every tensor's strides through the network
(batched, batch dimension first), with torch's rules for the strides of new outputs:
contiguous, or, for elementwise kinds, the dimension order of a dense input (TensorIterator),
or, for convolution, pooling and batch norm, channels-last when the input is (their
suggested memory format). Pure Python; used for activation memory and training's saved bytes.
"""

from __future__ import annotations

from . import strides as st
from .layers import ParameterShape

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
                result = ((i, _new_strides(kind.layout, x, y, ins, batch, kind.arity)),)
        values[i] = result
        out.append(result)
    return out


def _new_strides(layout: str, x, y, ins, batch: int, arity):
    shape = (batch, *y)
    if layout == "format":
        storage, strides = ins[0]
        if len(shape) == 4 and len(strides) == 4 and st.is_channels_last((batch, *x), strides):
            return st.channels_last(shape)
    elif layout == "elementwise":
        shapes = (x,) if arity == 1 else x
        for s, (storage, strides) in zip(shapes, ins):
            full = (batch, *s)
            if not isinstance(s, ParameterShape) and full == shape and st.is_dense(full, strides):
                return st.like(full, strides, shape)
    return st.contiguous(shape)


def plan(network, batch: int) -> tuple[bool, ...]:
    """Per layer: True when its output is new activation storage (a Parameter's is its weight)."""
    return tuple(out[0][0] == i for i, out in enumerate(trace(network, batch)))
