"""200 launches and closes in a row leave the host's open descriptors and children where they
started (issue 3). The Go plugin is the minimal plugin here (~10 ms a launch in plaintext;
a Python one costs ~0.25 s of interpreter start-up, which would make this a minute long);
a shorter run drives the Python plugin through its own paths (grpcio TLS, OpenSSL relay, tcp).
Failing launches are mixed in: their clean-up paths must not leak either.
"""

from __future__ import annotations

import logging
import os
import time

import pytest
from gopeers import go_plugin_binary
from hostkit import GO_HANDSHAKE, MB_HANDSHAKE, Snapshot, mb, wait_for_no_leaks

import rpcplugin
from rpcplugin import PluginExitedError

ROUNDS = 200


@pytest.mark.go
async def test_200_go_launches_and_closes_leave_nothing(sock_dir: str) -> None:
    logging.getLogger("rpcplugin").setLevel(logging.CRITICAL)  # 200 plugins' worth of logs
    argv = [str(go_plugin_binary())]
    quiet = {"GOPLUGIN_LOG_LEVEL": "off"}
    try:
        before = Snapshot.take()
        start = time.monotonic()
        outcomes = {"ok": 0, "exit-before": 0, "exit-after": 0}
        sockets: list[str] = []
        for i in range(ROUNDS):
            env = dict(quiet)
            kind = "ok"
            if i % 20 == 7:
                env["GOPLUGIN_EXIT_BEFORE_HANDSHAKE"], kind = "3", "exit-before"
            elif i % 20 == 17:
                env["GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS"], kind = "0", "exit-after"
            opening = rpcplugin.launch(
                argv,
                handshake=GO_HANDSHAKE,
                versions=[1],
                env=env,
                auto_mtls=i % 2 == 0,
                unix_socket_dir=sock_dir,
            )
            if kind == "ok":
                async with opening as conn:
                    await conn.ping()
                assert conn.returncode == 0
                sockets.append(conn.endpoint.address)  # go-plugin 1.0.1: in /tmp, not sock_dir
            else:
                with pytest.raises(PluginExitedError):
                    await opening
            outcomes[kind] += 1
            if i == ROUNDS // 2:
                assert not await wait_for_no_leaks(before), f"leaking by launch {i}"
        elapsed = time.monotonic() - start
        problems = await wait_for_no_leaks(before)
        after = Snapshot.take()
        print(
            f"\n{ROUNDS} Go launches+closes ({outcomes}) in {elapsed:.1f} s "
            f"({elapsed / ROUNDS * 1000:.0f} ms each); fds {len(before.fds)} -> {len(after.fds)}, "
            f"children {len(before.children)} -> {len(after.children)}"
        )
        assert not problems, problems
        assert outcomes == {"ok": 180, "exit-before": 10, "exit-after": 10}
        assert not [path for path in sockets if os.path.lexists(path)]
    finally:
        logging.getLogger("rpcplugin").setLevel(logging.NOTSET)


async def test_python_plugin_launches_and_closes_leave_nothing(sock_dir: str) -> None:
    logging.getLogger("rpcplugin").setLevel(logging.CRITICAL)
    variants: list[tuple[list[str], dict[str, object]]] = [
        (mb("ok"), {"tls_backend": "grpc"}),
        (mb("ok"), {"tls_backend": "openssl"}),
        (mb("ok"), {"auto_mtls": False, "env": {"MISBEHAVE_TCP": "1"}}),
        (mb("exit", 3), {}),
        (mb("die-after", 0, 4), {"tls_backend": "openssl"}),
    ]
    try:
        before = Snapshot.take()
        start = time.monotonic()
        for i in range(20):
            argv, kw = variants[i % len(variants)]
            opening = rpcplugin.launch(
                argv,
                handshake=MB_HANDSHAKE,
                versions=[1],
                unix_socket_dir=sock_dir,
                **kw,  # type: ignore[arg-type]
            )
            if argv[2] == "ok":
                async with opening as conn:
                    await conn.ping()
            else:
                with pytest.raises(PluginExitedError):
                    await opening
        elapsed = time.monotonic() - start
        problems = await wait_for_no_leaks(before)
        print(f"\n20 Python launches+closes in {elapsed:.1f} s")
        assert not problems, problems
    finally:
        logging.getLogger("rpcplugin").setLevel(logging.NOTSET)
