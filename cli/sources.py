"""Where a command's networks come from: presets (``--model``), spec files (``--spec``) and torch
modules (``--module PKG.MOD:FACTORY``, ``--torchvision NAME``, ``--timm NAME``), each of which may
repeat for a side-by-side comparison, in the order given; and ``--input-shape``.

The static sources import no torch; a module source needs it and says so in one line without it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import click

from .common import option, parse_shape, shown

SOURCES = ("model", "spec", "module", "torchvision", "timm")
"""The options that name a network, as the command's parameters are called."""

TORCH_FILES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""Extensions of files torch saves: pickles, which alexcost never loads (loading one runs code)."""


class Loaded(NamedTuple):
    """A network as a command got it: ``imported`` and ``module`` are set for a torch module
    (``from_module``'s `ImportedModule` and the module itself)."""

    name: str
    network: object
    source: str
    imported: object = None
    module: object = None

    def cost(self, batch: int = 1, dtype: str = "float32"):
        """The forward cost; a module's parameters each counted once, as ``from_module`` counts them."""
        return (self.imported or self.network).cost(batch, dtype)

    @property
    def paths(self) -> tuple[str, ...]:
        """Each layer's module path in the user's module (empty for a preset or a spec file)."""
        return self.imported.paths if self.imported is not None else ()


def _shape(ctx, param, value):
    return None if value is None else parse_shape(value)


def network_options(func=None, *, several: bool = True):
    """``--model``, ``--spec``, ``--module``, ``--torchvision``, ``--timm`` (the seed preset by
    default; each may repeat when ``several``) and ``--input-shape``. The command gets ``sources``,
    ``[(option, value), ...]`` in the order given, and ``input_shape``; `load_networks` loads them."""
    if func is None:
        return functools.partial(network_options, several=several)
    from alexcost import DEFAULT_MODEL, PRESETS

    @functools.wraps(func)
    def run(*args, **kwargs):
        given = {name: kwargs.pop(name) for name in SOURCES}
        kwargs["sources"] = ordered_sources(click.get_current_context(), given)
        return func(*args, **kwargs)

    again = " Repeat to compare, side by side." if several else ""
    run = option("--input-shape", "input_shape", metavar="C,H,W", callback=_shape,
                 help="Run the network on this per-sample input shape (no batch dimension) instead of its own: "
                      "positive whole numbers separated by commas, e.g. 3,224,224 for the seed at 224x224. "
                      "A torch module with no input of its own needs it.")(run)
    run = option("--timm", "timm", metavar="NAME", multiple=True,
                 help="A timm model, with random weights (its input from its own config). Needs torch and timm."
                      + again)(run)
    run = option("--torchvision", "torchvision", metavar="NAME", multiple=True,
                 help="A torchvision model, such as resnet50, with random weights, its backbone's too (its input "
                      "from its weights' transforms). Needs torch and torchvision." + again)(run)
    run = option("--module", "module", metavar="PKG.MOD:FACTORY", multiple=True,
                 help="A torch module: FACTORY() of the Python module PKG.MOD, imported from the current folder "
                      "or sys.path (this runs its code), read with torch.fx. Needs torch and --input-shape."
                      + again)(run)
    run = option("--spec", "spec", metavar="FILE", multiple=True,
                 help="A JSON or TOML spec file ('-' reads standard input)." + again)(run)
    run = option("--model", "model", type=click.Choice(list(PRESETS)), multiple=True,
                 help=f"A preset network (default: {DEFAULT_MODEL})." + again)(run)
    run.several = several
    return run


def ordered_sources(ctx, given: dict) -> list[tuple[str, str]]:
    """The networks named, as ``(option, value)`` in the order of the command line (which
    `alexcost_cli.common.Command` records); one only where the command reads one."""
    order = [name for name in ctx.meta.get("alexcost.order", ()) if name in SOURCES]
    queues = {name: list(values or ()) for name, values in given.items()}
    out = [(name, queues[name].pop(0)) for name in order if queues.get(name)]
    out += [(name, value) for name in SOURCES for value in queues[name]]  # (an order not recorded)
    if len(out) > 1 and not getattr(ctx.command.callback, "several", True):
        raise click.UsageError(f"alexcost {ctx.info_name} reads one network; got {len(out)} "
                               f"({', '.join('--' + name for name, _ in out)})")
    return out


def require_torch(command: str, source: str) -> None:
    """One line when a module source's library is missing: which, and how to install it."""
    from .common import missing_extra

    for module in ("torch", *((source,) if source in ("torchvision", "timm") else ())):
        try:
            __import__(module)
        except ImportError as err:
            if module == "timm":
                raise click.ClickException(f"alexcost {command} --timm needs timm, which is not installed: "
                                           f"pip install timm") from None
            raise click.ClickException(missing_extra(module, f"{command} --{source}", err)) from None


def load_networks(sources, input_shape=None, command: str = "report") -> list[Loaded]:
    """Each network named (the default preset when none is), on ``input_shape`` when given."""
    from alexcost import DEFAULT_MODEL

    return [load(kind, value, input_shape, command) for kind, value in sources or [("model", DEFAULT_MODEL)]]


def load_network(sources, input_shape=None, command: str = "report"):
    """The one network a single-network command reads."""
    return load_networks(sources, input_shape, command)[0].network


def load(kind: str, value: str, input_shape=None, command: str = "report") -> Loaded:
    """One network: a preset or spec file (rebuilt on ``input_shape``), or a torch module read by
    ``from_module``."""
    if kind in ("model", "spec"):
        if kind == "model":
            from alexcost import preset

            network = preset(value)
        else:
            from alexcost.specs.specfile import load_spec

            refuse_torch_file(value)
            network = load_spec(value)
        if input_shape is not None:
            network = reshaped(network, input_shape)
        return Loaded(network.name, network, kind)
    require_torch(command, kind)
    from alexcost.torch_bridge.bridge import default_input_shape, from_module, named_module

    module = named_module(kind, value)
    shape = input_shape or default_input_shape(kind, value, module)
    if shape is None:
        raise click.UsageError(f"--{kind} {value} needs --input-shape: alexcost cannot tell what input "
                               f"{'the module' if kind == 'module' else value} takes (e.g. --input-shape 3,224,224)")
    name = value.rpartition(":")[2] if kind == "module" else value
    from alexcost import SpecError

    try:
        imported = from_module(module, shape, name=name)
    except SpecError as err:
        if input_shape is not None and len(shape) > 1 and shape[0] == 1:
            raise SpecError(f"{err.message}; --input-shape is one sample's shape: if its 1 is the batch, "
                            f"leave it out (--input-shape {','.join(map(str, shape[1:]))})", where=err.where) from None
        least = _smallest_module_input(module, default_input_shape(kind, value, module), shape, name)
        if least is not None:
            raise SpecError(f"{err.message}; the smallest input {name} takes is {','.join(map(str, least))}",
                            where=err.where) from None
        raise
    return Loaded(name, imported.network, kind, imported, module)


def _smallest_module_input(module, default, given, name: str):
    """The smallest input of ``given``'s rank that a module refused at ``given`` takes: found on the
    network read at the module's ``default`` input, and kept only if the module reads there too;
    None when there is no default or either read fails."""
    from alexcost import SpecError
    from alexcost.search import smallest_input
    from alexcost.torch_bridge.bridge import from_module

    if default is None or tuple(default) == tuple(given) or len(default) != len(given) or default[0] != given[0]:
        return None
    try:
        least = smallest_input(from_module(module, default, name=name).network)
        if least is not None:
            from_module(module, least, name=name)
    except SpecError:
        return None
    return least


def refuse_torch_file(path: str) -> None:
    """A file torch saved, given as a spec: one line on what it is and what to use instead."""
    head = b""
    if path != "-":
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except OSError:
            return  # the spec loader says what is wrong with the path
    if path.lower().endswith(TORCH_FILES) or head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise click.UsageError(f"{shown(path)} is a file torch saves (a pickle of weights or of a module), not a "
                               f"spec file; alexcost never loads pickles, which run code. Give the Python that "
                               f"builds the model: --module PKG.MOD:FACTORY (or --torchvision NAME, --timm NAME)")


def reshaped(network, shape: tuple[int, ...]):
    """``network`` on per-sample input ``shape``; a refusal names the smallest input it takes, and
    suggests leaving out a batch dimension given with the sample's."""
    from alexcost import SpecError

    try:
        out = network.with_input_shape(shape)
    except SpecError as err:
        from alexcost.search import smallest_input

        own = network.input_shape
        hints = []
        if len(shape) == len(own) + 1:
            hints.append(f"--input-shape is one sample's shape, without the batch: leave out the {shape[0]} "
                         f"(--input-shape {','.join(map(str, shape[1:]))}, and --batch {shape[0]})")
        least = smallest_input(network)
        if least is not None:
            hints.append(f"the smallest input {network.name} takes is {','.join(map(str, least))}")
        raise SpecError("; ".join([err.message, *hints]), where=err.where) from None
    changed = [(name, a.params, b.params) for name, a, b in zip(network.names, network.cost().layers, out.cost().layers)
               if a.params != b.params]
    if changed:
        listed = ", ".join(f"{name} {before:,} -> {after:,}" for name, before, after in changed)
        click.echo(f"note: on input {'x'.join(map(str, shape))} (not {'x'.join(map(str, network.input_shape))}) "
                   f"parameters change: {listed}", err=True)
    return out
