"""Which layer outputs take new storage, and which are views of (or the same tensor as) an input.

Each kind declares where its output lives (`alexcost.layers.Layer.storage`): in storage of its
own, in its input itself, in its input when it is in place, always in a view of its input, or in
a view where torch can make one (Flatten, Reshape and Contiguous copy only when no view is
possible). torch decides views by strides, so the plan follows every tensor's strides through the
network (batched, batch dimension first), with torch's rules for the strides of new outputs:
contiguous, or, for elementwise kinds, the dimension order of a dense input (TensorIterator),
or, for convolution, pooling and batch norm, channels-last (4-D or 5-D) when the input is (their
suggested memory format), or, for concatenation, channels-last when every input is. Pure Python; used for
activation memory and training's saved bytes.
"""

from __future__ import annotations

from math import prod

from ..errors import SpecError, describe_layer
from ..layers import strides as st
from ..layers import Layer, ParameterShape

PARAMETER = "parameter"

STORAGES = ("new", "same", "inplace-if-flag", "view", "strided")
"""The storage a kind may declare (see `alexcost.layers.Layer.storage`)."""


_DECLARED: dict = {}


def declared(kind) -> str:
    """``kind.storage`` (read once per kind), refused when it is not one of `STORAGES`, or when
    the kind computes a view's strides (``view_strides``) but declares no view."""
    storage = _DECLARED.get(kind)
    if storage is not None:
        return storage
    storage = kind.storage
    if storage not in STORAGES:
        raise SpecError(f"{kind.__name__} declares storage {storage!r}; choose from {', '.join(STORAGES)}")
    if storage not in ("view", "strided") and kind.view_strides is not Layer.view_strides:
        raise SpecError(f"{kind.__name__} defines view_strides() but declares storage {storage!r}; declare "
                        f"storage = 'view' or 'strided'")
    _DECLARED[kind] = storage
    return storage


def trace(network, batch: int, known: list | tuple = ()):
    """Per layer: a tuple, per output, of ``(storage, strides)``; ``storage`` is the index of the
    layer that allocated it (-1: the network input; ``("parameter", i)``: a weight). The strides of a
    layer run once per pass (``network.once``) are its full shape's, as a weight's are.
    ``known``: this trace of the network's first layers, which it goes on from (a network read
    layer by layer, whose earlier layers do not change)."""
    values = {-1: ((-1, st.contiguous((batch, *network.input_shape))),), **dict(enumerate(known))}
    out = list(known)
    records = network.layer_rules() if hasattr(network, "layer_rules") else None
    once = getattr(network, "once", None)
    for i in range(len(known), len(network.layers)):
        layer = network.layers[i]
        kind = type(layer)
        x, y = network.input_shapes[i], network.output_shapes[i]
        ins = [values[j][0 if k is None else k] for j, k in network.sources[i]]
        if kind.arity == 0:
            result = (((PARAMETER, i), st.contiguous(y)),)
        else:
            try:
                if once and once[i]:  # a batch of one, its full shapes as one sample's
                    ins = [(storage, (prod(s), *strides)) for s, (storage, strides) in
                           zip((x,) if kind.arity == 1 else x, ins)]
                    result = _stored(layer, i, x, y, ins, 1) if records is None else \
                        _remembered(records[i], layer, i, x, y, ins, 1)
                    result = tuple((storage, strides[1:]) for storage, strides in result)
                else:
                    result = _stored(layer, i, x, y, ins, batch) if records is None else \
                        _remembered(records[i], layer, i, x, y, ins, batch)
            except SpecError as err:
                names = getattr(network, "names", None)
                if names is None:  # (a network being read names its layers otherwise)
                    raise
                raise err.at(describe_layer(i, names[i], kind.__name__)) from None
        values[i] = result
        out.append(result)
    return out


STRIDES_PER_SHAPE = 64
"""Sets of input strides one `alexcost.engine.rules.Rules` record remembers `_stored`'s answer for."""


def _remembered(record, layer, i: int, x, y, ins: list, batch: int) -> tuple:
    """`_stored`, its answer kept in the layer's `alexcost.engine.rules.Rules` record (its kind,
    arguments and input) by all else it depends on: the batch, whether input 0 is a weight and
    every input's strides. Kept as, per output, whether it is new storage, and its strides."""
    first = ins[0][0]
    key = (batch, first.__class__ is tuple, *[strides for _, strides in ins])
    known = record.strided
    if known is None:
        known = record.strided = {}
    found = known.get(key)
    if found is None:
        result = _stored(layer, i, x, y, ins, batch)
        if len(known) < STRIDES_PER_SHAPE:
            known[key] = tuple([(storage == i, strides) for storage, strides in result])
        return result
    return tuple([(i if new else first, strides) for new, strides in found])


