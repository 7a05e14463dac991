"""``torch.autocast`` in an imported module's training step, against a real CPU step under autocast
(tests/module_step.py: FlopCounterMode's backward FLOPs, the bytes saved_tensors_hooks sees), and
its refusals.

Under bfloat16 autocast on the CPU a convolution or a linear layer casts its input and its weight
to bfloat16 (autograd keeps the copies), what follows it runs in bfloat16, and the parameters,
their gradients and the optimizer state stay float32.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from alexcost import Conv2d, Network, ReLU, SpecError  # noqa: E402
from alexcost.engine.modes import StepModes  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.training import training_cost  # noqa: E402
from module_step import alexcost_step, same, torch_step  # noqa: E402

SHAPE = (4, 8, 8)
BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


class Body(nn.Module):
    """Layers of every kind the tests use; ``body`` is the forward."""

    def __init__(self, body):
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.bare = nn.BatchNorm2d(4, affine=False)
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def _blocks(self, x):  # the issue's: two 3x3 convolution blocks, all under autocast
    with torch.autocast(**BF16):
        return F.relu(self.c2(F.relu(self.c1(x))))


def _plain_blocks(self, x):
    return F.relu(self.c2(F.relu(self.c1(x))))


def _conv(self, x):
    with torch.autocast(**BF16):
        return self.c1(x)


def _linear(self, x):
    with torch.autocast(**BF16):
        return self.fc(F.max_pool2d(x, 2).flatten(1))


def _batchnorm(self, x):
    with torch.autocast(**BF16):
        return F.relu(self.bn(self.c1(x)))


def _batchnorm_no_affine(self, x):
    with torch.autocast(**BF16):
        return self.c2(self.bare(self.c1(x)))


def _residual(self, x):
    with torch.autocast(**BF16):
        y = F.relu(self.bn(self.c1(x)))
        return F.relu(self.c2(y) + y)


def _residual_across(self, x):  # a bfloat16 branch added to the float32 input: float32 after
    with torch.autocast(**BF16):
        y = self.c1(x)
    return F.relu(y + x)


def _pooling(self, x):
    with torch.autocast(**BF16):
        y = nn.functional.max_pool2d(F.relu(self.c1(x)), 2)
    return F.adaptive_avg_pool2d(F.avg_pool2d(y, 1), 2)


def _partial(self, x):  # float32 first, bfloat16 in the middle, bfloat16 flowing out of it
    y = F.relu(self.c1(x))
    with torch.autocast(**BF16):
        y = F.max_pool2d(self.bn(self.c2(y)), 2)
    y = F.relu(y).flatten(1)
    with torch.autocast(**BF16):
        return self.fc(y)


def _two_regions(self, x):
    with torch.autocast(**BF16):
        y = F.relu(self.c1(x))
    y = self.bare(y)
    with torch.autocast(**BF16):
        return self.c2(y)


MODELLED = [_blocks, _conv, _linear, _batchnorm, _batchnorm_no_affine, _residual, _residual_across, _pooling,
            _partial, _two_regions]


@pytest.mark.parametrize("body", MODELLED, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("batch", [1, 2])
def test_a_step_under_autocast_is_torchs(body, batch):
    torch.manual_seed(0)
    module = Body(body)
    theirs = torch_step(module, SHAPE, batch)
    assert theirs.refused is None
    assert alexcost_step(module, SHAPE, batch) == theirs


def _float16(self, x):
    with torch.autocast("cpu", dtype=torch.float16):
        return F.relu(self.c2(F.relu(self.bn(self.c1(x)))))


def _to_linear(self, x):
    with torch.autocast(**BF16):
        return self.fc(F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x)))), 2).flatten(1))


@pytest.mark.parametrize("body, frozen", [
    (_float16, ()), (_to_linear, ("c1.weight",)), (_to_linear, ("c2.weight",)), (_to_linear, ("c1.weight", "c1.bias")),
    (_to_linear, ("fc.weight",)), (_to_linear, ("c2.bias", "fc.bias"))], ids=str)
def test_float16_and_frozen_parameters_under_autocast_are_torchs(body, frozen):
    """A frozen weight is still cast and kept where its layer keeps it; a frozen linear weight
    with an input that needs a gradient is kept, its input not."""
    module = Body(body)
    for name, p in module.named_parameters():
        p.requires_grad_(name not in frozen)
    for batch in (1, 2):
        theirs = torch_step(module, SHAPE, batch)
        assert theirs.refused is None
        assert alexcost_step(module, SHAPE, batch) == theirs


def test_torchvisions_resnet18_under_autocast_is_torchs():
    """Every kind a ResNet runs has its rule: convolutions, batch norm, ReLU in place, max pooling, the
    residual added in place, adaptive average pooling, flatten and the linear head."""
    torchvision = pytest.importorskip("torchvision")

    class Low(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torchvision.models.resnet18(num_classes=10)

        def forward(self, x):
            with torch.autocast(**BF16):
                return self.net(x)

    torch.manual_seed(0)
    module = Low()
    theirs = torch_step(module, (3, 32, 32), 2)
    assert theirs.refused is None
    assert alexcost_step(module, (3, 32, 32), 2) == theirs


ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu,
               "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu,
               "silu_": lambda t: F.silu(t, inplace=True), "leaky_relu": F.leaky_relu,
               "leaky_relu_": lambda t: F.leaky_relu(t, 0.1, inplace=True), "relu6": F.relu6,
               "hardswish": F.hardswish, "hardswish_": lambda t: F.hardswish(t, inplace=True),
               "hardsigmoid": F.hardsigmoid, "dropout": nn.Dropout(0.5), "dropout2d": nn.Dropout2d(0.5),
               "mul": lambda t: t * torch.sigmoid(t)}


@pytest.mark.parametrize("where", ["inside", "after"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_dropout_and_products_follow_their_input(name, where):
    """Inside the region they run in bfloat16 between two convolutions; after it, on its bfloat16
    output (a product with the float32 input then gives float32)."""
    def body(self, x):
        with torch.autocast(**BF16):
            y = self.c1(x)
            if where == "inside":
                return self.c2(self.act(y))
        return self.act(y) * x

    module = Body(body)
    module.act = ACTIVATIONS[name] if isinstance(ACTIVATIONS[name], nn.Module) else _Function(ACTIVATIONS[name])
    for batch in (1, 2):
        torch.manual_seed(1)
        theirs = torch_step(module, SHAPE, batch)
        assert theirs.refused is None
        assert alexcost_step(module, SHAPE, batch) == theirs


class _Function(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def test_the_issues_two_blocks_keep_bfloat16_copies():
    """Batch ``n``: the input's bfloat16 copy and both ReLU outputs (2 bytes each) and each weight's
    bfloat16 copy once (float32: the input and both ReLU outputs at 4 bytes)."""
    for n in (1, 3):
        elements, weight = n * 4 * 8 * 8, 4 * 4 * 3 * 3
        assert torch_step(Body(_blocks), SHAPE, n).saved_bytes == 3 * elements * 2 + 2 * weight * 2
        assert alexcost_step(Body(_blocks), SHAPE, n).saved_bytes == 3 * elements * 2 + 2 * weight * 2
        assert alexcost_step(Body(_plain_blocks), SHAPE, n).saved_bytes == 3 * elements * 4
        ours, theirs = alexcost_step(Body(_blocks), SHAPE, n), torch_step(Body(_plain_blocks), SHAPE, n)
        assert ours.backward_flops == theirs.backward_flops  # the same products, in another dtype


def test_parameters_gradients_and_optimizer_state_stay_float32():
    module = Body(_batchnorm)
    cost = training_cost(from_module(module, SHAPE), 2, device="cpu", optimizer="adam")
    trainable = sum(p.numel() for name, p in module.named_parameters() if name.startswith(("c1.", "bn.")))
    assert cost.grad_bytes == 4 * trainable
    assert cost.optimizer_bytes == 2 * 4 * trainable + 4 * 4  # Adam: two moments, a step count per tensor
    assert cost.weight_bytes == 4 * trainable
    assert cost.buffer_bytes == 2 * 4 * 4 + 8  # running mean and variance, float32; num_batches_tracked


def test_the_records_name_the_cast_copies():
    rows = training_cost(from_module(Body(_blocks), SHAPE), 2, device="cpu").layers
    kept = {t.what: t.bytes for t in rows[0].saved}
    assert kept == {"input cast to bfloat16": 2 * 4 * 8 * 8 * 2, "weight cast to bfloat16": 4 * 4 * 9 * 2}
    assert sum(r.saved_bytes for r in rows) == torch_step(Body(_blocks), SHAPE, 2).saved_bytes


# -- what is refused ----------------------------------------------------------------------------------------
def _softmax(self, x):
    with torch.autocast(**BF16):
        return torch.softmax(self.c1(x), 1)


def _conv_after(self, x):  # a bfloat16 tensor into a float32 convolution: torch refuses
    with torch.autocast(**BF16):
        y = self.c1(x)
    return self.c2(y)


def _float_after(self, x):  # x.float() of a bfloat16 tensor converts it: torch's step differs from bfloat16's
    with torch.autocast(**BF16):
        y = self.c1(x)
    return self.c2(F.relu(y).float())


def _shared(self, x):  # one convolution's weight cast in one region, used twice
    with torch.autocast(**BF16):
        return self.c1(F.relu(self.c1(x)))


def _learned_shift(self, x):  # a bfloat16 tensor plus a float32 parameter: torch promotes it
    with torch.autocast(**BF16):
        y = self.c1(x)
    return F.relu(y + self.shift)


def test_a_parameter_read_as_an_input_is_refused_naming_the_layer():
    module = Body(_learned_shift)
    module.shift = nn.Parameter(torch.zeros(4, 1, 1))
    assert torch_step(module, SHAPE).refused is None
    with pytest.raises(SpecError, match=r"\(Add\): reads a bfloat16 tensor made under torch.autocast and reads a "
                                        r"parameter"):
        training_cost(from_module(module, SHAPE), 2, device="cpu")


@pytest.mark.parametrize("body, torch_runs, message", [
    (_softmax, True, r"'softmax'.*\(Softmax\): runs under torch.autocast: alexcost does not model what Softmax "
                     r"computes"),
    (_conv_after, False, r"'c2' \(Conv2d\): Input type \(bfloat16\) and weight type"),
    (_float_after, True, r"method 'float' .* reads a tensor's dtype as float32 in a module that runs torch.autocast"),
    (_shared, True, r"'c1.*' \(Conv2d\) runs under torch.autocast and its module runs 2 times"),
], ids=["a kind without an autocast rule", "a convolution fed bfloat16 outside autocast (torch refuses it too)",
        "a conversion to float32", "a module called twice"])
def test_what_alexcost_does_not_follow_under_autocast_is_refused_naming_the_layer(body, torch_runs, message):
    assert (torch_step(Body(body), SHAPE).refused is None) == torch_runs
    with pytest.raises(SpecError, match=message):
        training_cost(from_module(Body(body), SHAPE), 2, device="cpu")


@pytest.mark.parametrize("outer", ["no_grad", "checkpoint", "no_cache", "float16_step"])
def test_what_is_not_modelled_is_refused(outer):
    def body(self, x):
        if outer == "no_grad":
            with torch.no_grad(), torch.autocast(**BF16):
                y = self.c1(x)
        elif outer == "no_cache":
            with torch.autocast(**BF16, cache_enabled=False):
                y = self.c1(x)
        elif outer == "checkpoint":
            from torch.utils.checkpoint import checkpoint

            def inner(t):
                with torch.autocast(**BF16):
                    return self.c1(t)

            y = checkpoint(inner, x, use_reentrant=False)
        else:
            with torch.autocast(**BF16):
                y = self.c1(x)
        return F.relu(y)

    with warnings.catch_warnings(), pytest.raises(SpecError, match="autocast"):
        warnings.simplefilter("ignore")
        training_cost(from_module(Body(body), SHAPE), 2, "float16" if outer == "float16_step" else "float32",
                      device="cpu")


def test_the_memory_model_is_refused_under_autocast():
    cost = training_cost(from_module(Body(_blocks), SHAPE), 2, device="cpu")
    with pytest.raises(SpecError, match="autocast"):
        cost.memory


def _network(autocast):
    return Network(SHAPE, [Conv2d(out_channels=4, kernel_size=3, padding=1, name="conv"), ReLU(name="relu")],
                   modes=StepModes(autocast=autocast))


def test_a_region_changes_only_its_own_devices_step():
    """Autocast on the CPU changes nothing on CUDA, and CUDA's nothing on the CPU; CUDA's own lists
    are not modelled: a CUDA region costed on CUDA is refused."""
    plain = _network(())
    for device, other in (("cpu", "cuda"), ("cuda", "cpu")):
        ours = training_cost(_network((("conv", other, "bfloat16"), ("relu", other, "bfloat16"))), 2, device=device)
        assert ours.saved_bytes == training_cost(plain, 2, device=device).saved_bytes
    note = "layers run under torch.autocast on cpu run in float32 in a step on cuda"
    assert any(n.startswith(note) for n in training_cost(_network((("conv", "cpu", "bfloat16"),)), 2).notes)
    with pytest.raises(SpecError, match=r"'conv' \(Conv2d\): runs under torch.autocast on cuda"):
        training_cost(_network((("conv", "cuda", "bfloat16"),)), 2, device="cuda")
    lowered = training_cost(_network((("conv", "cpu", "bfloat16"), ("relu", "cpu", "bfloat16"))), 2, device="cpu")
    assert lowered.saved_bytes == torch_step(Body(_conv_relu), SHAPE, 2).saved_bytes


def _conv_relu(self, x):
    with torch.autocast(**BF16):
        return F.relu(self.c1(x))


# -- random chains ----------------------------------------------------------------------------------------
OPS = ("conv", "relu", "bn", "maxpool", "avgpool", "residual", "relu_", "silu_", "sigmoid", "square")


class Chain(nn.Module):
    """``ops`` on (C, S, S), the ones from ``start`` to ``stop`` under bfloat16 autocast, then
    (with ``head``) a linear layer, under autocast when ``head`` is "inside"."""

    def __init__(self, c, s, ops, start, stop, head):
        super().__init__()
        self.ops, self.start, self.stop, self.head, self.sizing = ops, start, stop, None, True
        self.layers = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) if op in ("conv", "residual") else
                                    nn.BatchNorm2d(c) if op == "bn" else nn.Identity() for op in ops)
        if head is not None:
            with torch.no_grad():
                features = self.eval()(torch.zeros(1, c, s, s)).numel()
            self.head, self.fc = head, nn.Linear(features, 3)
        self.sizing = False  # (the sizes without autocast: the same, where torch may refuse a dtype)
        self.train()

    def run(self, x, k):
        op, layer = self.ops[k], self.layers[k]
        if op in ("conv", "bn"):
            return layer(x)
        if op == "residual":
            return layer(x) + x
        if op == "relu":
            return F.relu(x)
        if op == "relu_":
            return x.relu_()
        if op == "silu_":
            return F.silu(x, inplace=True)
        if op == "sigmoid":
            return torch.sigmoid(x)
        if op == "square":
            return x * x
        return (F.max_pool2d if op == "maxpool" else F.avg_pool2d)(x, 2, 1, 1)

    def forward(self, x):
        for k in range(self.start):
            x = self.run(x, k)
        with torch.autocast(**BF16, enabled=not self.sizing):
            for k in range(self.start, self.stop):
                x = self.run(x, k)
        for k in range(self.stop, len(self.ops)):
            x = self.run(x, k)
        if self.head is None:
            return x
        x = x.flatten(1)
        if self.head == "inside":
            with torch.autocast(**BF16, enabled=not self.sizing):
                return self.fc(x)
        return self.fc(x)


@st.composite
def chains(draw):
    ops = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=5))
    start = draw(st.integers(0, len(ops)))
    stop = draw(st.integers(start, len(ops)))
    return draw(st.integers(1, 3)), ops, start, stop, draw(st.sampled_from([None, "inside", "outside"])), \
        draw(st.integers(1, 2))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(chains())
def test_random_chains_under_autocast_match_a_real_step(drawn):
    c, ops, start, stop, head, batch = drawn
    torch.manual_seed(0)
    module = Chain(c, 5, ops, start, stop, head)
    ours, theirs = alexcost_step(module, (c, 5, 5), batch), torch_step(module, (c, 5, 5), batch)
    where = f"ops={ops} autocast={start}:{stop} head={head} batch={batch}"
    if ours.refused and not theirs.refused:  # a clean refusal: only of what has no autocast rule, naming it
        assert "torch.autocast" in ours.refused and "does not model" in ours.refused, f"{ours.refused}\n{where}"
    else:
        assert same(theirs, ours), f"torch {theirs}\nalexcost {ours}\n{where}"


def test_a_kind_has_no_autocast_rule_unless_it_says_so():
    """A kind of your own is refused under autocast until it declares how autocast runs it (the
    rules table of the custom-layers page states the defaults)."""
    from pathlib import Path

    from alexcost import Layer
    from alexcost.layers import Grads

    assert Layer.autocast is None and Layer.keeps_weight(None, Grads((True,), True, True)) is False
    page = (Path(__file__).parent.parent / "docs" / "custom-layers.md").read_text()
    rows = {line.split(" | ")[0]: line.rsplit(" | ", 1)[1] for line in page.splitlines() if line.startswith("| `")}
    assert rows["| `autocast` (class attribute)"] == "None |"
    assert rows["| `keeps_weight(grads)`"] == "False |"
