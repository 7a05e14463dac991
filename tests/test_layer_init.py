"""alexcost's own kinds share one field-driven ``__init__`` (`Layer.__init__`) and generate no
code, yet behave exactly like ``@dataclass(frozen=True, kw_only=True)`` classes: keyword-only
arguments, defaults, ``__post_init__``, frozen fields, equality, hash, repr, and a user's own
frozen dataclass on top. The reference for each kind is a subclass of it made by the real
dataclasses machinery, with the kind's own name, so even the error messages can be compared
word for word."""

import dataclasses
import inspect
import pickle
from dataclasses import FrozenInstanceError, MISSING, dataclass, fields

import pytest

from alexcost import Layer, SpecError, register_layer
from alexcost.layers import BUILTIN_KINDS, Conv2d, ReLU

KINDS = sorted(BUILTIN_KINDS, key=lambda k: k.__name__)

REQUIRED = {"output_size": 2, "kernel_size": 3, "dim": 1, "chunks": 2, "out_channels": 4,
            "normalized_shape": (8,), "out_features": 5, "size": 5, "shape": (2, 3), "dims": (0, 2, 1),
            "split_size_or_sections": 2, "p": 0.5, "mode": "row", "dim0": 1, "dim1": 2, "padding": 1,
            "num_groups": 1, "pad": (1, 1), "shifts": (1, 2, 1), "sizes": (2, 3), "repeats": (2, 3), "step": 1, "index": (0,),
            "num_embeddings": 10, "embedding_dim": 4, "embed_dim": 8, "num_heads": 2, "window_size": (2, 2),
            "shift_size": (0, 0), "op": "mul", "value": 0.5, "table": (6, 2), "index_size": 3}
"""A valid value for every argument some kind requires."""


def reference(kind):
    """``kind`` as dataclasses itself would make it: a frozen, keyword-only dataclass subclass
    with the same name, whose ``__init__``, ``__setattr__`` and ``__delattr__`` dataclasses generates."""
    sub = type(kind.__name__, (kind,), {"__module__": kind.__module__, "__qualname__": kind.__qualname__,
                                        "__doc__": kind.__doc__})
    return dataclass(frozen=True, kw_only=True, repr=False, eq=False)(sub)


VALID = {"MultiheadAttention": {"batch_first": True}, "Clamp": {"max": 6.0}}
"""Arguments a kind's default refuses (torch's default ``batch_first=False`` puts the batch second; a clamp
needs a bound)."""


def required(kind) -> dict:
    return {**{f.name: REQUIRED[f.name] for f in fields(kind) if f.default is MISSING},
            **VALID.get(kind.__name__, {})}


def outcome(make, *args, **kwargs):
    """What a call gives: the fields' values, or the error's type and message."""
    try:
        made = make(*args, **kwargs)
    except (TypeError, SpecError, ValueError) as e:
        return type(e), str(e)
    return {f.name: getattr(made, f.name) for f in fields(made)}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_kind_is_a_frozen_keyword_only_dataclass(kind):
    ref = reference(kind)
    params = kind.__dataclass_params__
    assert (params.init, params.frozen, params.repr, params.eq) == (True, True, False, False)
    assert dataclasses.is_dataclass(kind)
    assert inspect.signature(kind) == inspect.signature(ref)
    assert kind.__init__ is Layer.__init__  # one __init__ for every kind, none generated
    assert kind.__match_args__ == ref.__match_args__ == ()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(kind).parameters.values())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_kind_is_made_and_refused_as_dataclasses_would(kind):
    ref = reference(kind)
    args = required(kind)
    assert outcome(kind, **args) == outcome(ref, **args)
    assert isinstance(outcome(kind, **args), dict)
    assert outcome(kind, 1, **args) == outcome(ref, 1, **args)  # positional: refused
    assert outcome(kind, *args.values()) == outcome(ref, *args.values())
    assert outcome(kind, bogus=1, **args) == outcome(ref, bogus=1, **args)  # unknown
    refused = outcome(kind, name="a.b", **args)  # __post_init__ refuses
    assert refused == outcome(ref, name="a.b", **args) and refused[0] is SpecError
    assert outcome(kind, name="x", inputs=("input",), **args) == outcome(ref, name="x", inputs=("input",), **args)
    for missing in (a for a in args if a not in VALID.get(kind.__name__, {})):  # each required one left out
        rest = {k: v for k, v in args.items() if k != missing}
        assert outcome(kind, **rest) == outcome(ref, **rest)
        assert "missing 1 required keyword-only argument" in outcome(kind, **rest)[1]
    for f in fields(kind):  # a wrong type for each argument, as __post_init__ judges it
        if f.name not in ("name", "inputs"):
            wrong = {**args, f.name: object()}
            assert outcome(kind, **wrong) == outcome(ref, **wrong)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_kind_is_immutable_and_compares_by_value(kind):
    ref = reference(kind)
    layer, twin = kind(**required(kind)), ref(**required(kind))
    for name in [f.name for f in fields(kind)] + ["not_a_field"]:
        for target in (layer, twin):
            with pytest.raises(FrozenInstanceError) as set_error:
                setattr(target, name, 1)
            assert str(set_error.value) == f"cannot assign to field {name!r}"
            with pytest.raises(FrozenInstanceError) as del_error:
                delattr(target, name)
            assert str(del_error.value) == f"cannot delete field {name!r}"
    again = kind(**required(kind))
    assert layer == again and hash(layer) == hash(again) and layer is not again
    assert layer != twin  # another class
    renamed = dataclasses.replace(layer, name="other")
    assert type(renamed) is kind and renamed.name == "other" and renamed != layer
    assert {f.name: getattr(renamed, f.name) for f in fields(kind) if f.name != "name"} == \
        {f.name: getattr(layer, f.name) for f in fields(kind) if f.name != "name"}
    shown = ", ".join(f"{f.name}={getattr(layer, f.name)!r}" for f in fields(kind))
    assert repr(layer) == f"{kind.__qualname__}({shown})"
    assert pickle.loads(pickle.dumps(layer)) == layer
    assert dataclasses.astuple(layer) == tuple(getattr(layer, f.name) for f in fields(kind))


