"""The Layer base class, the registry of kinds, and what every kind shares.

A kind is one frozen, keyword-only dataclass holding every fact about it: its
output-shape rule (which also validates the input), its parameter and buffer
counts, its MACs, bias adds and other ops, what fvcore and torch count for it,
whether its output shares storage with its input (`Layer.storage`), its backward
pass and what autograd keeps, and its torch arguments. No kind imports torch: the
torch side maps kinds to modules (`alexcost.torch_bridge.modules`).

Shapes are per sample (no batch dimension). A kind with ``arity == 1`` sees one
input shape ``x``; a kind with several inputs (``arity`` None, or > 1) sees a tuple
of shapes. A kind with ``multi_output`` returns a tuple of shapes as ``y``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, FrozenInstanceError, dataclass, fields
from math import prod
from typing import ClassVar, NamedTuple

from . import arguments as check
from ..errors import SpecError, format_shape

Shape = tuple[int, ...]

INPUT = "input"
"""The network input's name, as ``inputs`` lists refer to it."""

class ParameterShape(tuple):
    """The full shape of a tensor without a batch dimension (a `Parameter`'s), as merges see it."""


def reads_a_parameter(x) -> bool:
    """Do a merge's input shapes ``x`` include a Parameter's? A `ParameterShape` equals the
    activation shape of the same numbers, which the rules treat apart (no batch dimension)."""
    return ParameterShape in map(type, x)


class Grads(NamedTuple):
    """Which gradients a layer's backward pass computes: ``inputs[k]`` for its input ``k``
    (False where the input needs none: the network input, or a tensor computed only from
    frozen parameters), ``weight`` and ``bias`` for its own parameters (False when frozen, or
    when it has none; a `Parameter`'s tensor is its weight)."""

    inputs: tuple[bool, ...]
    weight: bool
    bias: bool

    @property
    def input(self) -> bool:
        """The gradient with respect to input 0."""
        return bool(self.inputs) and self.inputs[0]

    @property
    def params(self) -> bool:
        """Does some parameter of the layer's own (its weight, its bias) get a gradient?"""
        return self.weight or self.bias


class Saved(NamedTuple):
    """One tensor autograd keeps for a layer's backward pass (parameters are never listed).

    ``ref`` is ``"input"`` (input ``index`` itself: its storage, shared with whoever else
    keeps it), ``"output"`` (output ``index``: for an in-place layer, its input's storage)
    or ``"new"``: a tensor of its own, ``elements`` elements of ``itemsize`` bytes for the
    whole batch. ``what`` names it (``"indices"``, ``"mask"``); ``caveat``, when not empty,
    says what the count may leave out.
    """

    what: str
    ref: str = "input"
    index: int = 0
    elements: int = 0
    itemsize: int = 0
    caveat: str = ""

    @property
    def bytes(self) -> int:
        """Bytes of a new tensor (0 for a reference: its size is its storage's)."""
        return self.elements * self.itemsize


class TrainContext(NamedTuple):
    """What a training-step rule may depend on beyond the shapes: the batch, the element
    size and name of the dtype, the torch backend whose rules apply (``"cpu"`` or
    ``"cuda"``), and each input's batched strides (None for a parameter)."""

    batch: int
    itemsize: int
    dtype: str = "float32"
    device: str = "cpu"
    strides: tuple = ()
    params_itemsize: int = 0
    """Bytes per element of the layer's parameters and buffers where they differ from its input's
    (a layer run in a lower dtype under torch.autocast, its parameters float32); 0: the same."""

    @property
    def stats_itemsize(self) -> int:
        """Bytes of a normalisation statistic: the dtype's on the CPU; on CUDA, float32 for
        float32, float16 and bfloat16 (torch's accumulate type), float64 for float64."""
        if self.device == "cuda":
            return 8 if self.itemsize == 8 else 4
        return self.itemsize


LAYER_KINDS: dict[str, type["Layer"]] = {}
"""Layer kinds by ``type`` name, as spec files name them."""

