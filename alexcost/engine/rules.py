"""What a layer's rules give, remembered: one cache for the forward and the training analyses.

A layer's rules are pure functions of its kind, its arguments and its input shapes (and, for
a training step, of the options and of which gradients it computes). So what they give is
worked out once per layer configuration and input, and kept as a `Rules` record: the checked
output shape, the per-sample `Counts`, the layer's `Share` of the totals, its `TrainFacts`
and, per set of options and gradients, its `StepRules`. The next network that holds the same
layer object (a cached preset, a search over candidates), or a built-in layer of the same
kind and arguments, finds them here instead of asking the rules again.

Built-in layers of one kind and arguments share one table, whatever their ``name`` and
``inputs``, which the rules of alexcost's own kinds never read. Arguments match when they
are equal and of the same types (``1``, ``True`` and ``1.0`` differ), floats by their repr too
(``0.0`` and ``-0.0`` differ); a layer whose arguments cannot be hashed, and a user's kind,
gets a table of its own. Nothing is stored in the layers: the tables live here, keyed by the
layer object's identity (`of`; an entry goes when its layer goes: the cache keeps no layer
alive) and by its configuration. `forget` drops them all: call it after changing a kind's rules
at run time.
"""

from __future__ import annotations

import weakref
from dataclasses import fields
from math import prod
from operator import attrgetter
from typing import NamedTuple

from ..errors import SpecError, format_shape
from ..layers import BUILTIN_KINDS, Grads, Layer, ParameterShape, Saved, TrainContext
from ..layers import arguments as check
from ..layers import strides as st
from ..layers.base import reads_a_parameter
from .storage import contiguous_new

SHAPES_PER_LAYER = 1024
"""Input shapes one table remembers (a layer seen with more is checked and counted again). A
search over varied inputs meets a common configuration (a ReLU, a BatchNorm2d) on hundreds."""
RULES_KEPT = 200_000
"""`Rules` records the tables of built-in layers hold, all together (about 0.8 KB each once
costed): past this many, every such table starts afresh."""
STEPS_PER_SHAPE = 64
"""Sets of training options and gradients one `Rules` record remembers."""
TABLES = 100_000
"""Layer configurations remembered at once (then that table starts afresh)."""


class Counts(NamedTuple):
    """A layer's counts for one sample; ``elements``: its outputs' elements (a Parameter's output is
    its weight: not ``batched``)."""

    weight_params: int
    bias_params: int
    macs: int
    bias_adds: int
    other_ops: int
    buffers: int
    elements: int
    batched: bool


class Share(NamedTuple):
    """A layer's share of the totals, one sample: its counts, its buffers' bytes, its batched output
    elements, those of them in storage of its own (``stored``), and a Parameter's elements
    (``unbatched``: one copy whatever the batch). A layer run once per pass (`per_pass`) has its
    counts in ``pass_*`` and its output's elements in ``unbatched`` (``unbatched_stored``: in
    storage of its own), each counted once whatever the batch."""

    weight_params: int
    bias_params: int
    macs: int
    bias_adds: int
    other_ops: int
    buffers: int
    buffer_bytes: int
    elements: int
    stored: int
    unbatched: int
    pass_macs: int = 0
    pass_bias_adds: int = 0
    pass_other_ops: int = 0
    unbatched_stored: int = 0


class TrainFacts(NamedTuple):
    """What a training step asks of a layer whatever the options: parameters, forward MACs and
    other ops for one sample, whether the forward pass in training returns a new tensor where
    inference returns its input (``copies``) or writes into input 0 (``inplace``)."""

    weight_params: int
    bias_params: int
    macs: int
    train_other_ops: int
    copies: bool
    inplace: bool


