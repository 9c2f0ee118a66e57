"""Plugins that misbehave: each becomes the right exception, in bounded time, and leaves no
process, descriptor or socket behind (the autouse ``no_leaks`` fixture checks the last part).

The plugin is ``tests/peers/misbehaving.py``; its mode is chosen by argv. Handshake lines that
must be refused (H02) and closes that must stay bounded (H06).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from typing import Any

import grpc
import pytest
from hostkit import (
    MB_HANDSHAKE,
    PROMPT,
    Clock,
    event_names,
    kill_quietly,
    mb,
    pid_running,
    probe,
    read_events,
)

import rpcplugin
from rpcplugin import (
    ConfigError,
    HandshakeError,
    PluginExitedError,
    SecurityError,
    StartTimeoutError,
    VersionMismatchError,
)


def launch(argv: list[str], sock_dir: str, **kw: object) -> rpcplugin.host.Opening:
    kw.setdefault("start_timeout", 10.0)
    return rpcplugin.launch(
        argv,
        handshake=MB_HANDSHAKE,
        versions=kw.pop("versions", [1]),  # type: ignore[arg-type]
        unix_socket_dir=sock_dir,
        **kw,  # type: ignore[arg-type]
    )


# -- before the handshake -----------------------------------------------------------------
def noticed_after_death(events: str) -> float:
    """Seconds from the plugin's last act before exiting (its ``dying`` event) to now."""
    [(died, _, _)] = [e for e in read_events(events) if e[1] == "dying"]
    os.unlink(events)
    return time.monotonic() - died


async def test_exit_before_handshake_reports_status_and_stderr_within_1s(sock_dir: str) -> None:
    events = os.path.join(sock_dir, "events")
    with Clock() as clock, pytest.raises(PluginExitedError) as info:
        await launch(
            mb("exit", 7, "fatal: cannot read /etc/acme.conf"),
            sock_dir,
            env={"MISBEHAVE_EVENTS": events},
        )
    # the host's part, from the exit to the error, is what it controls; the whole launch
    # includes the interpreter's start-up, hence the looser bound
    assert noticed_after_death(events) < PROMPT
    assert clock.seconds < PROMPT
    error = info.value
    assert error.returncode == 7
    assert "exit status 7" in str(error)
    assert "before printing its handshake line" in str(error)
    assert "fatal: cannot read /etc/acme.conf" in error.stderr_tail
    assert "fatal: cannot read /etc/acme.conf" in str(error)


async def test_exit_before_handshake_while_a_grandchild_holds_the_pipes(sock_dir: str) -> None:
    events = os.path.join(sock_dir, "events")
    holder = 0
    try:
        with Clock() as clock, pytest.raises(PluginExitedError) as info:
            await launch(mb("fork-holder", "before", 4), sock_dir, env={"MISBEHAVE_EVENTS": events})
        [(_, _, pid)] = [e for e in read_events(events) if e[1] == "child"]
        holder = int(pid)
        # the exit was seen while the grandchild still held the pipes: through a pidfd, not
        # through their EOF (no clock needed)
        assert pid_running(holder), "the grandchild should still hold the pipes"
        print(f"exit seen after {clock.seconds:.3f} s")
        assert info.value.returncode == 4
        assert f"started holder {holder}" in str(info.value)
    finally:
        if holder:
            kill_quietly(holder)
        os.unlink(events)


async def test_wrong_cookie_is_a_plugin_exit_with_its_explanation(sock_dir: str) -> None:
    with pytest.raises(PluginExitedError) as info:
        await launch(mb("ok"), sock_dir, env={"MISBEHAVE_COOKIE": "OTHER_COOKIE=x"})
    assert info.value.returncode == 1
    assert "wrong or missing cookie" in str(info.value)


async def test_missing_executable_is_a_config_error(sock_dir: str) -> None:
    with pytest.raises(ConfigError, match="no-such-plugin"):
        await launch([os.path.join(sock_dir, "no-such-plugin")], sock_dir)


async def test_non_executable_file_is_a_config_error(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "not-executable")
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    try:
        with pytest.raises(ConfigError, match="Permission denied"):
            await launch([path], sock_dir)
    finally:
        os.unlink(path)


