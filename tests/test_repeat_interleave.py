"""``x.repeat_interleave(n, dim)``, read as torch runs it (unsqueeze, expand, a contiguous copy, a view), against torch.

At ``dim=0`` each sample's ``n`` copies are its own rows: the batch folded by ``n``, as timm's GCViT
repeats a global query per window (``q.repeat_interleave(B // q.shape[0], dim=0)`` with ``B`` the windows
of every sample). Each module is read by ``from_module`` and checked against torch on the CPU:
parameters, output shape, forward MACs as FlopCounterMode's FLOPs / 2, and a training step's FLOPs and
saved bytes (`module_step`). What is not read so is refused at its node.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import forward_against_torch, step_agrees  # noqa: E402


class GlobalQuery(nn.Module):
    """Windows of each sample folded into the batch attend with one query per sample, repeated per window."""

    def __init__(self, dim=8):
        super().__init__()
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)

    def forward(self, x):                           # x: (N, 4, 4, 8): 4 windows of 4 tokens
        windows = x.reshape(-1, 4, 8)               # (N*4, 4, 8)
        q = self.q(x.mean(1))                       # (N, 4, 8): a query per token, from the sample
        B = windows.shape[0]
        q = q.repeat_interleave(B // q.shape[0], dim=0)  # (N*4, 4, 8)
        k, v = self.kv(windows).chunk(2, dim=-1)
        out = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        return out.reshape(x.shape[0], 4, 4, 8)


class Repeat(nn.Module):
    """``then`` of the output of a Linear."""

    def __init__(self, then):
        super().__init__()
        self.fc, self.then = nn.Linear(8, 8), then

    def forward(self, x):
        return self.then(self.fc(x))


class Table(nn.Module):
    """A learned table's sines, each repeated twice along ``dim`` (a rotary table's layout: timm's mixed RoPE),
    added to a Linear's output: computed once per pass."""

    def __init__(self, dim=-1, n=2):
        super().__init__()
        self.fc, self.freqs, self.dim, self.n = nn.Linear(8, 8), nn.Parameter(torch.randn(5, 8 // n)), dim, n

    def forward(self, x):
        return self.fc(x) + self.freqs.sin().repeat_interleave(self.n, self.dim)


class Rows(Table):
    def forward(self, x):                           # (5, 8) repeated along dim 0: (10, 8) rows, viewed as (5, 16)
        return self.fc(x).view(-1, 5, 8).mean(1, keepdim=True) + self.freqs.cos().repeat_interleave(2, 0)[::2]


class Raw(Table):
    def forward(self, x):                           # the parameter itself, repeated (MViT's position embeddings)
        return self.fc(x) + torch.repeat_interleave(self.freqs, 2, dim=1)


CASES = {
    "a parameter, along its last dim": (lambda: Raw(), (5, 8)),
    "a table computed once per pass, along its last dim": (lambda: Table(), (5, 8)),
    "a table computed once per pass, along its first dim": (lambda: Rows(n=1), (5, 8)),
    "a global query per window": (lambda: GlobalQuery(), (4, 4, 8)),
    "along dim 1": (lambda: Repeat(lambda y: y.repeat_interleave(3, dim=1) * 2), (5, 8)),
    "along the last dim": (lambda: Repeat(lambda y: torch.repeat_interleave(y, 2, dim=-1).sigmoid()), (5, 8)),
    "along the batch, viewed back": (lambda: Repeat(lambda y: y.repeat_interleave(2, 0).view(y.shape[0], -1)),
                                     (5, 8)),
    "once, a copy": (lambda: Repeat(lambda y: y.repeat_interleave(1, dim=1) + y), (5, 8)),
    "the batch over itself, once": (lambda: Repeat(lambda y: y.repeat_interleave(y.shape[0] // y.shape[0], dim=0)
                                                   * y), (5, 8)),
}


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    forward_against_torch(build(), shape, batch=3)


@pytest.mark.parametrize("case", CASES)
def test_training_step_matches_torch(case):
    build, shape = CASES[case]
    torch.manual_seed(0)
    step_agrees(build(), shape, batch=3)


def test_torch_runs_it_as_unsqueeze_expand_copy_view():
    """The reading's premise, torch's autograd graph of repeat_interleave with a number of repeats."""
    x = torch.randn(2, 3, requires_grad=True)
    names, fn = [], x.repeat_interleave(2, dim=0).grad_fn
    while fn is not None and fn.next_functions:
        names.append(type(fn).__name__)
        fn = fn.next_functions[0][0]
    assert names == ["ViewBackward0", "CloneBackward0", "ExpandBackward0", "UnsqueezeBackward0"]


REFUSED = {
    "without a dim": (lambda y: y.repeat_interleave(2).view(y.shape[0], -1), "names"),
    "repeats given as a tensor": (lambda y: y.repeat_interleave(torch.tensor([1, 2, 1, 2, 1]), dim=1), "repeats"),
    "with output_size": (lambda y: y.repeat_interleave(2, dim=1, output_size=10), "output_size"),
    "once, a transposed tensor": (lambda y: y.transpose(1, 2).repeat_interleave(1, dim=1), "not contiguous"),
    "a folded output": (lambda y: y.repeat_interleave(2, dim=0), "returns a tensor"),
}


def test_a_table_computed_once_per_pass_repeated_once_is_refused_at_the_node():
    with pytest.raises(SpecError, match="2 or more times") as err:
        from_module(Table(n=1), (5, 8))
    assert "fx node 'repeat_interleave'" in str(err.value)


@pytest.mark.parametrize("case", REFUSED)
def test_what_is_not_read_is_refused_at_the_node(case):
    then, message = REFUSED[case]
    with pytest.raises(SpecError, match=message) as err:
        from_module(Repeat(then), (5, 8))
    assert "fx node" in str(err.value)


def _gcvit(depths=(1, 2, 2, 1)):
    gcvit = pytest.importorskip("timm.models.gcvit")
    return gcvit.GlobalContextVit(num_classes=10, img_size=64, window_size=(4, 2, 2, 1), depths=depths,
                                  embed_dim=16, num_heads=(1, 2, 2, 4))


def test_timm_gcvit_matches_torch():
    """GCViT: windows folded into the batch, a global query repeated per window (``B // N``)."""
    forward_against_torch(_gcvit(), (3, 64, 64), batch=2)


def test_timm_gcvit_training_step_matches_torch():
    torch.manual_seed(0)
    step_agrees(_gcvit(), (3, 64, 64), batch=2)


def test_timm_gcvit_matches_fvcore():
    """fvcore's total at one sample against the counts alexcost says fvcore gives (its MACs). Two blocks a
    stage, so that every stage's global query is used (fvcore's trace drops a computation whose result no
    later call reads, which torch runs and alexcost counts)."""
    pytest.importorskip("fvcore")
    import warnings

    from fvcore.nn import FlopCountAnalysis

    module = _gcvit(depths=(2, 2, 2, 2)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, torch.randn(1, 3, 64, 64))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = int(analysis.total())
    net = from_module(module, (3, 64, 64)).network
    assert total == sum(layer.fvcore_count(x, y) for layer, x, y in zip(net.layers, net.input_shapes,
                                                                         net.output_shapes))