class StepRules(NamedTuple):
    """What a layer's training rules give for one set of options and gradients: its buffers'
    bytes, the tensors autograd keeps (``saved``; of them, the bytes of its own new tensors, and
    the values it keeps by position: ``k`` for input ``k``, ``-1 - k`` for output ``k``), and,
    when it runs a backward pass, the backward MACs for the inputs' and the weight's gradients
    and FlopCounterMode's count (one sample), and the other backward ops (the whole batch)."""

    buffer_bytes: int
    saved: tuple[Saved, ...]
    new_bytes: int
    keeps: tuple[int, ...]
    grad_input_macs: int = 0
    grad_weight_macs: int = 0
    torch_backward_flops: int = 0
    backward_other_ops: int = 0


class Rules:
    """What one layer configuration's rules give for one input: the checked ``output`` shape,
    whether the output takes new storage when the inputs are contiguous (``contiguous``, see
    `alexcost.engine.storage.contiguous_new`), and, worked out when first asked for, its `Counts`,
    its `Share` of the totals per storage and element size (``shares[itemsize]`` for an output in
    storage of its own, ``shares[-itemsize]`` for one that is not), its `TrainFacts`, and its
    `StepRules` per set of options and gradients, and where its output lives per set of input
    strides (``strided``, see `alexcost.engine.storage.trace`)."""

    __slots__ = ("output", "contiguous", "counts", "shares", "train", "steps", "strided")

    def __init__(self, output, contiguous: bool | None):
        self.output = output
        self.contiguous = contiguous
        self.counts: Counts | None = None
        self.shares: dict = {}
        self.train: TrainFacts | None = None
        self.steps: dict = {}
        self.strided: dict | None = None


ONE, SEVERAL, WEIGHT = 0, 1, 2
"""What a layer's output is to the layers after it: one activation, several, or a Parameter's weight."""


class LayerRules(NamedTuple):
    """What wiring asks of one layer object every time (``seen``: a weak reference to it): its
    ``name`` (None: a default), the stem
    of a default name, the names it reads (None: the layer before it), its kind's ``arity``, what
    its ``output`` is (`ONE`, `SEVERAL` or `WEIGHT`), and its ``table``: input key -> `Rules` (an
    activation's shape is its own key, see `key`)."""

    seen: _Seen
    name: str | None
    stem: str
    inputs: tuple[str, ...] | None
    arity: int | None
    output: int
    table: dict


class _Seen(weakref.ref):
    """A weak reference to a layer that drops the layer's `LayerRules` when the layer goes (so an
    id in `_BY_LAYER` is always its live layer's)."""

    __slots__ = ("key",)


def _gone(seen: _Seen) -> None:
    _BY_LAYER.pop(seen.key, None)


_BY_LAYER: dict = {}
"""id(layer) -> its `LayerRules`, while the layer lives."""
seen_before = _BY_LAYER.get
"""``seen_before(id(layer))``: ``layer``'s `LayerRules` if `of` has made them, else None."""
_BY_CONFIG: dict = {}
"""A built-in layer's configuration -> its table."""
_ARGUMENTS: dict = {}
"""A built-in kind -> the getter of its arguments but name and inputs."""
_GENERATION = [0]


def generation() -> int:
    """How many times `forget` ran: what a network worked out from the rules is good for one generation."""
    return _GENERATION[0]


def forget() -> None:
    """Forget everything the rules gave: call it after changing a kind's rules at run time."""
    _BY_LAYER.clear()
    _BY_CONFIG.clear()
    _ARGUMENTS.clear()
    _KINDS.clear()
    _KEPT[0] = 0
    _GENERATION[0] += 1


def of(layer: Layer, like: Layer | None = None) -> LayerRules:
    """``layer``'s `LayerRules`, made on first sight; ``like``: a layer of the same kind whose
    arguments ``layer`` holds (the same objects: a copy with another name and inputs), whose table
    it shares without comparing them again."""
    found = _BY_LAYER.get(id(layer))
    if found is None:
        kind = type(layer)
        seen = _Seen(layer, _gone)
        seen.key = id(layer)
        stem, arity, output = _KINDS.get(kind) or _kind(kind)
        table = _table(layer, kind) if like is None else of(like).table
        found = _BY_LAYER[id(layer)] = _new(LayerRules, (seen, layer.name, stem, layer.inputs, arity, output, table))
    return found


