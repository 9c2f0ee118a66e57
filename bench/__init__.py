"""The benchmark suite: ``python -m bench`` (``make bench``); see ``bench/README.md``.

This package imports nothing at import time: its worker (:mod:`bench.worker`) also runs under
other virtual environments (the pyvider-rpcplugin one), where only the standard library, grpcio
and the peer under test are installed.
"""
