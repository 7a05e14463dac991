"""Network: a per-sample input shape plus layers in order, wired as a graph, validated when built.

A layer reads the layer before it unless it names its ``inputs``; the network input is
called ``"input"``; output ``k`` of a multi-output layer ``n`` (Chunk, Split) is ``"n.k"``.
Layers may read only layers listed before them, so every network is acyclic and its
list order is an order torch can run it in. A network where every layer reads the one
before it is a chain, the layout of AlexNet and of the seed's table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from ..errors import SpecError, describe_layer, format_shape
from ..layers import arguments as check
from ..layers import INPUT, Layer, ParameterShape, Shape
from ..layers.base import need_sample_dimension
from . import rules
from .cost import NetworkCost, dtype_bytes
from .modes import NO_MODES, StepModes
from .rules import ONE, SEVERAL, WEIGHT, Share
from .rules import forget as forget_rules  # noqa: F401 (its older home)
from .storage import plan

NETWORK_INPUT = -1
"""The source index of the network input in `Network.sources`."""



def _where(i: int, name: str, kind: str, x, arity) -> str:
    if arity == 1:
        return f"{describe_layer(i, name, kind)} on input {format_shape(x)}"
    if arity == 0:
        return describe_layer(i, name, kind)
    return f"{describe_layer(i, name, kind)} on inputs {', '.join(format_shape(s) for s in x)}"


@dataclass(frozen=True, repr=False)
class Network:
    """A network of layers. Building one wires the graph, propagates shapes and checks every layer.

    ``input_shape`` is per sample, e.g. ``(3, 227, 227)``. Unnamed layers are named
    ``<type lowercased><index>`` (``relu1``). Filled in: ``names[i]``; ``sources[i]``, the
    ``(layer index, output index)`` pairs layer ``i`` reads (index -1: the network input;
    output index None: a single-output layer); ``input_shapes[i]``, what layer ``i``'s
    rules see (a shape, or a tuple of them for a layer of several inputs);
    ``output_shapes[i]`` (a tuple of shapes for a multi-output layer); and ``shapes``,
    the input shape then every layer's output (for a chain, ``shapes[i]`` is layer ``i``'s input).

    What the network works out from its layers' rules (their `alexcost.engine.rules.Rules`, its
    storage plans and sums, a training step's layout) it keeps, for as long as the rules stay as
    they are: `alexcost.engine.rules.forget` makes it work them out again.
    """

    input_shape: Shape
    layers: tuple[Layer, ...]
    name: str = "custom"
    modes: StepModes = field(default=NO_MODES, kw_only=True)
    """What a training step runs differently from torch's defaults (frozen parameters, grad-mode
    regions, checkpointing), as read from a module: see `alexcost.engine.modes.StepModes`."""
    names: tuple[str, ...] = field(init=False, compare=False)
    sources: tuple[tuple[tuple[int, int | None], ...], ...] = field(init=False, compare=False)
    input_shapes: tuple = field(init=False, compare=False)
    output_shapes: tuple = field(init=False, compare=False)
    is_chain: bool = field(init=False, compare=False)
    once: tuple[bool, ...] = field(init=False, compare=False)
    """Per layer: does it run once per forward pass, whatever the batch? A layer that reads no activation
    (only parameters, buffers, or what such layers computed) does: its rules see its inputs' full shapes
    as one sample, its counts are not multiplied by the batch, and its output is read as a parameter is."""
    _derived: list = field(init=False, compare=False)
    """``[rules generation, {what: value}]``: see `derived`."""

    def __post_init__(self):
        put = object.__setattr__.__get__(self)
        put("input_shape", check.shape(self.input_shape))
        if not isinstance(self.layers, (list, tuple)):
            raise SpecError(f"layers must be a list of layers, got {type(self.layers).__name__}")
        layers = tuple(self.layers)
        put("layers", layers)
        if not isinstance(self.name, str):
            raise SpecError(f"name must be a string, got {check.shown(self.name)}")
        if not self.name.strip():
            raise SpecError("name must not be empty")
        check.text(self.name, "name")
        if not layers:
            raise SpecError("a network needs at least one layer")
        self._wire(layers)
        if self.contiguous_plan() is None:
            self._check_views()
        if not isinstance(self.modes, StepModes):
            raise SpecError(f"modes must be a StepModes, got {type(self.modes).__name__}")
        if self.modes:
            self.modes.check(self.names)

    def _wire(self, layers: tuple) -> None:
        """Resolve every layer's inputs, propagate shapes and check each layer on them (the fields
        are set through ``__dict__``: the dataclass is frozen)."""
        names, index, sources, xs, ys, found, outs, once = [], {INPUT: NETWORK_INPUT}, [], [], [], [], [], []
        chain, seen_before = True, rules.seen_before
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise SpecError(f"layers[{i}] must be an alexcost Layer, got {type(layer).__name__}")
            own = seen_before(id(layer)) or rules.of(layer)
            _, name, stem, inputs, arity, output, table = own
            name = name or f"{stem}{i}"
            if name in index:
                self._duplicate(i, name, layer, index)
            if inputs is None and arity == 1 and (not i or outs[i - 1] == ONE):  # the layer before it
                refs, x = ((i - 1, None),), ys[i - 1] if i else self.input_shape
            else:
                refs, x = self._resolve(i, name, layer, own, index, names, ys, outs)
                chain = chain and refs == ((i - 1, None),)
            per_pass = arity != 0 and (x.__class__ is ParameterShape if arity == 1 else
                                       ParameterShape in map(type, x) and all(type(s) is ParameterShape for s in x)) \
                and not layer.per_sample()
            if per_pass:
                x = self._per_pass(i, name, layer, x, arity, output)
                output = WEIGHT
            entry = table.get(x) if arity == 1 else None  # an activation's shape is its own key
            if entry is None:
                try:
                    entry = rules.checked(layer, own, x)
                except SpecError as err:
                    raise err.at(_where(i, name, type(layer).__name__, x, arity)) from None
            if not per_pass and arity != 0 and output != SEVERAL:
                try:
                    need_sample_dimension(layer, entry.output)
                except SpecError as err:
                    raise err.at(_where(i, name, type(layer).__name__, x, arity)) from None
            chain = chain and output == ONE
            index[name] = i
            names.append(name)
            sources.append(refs)
            xs.append(x)
            ys.append(entry.output)
            found.append(entry)
            outs.append(output)
            once.append(per_pass)
        if once[-1]:
            raise SpecError(f"{describe_layer(len(layers) - 1, names[-1], type(layers[-1]).__name__)}: the network's "
                            f"output reads parameters alone, not the input; the last layer must compute from the input")
        contiguous = [r.contiguous for r in found]
        self.__dict__.update(names=tuple(names), sources=tuple(sources), input_shapes=tuple(xs),
                             output_shapes=tuple(ys), is_chain=chain, once=tuple(once), _derived=[rules.generation(), {
                                 "rules": found, "contiguous": None if None in contiguous else tuple(contiguous)}])

    def _check_views(self) -> None:
        """Refuse a view torch cannot make whatever the batch (a View of a transposed tensor), at the
        layer. A view that only some batch sizes allow is refused when costed at another.
        One sample's plan is traced first: it is the one `cost` and `sums` ask for by default, so it
        is kept for them; the error, when both fail, is the one of two samples."""
        try:
            self.storage(1)
            return
        except SpecError:
            pass
        self.storage(2)

    @staticmethod
    def _per_pass(i: int, name: str, layer: Layer, x, arity, output) -> tuple:
        """What the rules of a layer that reads only parameters see: their full shapes, as one sample."""
        if output == SEVERAL:
            raise SpecError(f"{describe_layer(i, name, type(layer).__name__)}: reads parameters only and has several "
                            f"outputs; alexcost reads a computation on parameters with layers of one output only")
        return tuple(x) if arity == 1 else tuple(tuple(s) for s in x)

    @staticmethod
    def _duplicate(i: int, name: str, layer: Layer, index: dict):
        what = "the network input's name" if name == INPUT else f"already used by layers[{index[name]}]"
        raise SpecError(f"layers[{i}] ({type(layer).__name__}): duplicate name {name!r}, {what}")

    def _resolve(self, i: int, name: str, layer: Layer, own: rules.LayerRules, index: dict, names: list, ys: list,
                 outs: list) -> tuple:
        """The ``(layer index, output index)`` pairs a layer reads, and what its rules see: one
        shape, or a tuple of them (a Parameter's output as a `ParameterShape`: it has no batch
        dimension). ``outs[j]``: what layer ``j``'s output is (`ONE`, `SEVERAL` or `WEIGHT`). (A layer
        of one input that names none, after a layer of one output, reads it: `_wire` wires that one.)"""
        inputs, arity = own.inputs, own.arity
        kind = type(layer)
        if inputs is None:
            inputs = self._default(i, name, kind, names, ys, outs)
        elif arity == 0 or (arity == 1 and len(inputs) != 1) or (arity is None and len(inputs) < 2):
            self._arity_error(i, name, kind, inputs)
        refs, shapes = [], []
        for ref in inputs:
            j = index.get(ref)
            if j == NETWORK_INPUT:
                refs.append((j, None))
                shapes.append(self.input_shape)
            elif j is not None and outs[j] != SEVERAL:  # an activation, or a Parameter's weight
                refs.append((j, None))
                shapes.append(ys[j] if outs[j] == ONE else ParameterShape(ys[j]))
            else:  # output k of a layer of several, "n.k", or a mistake
                j, k = self._reference(i, name, kind, ref, index, ys, outs)
                refs.append((j, k))
                shapes.append(ys[j][k])
        return tuple(refs), tuple(shapes) if arity != 1 else shapes[0]

    @staticmethod
    def _default(i: int, name: str, kind, names: list, ys: list, outs: list) -> tuple:
        """The names a layer that names none reads: none for a source, else the layer before it."""
        if kind.arity == 0:
            return ()
        where = describe_layer(i, name, kind.__name__)
        if kind.arity != 1:
            raise SpecError(f"{where}: {kind.__name__} merges several tensors; name them in 'inputs'")
        if outs[i - 1] == SEVERAL:
            raise SpecError(f"{where}: the layer before it has {len(ys[i - 1])} outputs; name the one it "
                            f"reads in 'inputs', e.g. {names[i - 1] + '.0'!r}")
        return (names[i - 1],)

    @staticmethod
    def _arity_error(i: int, name: str, kind, inputs: tuple):
        where = describe_layer(i, name, kind.__name__)
        if kind.arity == 0:
            raise SpecError(f"{where}: {kind.__name__} reads no input, but inputs={list(inputs)}")
        if kind.arity == 1:
            raise SpecError(f"{where}: reads one input, but inputs names {len(inputs)}: {list(inputs)}")
        raise SpecError(f"{where}: {kind.__name__} merges two or more tensors, but inputs names {len(inputs)}: "
                        f"{list(inputs)}")

    def _reference(self, i: int, name: str, kind, ref: str, index: dict, ys: list, outs: list) -> tuple:
        """``(layer index, output index)`` of ``"n.k"`` in a layer's ``inputs``; any other name that got
        here is refused."""
        where = describe_layer(i, name, kind.__name__)
        j = index.get(ref)
        if j is not None:  # a layer of several outputs, named whole
            raise SpecError(f"{where}: inputs names {ref!r}, which has {len(ys[j])} outputs; name one, "
                            f"e.g. {ref + '.0'!r}")
        base, dot, k = ref.partition(".")
        j = index.get(base)
        if j is None or not dot:
            later = "" if base != name else " (itself)"
            raise SpecError(f"{where}: inputs names {ref!r}, which is not the network input or a layer listed "
                            f"before it{later}")
        if j == NETWORK_INPUT or outs[j] != SEVERAL:
            raise SpecError(f"{where}: inputs names {ref!r}, but {base!r} has a single output; write {base!r}")
        if int(k) >= len(ys[j]):
            raise SpecError(f"{where}: inputs names {ref!r}, but {base!r} has {len(ys[j])} outputs "
                            f"({base}.0 to {base}.{len(ys[j]) - 1})")
        return j, int(k)

    # -- views ---------------------------------------------------------------------
    @property
    def output_shape(self):
        """The last layer's output: the network's."""
        return self.output_shapes[-1]

    @property
    def shapes(self) -> tuple:
        """The input shape, then each layer's output (for a chain, ``shapes[i]`` is layer ``i``'s input)."""
        return (self.input_shape, *self.output_shapes)

    def inputs_of(self, i: int) -> tuple[str, ...]:
        """The names layer ``i`` reads (``"input"``, ``"conv1"``, ``"chunk3.1"``)."""
        return tuple(INPUT if j == NETWORK_INPUT else self.names[j] if k is None else f"{self.names[j]}.{k}"
                     for j, k in self.sources[i])

    def with_input_shape(self, input_shape) -> "Network":
        """The same layers on another input shape (checked again, layer by layer)."""
        return Network(input_shape, self.layers, name=self.name, modes=self.modes)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        kind = "chain" if self.is_chain else "graph"
        return f"Network({self.name!r}, input {format_shape(self.input_shape)}, {len(self.layers)} layers, {kind})"

    # -- what the network works out from its layers' rules --------------------------------------
    def derived(self) -> dict:
        """What this network has worked out from its layers' rules, by what it is (its layers' `Rules`,
        storage plans, sums, a training step's layout and totals): kept while the rules stay as
        they are, started afresh after `alexcost.engine.rules.forget`. A network is immutable, so
        nothing else can make them stale."""
        held = self._derived
        if held[0] != rules.generation():
            held[:] = [rules.generation(), {}]
        return held[1]

    def layer_rules(self) -> list:
        """Per layer, its `alexcost.engine.rules.Rules` on its input."""
        derived = self.derived()
        found = derived.get("rules")
        if found is None:
            found = derived["rules"] = [rules.checked(layer, rules.of(layer), x, y) for layer, x, y in
                                        zip(self.layers, self.input_shapes, self.output_shapes)]
        return found

    def storage(self, batch: int) -> tuple[bool, ...]:
        """Per layer: does its output take new storage (False: a view of, or the same tensor
        as, its first input; a Parameter's output is its weight, not an activation)?
        torch's own rules, with strides tracked layer by layer (see `alexcost.layers.strides`)."""
        derived = self.derived()
        key = ("storage", batch == 1)
        found = derived.get(key)
        if found is None:
            found = derived[key] = self.contiguous_plan() or plan(self, 1 if batch == 1 else 2)
        return found

    def contiguous_plan(self) -> tuple[bool, ...] | None:
        """`storage` where every tensor stays contiguous, whatever the batch; None where some layer
        needs the strides traced (see `alexcost.engine.storage.contiguous_plan`)."""
        derived = self.derived()
        if "contiguous" not in derived:
            contiguous = [r.contiguous for r in self.layer_rules()]
            derived["contiguous"] = None if None in contiguous else tuple(contiguous)
        return derived["contiguous"]

    def check_batch(self, batch: int) -> None:
        """Refuse a batch whose tensors torch could not index: more than int64 elements."""
        derived = self.derived()
        largest = derived.get("largest")
        if largest is None:
            largest = (prod(self.input_shape), "the input")
            for name, layer, y, once in zip(self.names, self.layers, self.output_shapes, self.once):
                for s in (y if type(layer).multi_output else (y,)) if type(layer).arity != 0 and not once else ():
                    if prod(s) > largest[0]:
                        largest = (prod(s), f"the output of {name!r}")
            derived["largest"] = largest
        if batch * largest[0] > check.INT64_MAX:
            raise SpecError(f"batch {batch} makes {largest[1]} hold {batch * largest[0]} elements, more than "
                            f"torch's int64 limit {check.INT64_MAX}")

    # -- cost --------------------------------------------------------------------------
    def counts(self) -> tuple[rules.Counts, ...]:
        """Per layer, its `alexcost.engine.rules.Counts` for one sample, by its kind's rules."""
        return tuple(map(rules.counts, self.layers, self.layer_rules(), self.input_shapes))

    def shares(self, batch: int, itemsize: int) -> list[Share]:
        """Per layer, its `alexcost.engine.rules.Share` of the totals for one sample, its storage
        planned for ``batch`` samples, its buffers sized at ``itemsize`` bytes per element."""
        keys = (-itemsize, itemsize)  # (see `alexcost.engine.rules.Rules`)
        found = [r.shares.get(keys[new]) or rules.share(layer, r, x, new, itemsize) for layer, r, x, new in
                 zip(self.layers, self.layer_rules(), self.input_shapes, self.storage(batch))]
        if True in self.once:
            found = [rules.per_pass(s) if once else s for s, once in zip(found, self.once)]
        return found

    def sums(self, batch: int, itemsize: int, group: str | None = None) -> Share:
        """The sums of `shares` (over the layers of one ``group``, if given): the totals of one sample."""
        derived = self.derived()
        key = ("sums", batch == 1, itemsize, group)
        found = derived.get(key)
        if found is None:
            shares = self.shares(batch, itemsize)
            if group is not None:
                shares = [s for s, layer in zip(shares, self.layers) if layer.group == group]
            found = derived[key] = Share(*map(sum, zip(*shares))) if shares else Share(*[0] * len(Share._fields))
        return found

    def cost(self, batch: int = 1, dtype: str = "float32") -> NetworkCost:
        """Every layer's counts for ``batch`` samples; memory sized at ``dtype``."""
        batch = check.integer(batch, "batch")
        dtype_bytes(dtype)
        if batch > 1:
            self.check_batch(batch)
        return NetworkCost(self, batch, dtype)
