"""Grad-mode regions, checkpointing and training-only branches in an imported module's forward, against a
real CPU step (tests/module_step.py: FlopCounterMode's backward FLOPs, the bytes saved_tensors_hooks sees).

The module is the issue's: two 3x3 convolution blocks (conv, ReLU) on (4, 8, 8).
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.checkpoint import checkpoint, checkpoint_sequential  # noqa: E402

from alexcost import SpecError  # noqa: E402
from alexcost.torch_bridge import from_module  # noqa: E402
from alexcost.training import training_cost  # noqa: E402
from module_step import agree, torch_step  # noqa: E402

SHAPE = (4, 8, 8)


class Blocks(nn.Module):
    """Two conv + ReLU blocks; ``body`` is the forward."""

    def __init__(self, body):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.body = body

    def forward(self, x):
        return self.body(self, x)


def _plain(self, x):
    return self.b(self.a(x))


def _no_grad(self, x):
    with torch.no_grad():
        y = self.a(x)
    return self.b(y)


def _set_grad_enabled(self, x):
    with torch.set_grad_enabled(False):
        y = self.a(x)
    return self.b(y)


def _enable_grad_inside(self, x):
    with torch.no_grad():
        with torch.enable_grad():
            y = self.a(x)
    return self.b(y)


def _no_grad_then_clone_of_inference(self, x):
    with torch.inference_mode():
        y = self.a(x)
    return self.b(y.clone())


def _checkpoint_first(self, x):
    return self.b(checkpoint(self.a, x, use_reentrant=False))


def _checkpoint_second(self, x):
    return checkpoint(self.b, self.a(x), use_reentrant=False)


def _checkpoint_both(self, x):
    y = checkpoint(self.a, x, use_reentrant=False)
    return checkpoint(self.b, y, use_reentrant=False)


def _checkpoint_sequential(self, x):
    return checkpoint_sequential(nn.Sequential(self.a, self.b), 2, x, use_reentrant=False)


def _checkpoint_conv_last(self, x):
    # the call ends in a convolution, which keeps its input and weight before it runs: torch's early
    # stop ends the recomputation there, so the convolution does not run again
    return self.b[1](checkpoint(self.b[0], self.a(x), use_reentrant=False))


def _checkpoint_keeps_nothing(self, x):
    # the call reads only the network input and frozen weights... here: a ReLU of the input keeps its
    # output, so the call runs again; a pure view keeps nothing
    return self.b(self.a(checkpoint(torch.flatten, x, 1, use_reentrant=False).view(x.shape)))


BODIES = [_plain, _no_grad, _set_grad_enabled, _enable_grad_inside, _no_grad_then_clone_of_inference,
          _checkpoint_first, _checkpoint_second, _checkpoint_both, _checkpoint_sequential, _checkpoint_conv_last,
          _checkpoint_keeps_nothing]


@pytest.mark.parametrize("body", BODIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("batch", [1, 3])
def test_a_step_with_modes_matches_torch(body, batch):
    torch.manual_seed(0)
    theirs, ours = agree(Blocks(body), SHAPE, batch)
    assert theirs.refused is None and ours.refused is None, (theirs, ours)
    assert ours == theirs


def test_the_issues_table():
    """Backward FLOPs and saved bytes: no_grad keeps and computes only the second block's; a checkpointed
    first block runs its convolution again and keeps its input only."""
    plain, no_grad, checkpointed = (torch_step(Blocks(body), SHAPE, 1) for body in (_plain, _no_grad,
                                                                                     _checkpoint_first))
    conv = 2 * 4 * 4 * 9 * 8 * 8  # one convolution's FLOPs, one sample
    assert plain.backward_flops == 3 * conv and no_grad.backward_flops == conv  # (the first has no input grad)
    assert checkpointed.backward_flops == 4 * conv
    tensor = 4 * 8 * 8 * 4  # one activation, float32
    assert (plain.saved_bytes, no_grad.saved_bytes, checkpointed.saved_bytes) == (3 * tensor, 2 * tensor, 3 * tensor)
    for body, step in ((_no_grad, no_grad), (_checkpoint_first, checkpointed)):
        cost = training_cost(from_module(Blocks(body), SHAPE), 1, device="cpu")
        assert (cost.torch_backward_flops, cost.saved_bytes) == (step.backward_flops, step.saved_bytes)


def test_checkpoint_records_say_what_runs_again():
    cost = training_cost(from_module(Blocks(_checkpoint_first), SHAPE), 2, device="cpu")
    conv = 4 * 4 * 9 * 8 * 8
    assert cost["a_0"].recompute_macs == 2 * conv and cost["b_0"].recompute_macs == 0
    assert cost.backward_macs == sum(row.backward_macs for row in cost.layers)
    assert cost.backward_macs == 2 * (conv + 2 * conv) + 2 * conv  # grads of a's weight, b's input and weight
    # the call keeps its input, counted at its last layer (once the call is known to keep something)
    assert cost["a_0"].saved_bytes == 0 and cost["a_1"].saved_bytes == 2 * 4 * 8 * 8 * 4
    assert any("again" in note for note in cost.notes)


def test_no_grad_on_forward_is_refused_as_torch_refuses_it():
    class Decorated(Blocks):
        @torch.no_grad()
        def forward(self, x):
            return self.b(self.a(x))

    assert torch_step(Decorated(None), SHAPE).refused  # torch cannot take a step
    imported = from_module(Decorated(None), SHAPE)
    assert imported.network.modes.no_grad == imported.network.names
    with pytest.raises(SpecError, match="does not require grad.*no backward pass"):
        training_cost(imported, 1)
    assert imported.cost().totals.macs == 2 * 4 * 4 * 9 * 8 * 8  # the forward counts stand


def test_inference_tensors_kept_for_backward_are_refused_as_torch_refuses_them():
    def body(self, x):
        with torch.inference_mode():
            y = self.a(x)
        return self.b(y)

    theirs, ours = agree(Blocks(body), SHAPE)
    assert "Inference tensors cannot be saved for backward" in theirs.refused
    assert "layers[2] 'b_0' (Conv2d): Inference tensors cannot be saved for backward" in ours.refused


def test_writing_in_place_with_grad_off_into_a_kept_tensor_is_refused_as_torch_refuses_it():
    def body(self, x):
        y = self.a(x)
        with torch.no_grad():
            nn.functional.relu(y, inplace=True)
        return self.b(y)

    theirs, ours = agree(Blocks(body), SHAPE)  # the ReLU before it kept y, now modified: torch's backward fails
    assert "modified by an inplace operation" in theirs.refused
    assert "layers[2] 'relu' (ReLU) modifies in place a tensor that 'a_1' (ReLU) keeps" in ours.refused


def test_writing_in_place_with_grad_off_keeps_the_history():
    def body(self, x):
        y = self.a[0](x)
        with torch.no_grad():
            y.relu_()
        return self.b(y)

    theirs, ours = agree(Blocks(body), SHAPE, 2)
    assert theirs.refused is None and ours == theirs  # the first conv still gets its weight's gradient
    assert theirs.backward_flops == 3 * 2 * 2 * 4 * 4 * 9 * 8 * 8


@pytest.mark.parametrize("call", [
    lambda self, x: self.b(checkpoint(self.a, x, use_reentrant=True)),
    lambda self, x: self.b(checkpoint(self.a, x, use_reentrant=False, early_stop=False)),
    lambda self, x: self.b(checkpoint(self.a, x, use_reentrant=False,
                                      context_fn=lambda: (torch.no_grad(), torch.no_grad()))),
], ids=["reentrant", "no_early_stop", "context_fn"])
def test_checkpointing_alexcost_does_not_model_is_refused_at_its_node(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SpecError, match=r"fx node 'a_0'.*torch.utils.checkpoint.*does not read this one"):
            from_module(Blocks(call), SHAPE)


def test_autocast_without_its_weight_cache_is_refused_at_its_node():
    def body(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            y = self.a(x)
        return self.b(y.float())

    theirs = torch_step(Blocks(body), SHAPE)
    plain = torch_step(Blocks(_plain), SHAPE)
    assert theirs.saved_bytes != plain.saved_bytes  # what it keeps is not float32's
    with pytest.raises(SpecError, match=r"fx node 'a_0'.*autocast \(bfloat16 on cpu\)"):
        from_module(Blocks(body), SHAPE)


def _branch(self, x):
    if self.training:
        x = self.a(x)
    return self.b(x)


def _same_either_way(self, x):
    y = self.a(x)
    if self.training:
        pass
    return self.b(y)


def test_a_training_branch_read_in_eval_mode_refuses_the_training_step():
    module = Blocks(_branch).eval()
    imported = from_module(module, SHAPE)
    assert imported.network.names == ("b_0", "b_1")  # what eval mode runs
    assert torch_step(Blocks(_branch), SHAPE).backward_flops != 2 * 2 * 4 * 4 * 9 * 8 * 8  # torch trains a too
    for given in (imported, imported.network):
        with pytest.raises(SpecError, match=r"tests self.training.*in training mode its forward\(\) runs "
                                            r"call_module a.0 .*does not count a training step"):
            training_cost(given, 1)
    assert not module.training


def test_a_training_test_that_changes_nothing_keeps_the_step():
    module = Blocks(_same_either_way).eval()
    imported = from_module(module, SHAPE)
    assert imported.eval_branches and not imported.network.modes.refused
    theirs = torch_step(Blocks(_same_either_way), SHAPE)
    cost = training_cost(imported, 2, device="cpu")
    assert (cost.torch_backward_flops, cost.saved_bytes) == (theirs.backward_flops, theirs.saved_bytes)


class Head(nn.Module):
    """A convolution, batch norm, another convolution and a linear head; ``body`` is the forward."""

    def __init__(self, body):
        super().__init__()
        self.c1, self.bn, self.c2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        self.body = body

    def forward(self, x):
        return self.body(self, x)


CALLS = {
    "batch_norm_inside": lambda s, x: s.fc(checkpoint(lambda t: torch.relu(s.bn(s.c1(t))), x,
                                                      use_reentrant=False).flatten(1)),
    "linear_at_the_end": lambda s, x: checkpoint(lambda t: s.fc(torch.relu(s.c1(t)).flatten(1)), x,
                                                 use_reentrant=False),
    "read_again_outside": lambda s, x: (lambda y: s.fc((checkpoint(s.c2, y, use_reentrant=False) + y).flatten(1)))(
        s.c1(x)),
    "sigmoid_at_the_end": lambda s, x: s.fc(checkpoint(lambda t: s.c2(t).sigmoid(), s.c1(x),
                                                       use_reentrant=False).flatten(1)),
    "add_at_the_end": lambda s, x: s.fc(checkpoint(lambda t: s.c2(t) + t, s.c1(x), use_reentrant=False).flatten(1)),
    "frozen_inside": lambda s, x: s.fc(checkpoint(s.c2, s.c1(x), use_reentrant=False).flatten(1)),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("batch", [1, 2])
def test_checkpoint_calls_match_torch(name, batch):
    torch.manual_seed(0)
    module = Head(CALLS[name])
    if name == "frozen_inside":
        module.c2.weight.requires_grad_(False)
        module.c1.requires_grad_(False)
    theirs, ours = agree(module, SHAPE, batch)
    assert theirs.refused is None and ours == theirs


def test_writing_into_a_checkpoint_calls_input_is_refused_as_torch_refuses_it():
    module = Head(lambda s, x: s.fc(checkpoint(lambda t: s.c2(t.relu_()), s.c1(x), use_reentrant=False).flatten(1)))
    theirs, ours = agree(module, SHAPE)
    assert "modified by an inplace operation" in theirs.refused
    assert "modifies in place a tensor" in ours.refused


def test_a_checkpoint_call_inside_another_is_refused():
    module = Head(lambda s, x: s.fc(checkpoint(lambda t: s.c2(checkpoint(s.c1, t, use_reentrant=False)), x,
                                               use_reentrant=False).flatten(1)))
    assert torch_step(module, SHAPE).refused is None
    with pytest.raises(SpecError, match=r"fx node 'c1'.*inside torch.utils.checkpoint.*\(one call, not nested\)"):
        from_module(module, SHAPE)


def test_a_parameter_read_only_with_grad_off_gets_no_gradient():
    class Scaled(Blocks):
        def __init__(self):
            super().__init__(None)
            self.g = nn.Parameter(torch.rand(4, 1, 1) + 0.5)
            self.h = nn.Parameter(torch.rand(4, 1, 1) + 0.5)

        def forward(self, x):
            with torch.no_grad():
                y = self.a(x) * self.g
            return self.b(y) * self.h

    torch.manual_seed(0)
    module = Scaled()
    theirs, ours = agree(module, SHAPE, 2)
    assert theirs.refused is None and ours == theirs
    module(torch.randn(2, *SHAPE)).sum().backward()
    got = sum(p.numel() for p in module.parameters() if p.grad is not None)
    assert got == sum(p.numel() for p in module.b.parameters()) + 4
    assert training_cost(from_module(module, SHAPE), 2).trainable_params == got


def test_a_module_in_training_mode_is_read_where_its_training_test_changes_nothing():
    imported = from_module(Blocks(_same_either_way).train(), SHAPE)
    assert imported.network.names == ("a_0", "a_1", "b_0", "b_1") and not imported.network.modes.refused
    with pytest.raises(SpecError, match=r"tests self.training.*in training mode.*runs call_module a.0"):
        from_module(Blocks(_branch).train(), SHAPE)


def test_what_only_grad_mode_off_reads_runs_no_backward_pass():
    def body(self, x):
        y = self.a(x)  # its convolution keeps x for its weight's gradient...
        x.add_(x)      # ...and x is written in place: fine, as no gradient reaches a
        with torch.no_grad():
            y = y.sigmoid()
        return self.b(y)

    torch.manual_seed(0)
    theirs, ours = agree(Blocks(body), SHAPE, 2)
    assert theirs.refused is None and ours == theirs
    cost = training_cost(from_module(Blocks(body), SHAPE), 2, device="cpu")
    assert not cost["a_0"].runs_backward and cost["a_0"].saved_bytes == 0


@pytest.mark.parametrize("inner, first", [(None, "b_0' (Conv2d)"), (torch.relu, "relu' (ReLU)")],
                         ids=["a convolution", "a relu that keeps nothing the step needs"])
def test_a_checkpoint_call_on_an_inference_tensor_is_refused_as_torch_refuses_it(inner, first):
    """torch saves a checkpoint call's inputs as it starts, whatever the call keeps (found at scale by the
    random modes: a ReLU checkpointed on an inference tensor, then a learned scale)."""
    def body(self, x):
        with torch.inference_mode():
            y = self.a(x)
        return checkpoint(inner or self.b, y, use_reentrant=False) * (self.scale if inner else 1)

    module = Blocks(body)
    module.scale = torch.nn.Parameter(torch.ones(1))
    theirs, ours = agree(module, SHAPE)
    assert "Inference tensors cannot be saved for backward" in theirs.refused
    assert f"{first}: Inference tensors cannot be saved for backward" in ours.refused
