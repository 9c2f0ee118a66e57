"""Sanity baseline: the Go peers work Go to Go, before any Python runtime is involved.

If these fail, every Python-vs-Go test fails for reasons that are not the Python
runtime's fault. They also pin down go-plugin 1.0.1 behaviour the other tests rely
on (negotiation, graceful kill, error texts).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import gopeers
import pytest
from gopeers import GoHostRun, go_host_binary, go_plugin_binary, run_go_host

pytestmark = pytest.mark.go


def plugin() -> list[str]:
    return [str(go_plugin_binary())]


def assert_clean_kill(run: GoHostRun) -> None:
    killed = run.one("killed")
    assert killed["graceful"] is True, run
    assert killed["exited"] is True, run
    assert killed["ms"] < 1000, run
    assert run.events[-1]["event"] == "killed", run


def test_binaries_are_built_and_cached() -> None:
    host, plug = go_host_binary(), go_plugin_binary()
    for path in (host, plug):
        assert path.parent == gopeers.BIN_DIR
        assert os.access(path, os.X_OK)
    assert (gopeers.BIN_DIR / "stamp").read_text() == gopeers._digest(gopeers._find_tools())
    assert go_host_binary() == host


def test_missing_toolchain_names_make_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="make setup") as info:
        gopeers._find_tools()
    assert "`go` is not on PATH" in str(info.value)


@pytest.mark.parametrize("automtls", [False, True], ids=["plaintext", "automtls"])
def test_all_call_kinds_v1(automtls: bool) -> None:
    flags = ["-versions", "1", "-env", "PEER_PROBE=x y=z", "-count-n", "7"]
    flags += ["-count-payload", "1000", "-info-env", "NOT_SET_ANYWHERE"]
    if automtls:
        flags.append("-automtls")
    run = run_go_host(plugin(), *flags)
    assert run.returncode == 0, run
    assert not run.unparsed, run
    assert [e["event"] for e in run.events] == [
        "started", "ping", "echo", "bigecho", "count", "sum", "chat", "info", "killed",
    ], run  # fmt: skip

    started = run.one("started")
    assert started["version"] == 1
    assert started["protocol"] == "grpc"
    assert started["network"] == "unix"
    assert started["automtls"] is automtls
    assert started["server_cert"] is automtls
    assert run.one("ping")["ok"] is True
    assert run.one("echo") | {"ms": 0} == {"event": "echo", "text": "hello", "version": 1, "ms": 0}
    assert run.one("bigecho")["size"] == 5 << 20  # over grpc's 4 MiB default
    count = run.one("count")
    assert count["values"] == list(range(1, 8))
    assert count["payload_bytes"] == 7 * 1000
    assert (run.one("sum")["total"], run.one("sum")["count"]) == (15, 5)
    assert run.one("chat")["replies"] == ["a", "b", "c"]

    info = run.one("info")
    assert info["pid"] == started["pid"]
    assert info["version"] == 1
    assert info["implementation"] == "go"
    assert info["env"]["PEER_PROBE"] == "x y=z"
    assert info["env"]["PLUGIN_PROTOCOL_VERSIONS"] == "1"
    assert info["env"]["RPCPLUGIN_CONFORMANCE"] == "conformance-v1"
    assert info["env"]["PLUGIN_MIN_PORT"] == "10000"
    assert "NOT_SET_ANYWHERE" not in info["env"]
    assert_clean_kill(run)


@pytest.mark.parametrize(
    ("host_versions", "plugin_versions", "want"),
    [("1,2", "1,2", 2), ("1", "1,2", 1), ("2", "1,2", 2), ("1,2", "1", 1), ("2,1", "2", 2)],
)
@pytest.mark.parametrize("automtls", [False, True], ids=["plaintext", "automtls"])
def test_version_negotiation(
    host_versions: str, plugin_versions: str, want: int, automtls: bool
) -> None:
    flags = ["-versions", host_versions, "-env", f"GOPLUGIN_VERSIONS={plugin_versions}"]
    flags += ["-calls", "ping,echo,echo2", "-keep-going"]
    if automtls:
        flags.append("-automtls")
    run = run_go_host(plugin(), *flags)
    assert run.one("started")["version"] == want, run
    assert run.one("ping")["ok"] is True
    # Only the negotiated version's services are registered.
    if want == 1:
        assert run.one("echo")["text"] == "hello"
        assert "Unimplemented" in run.one("error")["error"]
        assert run.one("error")["stage"] == "echo2"
    else:
        assert run.one("echo2") | {"ms": 0} == {
            "event": "echo2", "text": "HELLO", "version": 2, "ms": 0,
        }  # fmt: skip
        assert run.one("error")["stage"] == "echo"
        assert "unknown service conformance.v1.Conformance" in run.one("error")["error"]
    assert run.returncode == 1
    assert_clean_kill(run)


def test_default_calls_for_version_2() -> None:
    run = run_go_host(plugin(), "-automtls")
    assert run.returncode == 0, run
    assert [e["event"] for e in run.events] == ["started", "ping", "echo2", "killed"], run
    assert_clean_kill(run)


def test_v2_can_also_serve_v1() -> None:
    run = run_go_host(plugin(), "-env", "GOPLUGIN_V2_WITH_V1=1", "-calls", "echo2,echo,info,count")
    assert run.returncode == 0, run
    assert run.one("echo")["version"] == 2
    assert run.one("info")["version"] == 2
    assert run.one("echo2")["text"] == "HELLO"


def test_no_common_version_is_a_start_error() -> None:
    run = run_go_host(plugin(), "-versions", "5,6")
    assert run.returncode == 1, run
    err = run.one("error")
    assert err["stage"] == "start"
    assert "Incompatible API version with plugin. Plugin version: 1" in err["error"]
    assert run.events[-1]["event"] == "killed"
    assert run.one("killed")["exited"] is True


def test_wrong_cookie() -> None:
    run = run_go_host(plugin(), "-cookie-value", "not-the-cookie")
    assert run.returncode == 1, run
    assert run.one("error")["stage"] == "start"
    assert "Unrecognized remote plugin message: \n" in run.one("error")["error"]
    assert "This binary is a plugin" in run.stderr


def test_custom_cookie() -> None:
    run = run_go_host(
        plugin(),
        *("-cookie-key", "OTHER_COOKIE", "-cookie-value", "v", "-calls", "ping"),
        *("-env", "GOPLUGIN_COOKIE_KEY=OTHER_COOKIE", "-env", "GOPLUGIN_COOKIE_VALUE=v"),
    )
    assert run.returncode == 0, run


def test_default_grpc_server_has_4mib_limit() -> None:
    """plugin.DefaultGRPCServer keeps grpc-go's 4 MiB receive limit; ours lifts it."""
    flags = ["-versions", "1", "-calls", "bigecho", "-payload-size", str(4 << 20)]
    run = run_go_host(plugin(), *flags, "-env", "GOPLUGIN_GRPC_SERVER=default")
    assert run.one("error")["stage"] == "bigecho", run
    assert "ResourceExhausted" in run.one("error")["error"]
    run = run_go_host(plugin(), *flags)
    assert run.returncode == 0, run


