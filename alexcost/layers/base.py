"""The Layer base class, the registry of kinds, and what every kind shares.

A kind is one frozen, keyword-only dataclass holding every fact about it: its
output-shape rule (which also validates the input), its parameter and buffer
counts, its MACs, bias adds and other ops, what fvcore and torch count for it,
whether its output shares storage with its input, and its torch module.

Shapes are per sample (no batch dimension). A kind with ``arity == 1`` sees one
input shape ``x``; a kind with several inputs (``arity`` None, or > 1) sees a tuple
of shapes. A kind with ``multi_output`` returns a tuple of shapes as ``y``.
"""

from __future__ import annotations

import dataclasses
import sys
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
    """Do a merge's input shapes ``x`` include a Parameter's? Then ``x`` cannot key what a layer
    remembers: a `ParameterShape` equals the activation shape of the same numbers, which the
    rules treat apart (no batch dimension)."""
    return ParameterShape in map(type, x)


class Grads(NamedTuple):
    """Which gradients a layer's backward pass computes: ``inputs[k]`` for its input ``k``
    (False where the input needs none: the network input, or a tensor computed only from
    frozen layers), ``params`` for its own weight and bias (False when frozen)."""

    inputs: tuple[bool, ...]
    params: bool

    @property
    def input(self) -> bool:
        """The gradient with respect to input 0."""
        return bool(self.inputs) and self.inputs[0]


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

    @property
    def stats_itemsize(self) -> int:
        """Bytes of a normalisation statistic: the dtype's on the CPU; on CUDA, float32 for
        float32, float16 and bfloat16 (torch's accumulate type), float64 for float64."""
        if self.device == "cuda":
            return 8 if self.itemsize == 8 else 4
        return self.itemsize


LAYER_KINDS: dict[str, type["Layer"]] = {}
"""Layer kinds by ``type`` name, as spec files name them."""


def register_layer(cls: type["Layer"] | None = None, *, replace: bool = False):
    """Make a `Layer` subclass available to spec files under its class name.

    Use as a decorator, ``@register_layer``; a name already taken needs ``replace=True``.
    """
    def add(kind: type[Layer]) -> type[Layer]:
        if not (isinstance(kind, type) and issubclass(kind, Layer)):
            raise TypeError(f"register_layer expects a Layer subclass, got {kind!r}")
        key = kind.__name__
        if key in LAYER_KINDS and LAYER_KINDS[key] is not kind and not replace:
            raise ValueError(f"a layer kind named {key!r} is already registered; pass replace=True")
        LAYER_KINDS[key] = kind
        return kind
    return add if cls is None else add(cls)


def side(value) -> str:
    """A pair shown as the seed shows it: ``4`` when square, ``4, 2`` otherwise."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]) if value[0] == value[1] else f"{value[0]}, {value[1]}"
    return "" if value is None else str(value)


def need_rank(layer: "Layer", x: Shape, rank: int, form: str) -> None:
    """Refuse an input of another rank (per sample), in the kind's own words."""
    if len(x) != rank:
        raise SpecError(f"{type(layer).__name__} expects a {form} input per sample, got {format_shape(x)}")


def layer_kind(cls):
    """``@dataclass(frozen=True, kw_only=True)`` for alexcost's own kinds, minus the code generation.

    Dataclasses would compile an ``__init__``, ``__setattr__`` and ``__delattr__`` (and equality,
    hash and repr) per class: most of ``import alexcost``. Instead `Layer` holds one frozen
    ``__setattr__``/``__delattr__`` and one equality, hash and repr for every kind, and a kind's
    ``__init__`` is generated on first use (`_kind_init`), as dataclasses would have generated it.
    The class still says ``frozen=True, init=True`` in ``__dataclass_params__``, so a user's
    ``@dataclass(frozen=True)`` subclass works as it does on any frozen dataclass."""
    undocumented = not cls.__dict__.get("__doc__")
    bases = [b.__dataclass_params__ for b in cls.__mro__[1:] if "__dataclass_params__" in b.__dict__]
    for params in bases:  # dataclasses refuses a non-frozen class on frozen bases
        params.frozen = False
    try:
        dataclass(init=False, frozen=False, kw_only=True, repr=False, eq=False)(cls)
    finally:
        for params in bases:
            params.frozen = True
    params = cls.__dataclass_params__
    params.init = params.frozen = True
    _KINDS.add(cls)
    if "__init__" not in cls.__dict__:
        cls.__init__ = _LazyInit(cls)
    if undocumented:  # dataclasses' docstring, from the signature of the init it would have made
        import inspect

        cls.__doc__ = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    return cls


_KINDS: set = set()
"""The classes `layer_kind` made."""


class _LazyInit:
    """A kind's ``__init__`` until first use: any lookup (a call, ``inspect.signature``, ``super()``)
    generates the real one, puts it on the kind and returns it."""

    __slots__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind

    def __get__(self, obj, owner=None):
        init = _kind_init(self.kind)
        return init if obj is None else init.__get__(obj, owner)


_HAS_DEFAULT_FACTORY = getattr(dataclasses, "_HAS_DEFAULT_FACTORY", None) or object()
"""The default shown for a parameter whose field has a ``default_factory`` (dataclasses' own marker)."""


