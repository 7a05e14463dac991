"""alexcost's click front end, installed as ``alexcost_cli``. Thin: every feature lives in ``alexcost``."""