async def test_start_timeout_is_honoured_and_the_plugin_killed(sock_dir: str) -> None:
    with Clock() as clock, pytest.raises(StartTimeoutError) as info:
        # long enough for the interpreter to start and say so on a loaded machine
        await launch(mb("silent"), sock_dir, start_timeout=5.0)
    assert 5.0 <= clock.seconds < 5.0 + PROMPT
    assert "no handshake line within 5 s" in str(info.value)
    assert "starting very slowly" in str(info.value)  # its stderr so far
    # no_leaks: the silent plugin has been SIGKILLed and reaped


async def test_stdout_closed_without_a_handshake_fails_at_once(sock_dir: str) -> None:
    """go-plugin: "Unrecognized remote plugin message: ... Failed to read any lines from plugin's
    stdout", at once, rather than waiting for the start timeout."""
    with Clock() as clock, pytest.raises(HandshakeError, match="closed its stdout") as info:
        await launch(mb("close-stdout"), sock_dir, start_timeout=30)
    assert type(info.value) is HandshakeError
    assert "closed my stdout" in str(info.value)  # its stderr tail
    assert clock.seconds < 10.0  # far under the 30 s start timeout, even on a loaded machine


# -- a bad handshake line -----------------------------------------------------------------
async def test_garbage_before_the_handshake_line(unchecked_sock_dir: str) -> None:
    with Clock() as clock, pytest.raises(HandshakeError) as info:
        await launch(mb("garbage", "Loading configuration..."), unchecked_sock_dir)
    assert type(info.value) is HandshakeError
    assert info.value.line == "Loading configuration..."
    assert "unrecognized plugin handshake line 'Loading configuration...'" in str(info.value)
    assert clock.seconds < PROMPT  # refused, not left to the start timeout


async def test_stderr_noise_before_the_handshake_is_fine(sock_dir: str) -> None:
    async with launch(mb("stderr-noise"), sock_dir) as conn:
        await conn.ping()
        assert await probe(conn, "Echo", b"still here") == b"still here"


async def test_wrong_core_version(unchecked_sock_dir: str) -> None:
    with pytest.raises(VersionMismatchError) as info:
        await launch(mb("core", 2), unchecked_sock_dir)
    assert "incompatible core protocol version 2" in str(info.value)
    assert info.value.line.startswith("2|1|unix|")


async def test_unoffered_app_version(unchecked_sock_dir: str) -> None:
    with pytest.raises(VersionMismatchError) as info:
        await launch(mb("app", 7), unchecked_sock_dir, versions=[1, 2])
    message = str(info.value)
    assert "app protocol version 7" in message
    assert "offered only 1,2" in message


async def test_netrpc_protocol_is_refused(unchecked_sock_dir: str) -> None:
    with pytest.raises(HandshakeError, match="protocol 'netrpc'") as info:
        await launch(mb("netrpc"), unchecked_sock_dir)
    assert type(info.value) is HandshakeError


async def test_four_fields_mean_netrpc_and_are_refused(unchecked_sock_dir: str) -> None:
    with pytest.raises(HandshakeError, match="protocol 'netrpc'"):
        await launch(mb("line", "1|{version}|{network}|{addr}"), unchecked_sock_dir)


async def test_handshake_line_over_64_kib_is_refused(unchecked_sock_dir: str) -> None:
    # a valid line padded with 70 KiB of spaces: its first 64 KiB would parse
    with pytest.raises(HandshakeError, match="64 KiB"):
        await launch(mb("oversize"), unchecked_sock_dir)


async def test_handshake_line_with_nul_is_refused(unchecked_sock_dir: str) -> None:
    with pytest.raises(HandshakeError, match="NUL"):
        await launch(mb("nul"), unchecked_sock_dir)


async def test_rejected_handshake_leaves_no_socket_in_the_default_private_dir(
    sock_dir: str,
) -> None:
    """Without ``unix_socket_dir`` each plugin gets a private socket directory, removed after
    the reap: even a plugin whose handshake line is refused (so the host never learns its
    socket path) leaves nothing."""
    events = os.path.join(sock_dir, "events")  # the plugin's sockets go elsewhere
    try:
        with pytest.raises(HandshakeError):
            await rpcplugin.launch(
                mb("garbage"),
                handshake=MB_HANDSHAKE,
                versions=[1],
                env={"MISBEHAVE_EVENTS": events},
            )
        [(_, _, where)] = [e for e in read_events(events) if e[1] == "listening"]
        path = where.removeprefix("unix:")
        assert not os.path.exists(path)
        assert not os.path.exists(os.path.dirname(path))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(events)


