"""Running ``alexcost`` in a fresh process in which some packages cannot be imported, exactly as when
they are not installed (the CLI tests of missing extras)."""

import subprocess
import sys

BLOCKER = """\
import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
for name in list(sys.modules):
    if name.partition(".")[0] in {blocked!r}:
        del sys.modules[name]
from alexcost_cli.main import main
main({args!r})
"""


def without(blocked: set, *args, cwd=None):
    """Run ``alexcost ARGS`` in a fresh process in which the ``blocked`` packages cannot be imported,
    exactly as when they are not installed."""
    code = BLOCKER.format(blocked=sorted(blocked), args=[str(a) for a in args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
