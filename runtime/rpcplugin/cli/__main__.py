"""``python -m rpcplugin.cli``: the ``rpcplugin`` command."""

from . import main

main()
