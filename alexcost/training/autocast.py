"""``torch.autocast`` in a training step: the dtype each value is in, and what each layer keeps in it.

A layer run under autocast on the step's device (``Network.modes.autocast``) runs as its kind
says (`alexcost.layers.Layer.autocast`, torch's CPU op lists): a "lower" kind (convolution,
linear) casts its input and its parameters to the autocast dtype and computes there, so autograd
keeps the cast copies (an input already in that dtype is kept itself; the weight's copy where the
kind keeps its weight, `Layer.keeps_weight`); a "follow" kind runs in its input's dtype, on
either side of the region. Every layer's rules are asked at the dtype it runs in, so what it
keeps of its own is sized there. Parameters, their gradients and the optimizer's state stay in
the step's dtype (float32). Autocast is modelled on the CPU, in a float32 step; a kind without an
autocast rule, a region on CUDA costed on CUDA, and what torch refuses (a "lower" kind fed a
tensor of another dtype outside autocast) are refused, naming the layer.
"""

from __future__ import annotations

from math import prod

from ..engine.cost import DTYPE_BYTES
from ..errors import SpecError, describe_layer
from ..layers import Saved

MODELLED_DEVICE = "cpu"


def casts_on(network, device: str) -> bool:
    """Does some layer of ``network`` run under torch.autocast on ``device``?"""
    return any(d == device for _, d, _ in network.modes.autocast)


class Casts:
    """Per value, the dtype it is in; per layer under autocast on the step's device, the dtype
    autocast lowers to (``low``)."""

    def __init__(self, network, lay, options, itemsizes: list, notes: list | None = None):
        self.network, self.layout, self.options, self.itemsizes = network, lay, options, itemsizes
        index = {name: i for i, name in enumerate(network.names)}
        self.low: dict[int, str] = {}
        for name, device, dtype in network.modes.autocast:
            if device != options.device:  # autocast on another device changes nothing this step runs
                note = (f"layers run under torch.autocast on {device} run in {options.dtype} in a step on "
                        f"{options.device} (autocast changes only its own device's operations)")
                if notes is not None and note not in notes:
                    notes.append(note)
                continue
            i = index[name]
            if device != MODELLED_DEVICE:
                raise self._refuse(i, f"runs under torch.autocast on {device} ({dtype}): alexcost models "
                                      f"autocast on the CPU only (torch's CUDA op lists differ and are not "
                                      f"checked); cost the step with device='cpu', or without autocast")
            if options.dtype != "float32" or dtype not in DTYPE_BYTES:
                raise self._refuse(i, f"runs under torch.autocast at {dtype} in a {options.dtype} step: alexcost "
                                      f"models autocast to bfloat16 or float16 in a float32 step")
            self.low[i] = dtype
        self.dtypes = [options.dtype] * len(lay.storage)  # per value

    def _refuse(self, i: int, why: str) -> SpecError:
        network = self.network
        return SpecError(why).at(describe_layer(i, network.names[i], type(network.layers[i]).__name__))

    def runs_at(self, i: int, layer):
        """The options layer ``i``'s rules run at (the dtype it computes in); its outputs' dtype is
        recorded. Refuses what alexcost does not model."""
        kind, lay, options = type(layer), self.layout, self.options
        if kind.arity == 0:
            return options  # a parameter: the step's dtype
        ins = lay.ins[i]
        found = {self.dtypes[v] for v in ins if v not in lay.weights}
        low = self.low.get(i)
        if low is None and found <= {options.dtype}:
            return options
        where = "runs under torch.autocast" if low else \
            f"reads a {'/'.join(sorted(found - {options.dtype}))} tensor made under torch.autocast"
        if kind.autocast is None:
            raise self._refuse(i, f"{where}: alexcost does not model what {kind.__name__} computes and keeps "
                                  f"under autocast (which dtype torch's lists run it in)")
        if any(v in lay.weights for v in ins):
            raise self._refuse(i, f"{where} and reads a parameter as an input (a functional call, or a learned "
                                  f"tensor added): alexcost models autocast for modules that hold their weights")
        if kind.autocast == "lower":
            if low is None:
                shown = "/".join(sorted(found - {options.dtype}))
                raise self._refuse(i, f"Input type ({shown}) and weight type ({options.dtype}) should be the same: "
                                      f"it reads a tensor made under torch.autocast, outside autocast, with "
                                      f"{options.dtype} parameters; torch refuses to run it")
            dtype = low
        elif lay.storage[lay.outs[i][0]] == lay.storage[ins[0]]:
            dtype = self.dtypes[ins[0]]  # the input itself, or written in place: its dtype
        else:
            dtype = found.pop() if len(found) == 1 else "float32"  # torch's promotion of two float dtypes
        for v in lay.outs[i]:
            self.dtypes[v] = dtype
            if lay.storage[v] == v:
                self.itemsizes[v] = DTYPE_BYTES[dtype]
        return options._replace(dtype=dtype, itemsize=DTYPE_BYTES[dtype], params_itemsize=options.itemsize)

    def step(self, i: int, layer, step, grads, weight_elements: int):
        """Layer ``i``'s `StepRules` with what autocast makes it keep (its buffers stay in the step's
        dtype): for a "lower" kind under autocast, the cast copy of each kept input in another dtype
        (a tensor of its own, in place of the input) and, where it keeps its weight, the weight's
        cast copy (``grads``: the `Grads` it computes, None when it computes none). A "follow" kind
        with inputs of two dtypes that keeps a tensor of its own is refused."""
        kind, lay = type(layer), self.layout
        low = self.low.get(i)
        step = step._replace(buffer_bytes=layer.buffer_bytes(self.network.input_shapes[i], self.options.itemsize))
        if kind.autocast != "lower" or low is None:
            if step.new_bytes and len({self.dtypes[v] for v in lay.ins[i]}) > 1:
                raise self._refuse(i, "reads tensors of two dtypes (one made under torch.autocast) and keeps a "
                                      "tensor of its own: alexcost does not size it")
            return step
        made = [item.what for item in step.saved if item.ref != "input"]
        if made:
            raise self._refuse(i, f"runs under torch.autocast and keeps a tensor it makes ({', '.join(made)}): "
                                  f"alexcost models autocast for a {kind.__name__} that keeps its input itself")
        size, x = DTYPE_BYTES[low], self.network.input_shapes[i]
        saved, keeps = [], []
        for item in step.saved:
            v = lay.ins[i][item.index]
            if self.dtypes[v] == low:
                saved.append(item)
                keeps.append(item.index)
            else:
                shape = x if kind.arity == 1 else x[item.index]
                saved.append(Saved(f"{item.what} cast to {low}", "new",
                                   elements=self.options.batch * prod(shape), itemsize=size))
        if grads is not None and weight_elements and layer.keeps_weight(grads):
            saved.append(Saved(f"weight cast to {low}", "new", elements=weight_elements, itemsize=size))
        new = sum(item.elements * item.itemsize for item in saved if item.ref == "new")
        return step._replace(saved=tuple(saved), keeps=tuple(keeps), new_bytes=new)