_new = tuple.__new__
_KINDS: dict = {}
"""A kind -> what `LayerRules` holds of it: the stem of a default name, its ``arity``, its ``output``."""


def _kind(kind) -> tuple:
    output = WEIGHT if kind.arity == 0 else SEVERAL if kind.multi_output else ONE
    found = _KINDS[kind] = (kind.__name__.lower(), kind.arity, output)
    return found


def _table(layer: Layer, kind) -> dict:
    if kind not in BUILTIN_KINDS:
        return {}
    arguments = _ARGUMENTS.get(kind) or _arguments(kind)
    values = arguments(layer)
    types = tuple(map(type, values))
    # equal floats are the same number but for 0.0 and -0.0: their reprs keep them apart
    key = (kind, values, types, repr(values) if float in types and 0.0 in values else None)
    try:
        table = _BY_CONFIG.get(key)
    except TypeError:  # an unhashable argument: a table of its own
        return {}
    if table is None:
        if len(_BY_CONFIG) >= TABLES:
            _BY_CONFIG.clear()
        table = _BY_CONFIG[key] = {}
    return table


def _arguments(kind):
    """The getter of a built-in kind's arguments but name and inputs, as a tuple."""
    names = [f.name for f in fields(kind) if f.name not in ("name", "inputs")]
    found = _ARGUMENTS[kind] = attrgetter(*names) if len(names) > 1 else (
        lambda layer, get=attrgetter(*names): (get(layer),)) if names else (lambda layer: ())
    return found


def key(kind, x):
    """``x`` as a table's key: a merge reading a Parameter keeps which inputs are parameters (a
    `ParameterShape` equals the activation shape of the same numbers, which the rules treat apart)."""
    if kind.arity == 1 or not reads_a_parameter(x):
        return x
    return ParameterShape, tuple(isinstance(s, ParameterShape) for s in x), x


def checked(layer: Layer, found: LayerRules, x, known=None) -> Rules:
    """The `Rules` of ``layer`` (``found``: its `LayerRules`) on input ``x``: its output shape,
    checked (raises `SpecError`), or ``known``, the output a network checked before `forget` ran."""
    kind = type(layer)
    k = key(kind, x)
    rules = found.table.get(k)
    if rules is None:
        rules = Rules(_output(layer, kind, x) if known is None else known, contiguous_new(layer))
        if len(found.table) < SHAPES_PER_LAYER:
            found.table[k] = rules
            _KEPT[0] += 1
            if _KEPT[0] >= RULES_KEPT:
                _start_afresh()
    return rules


_KEPT = [0]
"""`Rules` records stored in tables since they last started afresh."""


def _start_afresh() -> None:
    """Empty every built-in configuration's table (what they held is worked out again when asked)."""
    for table in _BY_CONFIG.values():
        table.clear()
    _BY_CONFIG.clear()
    _KEPT[0] = 0


def _output(layer: Layer, kind, x):
    """``layer.output_shape(x)``, each output fitting torch's int64 (a user's kind: the full shape check)."""
    y = layer.output_shape(x)
    if kind.multi_output and (not isinstance(y, tuple) or not y):
        raise SpecError(f"{kind.__name__}.output_shape() must return a non-empty tuple of shapes, got "
                        f"{check.shown(y)}")
    outputs = y if kind.multi_output else (y,)
    if kind not in BUILTIN_KINDS:
        made = tuple(check.shape(s, f"{kind.__name__}.output_shape()") for s in outputs)
        return made if kind.multi_output else made[0]
    for s in outputs:
        if prod(s) > check.INT64_MAX:
            raise SpecError(f"the output {format_shape(s)} holds more than {check.INT64_MAX} elements per "
                            f"sample (torch's int64 limit)")
    return y


def counts(layer: Layer, rules: Rules, x) -> Counts:
    """``layer``'s `Counts` on ``x``."""
    found = rules.counts
    if found is None:
        kind, y = type(layer), rules.output
        found = rules.counts = _new(Counts, (
            layer.weight_params(x), layer.bias_params(x), layer.macs(x, y), layer.bias_adds(x, y),
            layer.other_ops(x, y), layer.buffers(x), sum(map(prod, y)) if kind.multi_output else prod(y),
            kind.arity != 0))
    return found


