"""A small helper the graph presets share: layers appended in run order, wired by name.

A layer reads the one before it unless ``reads`` names others, and then (only then) gets
``inputs``, so a preset written out as a spec file lists ``inputs`` exactly where the
graph branches or merges. A name used again (one torch module run several times, such as
a ResNet block's ``relu``) becomes ``name_2``, ``name_3``, ... in the order of the calls.
"""

from __future__ import annotations

from ..layers import INPUT, Layer
from ..engine.network import Network


class Wiring:
    """Layers in the order torch runs them; ``add`` returns the name given to the new layer."""

    def __init__(self):
        self.layers: list[Layer] = []
        self._uses: dict[str, int] = {}

    @property
    def last(self) -> str:
        """The name of the layer added last (``"input"`` before the first)."""
        return self.layers[-1].name if self.layers else INPUT

    def add(self, kind: type[Layer], name: str, reads: str | tuple[str, ...] | None = None, **args) -> str:
        uses = self._uses[name] = self._uses.get(name, 0) + 1
        unique = name if uses == 1 else f"{name}_{uses}"
        reads = (reads,) if isinstance(reads, str) else reads
        inputs = None if reads is None or reads == (self.last,) else tuple(reads)
        self.layers.append(kind(name=unique, inputs=inputs, **args))
        return unique

    def network(self, input_shape, name: str) -> Network:
        return Network(input_shape, tuple(self.layers), name=name)
