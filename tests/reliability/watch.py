"""Watch directory trees with Linux inotify (through ctypes): every file created or written
below them while the watch runs, even one removed a moment later."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
from types import TracebackType

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


class TreeWatch:
    """``with TreeWatch(dirs) as watch: ...``; then ``watch.created`` (paths, in order) and
    ``watch.written`` (regular files written to). New subdirectories are watched as they
    appear (a file created in one before its watch is added is caught by a scan of it)."""

    def __init__(self, *roots: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._dirs: dict[int, str] = {}
        self.created: list[str] = []
        self.written: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        for root in roots:
            self._watch(root)

    def _watch(self, directory: str) -> None:
        mask = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO
        wd = self._add(self._fd, directory.encode(), mask)
        if wd >= 0:
            self._dirs[wd] = directory
            for name in sorted(os.listdir(directory)):  # created before the watch took hold
                path = os.path.join(directory, name)
                if path not in self.created:
                    self.created.append(path)
                    if os.path.isdir(path) and not os.path.islink(path):
                        self._watch(path)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if ready:
                self._drain()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                name = raw.rstrip(b"\0").decode(errors="replace")
                path = os.path.join(self._dirs.get(wd, "?"), name)
                if mask & (IN_CREATE | IN_MOVED_TO) and path not in self.created:
                    self.created.append(path)
                    if mask & IN_ISDIR:
                        self._watch(path)
                if mask & (IN_MODIFY | IN_CLOSE_WRITE) and not mask & IN_ISDIR:
                    self.written.add(path)

    def __enter__(self) -> TreeWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)