def test_shutdown_ignored_means_sigkill_after_2s() -> None:
    run = run_go_host(plugin(), "-calls", "ping", "-env", "GOPLUGIN_SHUTDOWN=ignore")
    assert run.returncode == 0, run
    killed = run.one("killed")
    assert killed["graceful"] is False
    assert killed["exited"] is True
    assert 1900 < killed["ms"] < 5000
    assert "plugin failed to exit gracefully" in run.stderr


def test_plugin_exit_before_handshake() -> None:
    run = run_go_host(plugin(), "-env", "GOPLUGIN_EXIT_BEFORE_HANDSHAKE=4")
    assert run.returncode == 1, run
    assert run.one("error")["stage"] == "start"
    assert "Unrecognized remote plugin message" in run.one("error")["error"]


def test_plugin_death_after_handshake_is_noticed() -> None:
    run = run_go_host(
        plugin(),
        *("-calls", "ping,sleep,status,ping", "-sleep", "500ms", "-keep-going"),
        *("-env", "GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS=100"),
    )
    assert run.one("ping")["ok"] is True, run
    assert run.one("status")["exited"] is True
    assert run.one("error")["stage"] == "ping"
    assert "Unavailable" in run.one("error")["error"]
    assert run.one("killed")["exited"] is True


@pytest.mark.parametrize(
    ("template", "automtls", "message"),
    [
        ("junk\\n{line}", False, "Unrecognized remote plugin message: junk"),
        ("{line}|true", True, "error parsing server cert: illegal base64 data"),
        ("1|7|unix|/nowhere|grpc|", False, "Incompatible API version"),
        ("1|2|unix|/nowhere|netrpc|", False, 'Unsupported plugin protocol "netrpc"'),
    ],
)
def test_handshake_rewrites(template: str, automtls: bool, message: str) -> None:
    flags = ["-env", f"GOPLUGIN_HANDSHAKE_TEMPLATE={template}"]
    run = run_go_host(plugin(), *flags, *(["-automtls"] if automtls else []))
    assert run.returncode == 1, run
    assert run.one("error")["stage"] == "start"
    assert message in run.one("error")["error"]
    assert run.one("killed")["exited"] is True


