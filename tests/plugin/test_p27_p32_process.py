"""docs/protocol.md §7, P27–P32: how the plugin process behaves at the OS level."""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import signal
import stat
import subprocess
import termios
import time
from types import SimpleNamespace

import grpc
import pytest
from peers.harness import (
    COOKIE_KEY,
    TIMESTAMP_RE,
    Conformance,
    Handshake,
    Launcher,
    PluginProcess,
    dial,
    health_check,
    leftovers,
    pid_gone,
    poll_until,
    python_argv,
    shutdown,
)

HCLOG_LEVELS = {"trace", "debug", "info", "warn", "error"}


def proc_status(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def stop_via_shutdown(plugin: PluginProcess) -> None:
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        assert await shutdown(dialed.channel) in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    assert plugin.wait(5) == 0


# ---- P27 ----


async def test_p27_sigint_is_ignored(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    ignored = int(proc_status(plugin.pid, "SigIgn"), 16)
    assert ignored & (1 << (signal.SIGINT - 1)), "SIGINT must be SIG_IGN"
    for _ in range(3):
        plugin.signal(signal.SIGINT)
    async with dial(plugin.hs) as dialed:
        assert await health_check(dialed.channel) == 1
    assert plugin.running()
    await stop_via_shutdown(plugin)


async def test_p27_stdin_is_never_read(launch: Launcher, pb: SimpleNamespace) -> None:
    plugin = launch(stdin=subprocess.PIPE)
    assert plugin.hs is not None and plugin.proc.stdin is not None
    typed = b"the user's terminal input\n"
    plugin.proc.stdin.write(typed)
    plugin.proc.stdin.flush()
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        await stub.command("sleep 0.1")
        assert await health_check(dialed.channel) == 1
    unread = array.array("i", [0])
    fcntl.ioctl(plugin.proc.stdin.fileno(), termios.FIONREAD, unread)
    assert unread[0] == len(typed), "the plugin consumed bytes from stdin"
    plugin.proc.stdin.close()
    await stop_via_shutdown(plugin)


# ---- P28 / P29 ----


def parsed_log_lines(plugin: PluginProcess) -> list[dict[str, object]]:
    entries = []
    for line in plugin.stderr_lines():
        if line.startswith("{"):
            entry = json.loads(line)
            assert isinstance(entry, dict), line
            for key in ("@level", "@message", "@timestamp"):
                assert isinstance(entry.get(key), str), f"{key} is not a string: {line}"
            assert entry["@level"] in HCLOG_LEVELS, line
            assert TIMESTAMP_RE.match(str(entry["@timestamp"])), line
            entries.append(entry)
    return entries


async def test_p28_json_log_lines_have_string_fields_and_6_digit_timestamps(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch({"RPCPLUGIN_LOG_LEVEL": "trace", "PLUGIN_PROTOCOL_VERSIONS": "x,1"})
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        for level in ("trace", "debug", "info", "warning", "error"):
            await stub.command(f"log {level} message at {level}")
        await stub.command("log info ")  # an empty message is still a string
    await stop_via_shutdown(plugin)
    entries = parsed_log_lines(plugin)
    ours = {e["@message"]: e for e in entries if e.get("@module") == "conformance"}
    expected = {"trace": "trace", "debug": "debug", "info": "info", "warning": "warn"}
    for level, hclog in {**expected, "error": "error"}.items():
        entry = ours[f"message at {level}"]
        assert entry["@level"] == hclog
        assert entry["count"] == 3 and entry["flag"] is True and entry["nothing"] == "None"
    assert ours[""]["@level"] == "info"
    # the runtime's own warning about the junk version item, as a JSON line too
    assert any(
        e["@level"] == "warn" and "PLUGIN_PROTOCOL_VERSIONS" in str(e["@message"]) for e in entries
    )
    assert all(line.startswith("{") for line in plugin.stderr_lines()), plugin.stderr_text()


async def test_p28_text_log_lines_carry_a_level_prefix(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch({"RPCPLUGIN_LOG_FORMAT": "text", "PLUGIN_PROTOCOL_VERSIONS": "x,1"})
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        await Conformance(dialed.channel, pb).command("log warning careful")
    await stop_via_shutdown(plugin)
    lines = plugin.stderr_lines()
    assert any(line.startswith("[WARN] ") and "careful" in line for line in lines), lines
    assert all(
        line.startswith(("[TRACE] ", "[DEBUG] ", "[INFO] ", "[WARN] ", "[ERROR] "))
        for line in lines
    ), lines


@pytest.mark.parametrize("letter", ["y", "€"], ids=["ascii", "3-byte-utf8"])
@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_p29_stderr_lines_stay_under_64_kib(
    launch: Launcher, pb: SimpleNamespace, log_format: str, letter: str
) -> None:
    plugin = launch({"RPCPLUGIN_LOG_FORMAT": log_format})
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        await Conformance(dialed.channel, pb).command("log error " + letter * 200_000)
    await stop_via_shutdown(plugin)
    raw = plugin.stderr_raw_lines()
    assert raw, "the long message was logged"
    assert max(len(line) for line in raw) <= 64 * 1024, [len(line) for line in raw]
    if log_format == "json":
        parsed_log_lines(plugin)  # still whole JSON objects


# ---- P30 ----


def _fd_links(pid: int) -> dict[str, str]:
    """What each open fd of ``pid`` points at; an fd closed while we look is not open."""
    links = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            links[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return links


async def test_p30_stdout_pipe_is_released_and_children_do_not_inherit_it(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch()
    assert plugin.hs is not None and plugin.proc.stdout is not None
    pipe = f"pipe:[{os.fstat(plugin.proc.stdout.fileno()).st_ino}]"
    # EOF on the host's stdout pipe while the plugin runs: nothing holds its write end any more
    assert plugin.read_rest_of_stdout(5) == b""
    assert plugin.stdout_eof and plugin.running()
    async with dial(plugin.hs) as dialed:
        child = int(await Conformance(dialed.channel, pb).command("spawn"))
    try:
        for pid in (plugin.pid, child):
            links = _fd_links(pid)
            assert pipe not in links.values(), (pid, links)
        assert os.readlink(f"/proc/{child}/fd/1") == "/dev/null"
    finally:
        os.kill(child, signal.SIGKILL)
    await stop_via_shutdown(plugin)


async def test_p30_children_do_not_inherit_the_host_stderr_pipe(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch()
    assert plugin.hs is not None and plugin.proc.stderr is not None
    pipe = f"pipe:[{os.fstat(plugin.proc.stderr.fileno()).st_ino}]"
    async with dial(plugin.hs) as dialed:
        child = int(await Conformance(dialed.channel, pb).command("spawn"))
    try:
        assert os.readlink(f"/proc/{child}/fd/2") != pipe
    finally:
        os.kill(child, signal.SIGKILL)
        await stop_via_shutdown(plugin)


# ---- P31 ----


def launch_under_shell(launch: Launcher, env: dict[str, str | None]) -> PluginProcess:
    """Start the plugin as the child of a shell we can kill: the shell plays the host."""
    argv = ["sh", "-c", '"$@" & wait', "sh", *python_argv()]
    return launch(env, argv=argv)


async def real_pid(plugin: PluginProcess, pb: SimpleNamespace) -> int:
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest())
    assert info.pid != plugin.pid
    return int(info.pid)


async def test_p31_exits_when_the_host_dies(launch: Launcher, pb: SimpleNamespace) -> None:
    plugin = launch_under_shell(launch, {})
    pid = await real_pid(plugin, pb)
    plugin.proc.kill()  # SIGKILL the "host"
    started = time.monotonic()
    assert poll_until(lambda: pid_gone(pid), 3.0), "the plugin outlived its host by 3 s"
    elapsed = time.monotonic() - started
    print(f"host SIGKILL → plugin exit: {elapsed * 1000:.0f} ms")
    assert poll_until(lambda: leftovers(plugin.env["TMPDIR"]) == [], 1.0), "socket left behind"


async def test_p31_parent_watch_can_be_turned_off(launch: Launcher, pb: SimpleNamespace) -> None:
    # the control for the test above: without the watch the orphan keeps running
    plugin = launch_under_shell(launch, {"RPCPLUGIN_PARENT_WATCH": "false"})
    pid = await real_pid(plugin, pb)
    plugin.proc.kill()
    plugin.proc.wait(5)
    time.sleep(2.2)
    try:
        assert not pid_gone(pid)
    finally:
        os.kill(pid, signal.SIGTERM)
        assert poll_until(lambda: pid_gone(pid), 5.0)
    assert poll_until(lambda: leftovers(plugin.env["TMPDIR"]) == [], 1.0)


# ---- P32 ----


async def test_p32_debug_mode_prints_reattach_json_and_serves_until_stopped(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch(
        {"RPCPLUGIN_DEBUG": "1", COOKIE_KEY: None, "PLUGIN_PROTOCOL_VERSIONS": None},
        handshake=False,
    )
    config = json.loads(plugin.read_line())
    assert list(config) == ["conformance"]
    entry = config["conformance"]
    address = entry["Addr"]["String"]
    assert entry == {
        "Protocol": "grpc",
        "ProtocolVersion": 2,  # the highest served when no host offered any
        "Pid": plugin.pid,
        "Test": True,
        "Addr": {"Network": "unix", "String": address},
    }
    assert stat.S_ISSOCK(os.stat(address).st_mode)
    hs = Handshake.parse(f"1|2|unix|{address}|grpc|\n".encode())
    for attach in range(2):  # it stays up across host connections
        async with dial(hs) as dialed:
            assert await health_check(dialed.channel) == 1
            stub = Conformance(dialed.channel, pb)
            reply = await stub.echo2(pb.v2.EchoRequest(text=f"a{attach}"), timeout=10)
            assert reply.text == f"A{attach}"
    assert plugin.running()
    plugin.signal(signal.SIGINT)  # debug mode keeps Ctrl-C
    assert plugin.wait(3) == 0
    assert not os.path.exists(address)
