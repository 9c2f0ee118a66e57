"""The host side: launch plugins, reattach to running ones, connect to plugin servers.

The public entry points are the top-level :func:`rpcplugin.launch`, :func:`rpcplugin.reattach`,
:func:`rpcplugin.connect` and :func:`rpcplugin.connect_balanced`. May import the core modules,
``services``, ``_wire`` and ``ops``; never ``plugin``.
"""
