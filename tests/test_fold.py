"""``nn.Fold`` and ``F.fold`` (`Fold`, torch's col2im: columns summed back into the tensor whose windows they are)
read from torch modules, against torch on the CPU: output shape, parameters, FlopCounterMode's forward FLOPs and a
training step's FLOPs and saved bytes (`module_step`); its adds against the count torch's own fold of ones
gives; an overlapping fold (VOLO's), whose output torch keeps in a storage the columns' size, an unfold with
gaps, whose columns torch keeps in a storage the input's size, and what torch refuses, refused at the node.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from alexcost import Fold, SpecError  # noqa: E402
from alexcost.layers import Grads  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import refused_at_the_node, step_agrees  # noqa: E402


class Windows(nn.Module):
    """Columns from a projection pooled to the grid of window positions, weighted by a projection of
    themselves, folded back to 8 x 8 (with ``module``: an nn.Fold), then a convolution."""

    def __init__(self, grid, module=False, **args):
        super().__init__()
        kernel = args["kernel_size"] if isinstance(args["kernel_size"], tuple) else (args["kernel_size"],) * 2
        self.grid, self.args = grid, args
        self.a, self.b = nn.Conv2d(3, 4 * kernel[0] * kernel[1], 1), nn.Conv2d(4, 2, 1)
        self.mix = nn.Linear(grid[0] * grid[1], grid[0] * grid[1])
        self.fold = nn.Fold((8, 8), **args) if module else None

    def forward(self, x):
        columns = F.adaptive_avg_pool2d(self.a(x), self.grid).flatten(2)
        columns = columns * self.mix(columns).sigmoid()
        y = self.fold(columns) if self.fold is not None else F.fold(columns, (8, 8), **self.args)
        return self.b(y)


FOLDS = {  # name -> (arguments, the grid of window positions over 8 x 8); the columns no more than the output
    "windows side by side": (dict(kernel_size=4, stride=4), (2, 2)),
    "windows with gaps": (dict(kernel_size=2, stride=3), (3, 3)),                     # (8-2)//3+1 = 3
    "padded, dilated": (dict(kernel_size=(2, 2), dilation=(2, 1), padding=(1, 0), stride=(3, 2)), (3, 4)),
}
"""(8+2-3)//3+1 = 3 windows of rows 2 apart, starting at -1, 2, 5; (8-2)//2+1 = 4 of columns."""

OVERLAPPING = {
    "overlapping, padded": (dict(kernel_size=3, padding=1, stride=1), (8, 8)),
    "past the edge": (dict(kernel_size=3, padding=1, stride=3), (3, 3)),
}


@pytest.mark.parametrize("module", [False, True], ids=["F.fold", "nn.Fold"])
@pytest.mark.parametrize("name", FOLDS)
def test_a_fold_reads_as_torch_runs_it(name, module):
    args, grid = FOLDS[name]
    torch.manual_seed(0)
    net = Windows(grid, module, **args).eval()
    imported = from_module(net, (3, 8, 8))
    assert sum(isinstance(layer, Fold) for layer in imported.network.layers) == 1
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = net(torch.randn(2, 3, 8, 8))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    assert imported.params == sum(p.numel() for p in net.parameters())
    assert 2 * imported.cost(batch=2).totals.macs == counter.get_total_flops()
    torch.manual_seed(0)
    step_agrees(Windows(grid, module, **args), (3, 8, 8))


@pytest.mark.parametrize("name", FOLDS)
def test_its_adds_are_the_column_elements_torch_folds_into_the_output(name):
    """One add per column element that lands in the output: the sum of torch's fold of ones (each output
    element counts the windows covering it). Backward: a copy (im2col), no ops; nothing kept."""
    args, grid = FOLDS[name]
    windows = grid[0] * grid[1]
    layer = Fold(output_size=(8, 8), **args)
    kernel = args["kernel_size"] if isinstance(args["kernel_size"], tuple) else (args["kernel_size"],) * 2
    x = (4 * kernel[0] * kernel[1], windows)
    y = layer.output_shape(x)
    assert y == (4, 8, 8)
    landed = int(F.fold(torch.ones(1, *x), (8, 8), **args).sum())
    assert layer.other_ops(x, y) == landed
    assert layer.macs(x, y) == 0
    assert layer.backward_other_ops(x, y, Grads((True,), False, False), batch=2) == 0


@pytest.mark.parametrize("name", OVERLAPPING)
def test_an_overlapping_fold_is_refused_as_its_storage_is_the_columns(name):
    """torch's col2im returns the output in a storage the columns' size where they are more: a training step
    keeps those bytes, which alexcost's memory counts cannot hold."""
    args, grid = OVERLAPPING[name]
    columns = torch.randn(2, 36, grid[0] * grid[1])
    out = F.fold(columns, (8, 8), **args)
    assert out.untyped_storage().nbytes() == columns.numel() * 4 > out.numel() * 4     # the premise
    with pytest.raises(SpecError, match=r"Fold: torch returns its output \[4, 8, 8\] in a storage the size of "
                                        r"its columns \(36 x "):
        from_module(Windows(grid, **args), (3, 8, 8))


def test_an_unfold_with_gaps_is_refused_as_its_storage_is_the_input():
    """The same for im2col: windows 2 wide, 3 apart leave input elements out; torch's columns live in a storage
    the input's size."""
    x = torch.randn(2, 4, 8, 8)
    columns = F.unfold(x, 2, stride=3)
    assert columns.untyped_storage().nbytes() == x.numel() * 4 > columns.numel() * 4      # the premise
    refused_at_the_node(lambda x: F.unfold(x, 2, stride=3), (4, 8, 8),
                        r"Unfold: torch returns its output \[16, 9\] in a storage the size of its input "
                        r"\(4 x 8 x 8 = 256 elements per sample, more than the output's 144\)")


def test_timm_volo_outlook_attention_is_refused_at_its_fold():
    pytest.importorskip("timm")
    from timm.models.volo import OutlookAttention

    class Outlook(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = OutlookAttention(16, num_heads=2, kernel_size=3, padding=1, stride=2)

        def forward(self, x):
            return self.attention(x.permute(0, 2, 3, 1))

    with pytest.raises(SpecError, match=r"function 'fold'.*in a storage the size of its columns"):
        from_module(Outlook(), (16, 8, 8))


@pytest.mark.parametrize("forward, message", [
    (lambda x: F.fold(x.flatten(2), (4, 4), 2, stride=2), r"expected size of input's dimension 2 to match the "
                                                        r"calculated number of sliding blocks 2 \* 2 = 4, but got "
                                                        r"input.size\(2\)=16"),
    (lambda x: F.fold(x.flatten(2)[:, :3], (2, 2), 2), r"divisible by the product of kernel_size"),
    (lambda x: F.fold(x, (4, 4), 2), r"Fold expects a \(C \* kH \* kW, L\) input per sample"),
])
def test_what_torch_refuses_is_refused_at_the_node(forward, message):
    refused_at_the_node(forward, (4, 4, 4), message)
    with pytest.raises(RuntimeError):
        forward(torch.randn(2, 4, 4, 4))


def test_a_fold_of_a_parameter_alone_stays_refused():
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.columns = nn.Parameter(torch.randn(1, 16, 4))

        def forward(self, x):
            return x + F.fold(self.columns, (4, 4), 2, stride=2)

    with pytest.raises(SpecError, match=r"fold.*a computation on parameters or buffers alone"):
        from_module(Module(), (4, 4, 4))
