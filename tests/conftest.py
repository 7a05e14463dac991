"""Shared test settings and fixtures.

Hypothesis profiles: ``ci`` (the default: quick) and ``thorough`` (many more examples),
chosen with ``ALEXCOST_HYPOTHESIS=thorough``. A ``monkeypatch`` that makes layers forget their
rule results, and ``site``, the docs site built once per test module. Random networks, spec
dicts and torch modules are drawn by the strategies of ``strategies.py``.
"""

import os
import warnings

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("ALEXCOST_HYPOTHESIS", "ci"))

# fvcore's import runs torch.jit.script, which torch 2.13 deprecates: that warning, and only it.
for _category in (DeprecationWarning, FutureWarning):  # torch 2.13 / 2.14
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=_category)


import pytest  # noqa: E402
from _pytest.monkeypatch import MonkeyPatch  # noqa: E402


class _RulesAwareMonkeyPatch(MonkeyPatch):
    """pytest's monkeypatch; patching (or restoring) anything also makes layers forget the rule
    results they remember (`alexcost.engine.network.forget_rules`), so a test that corrupts a kind's
    count on purpose sees the corrupted rule at work, and the tests after it the honest one."""

    def setattr(self, *args, **kwargs):
        super().setattr(*args, **kwargs)
        _forget()

    def undo(self):
        super().undo()
        _forget()


def _forget():
    from alexcost.engine.network import forget_rules

    forget_rules()


@pytest.fixture
def monkeypatch():
    patcher = _RulesAwareMonkeyPatch()
    yield patcher
    patcher.undo()


@pytest.fixture(scope="module", autouse=True)
def _memory_back_to_the_system():
    """After each test module, collect its cycles and hand freed heap pages back (glibc's
    ``malloc_trim``), so that one module's large models do not raise the next one's peak."""
    yield
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The docs site, built once per test module with ``mkdocs build --strict``, from the docs extra alone."""
    from doc_pages import build_site

    return build_site(tmp_path_factory.mktemp("site") / "site")