TORCH_READERS: dict[str, type["Layer"]] = {}
"""The registered kinds that name what they read in torch (``torch_reads``), by name: the torch side
looks only here (a kind no longer in `LAYER_KINDS` is passed over)."""


def register_layer(cls: type["Layer"] | None = None, *, replace: bool = False, reads=None):
    """Make a `Layer` subclass available to spec files under its class name.

    Use as a decorator, ``@register_layer``; a name already taken needs ``replace=True``.
    ``reads`` names what the kind stands for in torch, for ``from_module``: a torch module class
    (``nn.GroupNorm``), a function (``F.group_norm``), a dotted name of either
    (``"torch.nn.GroupNorm"``), or a tuple of them. It is kept as given, in ``torch_reads``;
    the torch side (``alexcost.torch_bridge``) maps modules and calls to the kind.
    """
    def add(kind: type[Layer]) -> type[Layer]:
        if not (isinstance(kind, type) and issubclass(kind, Layer)):
            raise TypeError(f"register_layer expects a Layer subclass, got {kind!r}")
        key = kind.__name__
        if key in LAYER_KINDS and LAYER_KINDS[key] is not kind and not replace:
            raise ValueError(f"a layer kind named {key!r} is already registered; pass replace=True")
        if reads is not None:
            named = reads if isinstance(reads, tuple) else (reads,)
            if not named or not all(isinstance(r, str) or callable(r) for r in named):
                raise TypeError(f"register_layer(reads=...) takes a torch module class, a function or a dotted "
                                f"name (or a tuple of them), got {reads!r}")
            kind.torch_reads = named
        LAYER_KINDS[key] = kind
        if kind.torch_reads:
            TORCH_READERS[key] = kind
        else:
            TORCH_READERS.pop(key, None)
        return kind
    return add if cls is None else add(cls)


def side(value) -> str:
    """A pair (or triple) shown as the seed shows it: ``4`` when square, ``4, 2`` otherwise."""
    if isinstance(value, tuple) and value:
        return str(value[0]) if len(set(value)) == 1 else ", ".join(map(str, value))
    return "" if value is None else str(value)


def need_rank(layer: "Layer", x: Shape, rank: int, form: str) -> None:
    """Refuse an input of another rank (per sample), in the kind's own words."""
    if len(x) != rank:
        raise SpecError(f"{type(layer).__name__} expects a {form} input per sample, got {format_shape(x)}")


def need_sample_dimension(layer: "Layer", y: Shape) -> None:
    """Refuse an output of no dimension per sample: alexcost reads each sample as a tensor of one
    dimension or more. (A tensor computed once per pass, from parameters alone, may have none.)"""
    if y == ():
        raise SpecError(f"{type(layer).__name__} leaves no dimension per sample; alexcost reads each sample as a "
                        f"tensor of one dimension or more")


