"""The one exception a user sees for a bad spec, option or argument."""

from __future__ import annotations


class SpecError(ValueError):
    """A network, layer or option that alexcost (or torch) would refuse.

    ``str(err)`` is one line that names the layer (its index in the spec's
    ``layers`` list, its name and kind), the input shape it saw and the
    offending numbers, e.g.::

        layers[4] 'conv2' (Conv2d) on input [96, 27, 27]: in_channels must be divisible by groups, got in_channels=96, groups=5
    """

    def __init__(self, message: str, *, where: str | None = None):
        self.message = " ".join(str(message).split())
        self.where = where
        super().__init__(f"{where}: {self.message}" if where else self.message)

    def at(self, where: str) -> "SpecError":
        """The same error, located (the innermost location wins)."""
        return self if self.where else SpecError(self.message, where=where)


def describe_layer(index: int, name: str | None, kind: str) -> str:
    """``layers[3] 'conv2' (Conv2d)``: how every message names a layer."""
    return f"layers[{index}] {name!r} ({kind})" if name else f"layers[{index}] ({kind})"


def format_shape(shape) -> str:
    """A per-sample shape as users write it in a spec: ``[96, 27, 27]``."""
    return "[" + ", ".join(str(d) for d in shape) + "]"
