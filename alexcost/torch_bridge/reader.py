"""Reading an fx graph as alexcost layers: a small interpreter over shapes, never over data.

Every fx value is one of: an `Activation` (a per-sample shape and the layer output it
comes from), an `Attribute` (a parameter, buffer or constant tensor of the module), the
batch size `BATCH` (a marker: alexcost never fixes it), or a plain Python value (sizes,
flags, tuples). ``x.size()`` gives ``(BATCH, *shape)``; arithmetic on plain values is
evaluated; a call on tensors becomes one layer (see `alexcost.torch_bridge.ops`) or is refused.

A write in place (``y.relu_()``, ``y += z``, ``F.relu(y, inplace=True)``), whether or not its result
is used, makes later readers of ``y``, and of every view of the same storage, read the written
tensor, as torch mutates it (see `Reader._wrote`).

Parameters count once, where first read: a leaf module's own weight and bias, the weight
and bias passed to a functional layer (``F.conv2d``, ``F.conv3d``, ``F.linear``, the norms), and a
parameter used as an operand of ``+`` or ``*`` (a `Parameter` layer). Parameters the forward
pass never reads are ``unused``: torch counts them, no layer holds them. Imports torch.
"""

from __future__ import annotations

import dataclasses
import operator
import unicodedata
from collections import Counter
from dataclasses import dataclass
from types import FunctionType, SimpleNamespace
from typing import NamedTuple

from ..layers import arguments as check
from ..layers import strides as st
from ..errors import SpecError, format_shape
from ..engine.modes import StepModes
from .ops import FUNCTIONS, METHODS, PURE, module_call
from .elementwise import index_arithmetic, indexes_only, leaf_of_constants
from .trace import MODE, REGION, kind_of, where_module
from ..layers import BUILTIN_KINDS, Buffer, Constant, Folded, Identity, Parameter, ParameterShape, PositionBias
from .custom import custom_reads, read_function
from .attention import MODULE_CALLS, Token
from .moves import Selections
from . import fold, per_pass, third_party
from ..layers.base import Passthrough, need_sample_dimension
from ..layers import Add, Contiguous, Div, Expand, Flatten, Mul, Permute, Reshape, Sub, Transpose, View


class _Batch:
    """The batch size: known to torch at run time, never to alexcost."""

    def __repr__(self) -> str:
        return "N"


BATCH = _Batch()


class Activation:
    """A traced activation: ``src`` is ``(layer index or -1, output index or None)``; ``shape`` per sample."""

    __slots__ = ("src", "shape")

    def __init__(self, src, shape):
        self.src, self.shape = src, shape


class Attribute:
    """A tensor the module holds: ``kind`` is "parameter", "buffer" or "constant"; ``act`` is its
    `Parameter` layer's output once a merge has read it; ``base``, for a view of a parameter
    (`alexcost.torch_bridge.params`), the parameter whose elements it is (counted once); ``gathered``: the
    tensor is that parameter's slices along ``dim`` gathered by a fixed index (a `PositionBias`), not a view
    of it: "buffer" where the index is a buffer of the module (or its view), "computed" where torch computes it
    in the forward pass (fx keeps it as a constant)."""

    __slots__ = ("path", "tensor", "kind", "node", "act", "base", "gathered", "dim")

    def __init__(self, path, tensor, kind, node, base=None, gathered=False, dim=0):
        self.path, self.tensor, self.kind, self.node, self.act, self.base = path, tensor, kind, node, None, base
        self.gathered, self.dim = gathered, dim


@dataclass(frozen=True)
class Reading:
    """The layers read from a trace, with what only the module knows (see `ImportedModule`)."""

    layers: tuple
    paths: tuple[str, ...]
    first_use: tuple[int, ...]
    weight_params: tuple[int, ...]
    bias_params: tuple[int, ...]
    frozen_params: tuple[int, ...]
    fx_nodes: tuple[str, ...]
    unused: dict
    unused_frozen: int
    eval_branches: tuple[str, ...] = ()
    modes: StepModes = StepModes()
    folds: dict = dataclasses.field(default_factory=dict)
    fvcore_calls: tuple = ()


def _contains(value, test) -> bool:
    """Does ``value``, or anything in its lists, tuples, dicts and slices, pass ``test``?"""
    if test(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains(v, test) for v in value)
    if isinstance(value, dict):
        return any(_contains(v, test) for v in value.values())
    if isinstance(value, slice):
        return any(_contains(v, test) for v in (value.start, value.stop, value.step))
    return False


def _tensors_in(value) -> bool:
    return _contains(value, lambda v: isinstance(v, (Activation, Attribute)))


def _batch_in(value) -> bool:
    return _contains(value, lambda v: v is BATCH or isinstance(v, fold.FoldedBatch))


