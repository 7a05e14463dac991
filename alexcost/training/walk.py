"""A training step, one layer at a time in run order: the one walk every training analysis takes.

Each layer asks its rules (`alexcost.engine.rules.step`) what autograd keeps for it, what its
backward pass computes and what torch refuses. The walk follows which values require a
gradient, which storages are kept (each counted once, for the first live layer that keeps it)
and which are modified in place after being kept (then torch's backward would fail: refused).
It gives the step's totals and, asked for ``detail``, every layer's `LayerTraining` and what
the memory model needs.
"""

from __future__ import annotations

from typing import NamedTuple

from ..engine import rules
from ..errors import SpecError, describe_layer
from ..layers import Grads
from .autocast import Casts
from .layout import fan, layout, storage_keys
from .records import LayerTraining, SavedTensor

NOT_FROZEN = (False, False)


class Options(NamedTuple):
    """A step's options as the rules see them."""

    batch: int
    itemsize: int
    dtype: str
    device: str
    params_itemsize: int = 0
    """Under torch.autocast, the parameters' element size where the layer computes in another dtype."""


class Walked(NamedTuple):
    """What the walk gives: the step's totals (MACs and ops for the whole batch) and, with
    ``detail``, each layer's record, each kept storage's first keeper and bytes (``kept``), the
    bytes of the new tensors each layer keeps (``made``), and the rules' caveats (``notes``)."""

    forward_macs: int
    backward_macs: int
    saved_bytes: int
    params: int
    trainable_params: int
    grad_bytes: int
    grad_tensors: int
    buffer_bytes: int
    layers: tuple = ()
    kept: dict | None = None
    made: tuple = ()
    notes: tuple = ()


def walk(network, options: Options, frozen: dict, detail: bool = False) -> Walked:
    """One pass over ``network``'s layers for a step with ``options``; ``frozen``: layer index ->
    (weight frozen, bias frozen)."""
    lay = layout(network, options.batch)
    state = _State(network, lay, options, detail)
    req, keep, step_of = state.req, state.keep, rules.step
    views = lay.writes and lay.several  # an in-place write into a view of several outputs can be refused
    saved = params = trainable = tensors = buffers = 0
    macs, backward = [0, 0], [0, 0]  # per sample, and once per pass
    modes = _Modes(network, lay) if network.modes else None
    casts = _casts(network, lay, options, state)
    for i, (layer, r, x, ins, outs, facts, strides, live, once) in enumerate(zip(
            network.layers, network.layer_rules(), network.input_shapes, lay.ins, lay.outs, lay.facts, lay.strides,
            lay.alive, network.once)):
        in_req = (req[ins[0]],) if len(ins) == 1 else tuple([req[v] for v in ins])
        cold = frozen.get(i, NOT_FROZEN) if frozen else NOT_FROZEN
        weight, bias = facts.weight_params > 0 and not cold[0], facts.bias_params > 0 and not cold[1]
        passes = False
        if modes is not None:
            if i in modes.off:
                passes = modes.grad_off(i, in_req, facts.inplace)
                in_req, weight, bias = (False,) * len(in_req), False, False
            elif i in modes.idle:
                weight = bias = False
        node = weight or bias or True in in_req
        for v in outs:
            req[v] = node or passes
        try:
            step = step_of(layer, r, x, in_req, weight, bias, options._replace(batch=1) if once else options if
                           casts is None else casts.runs_at(i, layer), strides, node and live)  # (once: a batch of one)
            if casts is not None:
                step = casts.step(i, layer, step, Grads(in_req, weight, bias) if node else None, facts.weight_params)
        except SpecError as err:
            raise _refuse(err, network, i) from None
        if views:
            state.follow_views(i, node, facts.inplace)
        if modes is not None and modes.inference:
            modes.check_inference(i, step, facts.inplace)
        if modes is not None and i in modes.region:
            own = modes.checkpointed(i, state, step, node and live, facts, in_req)
        else:
            own = keep(i, ins, outs, step, live, facts.inplace) if step.saved or facts.inplace else 0
        mine = facts.weight_params * weight + facts.bias_params * bias if live else 0
        macs[once] += facts.macs  # (a layer run once per pass: not times the batch)
        backward[once] += step.grad_input_macs + step.grad_weight_macs
        saved += own
        params += facts.weight_params + facts.bias_params
        trainable += mine
        tensors += weight + bias if live else 0
        buffers += step.buffer_bytes
        if detail:
            state.record(i, layer, facts, step, own, state.saved(i, () if modes and i in modes.region else step.saved,
                                                                 live),
                         Grads(in_req, weight, bias) if node and live else None, mine)
    state.finish()
    batch, itemsize = options.batch, options.itemsize
    if modes is not None and modes.region:
        backward[0] += modes.recompute(state, batch)
    return Walked(batch * macs[0] + macs[1], batch * backward[0] + backward[1], saved, params, trainable, trainable * itemsize, tensors, buffers,
                  *state.details())