def _stored(layer, i: int, x, y, ins: list, batch: int) -> tuple:
    """A layer's outputs as ``(storage, strides)`` pairs, given its inputs' (see `trace`)."""
    kind = type(layer)
    storage = _DECLARED.get(kind) or declared(kind)
    first_storage, first_strides = ins[0]
    viewed = None  # (a view of a weight is the weight's storage: no activation, nothing autograd keeps)
    if storage == "same" or (storage == "inplace-if-flag" and layer.inplace):
        viewed = first_strides
    elif storage in ("view", "strided"):
        viewed = layer.view_strides(x, y, first_strides, batch)
    if viewed is not None:
        return tuple((first_storage, s) for s in viewed) if kind.multi_output else ((first_storage, viewed),)
    if kind.multi_output:
        return tuple((i, st.contiguous((batch, *s))) for s in y)
    return ((i, _new_strides(layer.layout, x, y, ins, batch, kind.arity)),)


def _new_strides(layout: str, x, y, ins, batch: int, arity):
    shape = (batch, *y)
    if layout == "format":  # the first input's format (a convolution whose weight is an input)
        storage, strides = ins[0]
        first = x if arity == 1 else x[0]
        if len(shape) in (4, 5) and len(strides) == len(shape) and st.is_channels_last((batch, *first), strides):
            return st.channels_last(shape)
    elif layout == "rows format":  # `Folded`: the format of torch's (N*k, ...) input, when its rows are one run
        storage, strides = ins[0]
        rows, k = (batch * x[0], *x[1:]), x[0]
        if len(rows) in (4, 5) and strides[0] == k * strides[1] and st.is_channels_last(rows, strides[1:]):
            out = st.channels_last((batch * k, *y[1:]))
            return (k * out[0], *out)
    elif layout == "unsqueezed format":  # avg_pool1d: avg_pool2d of the (N, C, 1, L) view
        storage, strides = ins[0]
        if len(shape) == 3 and len(strides) == 3 and st.is_channels_last(
                (batch, x[0], 1, x[1]), (strides[0], strides[1], strides[2] * x[1], strides[2])):
            return (shape[1] * shape[2], 1, shape[1])
    elif layout == "common format":  # torch.cat: channels-last when every input is
        if len(shape) in (4, 5) and all(len(s) == len(shape) and st.is_channels_last((batch, *xi), s)
                                   for xi, (storage, s) in zip(x, ins)):
            return st.channels_last(shape)
    elif layout == "sequence first":  # nn.MultiheadAttention: an (L, N, E) result, seen as (N, L, E)
        if len(shape) == 3:
            return (shape[2], shape[0] * shape[2], 1)
    elif layout == "query":  # attention: the query's dimension order, when its rows are contiguous
        storage, strides = ins[0]
        if strides[-1] == 1:
            return st.elementwise([((batch, *x[0]), strides)], shape)
    elif layout == "elementwise":  # torch's TensorIterator, over every activation input
        shapes = (x,) if arity == 1 else x
        return st.elementwise([((batch, *s) if not isinstance(s, ParameterShape) else tuple(s), strides)
                               for s, (storage, strides) in zip(shapes, ins)], shape)
    return st.contiguous(shape)


def plan(network, batch: int) -> tuple[bool, ...]:
    """Per layer: True when its output is new activation storage (a Parameter's is its weight)."""
    return tuple(out[0][0] == i for i, out in enumerate(trace(network, batch)))


def contiguous_new(layer) -> bool | None:
    """Does ``layer``'s output take new activation storage when every input is contiguous (as in
    every network `contiguous_plan` covers)? None when only `trace` can tell: several outputs, or
    a view whose strides may not be contiguous. A reshape of a contiguous tensor is always a
    view, and contiguous."""
    kind = type(layer)
    if kind.arity == 0:
        return False
    storage = _DECLARED.get(kind) or declared(kind)
    if kind.multi_output or storage == "view":
        return None
    return storage == "new" or (storage == "inplace-if-flag" and not layer.inplace)


def contiguous_plan(network) -> tuple[bool, ...] | None:
    """`plan` without strides, for networks whose tensors all stay contiguous (no Permute,
    Transpose, Chunk or Split, no kind of several outputs or with a view of its own). None when
    some layer needs the full `trace`."""
    out = [contiguous_new(layer) for layer in network.layers]
    return None if None in out else tuple(out)
