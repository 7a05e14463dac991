"""The training-mode graph of a module whose forward tests ``self.training``, compared with the eval-mode graph
alexcost reads: where they differ, and which batch norms normalise with the batch's statistics in training."""

from __future__ import annotations

from .regions import REGION


def differences(graph, train, flag_type) -> tuple[str, set]:
    """The first node where ``train`` (the training-mode graph) differs from ``graph`` (eval mode), in words ("" when
    the two are the same), and the names of the ``F.batch_norm`` nodes that get ``training=True`` in it. A batch
    norm's ``training`` argument and its count of batches (``num_batches_tracked.add_(1)``, as nn.BatchNorm2d's own
    forward runs in training) are no difference: the batch norm kinds count both modes. ``flag_type``: the class of
    ``self.training`` passed on as an argument."""
    kept = [n for n in train.nodes if not _counts_batches(n)]
    names = {n.name: m.name for n, m in zip(kept, graph.nodes)}  # (fx names count the nodes left out)
    mine, theirs = [_signature(n, flag_type) for n in graph.nodes], [_signature(n, flag_type, names) for n in kept]
    for k, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            return f"in training mode its forward() runs {b[0]} {b[1]} where eval mode runs {a[0]} {a[1]} " \
                   f"(fx node {k})", set()
    if len(mine) != len(theirs):
        return f"in training mode its forward() runs {len(theirs)} fx nodes where eval mode runs {len(mine)}", set()
    return "", {names[n.name] for n in kept if batch_norm_training(n) is True}


def _counts_batches(node) -> bool:
    """Is ``node`` a batch norm's count of batches (``self.num_batches_tracked`` read, or ``.add_(1)`` of it)?"""
    if node.op == "get_attr":
        return node.target.rpartition(".")[2] == "num_batches_tracked"
    return node.op == "call_method" and node.target == "add_" and bool(node.args) and \
        getattr(node.args[0], "op", None) == "get_attr" and _counts_batches(node.args[0])


def batch_norm_training(node):
    """``F.batch_norm``'s ``training`` argument at ``node`` (None for any other node)."""
    if node.op != "call_function" or getattr(node.target, "__name__", None) != "batch_norm":
        return None
    return node.args[5] if len(node.args) > 5 else node.kwargs.get("training", False)


def _signature(node, flag_type, names=None) -> tuple:
    """What a node computes, for comparing two traces: its op, target, arguments (nodes by name, as ``names``
    maps them; ``self.training`` and a batch norm's ``training`` as a marker) and the modes it was made in."""
    from torch.fx.node import map_aggregate

    def plain(value):
        if isinstance(value, flag_type):
            return "<self.training>"
        if hasattr(value, "op") and hasattr(value, "graph"):
            return names.get(value.name, value.name) if names else value.name
        return value

    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", repr(node.target))
    args, kwargs = node.args, node.kwargs
    if batch_norm_training(node) is not None:
        args, kwargs = (*args[:5], "<training>", *args[6:]) if len(args) > 5 else args, \
            {**kwargs, "training": "<training>"} if "training" in kwargs else kwargs
    return (node.op, target, repr(map_aggregate(args, plain)), repr(map_aggregate(kwargs, plain)),
            node.meta.get(REGION))