def _clean(text: str) -> str:
    """A layer name: no dots, no control characters, at most 200 characters."""
    text = text.replace(".", "_")
    if not text.isprintable():
        text = "".join("_" if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    return text if len(text) <= 190 else text[-190:]


class Reader:
    """Walks an fx graph once, node by node; see the module docstring."""

    BATCH = BATCH

    def __init__(self, root, traced, input_shape):
        self.root, self.modules, self.graph = root, traced.modules, traced.graph
        self.custom = custom_reads()[1]
        self.branches, self.train_differs, self.batch_stats = traced.branches, traced.train_differs, traced.batch_stats
        self.constants = traced.constants
        self.held_constants: dict = {}  # id(tensor) -> its Attribute, for fx's constants
        self.made: dict = {}  # id(tensor) -> tensor: what the forward pass makes from constants (`made_constant`)
        self._index_uses: dict = {}  # node -> does its value serve only to index (`indexes_only`)
        self._held_storages: set | None = None
        self.input_shape = input_shape
        self.layers, self.sources, self.paths, self.fx_nodes, self.once = [], [], [], [], []
        self.module_ids, self.owners, self.labels = [], [], []
        self.weight, self.bias, self.frozen = [], [], []
        self.regions: list = []  # per layer: the mode a training step runs it in (trace.REGION), or None
        self.cold: list = []     # per layer: (weight frozen, bias frozen), as its tensors' requires_grad say
        self.casts: list[str] = []  # the dtypes read as float32 (x.dtype, x.float() as the tensor itself), by node
        self.xs, self.ys = [], []
        self.needs: list[bool] = []  # per layer: does its output require grad (in a training step)?
        self.seen: set[int] = set()
        self._placeholders = 0
        self.links: dict = {}     # value -> (the value it is the same tensor as, or a view or slice of; how)
        self.children: dict = {}  # value -> the values linked to it
        self.stale: dict = {}     # value -> what it holds since a write in place: see `_wrote`
        self.late_views: set = set()  # views made before their base required grad, rebuilt since it does
        self._plans: dict = {}    # batch -> the storages and strides of the outputs of the layers read
        self.folds: dict = {}     # src -> k: an output whose first dim is the batch times k (`fold`)
        self.fvcore_calls: list = []  # (layer, einsum equation or None): see `ImportedModule`
        self.untrainable: list[str] = []  # why a training step is not counted (a call on folded values, ...)

    # -- what handlers use ------------------------------------------------------------------
    def module(self, path: str):
        m = self.modules.get(path)
        return m if m is not None else self.root.get_submodule(path)

    def owner(self, node) -> tuple[str, str]:
        """The path and class name of the module whose forward made the call."""
        stack = node.meta.get("nn_module_stack")
        if stack:
            path, cls = next(reversed(stack.values()))
            return path, getattr(cls, "__name__", str(cls))
        return "", type(self.root).__name__

    @staticmethod
    def function_name(node) -> str:
        if node.op == "call_method":
            return node.target
        target = node.target
        return getattr(target, "__name__", None) or type(target).__name__

    def where(self, node, x=None, arity=1) -> str:
        if node.op == "call_module":
            text = where_module(node.target, self.module(node.target))
        elif node.op == "get_attr":
            text = f"parameter {node.target!r}"
        else:
            path, kind = self.owner(node)
            what = "method" if node.op == "call_method" else "function"
            text = f"{what} {self.function_name(node)!r} in module {path or '(root)'!r} ({kind})"
        if x is not None:
            text += f" on input {format_shape(x)}" if arity == 1 else \
                f" on inputs {', '.join(format_shape(s) for s in x)}"
        return f"{text} (fx node {node.name!r})"

    def refuse(self, node, message: str):
        raise SpecError(message, where=self.where(node))

    def show(self, value) -> str:
        if isinstance(value, Activation):
            if value.shape.__class__ is ParameterShape:
                return f"a tensor of shape {format_shape(value.shape)} computed from parameters or buffers alone"
            k = self.folds.get(value.src, 1)
            return f"a tensor of shape {format_shape(('N', *value.shape))}" if k == 1 else \
                f"a tensor of shape {format_shape((f'N*{k}', *value.shape[1:]))}"
        if isinstance(value, Attribute):
            return f"the {value.kind} {value.path!r}"
        if value is BATCH:
            return "the batch size"
        return check.shown(value)

    @staticmethod
    def is_tensor(value) -> bool:
        return isinstance(value, (Activation, Attribute))

    @staticmethod
    def is_activation(value) -> bool:
        return isinstance(value, Activation)

    @staticmethod
    def is_attribute(value) -> bool:
        return isinstance(value, Attribute)

    def tensor(self, value, node, kind=None) -> Activation:
        """An activation argument of a layer of ``kind``; a parameter or buffer, or a tensor computed from
        them alone, only where `per_pass.reads` says the kind reads one (it then runs once per pass)."""
        if isinstance(value, Activation):
            if value.shape.__class__ is ParameterShape and not per_pass.reads(kind):
                self.refuse(node, per_pass.refusal(self.show(value), kind))
            return value
        if isinstance(value, Attribute):
            if not per_pass.reads(kind):
                self.refuse(node, per_pass.refusal(self.show(value), kind))
            return self.operand(value, node)
        if isinstance(value, Token):  # a view of it for each sample, the batch's stride 0
            return self.emit(node, Expand(sizes=(-1,) * (value.value.tensor.dim() - 1), batch=True),
                             [self.operand(value.value, node)], label="expand")
        self.refuse(node, f"expects a tensor, got {self.show(value)}")

    def operand(self, value, node) -> Activation:
        """An operand of a merge: an activation, or a parameter, buffer or constant (as a `Parameter`,
        `Buffer` or `Constant` layer, once)."""
        if isinstance(value, Activation):
            return value
        if value.kind != "parameter" and not value.gathered and value.tensor.dtype != next(
                (p.dtype for p in self.root.parameters()), value.tensor.dtype if value.kind == "buffer" or
                value.tensor.is_floating_point() else None):  # (a constant of integers: never)
            self.refuse(node, f"reads {self.show(value)} of {value.tensor.dtype} as an operand; alexcost reads a "
                              f"{value.kind} of the module's parameters' dtype only")
        if value.kind == "constant" and not value.gathered and id(value.tensor) not in self.made and \
                not self._a_view_of_a_held_tensor(value.tensor):
            self.refuse(node, f"reads {self.show(value)}, which fx computed while tracing (it is not a view of a "
                              f"tensor the module holds): torch computes it in every forward pass, and alexcost "
                              f"cannot count what fx did not record")
        if value.act is None:
            held = {"parameter": Parameter, "buffer": Buffer, "constant": Constant}[value.kind]
            layer = self.build(value.node, PositionBias, {"table": tuple(value.base.shape), "shape": tuple(
                value.tensor.shape), "dim": value.dim, "index_buffer": value.gathered == "buffer"}) if value.gathered \
                else self.build(value.node, held, {"shape": tuple(value.tensor.shape)})
            module, _, attr = value.path.rpartition(".")
            weights = (("weight", value.tensor if value.base is None else value.base),) if value.kind == "parameter" \
                else ()
            act = self._add(value.node, layer, (), ParameterShape(layer.shape), f"{module}:{attr}", None, weights,
                            layer.shape, module, attr)
            value.act = Activation(act.src, ParameterShape(layer.shape))
        return value.act

    def made_constant(self, tensor, node) -> Attribute:
        """A tensor the forward pass makes from constants alone (``torch.zeros``, a conversion of one), read as
        a constant of the module (a `Constant` where an operand)."""
        self.made[id(tensor)] = tensor  # (kept: the id stays the tensor's)
        return Attribute(node.name, tensor, "constant", node)

    def _a_view_of_a_held_tensor(self, tensor) -> bool:
        """Is ``tensor`` (a constant fx stowed away) a view of a tensor the module holds (a parameter, a buffer,
        a plain tensor attribute: Swin's mask unsqueezed, EVA's rotary table chunked)? Else fx computed it."""
        import torch

        if self._held_storages is None:
            tensors = [t for m in self.root.modules() for t in (*m._parameters.values(), *m._buffers.values(),
                                                                *vars(m).values()) if isinstance(t, torch.Tensor)]
            self._held_storages = {t.untyped_storage()._cdata for t in tensors}
        return tensor.untyped_storage()._cdata in self._held_storages

    def constant(self, value, node, name: str, batch_ok: bool = False):
        """A plain argument: no tensor, and no batch size unless ``batch_ok``."""
        if _tensors_in(value):
            self.refuse(node, f"its argument {name!r} is {self.show(value)}; alexcost reads it only as a "
                              f"fixed value")
        if not batch_ok and _batch_in(value):
            self.refuse(node, f"its argument {name!r} depends on the batch size; alexcost analyses each "
                              f"sample on its own")
        return value

    def sizes(self, value, node) -> tuple:
        if isinstance(value, Activation):
            if value.shape.__class__ is ParameterShape:  # computed once per pass: its whole shape, no batch
                return tuple(value.shape)
            k = self.folds.get(value.src, 1)
            return (BATCH, *value.shape) if k == 1 else (fold.FoldedBatch(k), *value.shape[1:])
        if isinstance(value, Attribute):
            return tuple(value.tensor.shape)
        self.refuse(node, f"asks the size of {self.show(value)}, which is not a tensor")

    def pure(self, node, args, kwargs):
        """Evaluate a call on plain values (sizes): Python's operators, ``getattr``."""
        if node.op == "call_method":
            self_, *rest = args
            if _tensors_in(self_):
                self.refuse(node, f"alexcost has no layer kind for the tensor method {node.target}()")
            fn, args = getattr(self_, node.target, None), rest
            if fn is None:
                self.refuse(node, f"{self.show(self_)} has no method {node.target}()")
        else:
            fn = node.target
        head, tail = (args[:1], args[1:]) if fn is operator.getitem else ((), args)
        if any(isinstance(v, (Activation, Attribute)) for v in head) and fn is operator.getitem:
            self.refuse(node, f"indexes or slices {self.show(args[0])} (x[...]); alexcost has no layer kind for it")
        if _tensors_in((tail, kwargs)):
            self.refuse(node, f"alexcost has no layer kind for {self.function_name(node)} on a tensor "
                              f"({', '.join(self.show(v) for v in args if _tensors_in(v))})")
        if _batch_in((tail, kwargs)):
            times = fold.size_arithmetic(self, fn, args, kwargs)
            if times is not None:
                return times
            self.refuse(node, "computes with the batch size, which alexcost does not fix; keep the batch "
                              "dimension as it is")
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - torch would fail the same way on these sizes
            self.refuse(node, f"fails on these sizes: {type(err).__name__}: {err}")

    def build(self, node, kind, args: dict):
        """``kind(**args)``, its SpecError located at the node."""
        try:
            return kind(**args)
        except SpecError as err:
            raise err.at(self.where(node)) from None
        except TypeError as err:
            self.refuse(node, f"cannot be read as {kind.__name__}: {err}")

    def emit(self, node, layer, inputs, params=(), module=None, label=None):
        """Add ``layer`` reading ``inputs`` (activations); its value for the node. A layer that
        writes in place into its first input makes later readers of that tensor (and of its
        views) read the result (`_wrote`)."""
        kind = type(layer)
        shapes = [v.shape for v in inputs]
        once = bool(shapes) and all(s.__class__ is ParameterShape for s in shapes) and \
            not layer.per_sample()  # see `Network.once`
        if once and issubclass(kind, (Add, Sub, Mul, Div)) and len({len(s) for s in shapes}) > 1:  # as torch
            # broadcasts whole tensors
            rank = max(len(s) for s in shapes)  # from the right: the shorter viewed with leading ones
            inputs = [v if len(v.shape) == rank else self.emit(node, View(shape=(1,) * (rank - len(v.shape)) + tuple(
                v.shape)), [v], label="view") for v in inputs]
            shapes = [v.shape for v in inputs]
        if once:
            if _link(layer) == "same" and type(self.layers[inputs[0].src[0]]).arity == 0:
                self.refuse(node, "writes in place into a parameter or buffer of the module; alexcost reads writes "
                                  "in place into activations, or into what was computed from parameters alone")
            shapes = [tuple(s) for s in shapes]
        x = shapes[0] if kind.arity == 1 else tuple(shapes)
        try:
            y = layer.output_shape(x)
            if not once and not kind.multi_output:
                need_sample_dimension(layer, y)
        except SpecError as err:
            raise err.at(self.where(node, x, kind.arity)) from None
        if module is not None:
            path, owner, label = node.target, None, None
        else:
            owner, _ = self.owner(node)
            label = label or IN_PLACE.get(self.function_name(node), self.function_name(node))
            path = f"{owner}:{label}"
        act = self._add(node, layer, tuple(v.src for v in inputs), x, path, module, params, y, owner, label)
        self.once[-1] = once
        out = tuple(Activation((act.src[0], k), ParameterShape(s) if once else s) for k, s in enumerate(y)) \
            if kind.multi_output \
            else Activation(act.src, ParameterShape(y) if once else y)
        if isinstance(layer, View):
            self._check_view(node)
        if once and _link(layer) == "same":  # no view of such a tensor is read: the tensor itself holds the result
            self.stale[inputs[0].src] = out
        if inputs and not isinstance(inputs[0].shape, ParameterShape):
            how = _link(layer)
            for value in (out if kind.multi_output else (out,)) if how else ():
                self.links[value.src] = (inputs[0].src, how)
                self.children.setdefault(inputs[0].src, []).append(value.src)
            if how == "same":
                if inputs[0].src in self.late_views:
                    self.refuse(node, "a leaf Variable that requires grad is being used in an in-place operation. "
                                      "(It writes in place into a view made while its base required no grad, "
                                      "which a write in place has made require grad since.)")
                self._check_overlap(node, inputs)
                self._wrote(node, inputs[0], out)
        return out

    def _check_overlap(self, node, inputs) -> None:
        """Writing in place into a tensor that another operand views differently (``y += y.transpose(2, 3)``)
        is refused by torch: the two overlap in part. The same tensor again (``y += y``) is not."""
        target = inputs[0].src
        family = set(self._lineage(target)[1])
        for other in inputs[1:]:
            if other.src == target or other.src not in family or isinstance(other.shape, ParameterShape):
                continue
            for batch in (1, 2):
                mine, theirs = (self._placed(node, batch, src) for src in (target, other.src))
                if mine[0] == theirs[0] and (mine[1] != theirs[1] or inputs[0].shape != other.shape):
                    self.refuse(node, "unsupported operation: some elements of the input tensor and the written-to "
                                      "tensor refer to a single memory location. Please clone() the tensor before "
                                      "performing the operation. (It writes in place into a tensor that another of "
                                      "its operands views with other strides.)")

    def _region(self, node, layer):
        """The mode a training step runs ``layer`` in (`alexcost.torch_bridge.trace.REGION`): None for
        torch's defaults (and for a parameter, which no mode makes); a change alexcost does not model
        (autocast without its weight cache or with another mode, reentrant or customised
        checkpointing, saved-tensor hooks) is refused."""
        meta = getattr(node, "meta", {})
        mode = meta.get(MODE)
        if not mode or isinstance(layer, Parameter):
            return None
        region = meta.get(REGION)
        if region is None:
            self.refuse(node, f"{mode}; alexcost models grad mode off (torch.no_grad(), set_grad_enabled(False), "
                              f"inference_mode()), non-reentrant torch.utils.checkpoint with its defaults (one call, "
                              f"not nested) and torch.autocast alone (with its weight cache, not inside another mode), "
                              f"and does not read this one")
        return region

    # -- writes in place ------------------------------------------------------------------------
    def _wrote(self, node, target: Activation, result) -> None:
        """``result`` was written in place into ``target``'s storage: from now on every value that
        is the same tensor as ``target`` holds ``result``, and every view of it (its base, the base's
        other views) is torch's view of the written storage, with the history autograd gives it.
        Each value linked to ``target`` (`links`) is marked `stale`, with how to rebuild it; a
        value is rebuilt when it is next read (`fresh`). A slice (Chunk, Split) is where this
        stops: torch refuses to give such a view a new history."""
        above, family = self._lineage(target.src)
        if any(self.links[v][1] == "view" for v in (*above, *family) if v in self.links):
            self._keep_real_views(node, (*above, *family))
            above, family = self._lineage(target.src)
        below = {parent: child for child, parent in zip(above, above[1:])}
        for value in family:
            if value == result.src:
                continue
            if value == target.src:
                self.stale[value] = result
            elif value in below:  # an ancestor: undo the link towards target from its new value
                self.stale[value] = _Rebuild(node, "up", below[value])
            else:  # redo its own link from its parent's new value
                self.stale[value] = _Rebuild(node, "down", self.links[value][0])

    def _lineage(self, src) -> tuple[list, list]:
        """``src`` and its ancestors up to the first that is no view (or a slice) of another; and that
        ancestor with every value linked below it."""
        above = [src]
        while above[-1] in self.links and self.links[above[-1]][1] != "slice":
            above.append(self.links[above[-1]][0])
        family, todo = [], [above[-1]]
        while todo:
            value = todo.pop()
            family.append(value)
            todo.extend(self.children.get(value, ()))
        return above, family

    def _keep_real_views(self, node, values) -> None:
        """Drop the links of values that are copies, not views (a reshape of a tensor no view can
        give): what torch decides by strides, as the storage plan follows them."""
        for value in values:
            link = self.links.get(value)
            if link is None or link[1] != "view":
                continue
            shared = {self._placed(node, batch, value)[0] == self._placed(node, batch, link[0])[0]
                      for batch in (1, 2)}
            if len(shared) > 1:
                self.refuse(node, f"writes in place into a tensor that is a view of another for one sample and "
                                  f"a copy for several; alexcost cannot follow the write")
            if shared == {False}:
                del self.links[value]
                self.children[link[0]].remove(value)

    def _plan(self, node, batch: int):
        """Each layer read so far: per output, its storage and strides (`alexcost.engine.storage.trace`),
        traced on from the last plan of the layers before (the walk only appends layers)."""
        from ..engine.storage import trace

        known = self._plans.get(batch, ())
        if len(known) < len(self.layers):
            read = SimpleNamespace(input_shape=self.input_shape, layers=self.layers, input_shapes=self.xs,
                                   output_shapes=self.ys, sources=self.sources, once=self.once)
            try:
                known = self._plans[batch] = trace(read, batch, known)
            except SpecError as err:
                raise err.at(self.where(node)) from None
        return known

    def _placed(self, node, batch: int, src) -> tuple:
        """Value ``src``'s storage and batched strides, in `_plan`."""
        i, k = src
        if i == -1:
            return -1, st.contiguous((batch, *self.input_shape))
        return self._plan(node, batch)[i][k or 0]

    def _check_view(self, node) -> None:
        """``x.view(...)`` on a tensor whose strides no view can follow fails in torch: refused here."""
        for batch in (1, 2):
            self._plan(node, batch)

    def fresh(self, value):
        """``value`` (an argument, or lists and dicts of them) as it is now, after writes in place."""
        if isinstance(value, Activation):
            return self._current(value) if value.src in self.stale else value
        if isinstance(value, (list, tuple)):
            return type(value)(self.fresh(v) for v in value)
        if isinstance(value, dict):
            return {k: self.fresh(v) for k, v in value.items()}
        return value

    def _current(self, value: Activation) -> Activation:
        entry = self.stale.get(value.src)
        if entry is None:
            return value
        if isinstance(entry, Activation):
            return self._current(entry) if entry.src in self.stale and entry.src != value.src else entry
        node, way, other = entry.node, entry.way, entry.other
        if way == "up":  # value is the parent of ``other``: undo other's link
            child = self._current(self._value(other))
            rebuilt = self._undo(node, other, child)
        else:  # redo value's own link from its parent's new value
            parent = self._current(self._value(other))
            rebuilt = self._redo(node, value.src, parent)
            if rebuilt is not parent and self._requires_grad(parent.src) and not self._requires_grad(other) \
                    and not isinstance(self.layers[value.src[0]], Contiguous):
                self.late_views.add(rebuilt.src)  # torch refuses to write into a view in place (the input
                # itself, which .contiguous() gives, is no view)
        self.stale[value.src] = rebuilt
        return rebuilt

    def _requires_grad(self, src) -> bool:
        return src[0] != -1 and self.needs[src[0]]

    def _value(self, src) -> Activation:
        """The value ``src`` as the layer that made it gave it."""
        i, k = src
        shape = self.input_shape if i == -1 else self.ys[i] if k is None else self.ys[i][k]
        return Activation(src, shape)

    def _undo(self, node, src, value: Activation) -> Activation:
        """The base of ``value`` (the new value of ``src``): the inverse view of the link ``src`` has."""
        how = self.links[src][1]
        if how == "same":
            return value
        i, _ = src
        layer, x, y = self.layers[i], self.xs[i], self.ys[i]
        if isinstance(layer, (Passthrough, Contiguous)) or (isinstance(layer, (Flatten, Reshape)) and x == y):
            return value
        if isinstance(layer, Transpose):
            inverse = Transpose(dim0=layer.dim0, dim1=layer.dim1)
        elif isinstance(layer, Permute):
            dims = [d % (len(x) + 1) for d in layer.dims]
            inverse = Permute(dims=tuple(dims.index(d) for d in range(len(dims))))
        elif isinstance(layer, (Flatten, Reshape)):
            inverse = View(shape=x)
        else:
            self.refuse(node, f"writes in place into a view made by {type(layer).__name__}, whose base is read "
                              f"again afterwards; alexcost cannot follow the write into the base")
        return self.emit(node, inverse, [value], label=type(inverse).__name__.lower())

    def _redo(self, node, src, parent: Activation) -> Activation:
        """``src``'s link (a view of its parent) made again from the parent's new value."""
        how = self.links[src][1]
        if how == "same":
            return parent
        layer = self.layers[src[0]]
        if how == "slice":
            self.refuse(node, f"writes in place into a tensor that a {type(layer).__name__} sliced earlier, and a "
                              f"slice is read afterwards: torch refuses to give such a view (the output of a "
                              f"function that returns several views) a new history when it requires grad; "
                              f"alexcost does not follow it")
        return self.emit(node, dataclasses.replace(layer, name=None, inputs=None), [parent],
                         label=type(layer).__name__.lower())

    # -- bookkeeping ------------------------------------------------------------------------------
    def _add(self, node, layer, sources, x, path, module, params, y, owner, label) -> Activation:
        index = len(self.layers)
        self.once.append(False)  # (`emit` marks a layer that reads only tensors computed once per pass)
        region = self._region(node, layer)
        new, cold = self._count(node, layer, x, params)
        self.regions.append(region)
        self.layers.append(layer)
        self.sources.append(sources)
        self.paths.append(path)
        self.fx_nodes.append(node.name)
        self.module_ids.append(None if module is None else id(module))
        self.owners.append(owner)
        self.labels.append(label)
        self.weight.append(new["weight"])
        self.bias.append(new["bias"])
        self.frozen.append(cold)
        self.xs.append(x)
        self.ys.append(y)
        tensors = [value.tensor if isinstance(value, Attribute) else value for _, value in params]
        self.needs.append((region is None or region[0] == "checkpoint") and (
            any(self.needs[j] for j, _ in sources if j != -1) or any(t is not None and t.requires_grad for t in tensors)))
        roles = dict(zip((role for role, _ in params), tensors))
        self.cold.append(tuple(roles.get(r) is not None and not roles[r].requires_grad for r in ("weight", "bias")))
        return Activation((index, None), y)

    def _count(self, node, layer, x, params) -> tuple[dict, int]:
        """The layer's parameters not counted before, by role, and how many of them are frozen;
        refused where a tensor's size is not what the kind's formula gives."""
        formula = {"weight": layer.weight_params(x), "bias": layer.bias_params(x)}
        given: dict = {}
        for role, value in params:  # a role may name several tensors (attention's projections)
            tensor = value.tensor if isinstance(value, Attribute) else value
            if isinstance(value, Attribute) and value.base is not None:
                tensor = value.base  # a view of a parameter: the parameter's elements, counted once
            if tensor is not None:
                given.setdefault(role, []).append(tensor)
        new, cold = {"weight": 0, "bias": 0}, 0
        for role, expected in formula.items():
            tensors = given.get(role, ())
            if not tensors:
                if expected:
                    raise SpecError(f"has no {role}, but {layer.label()} with these arguments has {expected} "
                                    f"{role} parameters", where=self.where(node, x, type(layer).arity))
                continue
            if sum(t.numel() for t in tensors) != expected:
                raise SpecError(f"its {role} has {sum(t.numel() for t in tensors)} elements, but {layer.label()} "
                                f"with these arguments has {expected}", where=self.where(node, x, type(layer).arity))
            for tensor in tensors:
                if id(tensor) not in self.seen:
                    self.seen.add(id(tensor))
                    new[role] += tensor.numel()
                    cold += 0 if tensor.requires_grad else tensor.numel()
        return new, cold

    # -- the walk ---------------------------------------------------------------------------------------
    def run(self) -> Reading:
        from torch.fx.node import map_arg

        if kind_of(type(self.root)) is not None:  # a bare leaf module: one layer, path ""
            calls = [n.name for n in self.graph.nodes if n.op.startswith("call_")]
            root = _Stand(calls[0] if len(calls) == 1 else "", "call_module", "")
            return self._finish(self._module_call(root, (Activation((-1, None), self.input_shape),), {}))
        env = {}
        out = None
        for node in self.graph.nodes:
            op = node.op
            if op == "placeholder":
                value = self._placeholder(node)
            elif op == "get_attr":
                value = self._attribute(node)
            elif op == "output":
                out = map_arg(node.args[0], env.__getitem__)
                if self.stale:
                    self._check_folds_written(node, (out,), {})
                out = self.fresh(out)
                if fold.folded_in(self, out, {}):
                    fold.call(self, node, (out,), {}, None, fold.folded_in(self, out, {}))
                break
            else:
                args = map_arg(node.args, env.__getitem__)
                kwargs = dict(map_arg(node.kwargs, env.__getitem__))
                if self.stale:
                    self._check_folds_written(node, args, kwargs)
                    args, kwargs = self.fresh(args), self.fresh(kwargs)
                ks = fold.folded_in(self, args, kwargs) if self.folds else None
                value = fold.call(self, node, args, kwargs, self._call, ks) if ks else \
                    self._call(node, args, kwargs)
            env[node] = value
        return self._finish(out)

    def _call(self, node, args, kwargs):
        """A call_module, call_function or call_method node's value."""
        if node.op == "call_module":
            return self._module_call(node, args, kwargs)
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, (Activation, Attribute))]
        if tensors and all(isinstance(v, Attribute) and v.kind == "constant" and id(v.tensor) in self.made
                           for v in tensors) and indexes_only(node, self._index_uses):
            return index_arithmetic(self, node, args, kwargs, tensors)
        if node.op == "call_function":
            try:
                handler, custom = FUNCTIONS.get(node.target) or third_party.handler(node.target), \
                    self.custom.get(node.target)
            except TypeError:  # an unhashable callable: no kind
                handler = custom = None
            if custom is not None:  # a function a registered kind reads (register_layer(reads=...))
                return read_function(self, node, custom, args, kwargs)
            if handler is not None:
                return handler(self, node, args, kwargs)
            if any(node.target is op for op in PURE):
                return self.pure(node, args, kwargs)
            if isinstance(node.target, FunctionType) and not _tensors_in((args, kwargs)) and \
                    not _batch_in((args, kwargs)):  # a function fx keeps whole, of constants alone
                return leaf_of_constants(self, node, args, kwargs)
            self.refuse(node, f"alexcost has no layer kind for {self._qualified(node.target)}")
        handler = METHODS.get(node.target)
        if handler is not None and args and (self.is_tensor(args[0]) or isinstance(args[0], Selections)):
            return handler(self, node, args, kwargs)
        return self.pure(node, args, kwargs)

    def _check_folds_written(self, node, args, kwargs) -> None:
        """A folded value (`fold`) written in place since it was made: refused (not followed)."""
        for value in (*args, *kwargs.values()):
            for v in (value if isinstance(value, (list, tuple)) else (value,)):
                if isinstance(v, Activation) and v.src in self.stale and v.src in self.folds:
                    self.refuse(node, "reads a tensor whose batch is folded with windows or heads after a "
                                      "write in place into it or its base; alexcost does not follow it")

    @staticmethod
    def _qualified(target) -> str:
        module = (getattr(target, "__module__", None) or "").lstrip("_")  # _operator.matmul: operator.matmul
        name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
        return f"{module}.{name}" if module and module != "builtins" else name

    def _placeholder(self, node):
        self._placeholders += 1
        if self._placeholders == 1:
            return Activation((-1, None), self.input_shape)
        if node.args:
            return node.args[0]  # an argument fixed at its default (fx's concrete_args)
        self.refuse(node, "forward() takes more than one input; alexcost reads modules of one input tensor")

    def _attribute(self, node):
        import torch

        path = node.target
        if path in self.constants:
            value = self.constants[path]
        else:
            owner, _, name = path.rpartition(".")
            value = getattr(self.module(owner) if owner else self.root, name)
        if not isinstance(value, torch.Tensor):
            self.refuse(node, f"reads {type(value).__name__} {path!r}, which alexcost cannot read")
        owner, _, name = path.rpartition(".")
        holder = self.root if not owner else self.modules.get(owner)
        if holder is not None and holder._parameters.get(name) is value:
            kind = "parameter"
        elif holder is not None and holder._buffers.get(name) is value:
            kind = "buffer"
        else:  # a tensor fx keeps as a constant: one tensor, however many of its nodes read it
            return self.held_constants.setdefault(id(value), Attribute(path, value, "constant", node))
        return Attribute(path, value, kind, node)

    def _module_call(self, node, args, kwargs, rows: bool = False):
        """A leaf module's layer on its one tensor; ``rows``: on each row of a folded tensor (a `Folded` of the
        module's layer on one row, see `fold`)."""
        import torch.nn as nn

        module = self.module(node.target)
        kind = kind_of(type(module))
        if kind is None:
            cls = type(module)
            qualified = f"torch.nn.{cls.__name__}" if getattr(nn, cls.__name__, None) is cls else \
                f"{cls.__module__}.{cls.__qualname__}"
            known = ", ".join(sorted(k.__name__ for k in BUILTIN_KINDS if isinstance(getattr(nn, k.__name__, None), type)
                                     and issubclass(getattr(nn, k.__name__), nn.Module)))
            self.refuse(node, f"is not supported: alexcost has no layer kind for {qualified}; the torch.nn "
                              f"modules it reads are {known}")
        if kind in MODULE_CALLS:
            if rows:
                self.refuse(node, fold.ROWS_ONLY.format(k=self.folds[args[0].src]))
            return MODULE_CALLS[kind](self, node, kind, module, args, kwargs)
        values = [*args, *kwargs.values()]
        if len(values) != 1:
            self.refuse(node, f"is called with {len(values)} arguments; a {kind.__name__} takes one tensor")
        if not rows and kind in per_pass.ONE_SAMPLE and per_pass.computed(self, values[0]):
            return per_pass.batched(lambda r, n, a, k: self._module_call(n, a, k))(self, node, values, {})
        x = self.tensor(values[0], node, kind)
        layer, params = module_call(self, node, kind, module, type(x)(x.src, x.shape[1:]) if rows else x)
        if rows:
            layer = self.build(node, Folded, {"layer": layer})
        return self.emit(node, layer, [x], params=params, module=module)

    def attribute(self, tensor, path: str, node):
        """A leaf module's own parameter (None stays None), as an operand of its call."""
        return None if tensor is None else Attribute(path, tensor, "parameter", node)

    # -- the result -----------------------------------------------------------------------------------------
    def _finish(self, out) -> Reading:
        if isinstance(out, (tuple, list, dict)):
            if len(out) != 1:  # one value in a container (a segmentation model's {"out": ...}) is the output
                raise SpecError(f"forward() returns {type(out).__name__} of {len(out)} values; alexcost reads "
                                f"modules with one output tensor", where=where_module("", self.root))
            out = next(iter(out.values() if isinstance(out, dict) else out))
        if not isinstance(out, Activation) or isinstance(out.shape, ParameterShape):
            raise SpecError(f"forward() returns {self.show(out)}, not an activation tensor",
                            where=where_module("", self.root))
        n = len(self.layers)
        j, k = out.src
        if j == -1 or (j, k) != (n - 1, None):
            later = j < 0 or any(src[0] == j for srcs in self.sources[j + 1:] for src in srcs) or any(
                _link(layer) == "same" for layer in self.layers[j + 1:])
            if k is None and not later:
                self._move_last(j)
            else:  # the output is the input, an output of a multi-output layer, read again later, or made
                # before a write in place (which must stay after it)
                self._add(_OutputNode, Identity(), (out.src,), out.shape, ":output", None, (), out.shape, None,
                          "output")
        names = self._names()
        layers = []
        for i, (layer, refs) in enumerate(zip(self.layers, self.sources)):
            inputs = None if refs == ((i - 1, None),) or not refs else tuple(
                "input" if src == -1 else names[src] if out_k is None else f"{names[src]}.{out_k}"
                for src, out_k in refs)
            # The reader made these layers and nobody else holds them: name and wire them in place
            # (the names and references are checked as the kinds check them).
            object.__setattr__(layer, "name", check.name(names[i]))
            object.__setattr__(layer, "inputs", None if inputs is None else check.references(inputs))
            layers.append(layer)
        first: dict[int, int] = {}
        first_use = tuple(i if m is None else first.setdefault(m, i) for i, m in enumerate(self.module_ids))
        unused: dict[str, int] = {}
        unused_frozen = 0
        for path, module in self.modules.items():  # as module.named_parameters() lists them, without recursion
            for p in module._parameters.values():
                if p is not None and id(p) not in self.seen:
                    self.seen.add(id(p))
                    unused[path] = unused.get(path, 0) + p.numel()
                    unused_frozen += 0 if p.requires_grad else p.numel()
        branches = tuple(f"{where_module(path, m)} tests self.training{at}" for path, m, at in self.branches)
        return Reading(tuple(layers), tuple(self.paths), first_use, tuple(self.weight), tuple(self.bias),
                       tuple(self.frozen), tuple(self.fx_nodes), unused, unused_frozen, branches,
                       self._modes(names, branches), dict(self.folds), tuple(self.fvcore_calls))

    def _modes(self, names: list, branches: tuple) -> StepModes:
        """What a training step runs differently from torch's defaults, by layer name (see `StepModes`)."""
        frozen = [name if weight and bias else f"{name}.weight" if weight else f"{name}.bias"
                  for name, (weight, bias) in zip(names, self.cold) if weight or bias]
        no_grad = [name for name, region in zip(names, self.regions)
                   if region and region[0] in ("no_grad", "inference")]
        inference = [name for name, region in zip(names, self.regions) if region == ("inference",)]
        calls: dict = {}
        for name, region in zip(names, self.regions):
            if region and region[0] == "checkpoint":
                calls.setdefault(region[1], []).append(name)
        refused = ""
        if self.train_differs:
            refused = (f"{branches[0] if branches else 'its forward() tests self.training'}, and {self.train_differs}: "
                       f"the network read is the eval-mode graph, so alexcost does not count a training step of "
                       f"it (torch's would run the other graph)")
        if not refused and self.untrainable:
            refused = self.untrainable[0]
        autocast = [(name, device, dtype) for name, region in zip(names, self.regions)
                    if region and region[0] == "autocast" for device, dtype in region[1]]
        if not refused and autocast and self.casts:
            refused = (f"{self.casts[0]} reads a tensor's dtype as float32 in a module that runs torch.autocast: "
                       f"the dtype depends on the autocast regions, which alexcost does not follow "
                       f"through a dtype read or a conversion")
        for name, region, layer, module in zip(names, self.regions, self.layers, self.module_ids):
            if (not refused and region and region[0] == "autocast" and type(layer).autocast == "lower"
                    and module is not None and self.module_ids.count(module) > 1):
                refused = (f"{name!r} ({type(layer).__name__}) runs under torch.autocast and its module runs "
                           f"{self.module_ids.count(module)} times: how many cast copies of its weight torch keeps "
                           f"depends on the autocast regions its calls share, which alexcost does not follow")
        return StepModes(tuple(frozen), tuple(no_grad), tuple(inference), tuple(map(tuple, calls.values())), refused,
                         tuple(autocast))

    def _move_last(self, j: int) -> None:
        """Put layer ``j`` (the output, read by no later layer) last: the network's output is its last layer."""
        order = [i for i in range(len(self.layers)) if i != j] + [j]
        new = {old: i for i, old in enumerate(order)}
        new[-1] = -1
        for attr in ("layers", "sources", "paths", "fx_nodes", "module_ids", "owners", "labels", "weight", "bias",
                     "frozen", "xs", "ys", "needs", "regions", "cold", "once"):
            values = getattr(self, attr)
            setattr(self, attr, [values[i] for i in order])
        self.sources = [tuple((new[s], k) for s, k in refs) for refs in self.sources]
        self.folds = {(new[s], k): fold for (s, k), fold in self.folds.items()}
        self.fvcore_calls = [(new[i], equation) for i, equation in self.fvcore_calls]
        self._plans.clear()  # (traced in the old order)

    def _names(self) -> list[str]:
        """Unique layer names from module paths: ``layer1_0_conv1``; a call made by a module's forward is
        named after that module (``layer1_0_add``), or is the module's name when it is the only layer
        the module makes (torchvision's ``Permute`` and ``StochasticDepth`` modules)."""
        modules = {p for p, m in zip(self.paths, self.module_ids) if m is not None}
        covered = set()
        for p in modules:
            parts = p.split(".")
            covered.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
        calls = Counter(o for o, m in zip(self.owners, self.module_ids) if m is None and o)
        taken = {"input"}
        names = []
        for i, (path, owner, label) in enumerate(zip(self.paths, self.owners, self.labels)):
            if self.module_ids[i] is not None:
                base = path
            elif owner and calls[owner] == 1 and owner not in covered:
                base = owner
            else:
                base = f"{owner}.{label}" if owner else label
            name = _clean(base)
            if not name.strip():
                name = type(self.layers[i]).__name__.lower()
            unique, n = name, 2
            while unique in taken:
                unique, n = f"{name}_{n}", n + 1
            taken.add(unique)
            names.append(unique)
        return names


def _link(layer) -> str | None:
    """How ``layer``'s output relates to its first input in a training step: ``"same"`` (it writes
    in place: the same tensor), ``"view"`` (a view, where strides allow: reshapes, transposes, the
    identity), ``"slice"`` (one of several views: Chunk, Split), or None (a new tensor)."""
    if getattr(layer, "inplace", False) is True:
        return "same"
    kind = type(layer)
    if kind.storage == "new" or layer.train_copies():
        return None
    return "slice" if kind.multi_output else "view"


class _Rebuild(NamedTuple):
    """How a stale value is made again: ``"up"``, the inverse of ``other``'s link applied to
    ``other``'s new value; ``"down"``, its own link applied to its parent ``other``'s new value."""

    node: object
    way: str
    other: tuple


IN_PLACE = {"iadd": "add", "imul": "mul", "isub": "sub", "itruediv": "truediv", "ipow": "pow"}
"""``a += b`` is named as ``a + b`` is (``layer1_0_add``); the layer itself says it works in place."""


class _Stand:
    """Stands for an fx node where a layer has none of its own (the output, a bare leaf root)."""

    def __init__(self, name: str, op: str, target: str):
        self.name, self.op, self.target = name, op, target


_OutputNode = _Stand("output", "output", "")
