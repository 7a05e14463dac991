"""Network: a per-sample input shape plus ordered layers, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import arguments as check
from .cost import LayerCost, NetworkCost, dtype_bytes
from .errors import SpecError, describe_layer, format_shape
from .layers import BUILTIN_KINDS, Layer, Shape


@dataclass(frozen=True)
class Network:
    """A sequential network. Building one propagates shapes and checks every layer.

    ``input_shape`` is per sample, e.g. ``(3, 227, 227)``. Unnamed layers are named
    ``<type lowercased><index>`` (``relu1``); ``names[i]`` and ``shapes[i]`` (the
    input of layer ``i``; ``shapes[-1]`` is the output) are filled in.
    """

    input_shape: Shape
    layers: tuple[Layer, ...]
    name: str = "custom"
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    shapes: tuple[Shape, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        put = object.__setattr__.__get__(self)
        put("input_shape", check.shape(self.input_shape))
        if not isinstance(self.layers, (list, tuple)):
            raise SpecError(f"layers must be a list of layers, got {type(self.layers).__name__}")
        put("layers", tuple(self.layers))
        if not isinstance(self.name, str):
            raise SpecError(f"name must be a string, got {self.name!r}")
        names, seen, shapes = [], {}, [self.input_shape]
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise SpecError(f"layers[{i}] must be an alexcost Layer, got {type(layer).__name__}")
            kind = type(layer)
            name = layer.name or f"{kind.__name__.lower()}{i}"
            if name in seen:
                raise SpecError(f"layers[{i}] ({kind.__name__}): duplicate name {name!r}, "
                                f"already used by layers[{seen[name]}]")
            seen[name] = i
            names.append(name)
            x = shapes[-1]
            try:
                y = layer.output_shape(x)
                if kind not in BUILTIN_KINDS:
                    y = check.shape(y, f"{kind.__name__}.output_shape()")
            except SpecError as err:
                raise err.at(f"{describe_layer(i, name, kind.__name__)} on input {format_shape(x)}") from None
            shapes.append(y)
        put("names", tuple(names))
        put("shapes", tuple(shapes))

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1]

    def __len__(self) -> int:
        return len(self.layers)

    def cost(self, batch: int = 1, dtype: str = "float32") -> NetworkCost:
        """Every layer's counts for ``batch`` samples; memory sized at ``dtype``."""
        batch = check.integer(batch, "batch")
        size = dtype_bytes(dtype)
        shapes, rows = self.shapes, []
        for i, layer in enumerate(self.layers):
            x, y = shapes[i], shapes[i + 1]
            rows.append(LayerCost._make(i, self.names[i], layer, x, y,
                                  layer.weight_params(x), layer.bias_params(x),
                                  batch * layer.macs(x, y), batch * layer.bias_adds(x, y),
                                  batch * layer.other_ops(x, y), batch, size))
        return NetworkCost(self.name, self.input_shape, batch, dtype, tuple(rows))
