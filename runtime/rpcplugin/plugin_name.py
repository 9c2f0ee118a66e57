"""The name a plugin goes by in logs (and in debug mode's reattach JSON) when none is given.

``python -m pkg`` must not make every plugin ``__main__.py`` (plugin side) or ``python3`` (host
side): the name is the package's. A packed executable (``rpcplugin-gen pack``) or any other
program keeps its file name, e.g. ``terraform-provider-example_v0.1.0``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["from_argv", "of_this_process"]

_FALLBACK = "plugin"


def of_this_process() -> str:
    """This process's plugin name: the package of ``python -m pkg``, else ``argv[0]``'s name."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if program in ("__main__.py", "-m", "-c", ""):
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        package = getattr(spec, "parent", None) if spec is not None else None
        if package:
            return str(package)
    return program or _FALLBACK


def from_argv(argv: Sequence[str]) -> str:
    """The name of the plugin ``argv`` runs: ``PKG`` for ``python -m PKG …``, else the
    executable's file name."""
    if len(argv) >= 3 and argv[1] == "-m" and argv[2]:
        return argv[2]
    return os.path.basename(argv[0]) if argv and argv[0] else _FALLBACK