def layer_kind(cls):
    """``@dataclass(frozen=True, kw_only=True)`` for alexcost's own kinds, with `Layer`'s methods.

    The class gets its fields (``dataclasses.fields``, ``dataclasses.replace`` work on it), but
    none of the methods dataclasses would compile per class: `Layer` holds one field-driven
    ``__init__``, one frozen ``__setattr__``/``__delattr__`` and one equality, hash and repr for
    every kind. The class says ``frozen=True, init=True`` in ``__dataclass_params__``, as dataclasses
    would, so a user's ``@dataclass(frozen=True)`` subclass works as on any frozen dataclass."""
    bases = [b.__dataclass_params__ for b in cls.__mro__[1:] if "__dataclass_params__" in b.__dict__]
    for params in bases:  # dataclasses refuses a non-frozen class on frozen bases
        params.frozen = False
    try:
        dataclass(init=False, frozen=False, kw_only=True, repr=False, eq=False)(cls)
    finally:
        for params in bases:
            params.frozen = True
    cls.__dataclass_params__.init = cls.__dataclass_params__.frozen = True
    if any(f.init and not f.kw_only for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: a layer kind's arguments are keyword-only")
    _KINDS.add(cls)
    return cls


_KINDS: set = set()
"""The classes `layer_kind` made."""


class _Fields(NamedTuple):
    """What `Layer`'s methods need of a class's fields, looked up once per class."""

    names: tuple[str, ...]
    defaults: dict       # every field -> its default (`_REQUIRED` when it has none, `_MADE` for a factory's)
    required: frozenset
    fixed: frozenset     # the fields ``__init__`` does not take (``field(init=False)``)
    factories: tuple     # (name, default factory) pairs
    frozen_by: type      # the nearest of alexcost's own kinds: the class whose fields are frozen
    frozen: frozenset


_REQUIRED = object()
_MADE = object()
_FIELDS: dict = {}


def _fields(cls) -> _Fields:
    found = _FIELDS.get(cls)
    if found is None:
        every = fields(cls)
        defaults = {f.name: f.default if f.default is not MISSING else
                    _MADE if f.default_factory is not MISSING else _REQUIRED for f in every}
        kind = next(k for k in cls.__mro__ if k in _KINDS)
        found = _FIELDS[cls] = _Fields(
            tuple(f.name for f in every), defaults, frozenset(n for n, d in defaults.items() if d is _REQUIRED),
            frozenset(f.name for f in every if not f.init),
            tuple((f.name, f.default_factory) for f in every if f.default_factory is not MISSING),
            kind, frozenset(f.name for f in fields(kind)))
    return found


def _arguments_error(cls, positional: int, kwargs: dict, found: _Fields) -> TypeError:
    """The error a keyword-only dataclass's ``__init__`` raises for these arguments, in Python's words
    and order: an unknown keyword, then positional arguments, then missing ones."""
    where = f"{cls.__qualname__}.__init__()"
    unknown = [k for k in kwargs if k not in found.defaults or k in found.fixed]
    if unknown:
        return TypeError(f"{where} got an unexpected keyword argument {unknown[0]!r}")
    if positional:
        given, named = positional + 1, len(kwargs)
        shown = (f"{given} positional arguments (and {named} keyword-only argument{'s' if named != 1 else ''})"
                 if named else str(given))
        return TypeError(f"{where} takes 1 positional argument but {shown} were given")
    missing = [repr(n) for n in found.names if n in found.required and n not in kwargs]
    listed = missing[0] if len(missing) == 1 else (
        f"{missing[0]} and {missing[1]}" if len(missing) == 2 else f"{', '.join(missing[:-1])}, and {missing[-1]}")
    return TypeError(f"{where} missing {len(missing)} required keyword-only argument"
                     f"{'s' if len(missing) > 1 else ''}: {listed}")


_FACTORY = getattr(dataclasses, "_HAS_DEFAULT_FACTORY", MISSING)
"""The default ``inspect`` shows for a field with a default factory (dataclasses' own marker)."""


class _Signature:
    """``inspect.signature(kind)`` for a kind on `Layer`'s ``__init__``: its fields, keyword-only,
    with their defaults (a class with an ``__init__`` of its own is left to ``inspect``)."""

    def __get__(self, obj, cls=None):
        if obj is not None or cls.__init__ is not Layer.__init__:
            return None
        import inspect

        return inspect.Signature([inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=f.type,
                                                    default=_default_shown(f)) for f in fields(cls) if f.init],
                                 return_annotation=None)


def _default_shown(f):
    import inspect

    if f.default is not MISSING:
        return f.default
    return inspect.Parameter.empty if f.default_factory is MISSING else _FACTORY


