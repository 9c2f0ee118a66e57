"""``python -m rpcplugin_gen``: the ``rpcplugin-gen`` command."""

from rpcplugin_gen.cli import main

main()
