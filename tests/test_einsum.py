"""``torch.einsum`` read as a batch of matrix products (a `Matmul`, after a `Transpose` of an operand whose
last two letters are swapped), against torch on the CPU: the output's shape, FlopCounterMode's forward and
backward FLOPs and the bytes autograd keeps in a training step (`module_step`); every other equation is
refused, naming it.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alexcost import Matmul, SpecError, Transpose  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from module_step import agree  # noqa: E402


class Heads(nn.Module):
    """q, k, v projected from a (L, 8) sample and split into 2 heads of 4 (permuted views, as attention
    makes them), the einsum of two of them, then a projection of what comes out."""

    def __init__(self, call, m=7):
        super().__init__()
        self.call = call
        self.qkv, self.out = nn.Linear(8, 24), nn.Linear(m, 3)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 2, 12).permute(0, 2, 1, 3).chunk(3, dim=-1)   # each (b, 2, n, 4)
        return self.out(self.call(q, k, v))                                   # (b, 2, n, m) -> (b, 2, n, 3)


EQUATIONS = {  # name -> (call, the layer kinds read after the projection's views, m)
    "q k^T (maxvit)": (lambda q, k, v: torch.einsum("B H I D, B H J D -> B H I J", q, k), ["Transpose", "Matmul"]),
    "scores v": (lambda q, k, v: torch.einsum("bhij,bhjd->bhid", torch.einsum("bhid,bhjd->bhij", q, k).softmax(-1),
                                              v), ["Transpose", "Matmul", "Softmax", "Matmul"], 4),
    "both swapped": (lambda q, k, v: torch.einsum("bhdi,bhjd->bhij", q.transpose(-2, -1), k),
                     ["Transpose", "Transpose", "Transpose", "Matmul"]),
    "a list of operands": (lambda q, k, v: torch.einsum("bhik,bhjk->bhij", [q, k]), ["Transpose", "Matmul"]),
}


@pytest.mark.parametrize("name", EQUATIONS)
def test_einsum_reads_as_a_matmul_and_trains_as_torch(name):
    call, kinds, *m = EQUATIONS[name]
    torch.manual_seed(0)
    module = Heads(call, *m).eval()
    imported = from_module(module, (7, 8))
    layers = imported.network.layers
    start = next(i for i, layer in enumerate(layers) if type(layer).__name__ == "Permute") + 1
    read = [type(layer).__name__ for layer in layers[start:] if type(layer).__name__ in ("Transpose", "Matmul",
                                                                                          "Softmax")]
    assert read == kinds
    out = module(torch.randn(2, 7, 8))
    assert (2, *imported.network.output_shape) == tuple(out.shape)
    matmul = next(i for i, layer in enumerate(layers) if isinstance(layer, Matmul))
    assert imported.network.cost().layers[matmul].macs == 2 * 7 * 7 * 4      # heads * i * j * k, by hand
    theirs, ours = agree(Heads(call, *m), (7, 8))
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_a_transpose_is_a_view_of_the_operand():
    layer = Transpose(dim0=3, dim1=4)
    assert layer.output_shape((2, 7, 4, 5)) == (2, 7, 5, 4)


@pytest.mark.parametrize("call, message", [
    (lambda q, k, v: torch.einsum("bhid,bhjd->bhji", q, k), r"einsum 'bhid,bhjd->bhji' on .* is not a batch of "
                                                            r"matrix products"),
    (lambda q, k, v: torch.einsum("bhid,bhid->bhi", q, k).unsqueeze(-1).expand(-1, -1, -1, 7),
     r"einsum 'bhid,bhid->bhi'"),
    (lambda q, k, v: torch.einsum("bhid,bhjd", q, k), r"einsum 'bhid,bhjd' on"),
    (lambda q, k, v: torch.einsum("...id,...jd->...ij", q, k), r"einsum '\.\.\.id,\.\.\.jd->\.\.\.ij'"),
    (lambda q, k, v: torch.einsum("bhid,bhjd,bhje->bhie", q, k, v),
     r"einsum of 3 operand\(s\)"),
    (lambda q, k, v: torch.einsum("bhid,bhjd->bhij", q[:, :1], k),
     r"einsum 'bhid,bhjd->bhij' on a tensor of shape \[N, 1, 7, 4\] and a tensor of shape \[N, 2, 7, 4\]"),
])
def test_other_equations_are_refused_naming_them(call, message):
    with pytest.raises(SpecError, match=r"function 'einsum' .*" + message):
        from_module(Heads(call), (7, 8))


class TableProduct(nn.Module):
    """SAM's decomposed relative position terms on a (4, 5, 8) grid of queries: each query multiplied by rows of
    a table gathered by a fixed index, along H (``"bhwc,hkc->bhwk"``) and along W (``"bhwc,wkc->bhwk"``),
    the two added as torch broadcasts them (``[:, :, :, :, None]`` and ``[:, :, :, None, :]``)."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.table_h, self.table_w = nn.Parameter(torch.randn(7, 8)), nn.Parameter(torch.randn(9, 8))
        self.register_buffer("index_h", torch.arange(4)[:, None] - torch.arange(4)[None, :] + 3)
        self.register_buffer("index_w", torch.arange(5)[:, None] - torch.arange(5)[None, :] + 4)
        self.out = nn.Linear(20, 3)

    def forward(self, x):                                          # x: (N, 4, 5, 8)
        q = self.q(x)
        rel_h = torch.einsum("bhwc,hkc->bhwk", q, self.table_h[self.index_h])     # (N, 4, 5, 4)
        rel_w = torch.einsum("bhwc,wkc->bhwk", q, self.table_w[self.index_w])     # (N, 4, 5, 5)
        bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]                  # (N, 4, 5, 4, 5)
        return self.out(bias.reshape(x.shape[0], 20, 20))


def test_a_product_with_a_gathered_table_counts_as_torch():
    """FlopCounterMode's FLOPs (torch runs each einsum as one bmm), the output shape and the parameters; each
    einsum a Matmul of as many MACs as the bmm, 4*5 queries of 8 features by 4 (along H) or 5 (along W) keys."""
    from module_step import forward_against_torch

    torch.manual_seed(0)
    cost = forward_against_torch(TableProduct(), (4, 5, 8), batch=2)
    products = [row.macs for row in cost.layers if row.type == "Matmul"]
    assert products == [2 * 4 * 5 * 8 * 4, 2 * 4 * 5 * 8 * 5]
    assert cost.totals.buffers == 4 * 4 + 5 * 5                     # the two indices, the module's buffers


@pytest.mark.parametrize("equation, table", [("bhwc,kc->bhwk", (6, 8)), ("bhwc,hck->bhwk", (6, 8, 3)),
                                             ("bhwc,whk->bhwk", (6, 4, 3))])
def test_other_products_with_a_table_are_refused(equation, table):
    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(*table))
            self.register_buffer("index", torch.arange(4 if equation[5] != "w" else 5))

        def forward(self, x):                                      # x: (N, 4, 5, 8)
            return torch.einsum(equation, x, self.table[self.index]).flatten(1)

    Module()(torch.randn(2, 4, 5, 8))                               # torch runs it
    with pytest.raises(SpecError, match=r"einsum '.*' on .* nor a product with a table"):
        from_module(Module(), (4, 5, 8))
