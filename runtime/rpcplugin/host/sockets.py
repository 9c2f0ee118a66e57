"""Housekeeping around plugin processes the host did or did not start: private socket
directories, stale sockets of dead plugins, probing an endpoint, and stopping a foreign pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import time

from .._wire.transport import Endpoint, private_dir, resolve_group, socket_dir
from ..errors import TransportError
from .watchdog import WATCHDOG, mark_owner, sweep_dead_hosts


def remove_stale_socket(endpoint: Endpoint | None) -> None:
    """Remove a reaped plugin's unix socket if nobody listens on it any more: a plugin that was
    SIGKILLed or crashed cannot remove it itself."""
    if endpoint is None or endpoint.network != "unix":
        return
    WATCHDOG.remove_path(endpoint.address)
    try:
        if not stat.S_ISSOCK(os.lstat(endpoint.address).st_mode):
            return
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(endpoint.address)
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):
            os.unlink(endpoint.address)
    except OSError:
        pass  # somebody still listens there (or may): not ours to remove
    finally:
        probe.close()


def private_socket_dir(parent: str | None, group: str | None) -> str:
    """A fresh 0700 directory (0770 and chgrp'd with a socket group) for one plugin's sockets,
    in ``parent`` or the temp dir, marked as this host's and watched: removed if this process
    dies. Directories there of hosts that died are removed first."""
    import tempfile

    where = socket_dir(parent) if parent is not None else tempfile.gettempdir()
    sweep_dead_hosts(where)
    directory = private_dir(where)
    if group is not None:
        try:
            os.chown(directory, -1, resolve_group(group))
            os.chmod(directory, 0o770)
        except BaseException:
            os.rmdir(directory)
            raise
    mark_owner(directory)
    WATCHDOG.add_path(directory)
    return directory


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def kill_foreign(pid: int, wait: float) -> None:
    """Wait for a process that is not our child to exit; SIGKILL it after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


async def probe(endpoint: Endpoint, timeout: float = 5.0) -> None:
    """go-plugin's reattach probe: connect and close; a :class:`TransportError` if nobody
    listens."""
    try:
        if endpoint.network == "unix":
            _, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(endpoint.address), timeout
            )
        else:
            host, _, port = endpoint.address.rpartition(":")
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (TimeoutError, OSError) as exc:
        raise TransportError(
            f"reattachment process not found: cannot connect to {endpoint}: {exc}"
        ) from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
