"""The reconciliation: a `NetworkCost` against a `Measurement` of one forward pass. Pure: no torch.

Every layer is compared on what torch really ran:

* its output shape (batch dimension included; a Parameter's full shape) and its new parameters;
* its bias adds, against the output elements of every convolution, matrix product or add
  torch ran with a bias (a module's ``bias`` or a parameter named so), in a call that ran a
  convolution or matrix product (DESIGN.md section 3: one add per output element);
* where one torch call made several layers, or several calls one layer (``Measurement.holders``),
  the group's parameters, FLOPs and bias adds against the sums over its layers;
* its other ops, against the kind's own formula recomputed on the shapes torch ran;
* torch's ``FlopCounterMode`` count of this call, against ``batch * torch_flops(x, y)``;
* fvcore's ``by_module`` count, against ``batch * fvcore_count(x, y)``: both are declared by
  the layer's kind (None: fvcore cannot count the op, and reports 0 for it). fvcore counts
  every call of a module and files them all under its first name, so that name's count is
  compared with the sum over the calls. fvcore cannot name a function call or a parameter of
  a traced module (``torch.cat``, ``+``): those layers are checked by fvcore's total only.

The totals are compared too: torch's total with the sum of the declared torch counts,
fvcore's with the sum of the declared fvcore counts (0 for a layer whose output nothing reads:
fvcore's torch.jit trace drops it), and the distinct parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.cost import LayerCost, NetworkCost
from ..layers.base import ParameterShape
from ..units import commas, size_text


@dataclass(frozen=True)
class Measurement:
    """What one forward pass showed, per layer (``None``: not observed).

    ``shapes[i]``: layer ``i``'s output as torch returned it, batch dimension included (a
    tuple of shapes for a layer of several outputs; a Parameter's full shape).
    ``params[i]``: the parameters of layer ``i``'s module that no earlier layer owns.
    ``torch_flops[i]``: ``FlopCounterMode``'s count for this call of the layer.
    ``fvcore[i]``: fvcore's ``by_module`` count for layer ``i``'s module, on the layer that
    first runs it (every call of it); ``None`` on the other layers that run it and on layers
    fvcore cannot name. ``fvcore`` is ``None`` when fvcore was skipped (``fvcore_note`` says why).
    ``input_shapes[i]``: the shapes of the tensors this call of layer ``i`` read.
    ``bias_adds[i]``: the output elements of the call when it ran a convolution or matrix
    product and reads a bias, else 0. ``total_params``: the module's distinct parameters.
    ``holders[i]``: the layer holding the measurement of layer ``i``'s group (None: each layer its
    own). A group is one torch call that made several layers, or several calls that made one: its
    FLOPs, bias adds and parameters are measured together and filed under its last layer; the
    other layers of the group hold nothing measured. ``einsums``: ``(holder, equation)`` for each
    group that is a ``torch.einsum`` call (fvcore counts those its own way: `fvcore_einsum`).
    """

    device: str
    torch_version: str
    shapes: tuple
    params: tuple[int, ...]
    torch_flops: tuple
    torch_total: int
    fvcore: tuple | None
    fvcore_unsupported: tuple[tuple[str, ...], ...]
    fvcore_total: int | None
    fvcore_note: str
    input_shapes: tuple | None = None
    bias_adds: tuple | None = None
    total_params: int | None = None
    holders: tuple[int, ...] | None = None
    einsums: tuple[tuple[int, str], ...] = ()


FVCORE_CHECKS = {
    "layer": "fvcore's count for the layer's module",
    "calls": "fvcore's count for a module that runs several times: every call, under its first name",
    "repeat": "a later call of a module: fvcore files it under the first layer that runs it",
    "total": "fvcore cannot name this layer (a function call or a parameter): checked by fvcore's total only",
    "skipped": "fvcore did not run",
}
"""How each layer's fvcore count is checked (``LayerCheck.fvcore_check``)."""


def declared_fvcore(row: LayerCost) -> int | None:
    """What fvcore counts for a layer, for the whole batch, as its kind declares it (None: fvcore
    cannot count the op, and reports 0 for it)."""
    per_sample = row.layer.fvcore_count(row.input_shape, row.output_shape)
    return None if per_sample is None else row.batch * per_sample


