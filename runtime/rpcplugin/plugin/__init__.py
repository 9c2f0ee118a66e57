"""The plugin side: a process a host launches (:func:`rpcplugin.serve`), or a network server.

- ``server``: go-plugin's start-up (cookie, negotiation, listener, handshake line) and the gRPC
  server with the go-plugin services.
- ``network_mode``: the same servicers as a plain network service (``RPCPLUGIN_LISTEN``).
- ``stdout_guard``: fd 1 belongs to the handshake line.
- ``interceptors``: the server interceptor chain (auth, rate limit, metrics).

May import the core modules, ``services``, ``_wire`` and ``ops``; never ``host``.
"""