@layer_kind
class Layer:
    """Base of every layer kind.

    A subclass defines `output_shape` (which also validates the input) and overrides
    the counts it has; the defaults are zero. ``x`` is the per-sample input shape (a
    tuple of them for several inputs), ``y`` the per-sample output shape. ``group``
    files the layer under ``"conv"``, ``"fc"`` or ``"other"`` for the conv-vs-FC split.
    ``inputs`` names the nodes the layer reads (default: the layer before it; the
    network input is called ``"input"``; output ``k`` of a multi-output node ``n`` is ``"n.k"``).
    """

    name: str | None = None
    inputs: tuple[str, ...] | None = None
    group: ClassVar[str] = "other"
    arity: ClassVar[int | None] = 1
    """How many inputs: 1 (``x`` is a shape), 0 (a source), None (two or more; ``x`` is a tuple)."""
    multi_output: ClassVar[bool] = False
    """True when the output is a tuple of tensors (``y`` is a tuple of shapes)."""
    layout: ClassVar[str] = "contiguous"
    """The memory layout of a new output: "contiguous", "elementwise" (the input's dimension
    order, as torch's TensorIterator keeps it), "format" (channels-last in, channels-last out) or
    "common format" (channels-last when every input is, as torch.cat decides) or "unsqueezed format" (a
    (C, L) sample as torch's 1-D pools run it: channels-last when the (N, C, 1, L) view is) or "query" (the first
    input's dimension order when its last dimension is contiguous, as torch's fused attention on the CPU
    allocates its output; else contiguous) or "sequence first" (a (N, L, E) tensor stored as (L, N, E),
    as nn.MultiheadAttention returns it)."""
    storage: ClassVar[str] = "new"
    """Where the output lives: "new" (storage of its own), "same" (the input itself), "inplace-if-flag"
    (the input itself when the layer's ``inplace`` is set, else new), "view" (always a view of input
    0, whose strides `view_strides` gives) or "strided" (a view when the strides allow one, as
    `view_strides` decides, else a new contiguous copy; a contiguous input always gives a view)."""

    autocast: ClassVar[str | None] = None
    """How ``torch.autocast`` on the CPU runs the kind (torch's CPU op lists, the same for bfloat16 and
    float16): "lower" (its op casts its input and parameters to the autocast dtype and computes there:
    convolutions, linear, matrix products), "follow" (it runs in its input's dtype), None: alexcost does
    not model it under autocast (refused there)."""
    torch_reads: ClassVar[tuple] = ()
    """What the kind stands for in torch, for ``from_module``: torch module classes, functions, or
    their dotted names (``register_layer(..., reads=nn.GroupNorm)`` sets it). alexcost's own kinds
    leave it empty: the torch side maps them by name."""

    __signature__ = _Signature()

    def __init__(self, *args, **kwargs):
        """Each field from its keyword argument or its default, then `__post_init__`: what a frozen,
        keyword-only dataclass's ``__init__`` does."""
        cls = type(self)
        found = _FIELDS.get(cls) or _fields(cls)
        values = {**found.defaults, **kwargs}
        if args or len(values) != len(found.defaults) or not kwargs.keys() >= found.required or (
                found.fixed and not found.fixed.isdisjoint(kwargs)):
            raise _arguments_error(cls, len(args), kwargs, found)
        for name, factory in found.factories:
            if values[name] is _MADE:
                values[name] = factory()
        object.__setattr__(self, "__dict__", values)
        self.__post_init__()

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _fields(self.__class__).names)

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in _fields(self.__class__).names))

    def __repr__(self):
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in _fields(self.__class__).names)
        return f"{type(self).__qualname__}({args})"

    def __setattr__(self, name, value):
        found = _fields(type(self))
        if type(self) is found.frozen_by or name in found.frozen:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(Layer, self).__setattr__(name, value)

    def __delattr__(self, name):
        found = _fields(type(self))
        if type(self) is found.frozen_by or name in found.frozen:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(Layer, self).__delattr__(name)

    def __post_init__(self):
        if self.name is not None:
            object.__setattr__(self, "name", check.name(self.name))
        if self.inputs is not None:
            object.__setattr__(self, "inputs", check.references(self.inputs))

    # -- shape ---------------------------------------------------------------
    def output_shape(self, x: Shape) -> Shape:
        """The per-sample output shape, or `SpecError` if ``x`` does not fit."""
        raise NotImplementedError(f"{type(self).__name__} must define output_shape")

    # -- counts (per sample) ---------------------------------------------------
    def weight_params(self, x: Shape) -> int:
        return 0

    def bias_params(self, x: Shape) -> int:
        return 0

    def buffers(self, x: Shape) -> int:
        """Elements of the module's buffers (BatchNorm's running statistics): memory, not parameters."""
        return 0

    def buffer_bytes(self, x: Shape, itemsize: int) -> int:
        """Bytes of those buffers when floating-point ones are ``itemsize`` wide."""
        return self.buffers(x) * itemsize

    def macs(self, x: Shape, y: Shape) -> int:
        return 0

    def bias_adds(self, x: Shape, y: Shape) -> int:
        return 0

    def other_ops(self, x: Shape, y: Shape) -> int:
        return 0

    def fvcore_count(self, x: Shape, y: Shape) -> int | None:
        """What fvcore's FlopCountAnalysis counts for this layer and one sample (None: it
        cannot count the op). Default: the MACs (fvcore counts one per multiply-accumulate of
        convolutions and matrix products, and nothing for elementwise ops)."""
        return self.macs(x, y)

    def torch_flops(self, x: Shape, y: Shape) -> int:
        """What ``torch.utils.flop_counter.FlopCounterMode`` counts for one sample: 2 per MAC of
        convolutions and matrix products, nothing else."""
        return 2 * self.macs(x, y)

    # -- storage -----------------------------------------------------------------
    def view_strides(self, x: Shape, y: Shape, strides: tuple[int, ...], batch: int):
        """For a kind whose `storage` is "view" or "strided": the output's strides (batch stride
        first) as a view of input 0, whose strides are ``strides``; None when it is a new copy
        ("strided" only). ``batch`` matters where torch decides by the full shape (1: one sample)."""
        return None

    # -- training (backward pass and a step's memory) -----------------------------
    def backward_macs(self, x: Shape, y: Shape, grads: Grads) -> int:
        """Multiply-accumulates of the backward pass for one sample: the products that give the
        gradients ``grads`` asks for. A kind with MACs must say (0 for every other kind)."""
        if self.macs(x, y):
            raise SpecError(f"{type(self).__name__} has MACs but no backward rule; define backward_macs()")
        return 0

    def torch_backward_flops(self, x: Shape, y: Shape, grads: Grads, *, groups_counted: bool = True) -> int:
        """What ``FlopCounterMode`` counts for this layer's backward pass, one sample: 2 per
        backward MAC. ``groups_counted``: torch (2.14 and before) counts a grouped
        convolution's weight gradient as if it were not grouped."""
        return 2 * self.backward_macs(x, y, grads)

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        """Elementwise work of the backward pass for the whole batch (alexcost's convention,
        per kind; FlopCounterMode counts none of it)."""
        return 0

    def train_other_ops(self, x: Shape, y: Shape) -> int:
        """The forward pass's other_ops in training mode, one sample (dropout draws and applies
        a mask; batch norm computes batch statistics). Default: as at inference."""
        return self.other_ops(x, y)

    def check_training(self, x: Shape, batch: int) -> None:
        """Refuse (`SpecError`) what torch refuses to run in training mode though it runs at inference."""

    def per_sample(self) -> bool:
        """Is its output one per sample even where every input is computed once per pass (a copy of such a
        tensor for each sample)? Default: no, such a layer runs once per pass."""
        return False

    def train_copies(self) -> bool:
        """Does the forward pass in training return a new tensor where inference returns the
        input itself (dropout applying its mask)?"""
        return False

    def train_inplace(self) -> bool:
        """Does the forward pass in training write its result into input 0 (bumping the
        version torch checks saved tensors against)?"""
        return False

    def keeps_weight(self, grads: Grads) -> bool:
        """Does autograd keep the layer's weight for its backward pass, given the gradients it computes?
        A parameter itself is never counted; under autocast ("lower") the kept weight is its cast copy,
        a tensor of its own."""
        return False

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        """The tensors autograd keeps for this layer's backward pass, when some input or
        parameter of it requires grad (``grads``: which). Parameters are never listed."""
        raise SpecError(f"alexcost does not know what autograd saves for {type(self).__name__}; "
                        f"define saved_tensors() on it")

    # -- presentation ------------------------------------------------------------
    def args(self) -> dict:
        """The torch constructor arguments as given (``name`` and ``inputs`` excluded)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "inputs")}

    def torch_args(self, x: Shape) -> dict:
        """Arguments for ``torch.nn.<type>(**args)`` on input ``x`` (inferred ones filled in)."""
        return self.args()

    def columns(self) -> tuple[str, str, str, str]:
        """The seed table's Filter, Depth, Stride and Padding cells."""
        return ("", "", "", "")

    def params_formula(self, x: Shape, x_factors: Shape) -> str:
        """The parameter count as arithmetic, e.g. ``(11*11*3 + 1)*96`` ('' if none).

        ``x_factors`` is ``x`` as the seed writes it: ``(256, 6, 6)`` for a flattened 9216.
        """
        return ""

    def forward_formula(self, x: Shape, x_factors: Shape, y: Shape) -> str:
        """``macs + bias_adds`` per sample as arithmetic ('' if none)."""
        return ""

    def label(self) -> str:
        """A short description for tables: ``Max Pooling``."""
        return type(self).__name__