def test_cert_without_automtls_crashes_go_plugin_1_0_1_host() -> None:
    """A cert in field 6 to a host without TLS: go-plugin 1.0.1 dereferences a nil TLS config."""
    run = run_go_host(plugin(), "-env", "PLUGIN_CLIENT_CERT=not a pem")
    assert run.returncode == 1, run
    err = run.one("error")
    assert err["stage"] == "start"
    assert "panic" in err["error"] and "nil pointer" in err["error"]
    assert run.one("killed")["exited"] is True


def test_start_timeout() -> None:
    run = run_go_host(plugin(), "-start-timeout", "300ms", "-env", "GOPLUGIN_SLOW_START_MS=3000")
    assert run.one("error")["error"] == "timeout while waiting for plugin to start", run
    assert run.one("killed")["exited"] is True


def test_stderr_passthrough_and_events() -> None:
    run = run_go_host(plugin(), "-calls", "ping", "-stderr-events")
    assert run.returncode == 0, run
    lines = [e["line"] for e in run.of("stderr")]
    assert any('"@message":"plugin address"' in line for line in lines), run
    assert any('"@message":"plugin address"' in line for line in run.stderr.splitlines())


def test_plugin_without_host_refuses_to_run() -> None:
    proc = subprocess.run(
        plugin(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "This binary is a plugin" in proc.stderr


def test_reattach_to_debug_mode_plugin() -> None:
    env = dict(os.environ, GOPLUGIN_DEBUG="1", GOPLUGIN_VERSIONS="1")
    proc = subprocess.Popen(
        plugin(), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        config = proc.stdout.readline()
        # Reap the plugin as soon as it exits: go-plugin polls kill(pid, 0), which
        # a zombie would pass.
        waiter = threading.Thread(target=proc.wait, daemon=True)
        waiter.start()
        run = run_go_host(None, "-reattach", config)
        assert run.returncode == 0, run
        started = run.one("started")
        assert started["reattach"] is True
        assert started["pid"] == proc.pid
        assert started["version"] == 1
        assert run.one("info")["pid"] == proc.pid
        assert run.one("killed")["graceful"] is True
        waiter.join(10)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_deadline_kills_the_plugin() -> None:
    run = run_go_host(plugin(), "-deadline", "1s", "-calls", "ping,sleep", "-sleep", "10s")
    assert run.returncode == 2, run
    assert run.one("error")["stage"] == "deadline"
    pid = run.one("started")["pid"]
    assert isinstance(pid, int)
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        stat = Path(f"/proc/{pid}/stat").read_text()
        assert stat.rsplit(")", 1)[1].split()[0] in "ZX", stat