def share(layer: Layer, rules: Rules, x, new: bool, itemsize: int) -> Share:
    """``layer``'s `Share` of the totals on ``x``; ``new``: its output is in storage of its own."""
    found = rules.shares.get(itemsize if new else -itemsize)
    if found is None:
        w, b, m, a, o, n, e, batched = counts(layer, rules, x)
        found = rules.shares[itemsize if new else -itemsize] = _new(Share, (
            w, b, m, a, o, n, layer.buffer_bytes(x, itemsize) if n else 0, e if batched else 0,
            e if batched and new else 0, 0 if batched else e, 0, 0, 0, 0))
    return found


def per_pass(found: Share) -> Share:
    """``found``, the share of a layer run once per forward pass: its counts and its output counted once."""
    w, b, m, a, o, n, nb, e, s, u = found[:10]
    return _new(Share, (w, b, 0, 0, 0, n, nb, 0, 0, u + e, m, a, o, s))


def train_facts(layer: Layer, rules: Rules, x) -> TrainFacts:
    """``layer``'s `TrainFacts` on ``x``."""
    found = rules.train
    if found is None:
        w, b, m = counts(layer, rules, x)[:3]
        arity = type(layer).arity
        found = rules.train = TrainFacts(w, b, m, layer.train_other_ops(x, rules.output),
                                         arity != 0 and layer.train_copies(), arity != 0 and layer.train_inplace())
    return found


def step(layer: Layer, rules: Rules, x, in_req: tuple, weight: bool, bias: bool, options: tuple,
         strides: tuple | None, backward: bool) -> StepRules:
    """``layer``'s `StepRules` on ``x`` when its inputs need gradients as ``in_req`` says and its
    ``weight`` and ``bias`` get one, for the ``options`` ``(batch, itemsize, dtype, device)`` and its
    inputs' batched ``strides`` (None: every input contiguous). The backward rules are asked only
    when the layer runs a backward pass (``backward``). Refuses (`SpecError`) what torch refuses
    to run in training."""
    k = (in_req, weight, bias, options, strides, backward)
    found = rules.steps.get(k)
    if found is None:
        found = _step(layer, rules.output, x, Grads(in_req, weight, bias), options, strides, backward)
        if len(rules.steps) < STEPS_PER_SHAPE:
            rules.steps[k] = found
    return found


def _step(layer: Layer, y, x, grads: Grads, options: tuple, strides: tuple | None, backward: bool) -> StepRules:
    kind = type(layer)
    ctx = TrainContext(*options[:4], _contiguous(x, kind.arity, options[0]) if strides is None else strides,
                       *options[4:])
    layer.check_training(x, ctx.batch)
    buffer_bytes = layer.buffer_bytes(x, ctx.itemsize)
    saved = layer.saved_tensors(x, y, grads, ctx) if (grads.params or True in grads.inputs) and kind.arity != 0 else ()
    new = sum(item.elements * item.itemsize for item in saved if item.ref == "new")
    keeps = tuple(item.index if item.ref == "input" else -1 - item.index for item in saved if item.ref != "new")
    if not backward:
        return StepRules(buffer_bytes, saved, new, keeps)
    both = layer.backward_macs(x, y, grads)
    weights = layer.backward_macs(x, y, Grads((False,) * len(grads.inputs), grads.weight, grads.bias)) \
        if grads.params else 0
    return StepRules(buffer_bytes, saved, new, keeps, both - weights, weights, layer.torch_backward_flops(x, y, grads),
                     layer.backward_other_ops(x, y, grads, ctx.batch))


def _contiguous(x, arity, batch: int) -> tuple:
    """The batched strides of contiguous inputs of shapes ``x`` (None for a Parameter's weight)."""
    shapes = (x,) if arity == 1 else x
    return tuple(None if isinstance(s, ParameterShape) else st.contiguous((batch, *s)) for s in shapes)