_KEEPS = {"input": (Saved("input"),), "output": (Saved("output", "output"),), "nothing": ()}
"""What an elementwise kind keeps, by its ``saves``."""
KEEPS_INPUT = _KEEPS["input"]
"""A kind that keeps its input alone (convolution, linear, average pooling)."""


@layer_kind
class Elementwise(Layer):
    """Shape-preserving layer doing ``ops_per_element`` ops on every element."""

    ops_per_element: ClassVar[int] = 1
    layout: ClassVar[str] = "elementwise"
    backward_ops_per_element: ClassVar[int] = 1
    """Elementwise ops per element of the gradient with respect to the input."""
    saves: ClassVar[str] = "input"
    """What autograd keeps for the backward pass: ``"input"``, ``"output"`` or ``"nothing"``."""

    def output_shape(self, x: Shape) -> Shape:
        return x

    def other_ops(self, x: Shape, y: Shape) -> int:
        return prod(y) * self.ops_per_element

    def backward_other_ops(self, x: Shape, y: Shape, grads: Grads, batch: int) -> int:
        return batch * prod(x) * self.backward_ops_per_element if grads.inputs[0] else 0

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        return _KEEPS[self.saves]


@layer_kind
class Passthrough(Elementwise):
    """The input itself at inference (Identity, Dropout, stochastic depth): no ops, no new storage."""

    ops_per_element: ClassVar[int] = 0
    backward_ops_per_element: ClassVar[int] = 0
    saves: ClassVar[str] = "nothing"
    storage: ClassVar[str] = "same"


@layer_kind
class InplaceElementwise(Elementwise):
    """An elementwise activation with torch's ``inplace`` flag: in place, the output is the input."""

    inplace: bool = False

    storage: ClassVar[str] = "inplace-if-flag"
    inplace_saves: ClassVar[str] = "copy"
    """What autograd keeps in place when the kind ``saves`` its input: ``"copy"`` (torch clones
    the input before overwriting it) or ``"output"`` (its formula reads the result instead)."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "inplace", check.flag(self.inplace, "inplace"))

    def train_inplace(self) -> bool:
        return self.inplace

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if not (self.inplace and self.saves == "input"):
            return _KEEPS[self.saves]
        if self.inplace_saves == "output":
            return _KEEPS["output"]
        return (Saved("input copy", "new", elements=ctx.batch * prod(x), itemsize=ctx.itemsize),)
