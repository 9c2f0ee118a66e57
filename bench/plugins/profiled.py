"""``python bench/plugins/profiled.py OUT (-m MODULE | SCRIPT) [ARGS...]``: profile a plugin.

``python -m cProfile -o OUT`` writes its file when the interpreter exits normally, but
``rpcplugin.serve()`` ends with ``os._exit`` after running the :mod:`atexit` hooks (to skip the
interpreter's own teardown), so the profile is dumped from an ``atexit`` hook here.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import runpy
import sys


def main() -> None:
    out, rest = sys.argv[1], sys.argv[2:]
    profile = cProfile.Profile()

    def dump() -> None:
        profile.disable()
        profile.dump_stats(out)

    atexit.register(dump)
    if rest[0] == "-m":
        sys.argv = rest[1:]
        sys.path[0] = os.getcwd()
        profile.enable()
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path[0] = os.path.dirname(os.path.abspath(rest[0]))
        profile.enable()
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
