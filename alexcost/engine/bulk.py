"""Building many small objects at once (a 100,000-layer spec) without the garbage collector's toll.

CPython's cyclic collector runs every few hundred allocations and, as the heap grows, scans
more of it each time: building a network of 100,000 layers spends about half its time there.
alexcost's records hold no reference cycles, so nothing is lost by pausing the collector
while they are built; `paused_gc` does that and restores the collector's state after. Only
entry points pause it (``alexcost report``, `alexcost.search.evaluate`): the library itself
leaves the collector to the program that calls it.
"""

from __future__ import annotations

import gc

BULK = 1000
"""From this many items on, building pauses the collector."""


class paused_gc:  # noqa: N801 - used like a function, as contextlib's helpers are
    """Pause the cyclic garbage collector inside the block when ``items`` reaches `BULK`."""

    __slots__ = ("pause",)

    def __init__(self, items: int = BULK):
        self.pause = items >= BULK and gc.isenabled()

    def __enter__(self):
        if self.pause:
            gc.disable()

    def __exit__(self, *exc):
        if self.pause:
            gc.enable()
        return False
