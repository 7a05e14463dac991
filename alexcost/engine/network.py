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
from operator import attrgetter, itemgetter

from ..layers import arguments as check
from .bulk import BULK, paused_gc
from .cost import LayerCost, NetworkCost, Totals, dtype_bytes
from ..errors import SpecError, describe_layer, format_shape
from ..layers import BUILTIN_KINDS, INPUT, Layer, ParameterShape, Shape
from ..layers.base import _field_names, reads_a_parameter
from .storage import contiguous_new

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
    """

    input_shape: Shape
    layers: tuple[Layer, ...]
    name: str = "custom"
    names: tuple[str, ...] = field(init=False, compare=False)
    sources: tuple[tuple[tuple[int, int | None], ...], ...] = field(init=False, compare=False)
    input_shapes: tuple = field(init=False, compare=False)
    output_shapes: tuple = field(init=False, compare=False)
    is_chain: bool = field(init=False, compare=False)

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
        if len(layers) < BULK:
            self._wire(layers)
        else:
            with paused_gc(len(layers)):
                self._wire(layers)

    def _wire(self, layers: tuple) -> None:
        """Resolve every layer's inputs, propagate shapes and check each layer on them (the fields
        are set through ``__dict__``: the dataclass is frozen)."""
        epoch, n = _EPOCH[0], len(layers)
        names, index, sources, xs, ys, entries = [], {INPUT: NETWORK_INPUT}, [], [], [], []
        steps = _chain_refs(n)  # steps[i]: the sources of a layer reading the one before it
        special = set()  # the layers whose output is not one activation (a Parameter's, or several)
        y, i, chain = self.input_shape, 0, True
        plain = True  # the previous output is one activation a layer can read by default
        while i < n:
            run = i
            for i in range(run, n):  # a run of layers each reading the one before: the common case, kept lean
                layer = layers[i]
                if not isinstance(layer, Layer):
                    raise SpecError(f"layers[{i}] must be an alexcost Layer, got {type(layer).__name__}")
                facts = layer.__dict__.get("_memo")
                if facts is None or facts[0] != epoch:
                    facts = _facts(layer)
                if not (plain and facts[4]):
                    break
                name = facts[2] or f"{facts[3]}{i}"
                if name in index:
                    self._duplicate(i, name, layer, index)
                entry = facts[1].get(y)
                if entry is None:
                    entry = self._entry(i, name, layer, y, facts[1])
                y = entry[0]
                index[name] = i
                names.append(name)
                ys.append(y)
                entries.append(entry)
                if not facts[5]:  # several outputs: the next layer names the one it reads
                    plain = chain = False
                    special.add(i)
            else:
                i = n
            if i > run:
                xs.extend(ys[run - 1:i - 1] if run else [self.input_shape, *ys[:i - 1]])
                sources.extend(steps[run:i])
            if i == n:
                break
            name = facts[2] or f"{facts[3]}{i}"  # layer i names its inputs, or cannot read the one before
            if name in index:
                self._duplicate(i, name, layer, index)
            memo, refs = facts[1], None
            if facts[6] == 1:  # one named activation
                j = index.get(facts[7][0])
                if j is not None and j not in special:
                    refs, x = ((j, None),), ys[j] if j != NETWORK_INPUT else self.input_shape
                    chain = chain and j == i - 1
            elif facts[6] == 2:  # a merge of named activations
                found, shapes = [], []
                for ref in facts[7]:
                    j = index.get(ref)
                    if j is None or j in special:
                        break
                    found.append((j, None))
                    shapes.append(ys[j] if j != NETWORK_INPUT else self.input_shape)
                else:
                    refs, x, chain = tuple(found), tuple(shapes), False
            if refs is None:  # anything else, and every error, the long way
                refs = self._resolve(i, name, layer, index, names, ys, special)
                x = self._read(i, name, layer, refs, ys, layers)
                chain = chain and refs == steps[i]
                kind = type(layer)
                if kind.arity != 1 and (kind.arity is not None or reads_a_parameter(x)):
                    memo = None
            entry = memo.get(x) if memo is not None else None
            if entry is None:
                entry = self._entry(i, name, layer, x, memo)
            y = entry[0]
            plain = facts[5]
            if not plain:
                special.add(i)
                chain = False
            index[name] = i
            names.append(name)
            sources.append(refs)
            xs.append(x)
            ys.append(y)
            entries.append(entry)
            i += 1
        self.__dict__.update(names=tuple(names), sources=tuple(sources), input_shapes=tuple(xs),
                             output_shapes=tuple(ys), is_chain=chain, _entries=(epoch, entries))

    @staticmethod
    def _duplicate(i: int, name: str, layer: Layer, index: dict):
        what = "the network input's name" if name == INPUT else f"already used by layers[{index[name]}]"
        raise SpecError(f"layers[{i}] ({type(layer).__name__}): duplicate name {name!r}, {what}")


    def _entry(self, i: int, name: str, layer: Layer, x, memo: dict | None) -> list:
        """Check ``layer`` on ``x``: ``[output shape, per-sample counts, totals vector]`` (for a user's
        kind, the counts and vector are None until asked for), remembered in ``memo`` (the layer's,
        when ``x`` can key it) while it has room."""
        kind = type(layer)
        try:
            y = layer.output_shape(x)
            if kind in BUILTIN_KINDS and not kind.multi_output:
                if prod(y) > check.INT64_MAX:
                    self._checked(kind, y)
            else:
                y = self._checked(kind, y)
        except SpecError as err:
            raise err.at(_where(i, name, kind.__name__, x, kind.arity)) from None
        entry = [y, None, None]
        if kind in BUILTIN_KINDS:  # pure rules: count now, while the layer and its shapes are at hand
            try:
                entry[1] = _count(layer, x, y)
                entry[2] = _vector(layer, entry[1])
            except Exception:  # a count the rules refuse (or fail at) fails when asked for, as ever
                entry[1] = entry[2] = None
        if memo is not None and len(memo) < MEMO_SIZE:
            memo[x] = entry
        return entry

    @staticmethod
    def _resolve(i: int, name: str, layer: Layer, index: dict, names: list, ys: list, special: set) -> tuple:
        """The ``(layer index, output index)`` pairs ``layer`` reads (``special``: the layers whose
        output is not one activation: a Parameter's, or several)."""
        kind = type(layer)
        inputs = layer.inputs
        if inputs is not None and kind.arity is None and len(inputs) >= 2:  # a merge of activations: fast
            refs = []
            for ref in inputs:
                j = index.get(ref)
                if j is None or j in special:
                    break
                refs.append((j, None))
            else:
                return tuple(refs)
        where = describe_layer(i, name, kind.__name__)
        if layer.inputs is None:
            if kind.arity == 0:
                return ()
            if kind.arity != 1:
                raise SpecError(f"{where}: {kind.__name__} merges several tensors; name them in 'inputs'")
            if i and type_multi(ys[i - 1]):
                raise SpecError(f"{where}: the layer before it has {len(ys[i - 1])} outputs; name the one it "
                                f"reads in 'inputs', e.g. {names[i - 1] + '.0'!r}")
            return ((i - 1, None),)
        if kind.arity == 0:
            raise SpecError(f"{where}: {kind.__name__} reads no input, but inputs={list(layer.inputs)}")
        if kind.arity == 1 and len(layer.inputs) != 1:
            raise SpecError(f"{where}: reads one input, but inputs names {len(layer.inputs)}: {list(layer.inputs)}")
        if kind.arity is None and len(layer.inputs) < 2:
            raise SpecError(f"{where}: {kind.__name__} merges two or more tensors, but inputs names "
                            f"{len(layer.inputs)}: {list(layer.inputs)}")
        refs = []
        for ref in layer.inputs:
            base, dot, k = ref.partition(".")
            j = index.get(base)
            if j is None:
                later = "" if base != name else " (itself)"
                raise SpecError(f"{where}: inputs names {ref!r}, which is not the network input or a layer listed "
                                f"before it{later}")
            multi = j != NETWORK_INPUT and type_multi(ys[j])
            if dot:
                if not multi:
                    raise SpecError(f"{where}: inputs names {ref!r}, but {base!r} has a single output; write {base!r}")
                if int(k) >= len(ys[j]):
                    raise SpecError(f"{where}: inputs names {ref!r}, but {base!r} has {len(ys[j])} outputs "
                                    f"({base}.0 to {base}.{len(ys[j]) - 1})")
                refs.append((j, int(k)))
            else:
                if multi:
                    raise SpecError(f"{where}: inputs names {ref!r}, which has {len(ys[j])} outputs; name one, "
                                    f"e.g. {base + '.0'!r}")
                refs.append((j, None))
        return tuple(refs)

    def _read(self, i: int, name: str, layer: Layer, refs: tuple, ys: list, layers: tuple):
        """What the layer's rules see: one shape, or a tuple of them (a Parameter's output as a
        `ParameterShape`: it has no batch dimension)."""
        kind = type(layer)
        shapes = []
        for j, k in refs:
            if j == NETWORK_INPUT:
                shapes.append(self.input_shape)
            elif k is not None:
                shapes.append(ys[j][k])
            else:
                shapes.append(ParameterShape(ys[j]) if type(layers[j]).arity == 0 else ys[j])
        shapes = tuple(shapes)
        if kind.arity == 1:
            x = shapes[0]
            if isinstance(x, ParameterShape):
                raise SpecError(f"{describe_layer(i, name, kind.__name__)}: reads a Parameter; only Add, Mul "
                                f"and other merges may broadcast a parameter against activations")
            return x
        return shapes

    @staticmethod
    def _checked(kind, y):
        """Every output shape fits torch's int64 (a user's kind gets the full shape check)."""
        outputs = y if kind.multi_output else (y,)
        if kind.multi_output and (not isinstance(y, tuple) or not y):
            raise SpecError(f"{kind.__name__}.output_shape() must return a non-empty tuple of shapes, got "
                            f"{check.shown(y)}")
        if kind not in BUILTIN_KINDS:
            return tuple(check.shape(s, f"{kind.__name__}.output_shape()") for s in outputs) \
                if kind.multi_output else check.shape(y, f"{kind.__name__}.output_shape()")
        for s in outputs:
            if prod(s) > check.INT64_MAX:
                raise SpecError(f"the output {format_shape(s)} holds more than {check.INT64_MAX} elements per "
                                f"sample (torch's int64 limit)")
        return y

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
        return Network(input_shape, self.layers, name=self.name)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        kind = "chain" if self.is_chain else "graph"
        return f"Network({self.name!r}, input {format_shape(self.input_shape)}, {len(self.layers)} layers, {kind})"

    # -- storage ---------------------------------------------------------------------
    def storage(self, batch: int) -> tuple[bool, ...]:
        """Per layer: does its output take new storage (False: a view of, or the same tensor
        as, its first input; a Parameter's output is its weight, not an activation)?
        torch's own rules, with strides tracked layer by layer (see `alexcost.layers.strides`)."""
        key = "_storage_one" if batch == 1 else "_storage_many"
        cached = self.__dict__.get(key)
        if cached is None:
            from .storage import plan

            cached = plan(self, 1 if batch == 1 else 2)
            object.__setattr__(self, key, cached)
        return cached

    def _check_batch(self, batch: int) -> None:
        """Refuse a batch whose tensors torch could not index: more than int64 elements."""
        largest = self.__dict__.get("_largest")
        if largest is None:
            largest = (prod(self.input_shape), "the input")
            for name, layer, y in zip(self.names, self.layers, self.output_shapes):
                for s in (y if type(layer).multi_output else (y,)) if type(layer).arity != 0 else ():
                    if prod(s) > largest[0]:
                        largest = (prod(s), f"the output of {name!r}")
            object.__setattr__(self, "_largest", largest)
        if batch * largest[0] > check.INT64_MAX:
            raise SpecError(f"batch {batch} makes {largest[1]} hold {batch * largest[0]} elements, more than "
                            f"torch's int64 limit {check.INT64_MAX}")

    # -- cost --------------------------------------------------------------------------
    def counts(self, itemsize: int = 4) -> tuple:
        """Per layer, its counts for one sample: ``(weight_params, bias_params, macs, bias_adds,
        other_ops, buffers, output elements, batched, buffer bytes at itemsize)``, by each kind's rules."""
        return tuple((*c, layer.buffer_bytes(x, itemsize)) if c[5] else (*c, 0)
                     for layer, x, c in zip(self.layers, self.input_shapes, self._layer_counts()))

    def _layer_counts(self) -> list:
        """`counts` without the buffer bytes, remembered by each layer for its input shape."""
        entries = self._current_entries()
        out = list(map(_COUNTS, entries))
        if None in out:
            for i, (layer, x, entry) in enumerate(zip(self.layers, self.input_shapes, entries)):
                if entry[1] is None:  # (an entry a network holds twice is counted once)
                    entry[1] = _count(layer, x, entry[0])
                out[i] = entry[1]
        return out

    def _current_entries(self) -> list:
        """What wiring found per layer (`Network._entry`), or found again after `forget_rules`."""
        epoch, entries = self.__dict__["_entries"]
        if epoch != _EPOCH[0]:
            entries = []
            for layer, x, y in zip(self.layers, self.input_shapes, self.output_shapes):
                kind = type(layer)
                memo = _memo(layer) if kind.arity == 1 or (kind.arity is None and not reads_a_parameter(x)) else {}
                entry = memo.get(x)
                if entry is None:
                    entry = [y, None, None]
                    if len(memo) < MEMO_SIZE:
                        memo[x] = entry
                entries.append(entry)
            object.__setattr__(self, "_entries", (_EPOCH[0], entries))
        return entries

    def _vectors(self) -> list:
        """Per layer, its per-sample contribution to the totals, ``(weight_params, bias_params, macs,
        bias_adds, other_ops, buffers, batched output elements, new batched storage, unbatched
        elements)``, where every tensor stays contiguous (`alexcost.engine.storage.contiguous_plan`); ``()``
        for a layer whose storage only the stride trace can tell."""
        entries = self._current_entries()
        out = list(map(_VECTOR, entries))
        if None in out:
            counts = self._layer_counts()
            for i, (layer, c, entry) in enumerate(zip(self.layers, counts, entries)):
                if entry[2] is None:
                    entry[2] = _vector(layer, c)
                out[i] = entry[2]
        return out

    def totals(self, batch: int, itemsize: int, group: str | None = None, unused_params: int = 0,
               counts: tuple | None = None) -> Totals:
        """The totals of `cost` (of the layers of one ``group``, if given): the per-sample sums
        (kept on the network, which is immutable) scaled by the batch."""
        key = (_EPOCH[0], itemsize, batch == 1, group)
        cache = self.__dict__.get("_sums_by_key")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_sums_by_key", cache)
        sums = cache.get(key)
        if sums is None:
            if len(self.layers) < BULK:
                sums = cache[key] = self._sums(batch, itemsize, group, counts)
            else:
                with paused_gc(len(self.layers)):  # the sums make lists as long as the network
                    sums = cache[key] = self._sums(batch, itemsize, group, counts)
        w, b, m, a, o, n, e, fixed, stored, unbatched = sums
        return Totals(w, b, batch * m, batch * a, batch * o, batch * e + unbatched, itemsize, n, fixed,
                      batch * stored, unused_params)

    def _vector_sums(self) -> tuple | None:
        """The sums of `_vectors`; None where some layer needs the stride trace."""
        try:
            sums = tuple(map(sum, zip(*map(_VECTOR, self._current_entries()))))
        except TypeError:  # some vector is not made yet (None)
            sums = tuple(map(sum, zip(*self._vectors())))
        return sums if len(sums) == 9 else None  # a () among them leaves no column

    def _sums(self, batch: int, itemsize: int, group: str | None, counts: tuple | None) -> tuple:
        sums = self._vector_sums() if group is None else None
        if sums is not None:  # every tensor contiguous: the sums of the layers' vectors
            w, b, m, a, o, n, e, stored, unbatched = sums
            fixed = sum(layer.buffer_bytes(x, itemsize) for layer, x, c in
                        zip(self.layers, self.input_shapes, self._layer_counts()) if c[5]) if n else 0
            return w, b, m, a, o, n, e, fixed, stored, unbatched
        w = b = m = a = o = n = e = fixed = stored = unbatched = 0
        new = self.storage(batch)
        counts = self._layer_counts() if counts is None else counts
        for layer, x, c, is_new in zip(self.layers, self.input_shapes, counts, new):
            if group is not None and layer.group != group:
                continue
            w += c[0]
            b += c[1]
            m += c[2]
            a += c[3]
            o += c[4]
            if c[5]:
                n += c[5]
                fixed += layer.buffer_bytes(x, itemsize)
            if c[7]:
                e += c[6]
                if is_new:
                    stored += c[6]
            else:  # a Parameter's output is its weight, once whatever the batch
                unbatched += c[6]
        return w, b, m, a, o, n, e, fixed, stored, unbatched

    def rows(self, batch: int, dtype: str, counts: tuple | None = None) -> tuple[LayerCost, ...]:
        """One `LayerCost` per layer, for ``batch`` samples at ``dtype``."""
        size = dtype_bytes(dtype)
        make, chain = LayerCost._make, self.is_chain
        with paused_gc(len(self.layers)):
            new = self.storage(batch)
            counts = self.counts(size) if counts is None else counts
            return tuple([make(i, name, layer, x, y, c[0], c[1], batch * c[2], batch * c[3], batch * c[4], batch, size,
                               None if chain else self.inputs_of(i), c[5], c[8], is_new)
                          for i, name, layer, x, y, c, is_new in zip(range(len(self.layers)), self.names, self.layers,
                                                                     self.input_shapes, self.output_shapes, counts,
                                                                     new)])

    def cost(self, batch: int = 1, dtype: str = "float32") -> NetworkCost:
        """Every layer's counts for ``batch`` samples; memory sized at ``dtype``."""
        batch = check.integer(batch, "batch")
        dtype_bytes(dtype)
        if batch > 1:
            self._check_batch(batch)
        return NetworkCost._of(self, batch, dtype)


_COUNTS, _VECTOR = itemgetter(1), itemgetter(2)
"""A memo entry's counts and totals vector (see `Network._entry`)."""

MEMO_SIZE = 64
"""Input shapes a layer remembers its output shape and counts for."""

_EPOCH = [0]


def _memo(layer: Layer) -> dict:
    """What ``layer`` remembers: input shape -> ``[output shape, per-sample counts or None,
    totals vector or None]`` (see `Network._entry`).

    A frozen layer's rules are pure functions of its arguments and its input, so the next
    network that reuses the layer object (a cached preset, a search over candidates), or a
    built-in layer of the same kind and arguments (see `_facts`), skips checking and counting
    it again. `forget_rules` drops every memo at once.
    """
    facts = layer.__dict__.get("_memo")
    if facts is None or facts[0] != _EPOCH[0]:
        facts = _facts(layer)
    return facts[1]


def _facts(layer: Layer) -> tuple:
    """A layer's memo with what wiring asks of it every time: ``(epoch, memo, name, default name
    stem, reads the layer before it unless told otherwise, its output is one activation (not
    several, not a Parameter's weight), how it reads its inputs (1: one named input, 2: two or more
    named by layer name, as merges do; else 0), inputs)``.

    The memo of a built-in layer is shared by every built-in layer of its kind and arguments,
    whatever its ``name`` and ``inputs`` (wiring facts the rules of alexcost's own kinds never
    read): the blocks of a search space, named apart, are checked and counted once per input
    shape. Arguments match when they are equal and of the same types (``1``, ``True`` and ``1.0``
    differ), floats by their repr too (``0.0`` and ``-0.0`` differ); a layer whose arguments
    cannot be hashed keeps a memo of its own."""
    kind = type(layer)
    static = _KIND_FACTS.get(kind)
    if static is None:
        static = _kind_facts(kind)
    stem, one_input, single, fields = static
    memo = None
    if fields is not None:
        values = fields(layer)
        types = tuple(map(type, values))
        key = (kind, values, types, repr(values) if float in types else None)
        try:
            memo = _SHARED.get(key)
            if memo is None:
                if len(_SHARED) >= SHARED_SIZE:
                    _SHARED.clear()
                memo = _SHARED[key] = {}
        except TypeError:  # an unhashable argument
            memo = None
    inputs = layer.inputs
    if inputs is None:
        reads = 0
    elif one_input:
        reads = 1 if len(inputs) == 1 else 0
    else:
        reads = 2 if kind.arity is None and len(inputs) >= 2 and not any("." in ref for ref in inputs) else 0
    facts = (_EPOCH[0], {} if memo is None else memo, layer.name, stem, inputs is None and one_input, single,
             reads, inputs)
    object.__setattr__(layer, "_memo", facts)
    return facts


SHARED_SIZE = 100_000
"""Layer configurations whose memos `_facts` shares at once (then it starts afresh)."""

_SHARED: dict = {}
_KIND_FACTS: dict = {}


def _kind_facts(kind) -> tuple:
    """What `_facts` needs of a kind: ``(default name stem, arity 1, one activation out, the
    getter of its arguments but name and inputs (None for a user's kind: its memo is its own))``."""
    fields = None
    if kind in BUILTIN_KINDS:
        names = tuple(n for n in _field_names(kind) if n not in ("name", "inputs"))
        fields = attrgetter(*names) if len(names) > 1 else \
            (lambda layer, get=attrgetter(names[0]): (get(layer),)) if names else _no_fields
    found = _KIND_FACTS[kind] = (kind.__name__.lower(), kind.arity == 1, not kind.multi_output and kind.arity != 0,
                                 fields)
    return found


def _no_fields(layer: Layer) -> tuple:
    return ()


_CHAIN_REFS: list = [((-1, None),)]


def _chain_refs(n: int) -> list:
    """``sources`` of a chain of (at least) ``n`` layers, each reading the one before it: shared, read only."""
    if n <= 4096:
        while len(_CHAIN_REFS) < n:
            _CHAIN_REFS.append(((len(_CHAIN_REFS) - 1, None),))
        return _CHAIN_REFS
    return [((j, None),) for j in range(-1, n - 1)]


def forget_rules() -> None:
    """Forget what layers remember of their rules' results: call it after changing a kind's
    rules at run time (tests that corrupt a count on purpose do)."""
    _EPOCH[0] += 1
    _SHARED.clear()


def _count(layer: Layer, x, y) -> tuple:
    """A layer's per-sample counts (see `Network.counts`), calling only the rules its kind defines."""
    kind = type(layer)
    w, b, m, a, o, n = _overrides(kind)  # False where the kind keeps the base's 0: no call
    elements = sum(prod(s) for s in y) if kind.multi_output else prod(y)
    return (layer.weight_params(x) if w else 0, layer.bias_params(x) if b else 0,
            layer.macs(x, y) if m else 0, layer.bias_adds(x, y) if a else 0,
            layer.other_ops(x, y) if o else 0, layer.buffers(x) if n else 0, elements, kind.arity != 0)


def _vector(layer: Layer, c: tuple):
    """A layer's per-sample contribution to the totals (see `Network._vectors`), ``()`` where its
    storage needs the stride trace."""
    new = contiguous_new(layer)
    if new is None:
        return ()
    return (*c[:6], c[6], c[6] if new else 0, 0) if c[7] else (*c[:6], 0, 0, c[6])


_OVERRIDES: dict = {}
COUNT_RULES = ("weight_params", "bias_params", "macs", "bias_adds", "other_ops", "buffers")


def _overrides(kind) -> tuple[bool, ...]:
    """Which count rules a kind defines; the others it inherits from `Layer`, which returns 0, so
    the engine skips calling them. Looked up once per kind (define a kind's rules in its class,
    not by patching a method onto a kind that lacked it afterwards)."""
    found = _OVERRIDES.get(kind)
    if found is None:
        found = _OVERRIDES[kind] = tuple(getattr(kind, rule) is not getattr(Layer, rule) for rule in COUNT_RULES)
    return found


def type_multi(y) -> bool:
    """Is ``y`` the outputs of a multi-output layer (a tuple of shapes)?"""
    return bool(y) and isinstance(y[0], tuple)