def test_a_users_frozen_dataclass_subclasses_work_as_before():
    @dataclass(frozen=True, kw_only=True)
    class Scale(Layer):
        """A user's kind on `Layer`."""
        factor: int = 2

        def output_shape(self, x):
            return x

    @dataclass(frozen=True, kw_only=True)
    class WideConv(Conv2d):
        """A user's kind on a built-in one."""
        widen: int = 1

    scale = Scale(name="s", factor=3)
    assert (scale.name, scale.factor) == ("s", 3) and scale == Scale(name="s", factor=3)
    assert repr(scale) == "test_a_users_frozen_dataclass_subclasses_work_as_before.<locals>.Scale(name='s', inputs=None, factor=3)"
    with pytest.raises(FrozenInstanceError):
        scale.factor = 4
    with pytest.raises(FrozenInstanceError):
        scale.name = "t"
    with pytest.raises(SpecError):  # Layer's __post_init__ still checks the name
        Scale(name="a.b")
    wide = WideConv(out_channels=4, kernel_size=3, widen=2)
    assert (wide.kernel_size, wide.widen) == ((3, 3), 2)
    assert [f.name for f in fields(WideConv)] == [f.name for f in fields(Conv2d)] + ["widen"]
    with pytest.raises(FrozenInstanceError):
        wide.stride = 2
    with pytest.raises(FrozenInstanceError):
        del wide.widen
    with pytest.raises(TypeError, match="positional"):
        WideConv(4, 3)
    assert dataclasses.replace(wide, widen=3).widen == 3
    assert register_layer(replace=True)(WideConv) is WideConv


def test_a_non_frozen_dataclass_on_a_kind_is_refused_as_before():
    for base in (Layer, Conv2d):
        with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):
            dataclass(type("Loose", (base,), {"__annotations__": {"extra": int}, "extra": 0}))


def test_a_plain_subclass_keeps_its_own_attributes_and_the_kinds_fields_frozen():
    class Named(ReLU):
        pass

    layer = Named(inplace=True)
    layer.note = "mine"  # not a field of ReLU, not ReLU itself: allowed, as dataclasses allows it
    assert layer.note == "mine"
    del layer.note
    with pytest.raises(FrozenInstanceError):
        layer.inplace = False
    assert layer.inplace is True


def test_super_init_and_signature_see_the_fields():
    class Logged(Conv2d):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    layer = Logged(out_channels=2, kernel_size=1)
    assert layer.kernel_size == (1, 1)
    assert inspect.signature(Conv2d).parameters["out_channels"].default is inspect.Parameter.empty
    assert inspect.signature(Conv2d).parameters["stride"].default == 1
    assert "kwargs" in inspect.signature(Logged).parameters  # an __init__ of its own is its own signature


def test_layer_kind_makes_what_dataclasses_makes_for_every_sort_of_field():
    """Default factories, fields left out of ``__init__``, no docstring; a positional field is refused
    (every kind's arguments are keyword-only)."""
    from dataclasses import field

    from alexcost.layers.base import layer_kind

    def make(decorate, positional=False):
        class Odd(Layer):
            sizes: list = field(default_factory=list)
            count: int = field(default=0, init=False)
            table: dict = field(default_factory=dict, init=False)
            first: int = field(kw_only=not positional)

            def __post_init__(self):
                super().__post_init__()
                if self.first < 0:
                    raise SpecError(f"first must be >= 0, got {self.first}")

        return decorate(Odd)

    ours = make(layer_kind)
    ref = make(dataclass(frozen=True, kw_only=True, repr=False, eq=False))
    assert ours.__doc__ == ref.__doc__ and ours.__doc__.startswith("Odd(*, name:")
    assert inspect.signature(ours) == inspect.signature(ref)
    assert ours.__match_args__ == ref.__match_args__ == ()
    for args, kwargs in [((), {"first": 1}), ((), {"first": 1, "sizes": [2]}), ((), {"first": -1}), ((), {}),
                         ((1,), {}), ((), {"first": 1, "count": 3}), ((), {"first": 1, "table": {}}),
                         ((), {"first": 1, "name": "a.b"}), ((), {"bogus": 1})]:
        assert outcome(ours, *args, **kwargs) == outcome(ref, *args, **kwargs), (args, kwargs)
    one, two = ours(first=1), ours(first=1)
    assert one.sizes == [] and one.sizes is not two.sizes and one.table == {} and one.count == 0
    with pytest.raises(FrozenInstanceError):
        one.sizes = [1]
    with pytest.raises(TypeError, match="keyword-only"):
        make(layer_kind, positional=True)