async def test_rejected_handshake_leaves_no_socket(unchecked_sock_dir: str) -> None:
    with pytest.raises(HandshakeError):
        await launch(mb("garbage"), unchecked_sock_dir)
    assert os.listdir(unchecked_sock_dir) == []


# -- TLS misbehaviour ---------------------------------------------------------------------
async def test_certificate_the_host_did_not_ask_for(sock_dir: str) -> None:
    with pytest.raises(SecurityError) as info:
        await launch(mb("unasked-cert"), sock_dir, auto_mtls=False)
    assert "did not ask for AutoMTLS" in str(info.value)


async def test_no_certificate_although_asked_never_falls_back(sock_dir: str) -> None:
    with pytest.raises(SecurityError, match="refusing to fall back to plaintext"):
        await launch(mb("no-tls"), sock_dir)


@pytest.mark.parametrize("backend", ["grpc", "openssl"])
async def test_announced_cert_but_plaintext_server(sock_dir: str, backend: str) -> None:
    with Clock() as clock, pytest.raises(SecurityError) as info:
        await launch(mb("plaintext-with-cert"), sock_dir, tls_backend=backend)
    assert "WRONG_VERSION_NUMBER" in str(info.value).upper().replace(" ", "_")
    assert clock.seconds < PROMPT  # killed at once (test_h_lines proves the order: no Shutdown)


# -- after the handshake ------------------------------------------------------------------
async def test_dies_right_after_handshake(sock_dir: str) -> None:
    events = os.path.join(sock_dir, "events")
    with Clock() as clock, pytest.raises(PluginExitedError) as info:
        await launch(mb("die-after", 0, 5), sock_dir, env={"MISBEHAVE_EVENTS": events})
    assert noticed_after_death(events) < PROMPT
    assert clock.seconds < PROMPT
    assert info.value.returncode == 5
    assert "dying with status 5 as told" in str(info.value)