def fvcore_einsum(equation: str, macs: int) -> int:
    """fvcore's count for a ``torch.einsum`` of two operands running ``macs`` multiply-adds (its
    ``einsum_flop_jit``): the MACs for the two equations it knows (``abc,abd->acd``, ``abc,adc->adb``,
    letters renamed in order of appearance); for any other, numpy's ``einsum_path`` FLOP count
    (2 per MAC, plus 1) read back from its printout at 4 significant digits, halved and floored.
    So fvcore's count is rounded there, by its convention, not exact."""
    equation = equation.replace(" ", "")
    letters = dict.fromkeys(c for c in equation if c.isalpha())
    renamed = equation.translate({ord(c): 97 + i for i, c in enumerate(letters)})
    if renamed in ("abc,abd->acd", "abc,adc->adb"):
        return macs
    return int(float(f"{2 * macs + 1:.3e}") // 2)


def fvcore_expected(row: LayerCost) -> int:
    """What fvcore reports for a layer, for the whole batch (0 where it cannot count the op)."""
    return declared_fvcore(row) or 0


def read_layers(cost: NetworkCost) -> tuple[bool, ...]:
    """Per layer: is its output read, by the network's output or by a layer that is? fvcore traces
    the module with torch.jit, whose trace drops the ops of a layer nobody reads: it counts 0 there."""
    rows = cost.layers
    index = {row.name: i for i, row in enumerate(rows)}
    read = [False] * len(rows)
    if rows:
        read[-1] = True
    for i in range(len(rows) - 1, -1, -1):
        if not read[i]:
            continue
        names = rows[i].inputs if rows[i].inputs is not None else (() if i == 0 else (rows[i - 1].name,))
        for name in names:
            j = index.get(name.split(".")[0])  # "n.k": output k of layer n; "input": none
            if j is not None:
                read[j] = True
    return tuple(read)


def layer_folds(cost: NetworkCost, folds) -> tuple:
    """Per layer: the folds of its inputs (one per input) and of its output (one per output of a
    multi-output layer), from ``folds``, ``{(layer index, output index or None): k}`` for each value whose
    ``k`` rows per sample torch runs as rows of the batch (``N*k`` rows; none listed: none folded)."""
    rows = cost.layers
    index = {row.name: i for i, row in enumerate(rows)}

    def of(name: str) -> int:
        layer, _, out = name.partition(".")  # "n.k": output k of layer n; "input": none
        j = index.get(layer)
        return 1 if j is None else folds.get((j, int(out) if out else None), 1)

    result = []
    for i, row in enumerate(rows):
        names = row.inputs if row.inputs is not None else (() if i == 0 else (rows[i - 1].name,))
        k_in = tuple(of(name) for name in names) if names else (1,) * len(row.input_shapes)
        k_out = tuple(folds.get((i, o), 1) for o in range(len(row.output_shape))) \
            if type(row.layer).multi_output else folds.get((i, None), 1)
        result.append((k_in, k_out))
    return tuple(result)


def declared_torch(row: LayerCost) -> int:
    """What torch's ``FlopCounterMode`` counts for a layer, for the whole batch, as its kind declares it."""
    return row.batch * row.layer.torch_flops(row.input_shape, row.output_shape)


@dataclass(frozen=True)
class LayerCheck:
    """One layer: alexcost's numbers beside the measured ones, and what disagrees.

    ``fvcore_expected`` is what fvcore's ``by_module`` should report for the layer's module
    (the sum over every call of a module that runs several times; None where it is not
    compared per layer, see ``fvcore_check``); ``fvcore_declared`` is this call's declared
    count (None: fvcore cannot count it). ``torch_expected`` is this call's declared
    ``FlopCounterMode`` count. ``fvcore_share`` is what fvcore's total holds for this call: the
    declared count, or 0 where fvcore cannot count it or its trace drops the layer (``read``
    False: no layer reads its output). ``repeat_of`` names the first layer running the same module.
    ``measured_bias_adds`` / ``measured_other_ops``: the bias adds torch's output shows and the
    kind's other-ops formula on the shapes torch ran (None: not observed). ``measured_with``: the
    names of the layers one torch call made, when it made several (the last holds the measurement).
    """

    index: int
    name: str
    type: str
    shape: tuple
    measured_shape: tuple | None
    params: int
    measured_params: int
    macs: int
    bias_adds: int
    other_ops: int
    fvcore_expected: int | None
    fvcore: int | None
    fvcore_unsupported: tuple[str, ...]
    torch_expected: int | None
    torch: int | None
    repeat_of: str | None
    problems: tuple[str, ...]
    fvcore_declared: int | None = None
    fvcore_share: int = 0
    fvcore_check: str = "skipped"
    read: bool = True
    calls: int = 1
    group_macs: int = 0
    measured_bias_adds: int | None = None
    measured_other_ops: int | None = None
    measured_with: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Reconciliation:
    """Every layer's checks, the totals, and the verdict (``ok``: every comparison agrees)."""

    model: str
    device: str
    batch: int
    torch_version: str
    fvcore_note: str
    fvcore_ran: bool
    layers: tuple[LayerCheck, ...]
    macs: int
    bias_adds: int
    other_ops: int
    fvcore_total: int | None
    torch_total: int
    problems: tuple[str, ...]
    params: int = 0
    measured_params: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def forward(self) -> int:
        """The seed's "Forward Computation": MACs + bias adds."""
        return self.macs + self.bias_adds

    @property
    def fvcore_expected_total(self) -> int:
        """The sum of what fvcore should count for every layer (``LayerCheck.fvcore_share``)."""
        return sum(c.fvcore_share for c in self.layers)

    @property
    def torch_expected_total(self) -> int:
        return sum(c.torch_expected or 0 for c in self.layers)

    @property
    def fvcore_uncounted_macs(self) -> int:
        """MACs fvcore does not count: every MAC of a layer it cannot count or its trace drops, and
        what a kind declares fvcore counts below its MACs."""
        return sum(c.macs - c.fvcore_share for c in self.layers if c.fvcore_share < c.macs)

    @property
    def fvcore_beyond_macs(self) -> int:
        """What fvcore counts beyond the MACs (adaptive average pooling, normalisations), as declared."""
        return sum(c.fvcore_share - c.macs for c in self.layers if c.fvcore_share > c.macs)

    @property
    def fvcore_extra(self) -> int:
        """fvcore's expected total less the MACs: beyond the MACs, less the MACs it does not count."""
        return self.fvcore_beyond_macs - self.fvcore_uncounted_macs

    @property
    def torch_extra(self) -> int:
        """torch's expected total less 2 per MAC (nonzero only for a kind that declares so)."""
        return self.torch_expected_total - 2 * self.macs


# -- per layer ------------------------------------------------------------------------------------

def _batched(row: LayerCost, shape, k: int = 1):
    """A per-sample shape as torch shows it: with the batch dimension (``N*k`` for a value whose ``k`` rows per
    sample are folded into the batch: its per-sample shape starts with ``k``), but a Parameter's whole (and
    every shape of a layer run once per pass)."""
    if type(row.layer).arity == 0 or row.per_pass or isinstance(shape, ParameterShape):
        return tuple(shape)
    return (row.batch, *shape) if k == 1 else (row.batch * k, *shape[1:])


def _fold(ks, at: int | None = None) -> int:
    """The fold of one output among ``ks`` (an int, or one per output of a multi-output layer)."""
    return ks if isinstance(ks, int) else ks[at]


def _expected_output(row: LayerCost, k=1):
    if type(row.layer).multi_output:
        return tuple(_batched(row, s, _fold(k, o)) for o, s in enumerate(row.output_shape))
    return _batched(row, row.output_shape, k)


def _per_sample(row: LayerCost, static, seen, k=1):
    """An observed shape (or tuple of them) without the batch dimension, as ``static`` has it (a folded
    value's ``N*k`` rows as ``k``); None when the batch dimension is not the run's."""
    if static and isinstance(static[0], tuple) and seen and isinstance(seen[0], tuple):
        parts = [_per_sample(row, s, o, _fold(k, j)) for j, (s, o) in enumerate(zip(static, seen))]
        return None if None in parts or len(static) != len(seen) else tuple(parts)
    if type(row.layer).arity == 0 or row.per_pass or isinstance(static, ParameterShape):
        return ParameterShape(seen) if isinstance(static, ParameterShape) else tuple(seen)
    if not seen or seen[0] != row.batch * k:
        return None
    return tuple(seen[1:]) if k == 1 else (k, *seen[1:])


def _rows_of(row: LayerCost, seen, k: int) -> tuple:
    """One observed shape per sample: a folded value's ``N*k`` rows as ``k``."""
    return tuple(seen[1:]) if k == 1 or seen[0] != row.batch * k else (k, *seen[1:])


def _shown(row: LayerCost, seen, k=1) -> tuple | None:
    """The observed output for the table: per sample (a Parameter's whole)."""
    if seen is None:
        return None
    if type(row.layer).multi_output:
        return tuple(_rows_of(row, s, _fold(k, o)) for o, s in enumerate(seen))
    return tuple(seen) if type(row.layer).arity == 0 or row.per_pass else _rows_of(row, seen, k)


def _batch_note(row: LayerCost, seen, k=1) -> str:
    first = seen[0] if seen and isinstance(seen[0], tuple) else seen
    k = _fold(k, 0)
    if type(row.layer).arity == 0 or row.per_pass or not first or first[0] == row.batch * k:
        return ""
    return f" at batch {first[0]}" if k == 1 else f" at batch {first[0]}, not N*{k} = {row.batch * k} rows"


def observed_other_ops(row: LayerCost, inputs, output, ks=None) -> int | None:
    """The kind's other-ops formula on the shapes torch ran (None: they cannot be read as the
    layer's: another count of inputs, another batch, or a formula that refuses them). ``ks``: the folds
    of the layer's inputs and of its output (default: none folded)."""
    if inputs is None or output is None:
        return None
    arity = type(row.layer).arity
    static = row.input_shapes
    if len(inputs) != len(static):
        return None
    k_in, k_out = ks or ((1,) * len(static), 1)
    xs = [_per_sample(row, s, o, k) for s, o, k in zip(static, inputs, k_in)]
    y = _per_sample(row, row.output_shape, output, k_out) if type(row.layer).multi_output or arity != 0 \
        else tuple(output)
    if None in xs or y is None:
        return None
    x = xs[0] if arity == 1 else tuple(xs)
    try:
        return row.batch * row.layer.other_ops(x, y)
    except Exception:  # noqa: BLE001 - a formula refusing shapes torch ran: the shape check says why
        return None


def _inputs_text(inputs) -> str:
    return ", ".join(size_text(s) for s in inputs) if inputs else "none"


def _check_layer(i: int, row: LayerCost, measured: Measurement, group: list, ks) -> tuple[dict, list[str]]:
    """The measured values of one layer and what disagrees, fvcore's count apart. ``group``: the
    rows measured together with this one (one torch call made them), this one last; a row
    before the last holds nothing measured. ``ks``: the folds of each row's inputs and output."""
    if group[-1] is not row:
        return {"measured_shape": None, "torch_expected": declared_torch(row), "torch": None,
                "measured_bias_adds": None, "measured_other_ops": None}, []
    if len(group) > 1:
        return _check_group(i, group, measured, ks)
    issues = []
    k_in, k_out = ks[-1]
    want, got = _expected_output(row, k_out), measured.shapes[i]
    if got != want and not _parameter_viewed(row, want, got):
        seen = "not seen (the forward pass did not run the layers in order)" if got is None \
            else size_text(_shown(row, got, k_out)) + _batch_note(row, got, k_out)
        issues.append(f"output shape: alexcost {size_text(row.output_shape)}, torch {seen}")
    if row.params != measured.params[i]:
        issues.append(f"params: alexcost {commas(row.params)}, torch numel {commas(measured.params[i])}")
    t_exp, t = declared_torch(row), measured.torch_flops[i]
    if t is not None and t != t_exp:
        what = f"2*MACs = {commas(t_exp)}" if t_exp == 2 * row.macs else f"{commas(t_exp)} ({row.type} declares torch_flops)"
        issues.append(f"FLOPs: alexcost {what}, torch's counter {commas(t)}")
    bias = None if measured.bias_adds is None else measured.bias_adds[i]
    if bias is not None and bias != row.bias_adds:
        issues.append(f"bias adds: alexcost {commas(row.bias_adds)}, torch {commas(bias)} (one per output element "
                      f"of a convolution or matrix product that reads a bias)")
    inputs = None if measured.input_shapes is None else measured.input_shapes[i]
    other = observed_other_ops(row, inputs, got, ks[-1])
    if other is not None and other != row.other_ops:
        issues.append(f"other ops: alexcost {commas(row.other_ops)}, {row.type}'s formula on the shapes torch ran "
                      f"({_inputs_text(inputs)} -> {size_text(got)}) {commas(other)}")
    elif inputs is not None and other is None and got == want:
        issues.append(f"inputs: alexcost reads {_inputs_text(_expected_inputs(row, k_in))}, torch's call read "
                      f"{_inputs_text(inputs)}")
    return {"measured_shape": _shown(row, got, k_out), "torch_expected": t_exp, "torch": t,
            "measured_bias_adds": bias, "measured_other_ops": other}, issues


def _parameter_viewed(row: LayerCost, want, got) -> bool:
    """A parameter the network reads through views that add dimensions of size 1 (``expand`` over the batch,
    ``unsqueeze``): torch's node is the parameter itself, the same elements in the same order."""
    return type(row.layer).arity == 0 and bool(got) and not isinstance(got[0], tuple) and \
        [d for d in got if d != 1] == [d for d in want if d != 1]


def _group_output(group: list, ks, got):
    """What the group's torch call returns, as its layers have it: the last layer's output; where the call
    returns ``m`` tensors and the last layer one (``unbind``: a selection of each item), the outputs of its
    last ``m`` layers, in order; where the group splits the call's tensor into its ``m`` items along a
    dimension torch moves before the batch (timm's ``qkv.permute(2, 0, 3, 1, 4)``, read as a `Chunk` of ``m``
    and a chain of layers per item), ``(m, *the last layer's output)``: the items stacked, as torch holds them."""
    m = len(got) if got and isinstance(got[0], tuple) else 0
    if 0 < m <= len(group) and not any(type(r.layer).multi_output for r in group[-m:]):
        return tuple(_expected_output(r, k[1]) for r, k in zip(group[-m:], ks[-m:]))
    want = _expected_output(group[-1], ks[-1][1])
    first = group[0]
    if got and not m and type(first.layer).multi_output and not type(group[-1].layer).multi_output and \
            got[0] == len(first.output_shape) != first.batch and tuple(got[1:]) == want:
        return (got[0], *want)
    return want


def _check_group(i: int, group: list, measured: Measurement, ks) -> tuple[dict, list[str]]:
    """The last row of a group measured as one torch call: its output shape, and the group's sums of
    parameters, torch FLOPs and bias adds (the other-ops formula needs each layer's own inputs,
    which torch's call does not show). ``ks``: the folds of each row's inputs and output."""
    row, issues = group[-1], []
    k_out = ks[-1][1]
    names = f" (the sum over {', '.join(r.name for r in group)}: one torch call)"
    want, got = _group_output(group, ks, measured.shapes[i]), measured.shapes[i]
    if got != want:
        seen = "not seen" if got is None else size_text(_shown(row, got, k_out)) + _batch_note(row, got, k_out)
        issues.append(f"output shape: alexcost {size_text(row.output_shape)}, torch {seen}")
    params = sum(r.params for r in group)
    if params != measured.params[i]:
        issues.append(f"params: alexcost {commas(params)}{names}, torch numel {commas(measured.params[i])}")
    t_exp, t = sum(declared_torch(r) for r in group), measured.torch_flops[i]
    if t is not None and t != t_exp:
        issues.append(f"FLOPs: alexcost {commas(t_exp)}{names}, torch's counter {commas(t)}")
    bias = None if measured.bias_adds is None else measured.bias_adds[i]
    adds = sum(r.bias_adds for r in group)
    if bias is not None and bias != adds:
        issues.append(f"bias adds: alexcost {commas(adds)}{names}, torch {commas(bias)}")
    return {"measured_shape": _shown(row, got, k_out), "torch_expected": declared_torch(row), "torch": t,
            "measured_bias_adds": bias, "measured_other_ops": None}, issues


def _expected_inputs(row: LayerCost, k_in) -> tuple:
    return tuple(_batched(row, s, k) for s, k in zip(row.input_shapes, k_in))


def _check_fvcore(i: int, row: LayerCost, measured: Measurement, first: tuple, rows,
                  shares: list[int]) -> tuple[dict, list[str]]:
    declared = declared_fvcore(row)
    out = {"fvcore_declared": declared, "fvcore_expected": None, "fvcore": None, "fvcore_unsupported": (),
           "fvcore_check": "skipped"}
    if measured.fvcore is None:
        return out, []
    if first[i] != i:
        return {**out, "fvcore_check": "repeat"}, []
    count = measured.fvcore[i]
    if count is None:
        return {**out, "fvcore_check": "total"}, []
    group = [j for j in range(len(rows)) if first[j] == i]
    expected = sum(shares[j] for j in group)
    out.update(fvcore_expected=expected, fvcore=count, fvcore_unsupported=tuple(measured.fvcore_unsupported[i]),
               fvcore_check="calls" if len(group) > 1 else "layer")
    if count == expected:
        return out, []
    if len(group) > 1:
        why = f" (the sum over the {len(group)} calls of its module)"
    elif shares[i] == 0 and declared:
        why = " (0: nothing reads its output, and fvcore's trace drops it)"
    elif declared is None:
        why = f" (0: {row.type} declares fvcore cannot count it)"
    else:
        why = f" ({row.type} declares fvcore_count)" if declared != row.macs else ""
    what = "MACs" if shares[i] == declared == row.macs and len(group) == 1 else "fvcore"
    return out, [f"{what}: alexcost {commas(expected)}{why}, fvcore {commas(count)}"]


# -- the whole network ----------------------------------------------------------------------------

def reconcile(cost: NetworkCost, measured: Measurement, first_use=None, folds=None,
              fvcore_calls=()) -> Reconciliation:
    """Compare ``cost`` with ``measured`` layer by layer, then the totals. ``first_use[i]`` is the
    index of the first layer running the same module as layer ``i`` (default: every layer its own);
    ``folds`` the values folded into the batch (`layer_folds`; default: none); ``fvcore_calls``:
    ``(layer, equation)`` for a layer read from an einsum (None: a matmul) inside a function fx does
    not trace into, which fvcore counts as that call: `fvcore_einsum` (a matmul: its MACs)."""
    rows = cost.layers
    ks = layer_folds(cost, folds or {})
    group_ks: dict[int, list] = {}
    n = len(rows)
    first = tuple(range(n)) if first_use is None else tuple(first_use)
    read = read_layers(cost)
    shares = [fvcore_expected(row) if read[i] else 0 for i, row in enumerate(rows)]
    holders = measured.holders or tuple(range(n))
    groups: dict[int, list] = {}
    for i, row in enumerate(rows):
        groups.setdefault(holders[i], []).append(row)
        group_ks.setdefault(holders[i], []).append(ks[i])
    calls = [([j for j in range(n) if holders[j] == holder], equation) for holder, equation in measured.einsums]
    for members, equation in calls + [([i], equation) for i, equation in fvcore_calls]:
        if read[members[-1]]:  # the call's layers as fvcore counts them, all filed under the last
            macs = sum(rows[j].macs for j in members)
            counted = macs if equation is None else fvcore_einsum(equation, macs)
            shares[members[-1]] += counted - sum(shares[j] for j in members)
    checks, problems = [], []
    for i, row in enumerate(rows):
        seen, issues = _check_layer(i, row, measured, groups[holders[i]], group_ks[holders[i]])
        fv, fv_issues = _check_fvcore(i, row, measured, first, rows, shares)
        issues += fv_issues
        group = [j for j in range(n) if first[j] == first[i]]
        checks.append(LayerCheck(
            i, row.name, row.type, row.output_shape, seen["measured_shape"], row.params, measured.params[i],
            row.macs, row.bias_adds, row.other_ops, fv["fvcore_expected"], fv["fvcore"], fv["fvcore_unsupported"],
            seen["torch_expected"], seen["torch"], rows[first[i]].name if first[i] != i else None, tuple(issues),
            fvcore_declared=fv["fvcore_declared"], fvcore_share=shares[i], fvcore_check=fv["fvcore_check"],
            read=read[i], calls=len(group),
            group_macs=sum(rows[j].macs for j in group), measured_bias_adds=seen["measured_bias_adds"],
            measured_other_ops=seen["measured_other_ops"],
            measured_with=tuple(r.name for r in groups[holders[i]]) if len(groups[holders[i]]) > 1 else ()))
        problems += [f"{row.name}: {p}" for p in issues]
    totals = cost.totals
    torch_expected = sum(c.torch_expected for c in checks)
    if torch_expected != measured.torch_total:
        what = f"2*MACs = {commas(torch_expected)}" if torch_expected == 2 * totals.macs \
            else f"expects torch's counter {commas(torch_expected)}"
        problems.append(f"total: alexcost {what}, torch's counter {commas(measured.torch_total)}")
    fv_ran = measured.fvcore is not None
    if fv_ran:
        expected = sum(shares)
        if expected != measured.fvcore_total:
            problems.append(f"total: alexcost expects fvcore {commas(expected)}, fvcore {commas(measured.fvcore_total)}")
    if measured.total_params is not None and measured.total_params != totals.params:
        problems.append(f"total: alexcost params {commas(totals.params)}, torch numel {commas(measured.total_params)}")
    return Reconciliation(cost.model, measured.device, cost.batch, measured.torch_version, measured.fvcore_note,
                          fv_ran, tuple(checks), totals.macs, totals.bias_adds, totals.other_ops,
                          measured.fvcore_total, measured.torch_total, tuple(problems), totals.params,
                          measured.total_params)
