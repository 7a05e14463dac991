"""Sizes a trace can fix: shapes propagated while tracing, so arithmetic on sizes becomes constants.

torch.fx traces sizes symbolically: ``x.size()`` is a Proxy, and Python code that branches on it
(``if pad_h > 0:``, ``max(...)``, ``math.ceil`` on a size, timm's ``pad_same`` and ``Conv2dSame``)
cannot be traced. alexcost reads a module at one input shape, so every size that does not depend
on the batch is a known number there. When a plain trace fails, the module is traced again with
`Worlds`: every node is also run on fake tensors (``FakeTensorMode``: shapes only, no data) of two
batch sizes, and a size that is the same in both is given to the forward as a plain ``int``;
a size that differs (it depends on the batch) stays traced, so code that branches on the batch
size is still refused. The graph such a trace gives holds for that input shape only, which is
the one alexcost reads. Imports torch.
"""

from __future__ import annotations

BATCHES = (2, 3)
"""The two batch sizes the fake runs use: a size equal in both does not depend on the batch."""

_UNKNOWN = object()


class Worlds:
    """Each traced node's value in fake runs at `BATCHES` (or unknown, where a fake run fails)."""

    def __init__(self, root, input_shape, plain=lambda value: value):
        from torch._subclasses.fake_tensor import FakeTensorMode

        self.root, self.input_shape, self.plain = root, tuple(input_shape), plain
        self.modes = [FakeTensorMode(allow_non_fake_inputs=True) for _ in BATCHES]
        self.values: dict = {}
        self.tracer = None  # the tracer, which sets itself here: its ``raw`` flag lets calls run untraced
        self._input = None

    def add(self, node) -> None:
        """Run ``node`` in each world, from its arguments' values there."""
        tracer, raw = self.tracer, self.tracer.raw
        tracer.raw = True  # modules' own calls and attributes, not fx's traced stand-ins
        try:
            self.values[node] = tuple(self._run(node, k) for k in range(len(BATCHES)))
        except Exception:  # noqa: BLE001 - what cannot run on fake tensors stays symbolic
            self.values[node] = None
        finally:
            tracer.raw = raw

    def _run(self, node, k: int):
        import torch
        import torch.fx
        from torch.fx.node import map_aggregate

        mode = self.modes[k]
        if node.op == "placeholder":
            self._input = node if self._input is None else self._input
            if node is not self._input:
                raise LookupError("only the first input has a known shape")
            first = next(self.root.parameters(), None)  # the input where the module's parameters are
            with mode:
                return torch.empty(BATCHES[k], *self.input_shape, device=None if first is None else first.device)
        if node.op == "get_attr":
            value = self.root
            for part in node.target.split("."):
                value = getattr(value, part)
            return value
        if node.op == "output":
            raise LookupError("the output is not run")

        def value_of(arg):
            if isinstance(arg, torch.fx.Node):
                found = self.values.get(arg)
                if found is None:
                    raise LookupError(f"no value for {arg.name}")
                return found[k]
            return self.plain(arg)  # self.training passed on: False, as the trace reads it

        args, kwargs = map_aggregate(node.args, value_of), map_aggregate(node.kwargs, value_of)
        with mode:
            if node.op == "call_module":
                return self.root.get_submodule(node.target)(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            return node.target(*args, **kwargs)

    def shapes(self, node):
        """The node's shape in each world, or None where it is not a tensor of known shape."""
        import torch

        found = self.values.get(node)
        if found is None or not all(isinstance(v, torch.Tensor) for v in found):
            return None
        return tuple(tuple(v.shape) for v in found)


def size_of(proxy, dim=None):
    """``proxy.size(dim)`` in a trace with `Worlds`: a plain int for each size the batch does not
    change, a traced size for the others; ``None`` where the shape is not known (trace it as fx does)."""
    shapes = _shapes(proxy)
    if shapes is None or not isinstance(dim, (int, type(None))) or isinstance(dim, bool):
        return None
    first, second = shapes
    rank = len(first)

    def one(d: int):
        if first[d] == second[d]:
            return first[d]
        return proxy.tracer.create_proxy("call_method", "size", (proxy, d), {})

    if dim is not None:
        if not -rank <= dim < rank:
            return None  # torch's own error, from the traced call
        return one(dim % rank)
    sizes = tuple(one(d) for d in range(rank))
    if all(isinstance(s, int) for s in sizes):
        import torch

        return torch.Size(sizes)
    return sizes


def rank_of(proxy):
    """``proxy.dim()`` in a trace with `Worlds`: the number of dimensions, or None where unknown."""
    shapes = _shapes(proxy)
    return None if shapes is None else len(shapes[0])


def _shapes(proxy):
    """The proxy's shape in each world (`Worlds.shapes`); a buffer's or parameter's own shape in any trace (it
    does not depend on the batch); None where unknown."""
    node = proxy.node
    if node.op == "get_attr":
        shape = getattr(held(proxy.tracer, node.target), "shape", None)
        return None if shape is None else (tuple(shape),) * len(BATCHES)
    worlds = getattr(proxy.tracer, "worlds", None)
    return worlds.shapes(node) if worlds is not None else None


_DEVICE = []


def device_attribute():
    """fx's lazy ``Attribute`` proxy for ``x.device``, whose ``type`` is a plain string: the type of the device the
    module's parameters (else buffers) are on, where every tensor of the pass is (as the reader reads
    ``x.to(device)``), so code may branch on it (timm's ``if v.device.type != 'meta'``)."""
    if not _DEVICE:
        import torch.fx

        class Device(torch.fx.proxy.Attribute):
            @property
            def type(self) -> str:
                root = self.tracer.root
                first = next(iter(root.parameters()), None)
                if first is None:
                    first = next(iter(root.buffers()), None)
                return "cpu" if first is None else first.device.type

        _DEVICE.append(Device)
    return _DEVICE[0]


def held(tracer, target: str):
    """The module's own attribute at the dotted ``target`` (a parameter, a buffer: what a get_attr node reads), not
    the trace's stand-in for it; None where there is none."""
    value, raw = tracer.root, getattr(tracer, "raw", None)
    if raw is not None:
        tracer.raw = True
    try:
        for part in target.split("."):
            value = getattr(value, part, None)
    finally:
        if raw is not None:
            tracer.raw = raw
    return value


class SizedProxy:
    """The sizes of an fx Proxy (a mixin before ``torch.fx.Proxy``): plain ints where a trace with
    `Worlds` knows them, traced as fx traces them otherwise. A parameter's or buffer's dtype is its own;
    ``x.device`` is traced, its ``type`` the module's device's (`device_attribute`)."""

    def __getattr__(self, name):
        node = self.__dict__.get("node")  # (None while fx is making the proxy)
        if name == "dtype" and node is not None and node.op == "get_attr":  # a parameter's or buffer's: fixed
            return held(self.tracer, node.target).dtype
        return device_attribute()(self, name) if name == "device" else super().__getattr__(name)

    def size(self, *args, **kwargs):
        found = size_of(self, *args, **kwargs) if len(args) + len(kwargs) <= 1 else None
        return super().__getattr__("size")(*args, **kwargs) if found is None else found

    def dim(self):
        found = rank_of(self)
        return super().__getattr__("dim")() if found is None else found

    @property
    def shape(self):
        found = size_of(self)
        return super().__getattr__("shape") if found is None else found

    def numel(self):
        found = size_of(self)
        if found is None or not all(isinstance(s, int) for s in found):
            return super().__getattr__("numel")()
        from math import prod

        return prod(found)

    @property
    def ndim(self):
        found = rank_of(self)
        return super().__getattr__("ndim") if found is None else found


class RawCalls:
    """A mixin before ``torch.fx.Tracer``: while ``raw`` is set (a fake run of a node by `Worlds`),
    modules' attributes are their own tensors and module calls run untraced."""

    raw = False

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        return attr_val if self.raw else super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(self, m, forward, args, kwargs):
        return forward(*args, **kwargs) if self.raw else super().call_module(m, forward, args, kwargs)