def _casts(network, lay, options: Options, state) -> Casts | None:
    """The step's `Casts` where some layer runs under torch.autocast on the step's device, else None."""
    if not network.modes.autocast:
        return None
    if True in network.once:
        i = network.once.index(True)
        raise _refuse(SpecError("runs once per pass on parameters alone, in a module that runs torch.autocast; "
                                "alexcost does not follow a per-pass computation's dtypes under autocast"), network, i)
    casts = Casts(network, lay, options, state.itemsizes, state.notes if state.detail else None)
    return casts if casts.low else None


class _Modes:
    """What ``network.modes`` changes in the walk (`alexcost.engine.modes.StepModes`): layers run with
    grad mode off (``off``; of them, those in inference mode; ``idle``: the parameters only they
    read), and each checkpoint call's layers (``region``: layer -> its call)."""

    def __init__(self, network, lay):
        index = {name: i for i, name in enumerate(network.names)}
        modes = network.modes
        self.network, self.layout = network, lay
        self.off = frozenset(index[n] for n in modes.no_grad)
        self.inference = frozenset(index[n] for n in modes.inference)
        self.calls = [tuple(index[n] for n in call) for call in modes.checkpoints]
        self.region = {i: k for k, call in enumerate(self.calls) for i in call}
        for i in self.region:
            if network.once[i]:
                raise self._refuse(i, "runs once per pass on parameters alone, inside a checkpoint call; alexcost "
                                      "does not follow a per-pass computation checkpointed")
        readers: dict = {}
        for j, ins in enumerate(lay.ins):
            for v in ins:
                readers.setdefault(v, set()).add(j)
        # Parameters read only with grad mode off get no gradient
        self.idle = frozenset(i for i, layer in enumerate(network.layers) if type(layer).arity == 0 and
                              all(readers.get(v) and readers[v] <= self.off for v in lay.outs[i]))
        self.unsaved = set()      # storages of inference tensors
        self.saves = {}           # checkpoint call -> [(layer, does it keep a tensor made by its own op)]
        self.started = {}         # checkpoint call -> its inputs' storages and their versions when it began
        for i in self.inference:
            for v in lay.outs[i]:
                if lay.storage[v] != v:
                    raise self._refuse(i, "makes a view, or writes in place, under torch.inference_mode(); "
                                          "alexcost models inference mode for layers that make new tensors")
                self.unsaved.add(v)

    def _refuse(self, i: int, why: str) -> SpecError:
        return _refuse(SpecError(why), self.network, i)

    def grad_off(self, i: int, in_req: tuple, inplace: bool) -> bool:
        """Layer ``i`` runs with grad mode off: it computes no gradient and keeps nothing. Its output
        requires none, except where it writes in place into a tensor that does: torch keeps that
        tensor's history, as if the layer were not there (True: its output requires grad). A view of
        a tensor that requires grad is refused."""
        lay = self.layout
        if not in_req or not in_req[0]:
            return False
        if inplace:
            return True
        if any(lay.storage[v] == lay.storage[lay.ins[i][0]] for v in lay.outs[i]):
            raise self._refuse(i, "makes a view, with grad mode off, of a tensor that requires grad: torch gives "
                                  "the view requires_grad without the base's history (a gradient stops there, and "
                                  "torch refuses some later writes in place); alexcost does not follow it")
        return False


    def check_inference(self, i: int, step, inplace: bool) -> None:
        """Refuse what torch refuses of an inference tensor outside inference mode."""
        lay = self.layout
        ins = lay.ins[i]
        if i in self.inference:
            return
        if inplace and lay.storage[ins[0]] in self.unsaved:
            raise self._refuse(i, "Inplace update to inference tensor outside InferenceMode is not allowed. (It "
                                  "writes in place into a tensor made under torch.inference_mode().)")
        for k in step.keeps:
            v = ins[k] if k >= 0 else lay.outs[i][-1 - k]
            if lay.storage[v] in self.unsaved and v not in lay.weights:
                raise self._refuse(i, "Inference tensors cannot be saved for backward. (It keeps a tensor made "
                                      "under torch.inference_mode() for the backward pass; use torch.no_grad().)")

    def checkpointed(self, i: int, state, step, runs: bool, facts, in_req) -> int:
        """Layer ``i`` runs inside a checkpoint call: it keeps nothing (what it would keep is made again
        in the backward pass); the call keeps its inputs, from its first layer on, when some layer
        in it keeps a tensor. The bytes counted here (at the call's last layer, once that is known). An
        inference tensor among its inputs is refused as the call starts: torch saves every input then."""
        k, lay = self.region[i], self.layout
        call = self.calls[k]
        if k not in self.started:
            inside = {v for j in call for v in lay.outs[j]}
            inputs = {lay.storage[v] for j in call for v in lay.ins[j] if v not in inside and v not in lay.weights}
            if inputs & self.unsaved:
                raise self._refuse(call[0], "Inference tensors cannot be saved for backward. (A checkpoint call "
                                            "saves its inputs as it starts, and one was made under "
                                            "torch.inference_mode().)")
            self.started[k] = [(s, state.version[s]) for s in sorted(inputs)]
        if facts.inplace:
            target = lay.storage[lay.outs[i][0]]
            state.version[target] += 1
            state.written_by[target] = i
        keeps = runs and bool(step.saved or (facts.weight_params and True in in_req))
        if keeps:
            self.saves.setdefault(k, []).append((i, any(item.ref != "input" for item in step.saved)))
        if i != call[-1] or k not in self.saves:
            return 0
        own = 0
        for s, version in self.started[k]:
            if s not in state.kept:
                size = lay.elements[s] * state.itemsizes[s]
                state.kept[s] = (call[0], size, version)
                own += size
        return own

    def recompute(self, state, batch: int) -> int:
        """The backward pass runs each checkpoint call's forward again, up to the last tensor it
        keeps (torch's early stop: a layer's inputs are kept before its op runs, what it makes after):
        the MACs of the layers that run again (one sample), each one's record told."""
        network, macs = self.network, 0
        for k, saves in self.saves.items():
            last, own = saves[-1]
            again = [j for j in self.calls[k] if j < last or (j == last and own)]
            for j in again:
                layer, x, y = network.layers[j], network.input_shapes[j], network.output_shapes[j]
                m = self.layout.facts[j].macs
                macs += m
                if state.rows:
                    row = state.rows[j]
                    state.rows[j] = row._replace(recompute_macs=batch * m,
                                                 torch_backward_flops=row.torch_backward_flops +
                                                 batch * layer.torch_flops(x, y))
            if again and state.detail:
                note = (f"the backward pass runs the forward of {network.names[again[0]]} to "
                        f"{network.names[again[-1]]} again (torch.utils.checkpoint)")
                state.notes.append(note)
        return macs