@pytest.mark.parametrize("tls_backend", ["off", "grpc", "openssl"])
async def test_death_after_connect_is_noticed_at_once(
    sock_dir: str, tls_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    events = os.path.join(sock_dir, "events")
    tls: dict[str, Any] = (
        {"auto_mtls": False} if tls_backend == "off" else {"tls_backend": tls_backend}
    )
    conn = await launch(mb("die-after", 400, 6), sock_dir, env={"MISBEHAVE_EVENTS": events}, **tls)
    assert conn.tls == tls_backend
    try:
        assert not conn.exited
        assert conn.exit_error is None
        # a call in flight when the plugin dies fails at once (not after a 30 s keepalive)
        with Clock() as call_clock, pytest.raises(grpc.aio.AioRpcError) as call_info:
            await probe(conn, "Hold", b"30", timeout=20)
        assert call_info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await asyncio.wait_for(conn.wait_exit(), PROMPT) == 6
        noticed = time.monotonic()
        [(died, _, _)] = [e for e in read_events(events) if e[1] == "dying"]
        print(
            f"exit seen after {noticed - died:.3f} s, the call failed in {call_clock.seconds:.3f} s"
        )
        assert noticed - died < PROMPT
        assert (
            call_clock.seconds < 20
        )  # the call's own deadline: UNAVAILABLE, not DEADLINE_EXCEEDED
        assert conn.exited and conn.returncode == 6
        error = conn.exit_error
        assert isinstance(error, PluginExitedError)
        assert error.returncode == 6 and "dying with status 6" in error.stderr_tail
        # after the exit, calls fail at once, even without a deadline (through the OpenSSL
        # relay they used to be retried forever)
        with Clock() as after_clock, pytest.raises(grpc.aio.AioRpcError) as after_info:
            await asyncio.wait_for(probe(conn, "Echo", b"x", timeout=None), PROMPT)
        assert after_info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(PluginExitedError, match="exit status 6"):
            await conn.ping()
        assert after_clock.seconds < PROMPT  # without a deadline: retried forever, before
        assert any("exited unexpectedly" in r.getMessage() for r in caplog.records)
    finally:
        with Clock() as close_clock:
            await conn.close()
        os.unlink(events)
    assert close_clock.seconds < PROMPT  # dead already: no Shutdown (test_h_lines: the order)


@pytest.mark.parametrize(("how", "low", "high"), [("reply", 1.9, 12.0), ("hang", 2.9, 13.0)])
async def test_wedged_on_shutdown_is_killed_within_the_bound(
    sock_dir: str, how: str, low: float, high: float, caplog: pytest.LogCaptureFixture
) -> None:
    """``reply``: Shutdown answered, process keeps running → killed 2 s later. ``hang``: Shutdown
    never answered → 1 s call deadline + 2 s. Never SIGINT/SIGTERM (H06)."""
    events = os.path.join(sock_dir, "events")
    conn = await launch(mb("wedged", how), sock_dir, env={"MISBEHAVE_EVENTS": events})
    await conn.ping()
    with Clock() as clock:
        await conn.close()
    try:
        assert low <= clock.seconds < high
        assert conn.returncode == -9
        names = event_names(events)
        assert "shutdown" in names
        assert "signal" not in names, "the host must not send SIGINT/SIGTERM"
        assert any("did not exit 2 s after Shutdown" in r.getMessage() for r in caplog.records)
    finally:
        os.unlink(events)


async def test_ten_mib_on_stdout_and_stderr_does_not_stall(sock_dir: str) -> None:
    events = os.path.join(sock_dir, "events")
    logging.getLogger("rpcplugin.plugin").setLevel(logging.INFO)  # skip 10k DEBUG records
    try:
        async with launch(mb("flood", 10), sock_dir, env={"MISBEHAVE_EVENTS": events}) as conn:
            calls = 0
            with Clock() as clock:
                while "flood-done" not in event_names(events):
                    assert clock.seconds < 20, "the plugin's writes stalled: host not draining"
                    assert await probe(conn, "Echo", b"ping", timeout=5) == b"ping"
                    calls += 1
            for _ in range(20):  # and after it
                assert await probe(conn, "Echo", b"pong", timeout=5) == b"pong"
            assert calls >= 1
            assert "flood done" in conn.stderr_tail() or await _eventually_in_tail(conn)
    finally:
        logging.getLogger("rpcplugin.plugin").setLevel(logging.NOTSET)
        os.unlink(events)


async def _eventually_in_tail(conn: rpcplugin.PluginConnection) -> bool:
    for _ in range(100):
        if "flood done" in conn.stderr_tail():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_close_is_bounded_when_a_grandchild_keeps_the_pipes(sock_dir: str) -> None:
    events = os.path.join(sock_dir, "events")
    holder = 0
    try:
        async with launch(
            mb("fork-holder", "after"), sock_dir, env={"MISBEHAVE_EVENTS": events}
        ) as conn:
            [(_, _, pid)] = [e for e in read_events(events) if e[1] == "child"]
            holder = int(pid)
            await conn.ping()
            clock = Clock().__enter__()
        clock.__exit__()
        assert conn.returncode == 0  # it exited by itself: no SIGKILL after the 2 s wait
        assert pid_running(holder)
        print(f"close with a grandchild on the pipes: {clock.seconds:.3f} s")
    finally:
        if holder:
            kill_quietly(holder)
        os.unlink(events)


# -- the leak check itself ----------------------------------------------------------------
async def test_the_leak_check_sees_descriptors_and_children() -> None:
    import subprocess

    from hostkit import Snapshot, wait_for_no_leaks

    before = Snapshot.take()
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(["sleep", "5"])
    try:
        problems = await wait_for_no_leaks(before, timeout=0.1)
        assert any("open fds" in p for p in problems), problems
        assert any(f"{child.pid}" in p and "child processes" in p for p in problems), problems
    finally:
        os.close(read_fd)
        os.close(write_fd)
        child.kill()
        child.wait()
    assert await wait_for_no_leaks(before, timeout=1.0) == []
