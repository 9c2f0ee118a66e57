"""``install_audit``: record every file this process opens for writing (``sys.addaudithook``).

Imported by :mod:`relplugin` and :mod:`host_proc` before anything else, so the record covers
the whole life of the process: the tests that check that no private key reaches the disk
compare it with the files they expect.
"""

from __future__ import annotations

import os
import sys

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _caller() -> str:
    """``module:function`` of the Python code that asked for the open."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename in (__file__, os.__file__):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "?"
    name = os.path.splitext(os.path.basename(frame.f_code.co_filename))[0]
    return f"{name}:{frame.f_code.co_name}"


def install_audit(path: str) -> None:
    """Append ``PATH<TAB>module:function`` for every open-for-writing of this process to
    ``path`` (one a line)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.set_inheritable(fd, False)

    def hook(name: str, args: tuple[object, ...]) -> None:
        if name != "open" or len(args) < 3:
            return
        target, mode, flags = args[0], args[1], args[2]
        wants_write = (isinstance(flags, int) and flags & _WRITING) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        if wants_write and isinstance(target, str | bytes):
            shown = target.decode(errors="replace") if isinstance(target, bytes) else target
            os.write(fd, f"{shown}\t{_caller()}\n".encode())

    sys.addaudithook(hook)