def _refuse(err: SpecError, network, i: int) -> SpecError:
    return err.at(describe_layer(i, network.names[i], type(network.layers[i]).__name__))


class _State:
    """The walk's state beyond the totals: per value, whether it requires a gradient; per storage,
    its version, its first live keeper and its bytes; the records, when asked for."""

    def __init__(self, network, lay, options: Options, detail: bool):
        self.network, self.layout, self.options, self.detail = network, lay, options, detail
        values = len(lay.storage)
        self.req = [False] * values
        self.itemsizes = [options.itemsize] * values  # per storage: bytes per element (autocast: `Casts`)
        self.version = [0] * values  # per storage
        # storage (or a layer's own tensor) -> (its first live keeper, its bytes, its version then): a
        # storage modified in place after a live layer kept it fails torch's backward (`finish`)
        self.kept: dict = {}
        self.made = [0] * len(network.layers)  # bytes of the tensors of its own each layer keeps
        self.written_by: dict = {}  # storage -> the last layer that wrote into it in place
        self.views: dict = {}  # value -> is it a view of what a multi-output layer returned?
        self.rows: list = []
        self.notes: list = []
        self.fan = fan(network, lay) if detail else None
        self.keys = storage_keys(network, lay) if detail else None

    def follow_views(self, i: int, node: bool, inplace: bool) -> None:
        """Refuse an in-place write into a view of what a multi-output layer returned (torch does,
        when it requires grad); remember which of this layer's outputs are such views."""
        lay, views = self.layout, self.views
        ins = lay.ins[i]
        if inplace and node and views.get(ins[0]):
            raise _refuse(SpecError("torch refuses to modify in place a view returned by a Chunk or Split (a "
                                    "function that returns several views) when it requires grad; make the layer "
                                    "not in place"), self.network, i)
        several = type(self.network.layers[i]).multi_output
        for v in lay.outs[i]:
            if lay.storage[v] != v and ins:  # a view of input 0 (or the same tensor)
                views[v] = several or views.get(ins[0], False)

    def keep(self, i: int, ins: tuple, outs: tuple, step, live: bool, inplace: bool) -> int:
        """What layer ``i`` keeps (its `StepRules`; it reads the values ``ins`` and makes ``outs``),
        resolved to storages: the bytes of those it is the first live layer to keep, each kept at its
        version then. An in-place layer writes into its input 0 after keeping its inputs and before
        keeping its own output."""
        own = 0
        if live and step.new_bytes:
            own += step.new_bytes
            self.made[i] += step.new_bytes
        for k in step.keeps:
            if k >= 0 or not inplace:
                own += self._keep(i, ins[k] if k >= 0 else outs[-1 - k], live)
        if inplace:
            target = self.layout.storage[outs[0]]
            self.version[target] += 1
            self.written_by[target] = i
            for k in step.keeps:
                if k < 0:
                    own += self._keep(i, outs[-1 - k], live)
        return own

    def _keep(self, i: int, value: int, live: bool) -> int:
        lay = self.layout
        storage = lay.storage[value]
        if not live or storage in lay.weights:  # a parameter or buffer, or a view of one: not an activation
            return 0
        if storage in self.kept:
            return 0
        size = lay.elements[storage] * self.itemsizes[storage]
        self.kept[storage] = (i, size, self.version[storage])
        return size

    def saved(self, i: int, items: tuple, live: bool) -> tuple[SavedTensor, ...]:
        """What layer ``i`` keeps, as `SavedTensor` records (with ``detail``; after `keep`): its own
        new tensors are kept by it alone."""
        lay, out = self.layout, []
        for m, item in enumerate(items):
            if item.ref == "new":
                storage, size = ("new", i, m), item.elements * item.itemsize
                if live:
                    self.kept[storage] = (i, size, 0)
            else:
                value = lay.ins[i][item.index] if item.ref == "input" else lay.outs[i][item.index]
                if lay.storage[value] in lay.weights:  # a parameter or buffer, or a view of one: not kept
                    continue
                storage = lay.storage[value]
                size = lay.elements[storage] * self.itemsizes[storage]
            if live:
                first = self.kept[storage][0]
                out.append(SavedTensor(item.what, size, self.keys[storage] if isinstance(storage, int) else storage,
                                       None if first == i else self.network.names[first], item.caveat))
                if item.caveat and item.caveat not in self.notes:
                    self.notes.append(item.caveat)
        return tuple(out)

    def record(self, i: int, layer, facts, step, own: int, kept: tuple, grads, trainable: int) -> None:
        """Layer ``i``'s `LayerTraining` (with ``detail``); ``grads``: None when it runs no backward pass."""
        batch = 1 if self.network.once[i] else self.options.batch
        self.rows.append(LayerTraining(
            i, self.network.names[i], type(layer).__name__, layer.group, batch * facts.macs,
            batch * step.grad_input_macs, batch * step.grad_weight_macs, batch * step.torch_backward_flops,
            step.backward_other_ops + self.fan[i] if grads is not None else 0, batch * facts.train_other_ops, own,
            kept, facts.weight_params + facts.bias_params, trainable,
            grads.weight + grads.bias if grads is not None else 0, grads))

    def finish(self) -> None:
        """Refuse a step torch could not run backward."""
        network, lay = self.network, self.layout
        if not any(self.req[v] for v in lay.outs[-1]):
            raise SpecError(f"{network.name!r}: its output does not require grad (every parameter it reads is "
                            f"frozen, or it has none), so a training step has no backward pass")
        for storage, (i, _, seen) in self.kept.items():  # kept for the backward pass, then modified in place
            if type(storage) is int and self.version[storage] != seen:
                j = self.written_by[storage]
                raise SpecError(f"{describe_layer(j, network.names[j], type(network.layers[j]).__name__)} modifies "
                                f"in place a tensor that {network.names[i]!r} ({type(network.layers[i]).__name__}) "
                                f"keeps for the backward pass; torch's backward would fail (one of the variables "
                                f"needed for gradient computation has been modified by an inplace operation): make "
                                f"it not in place")

    def details(self) -> tuple:
        """The fields of `Walked` after the totals: empty without ``detail``."""
        if not self.detail:
            return ()
        return tuple(self.rows), self.kept, tuple(self.made), tuple(self.notes)
