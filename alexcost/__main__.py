"""``python -m alexcost``: the same CLI as the ``alexcost`` command."""

from alexcost_cli.main import main

main()