def _kind_init(kind):
    """The ``__init__`` dataclasses generates for ``frozen=True`` on ``kind``: keyword-only (unless a
    field says otherwise), defaults and default factories, ``object.__setattr__`` per field, then
    ``__post_init__``. Generated once and set on the kind."""
    init = kind.__dict__["__init__"]
    if not isinstance(init, _LazyInit):
        return init
    every = fields(kind)
    self_name = "__dataclass_self__" if "self" in kind.__dataclass_fields__ else "self"
    names = {"__dataclass_builtins_object__": object, "_HAS_DEFAULT_FACTORY": _HAS_DEFAULT_FACTORY,
             "_return_type": None}
    body = []
    for f in every:
        names[f"_type_{f.name}"] = f.type
        if f.default_factory is not MISSING:
            names[f"_dflt_{f.name}"] = f.default_factory
            value = (f"_dflt_{f.name}() if {f.name} is _HAS_DEFAULT_FACTORY else {f.name}" if f.init
                     else f"_dflt_{f.name}()")
        elif f.init:
            if f.default is not MISSING:
                names[f"_dflt_{f.name}"] = f.default
            value = f.name
        else:
            continue
        body.append(f"  __dataclass_builtins_object__.__setattr__({self_name},{f.name!r},{value})")
    if hasattr(kind, "__post_init__"):
        body.append(f"  {self_name}.__post_init__()")
    init_fields = [f for f in every if f.init]
    params = [_init_param(f) for f in init_fields if not f.kw_only]
    kw_only = [_init_param(f) for f in init_fields if f.kw_only]
    if kw_only:
        params += ["*", *kw_only]
    text = (f"def __create_fn__({', '.join(names)}):\n"
            f" def __init__({','.join([self_name, *params])})->_return_type:\n"
            + "\n".join(body or ["  pass"]) + "\n return __init__")
    found = {}
    # dont_inherit: this module's ``from __future__ import annotations`` must not apply
    exec(compile(text, "<string>", "exec", dont_inherit=True), sys.modules[kind.__module__].__dict__, found)
    init = found["__create_fn__"](**names)
    init.__qualname__ = f"{kind.__qualname__}.__init__"
    kind.__init__ = init
    return init


def _init_param(f) -> str:
    if f.default is not MISSING:
        return f"{f.name}:_type_{f.name}=_dflt_{f.name}"
    if f.default_factory is not MISSING:
        return f"{f.name}:_type_{f.name}=_HAS_DEFAULT_FACTORY"
    return f"{f.name}:_type_{f.name}"


_FIELD_NAMES: dict = {}


def _field_names(kind) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


_FROZEN: dict = {}


def _frozen_fields(cls) -> tuple[type, frozenset]:
    """The nearest of alexcost's own kinds in ``cls``'s MRO, and its field names: the class whose
    dataclasses-generated ``__setattr__`` would have answered."""
    found = _FROZEN.get(cls)
    if found is None:
        kind = next(k for k in cls.__mro__ if k in _KINDS)
        found = _FROZEN[cls] = (kind, frozenset(_field_names(kind)))
    return found


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
    "common format" (channels-last when every input is, as torch.cat decides)."""

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _field_names(self.__class__))

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in _field_names(self.__class__)))

    def __repr__(self):
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in _field_names(self.__class__))
        return f"{type(self).__qualname__}({args})"

    def __setattr__(self, name, value):
        kind, names = _frozen_fields(type(self))
        if type(self) is kind or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(Layer, self).__setattr__(name, value)

    def __delattr__(self, name):
        kind, names = _frozen_fields(type(self))
        if type(self) is kind or name in names:
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
        """The output's strides (batch stride first) when the output is a view of (or the same
        tensor as) input 0, whose strides are ``strides``; None when it is new storage.
        ``batch`` matters where torch decides by the full shape (1: one sample)."""
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

    def train_copies(self) -> bool:
        """Does the forward pass in training return a new tensor where inference returns the
        input itself (dropout applying its mask)?"""
        return False

    def train_inplace(self) -> bool:
        """Does the forward pass in training write its result into input 0 (bumping the
        version torch checks saved tensors against)?"""
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

    def torch_module(self, x: Shape):
        """The equivalent torch module (imports torch). A custom kind overrides this."""
        import torch.nn

        kind = getattr(torch.nn, type(self).__name__, None)
        if kind is None:
            raise SpecError(f"{type(self).__name__} has no torch.nn counterpart; define torch_module() on it")
        return kind(**self.torch_args(x))

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

    def view_strides(self, x, y, strides, batch):
        return strides


@layer_kind
class InplaceElementwise(Elementwise):
    """An elementwise activation with torch's ``inplace`` flag: in place, the output is the input."""

    inplace: bool = False

    inplace_saves: ClassVar[str] = "copy"
    """What autograd keeps in place when the kind ``saves`` its input: ``"copy"`` (torch clones
    the input before overwriting it) or ``"output"`` (its formula reads the result instead)."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "inplace", check.flag(self.inplace, "inplace"))

    def view_strides(self, x, y, strides, batch):
        return strides if self.inplace else None

    def train_inplace(self) -> bool:
        return self.inplace

    def saved_tensors(self, x: Shape, y: Shape, grads: Grads, ctx: TrainContext) -> tuple[Saved, ...]:
        if not (self.inplace and self.saves == "input"):
            return _KEEPS[self.saves]
        if self.inplace_saves == "output":
            return _KEEPS["output"]
        return (Saved("input copy", "new", elements=ctx.batch * prod(x), itemsize=ctx.itemsize),)
