"""docs/protocol.md §4, P11–P14: where and how the plugin listens."""

from __future__ import annotations

import grp
import os
import signal
import stat

import grpc
import pytest
from peers.harness import (
    Identity,
    Launcher,
    PluginProcess,
    client_context,
    dial,
    free_port_run,
    leftovers,
    occupied_ports,
    shutdown,
    tls_probe,
)

BACKENDS = ["plaintext", "openssl-p521"]


def tls_env(launch: Launcher, backend: str) -> tuple[dict[str, str], Identity | None]:
    if backend == "plaintext":
        return {}, None
    identity = launch.identity("secp256r1" if backend == "grpc-p256" else "secp521r1")
    return {"PLUGIN_CLIENT_CERT": identity.pem}, identity


def assert_serves(plugin: PluginProcess, identity: Identity | None) -> None:
    assert plugin.hs is not None
    if identity is None:
        with plugin.hs.connect_socket():
            pass
    else:
        result = tls_probe(plugin.hs, client_context(plugin.hs, identity))
        assert result.served, result


# ---- P11 ----


@pytest.mark.parametrize("backend", ["plaintext", "grpc-p256", "openssl-p521"])
async def test_p11_socket_in_the_temp_dir_and_removed_at_shutdown(
    launch: Launcher, backend: str
) -> None:
    env, identity = tls_env(launch, backend)
    plugin = launch(env)
    assert plugin.hs is not None
    tmpdir = plugin.env["TMPDIR"]
    assert os.path.dirname(plugin.hs.address) == tmpdir
    assert os.path.basename(plugin.hs.address).startswith("plugin")
    async with dial(plugin.hs, identity) as dialed:
        assert await shutdown(dialed.channel) in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    assert plugin.wait(5) == 0
    assert leftovers(tmpdir) == [], "socket (and the relay's private dir) removed"


@pytest.mark.parametrize("backend", BACKENDS)
def test_p11_socket_in_plugin_unix_socket_dir_and_removed_on_sigterm(
    launch: Launcher, backend: str
) -> None:
    env, identity = tls_env(launch, backend)
    socket_dir = launch.tmpdir()
    plugin = launch({**env, "PLUGIN_UNIX_SOCKET_DIR": socket_dir})
    assert plugin.hs is not None
    assert os.path.dirname(plugin.hs.address) == socket_dir
    assert leftovers(plugin.env["TMPDIR"]) == [], "nothing in TMPDIR when the dir is given"
    assert_serves(plugin, identity)
    plugin.signal(signal.SIGTERM)
    assert plugin.wait(5) == 0
    assert leftovers(socket_dir) == []


# ---- P12 ----


def other_group() -> tuple[int, str]:
    """A group to hand the socket to: not our own when we may chown (root), else our own."""
    own = os.getegid()
    if os.geteuid() == 0:
        for entry in grp.getgrall():
            if entry.gr_gid != own:
                return entry.gr_gid, entry.gr_name
    return own, grp.getgrgid(own).gr_name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spelling", ["gid", "name"])
def test_p12_group_socket_is_chowned_and_0660(
    launch: Launcher, backend: str, spelling: str
) -> None:
    gid, name = other_group()
    env, identity = tls_env(launch, backend)
    plugin = launch({**env, "PLUGIN_UNIX_SOCKET_GROUP": str(gid) if spelling == "gid" else name})
    assert plugin.hs is not None
    info = os.stat(plugin.hs.address)
    assert stat.S_ISSOCK(info.st_mode)
    assert info.st_gid == gid
    assert stat.S_IMODE(info.st_mode) == 0o660, oct(info.st_mode)
    assert_serves(plugin, identity)


@pytest.mark.parametrize("backend", BACKENDS)
def test_p12_without_group_the_socket_is_owner_only(launch: Launcher, backend: str) -> None:
    env, identity = tls_env(launch, backend)
    plugin = launch(env)
    assert plugin.hs is not None
    mode = stat.S_IMODE(os.stat(plugin.hs.address).st_mode)
    assert mode & 0o077 == 0, oct(mode)
    assert_serves(plugin, identity)


# ---- P13 ----


@pytest.mark.parametrize("backend", BACKENDS)
def test_p13_tcp_takes_the_first_free_port_ascending(launch: Launcher, backend: str) -> None:
    env, identity = tls_env(launch, backend)
    first = free_port_run(4)
    with occupied_ports([first]):
        plugin = launch(
            {
                **env,
                "RPCPLUGIN_TRANSPORT": "tcp",
                "PLUGIN_MIN_PORT": str(first),
                "PLUGIN_MAX_PORT": str(first + 3),
            }
        )
    assert plugin.hs is not None
    assert plugin.hs.network == "tcp"
    assert plugin.hs.address == f"127.0.0.1:{first + 1}"
    assert_serves(plugin, identity)


def test_p13_tcp_without_a_range_lets_the_os_pick(launch: Launcher) -> None:
    plugin = launch({"RPCPLUGIN_TRANSPORT": "tcp"})
    assert plugin.hs is not None
    host, _, port = plugin.hs.address.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert_serves(plugin, None)


def test_p13_port_range_is_ignored_in_unix_mode(launch: Launcher) -> None:
    # go-plugin hosts always set the range; on unix the Go server ignores it, and so do we
    plugin = launch({"PLUGIN_MIN_PORT": "10000", "PLUGIN_MAX_PORT": "25000"})
    assert plugin.hs is not None
    assert plugin.hs.network == "unix"


# ---- P14 ----


def test_p14_socket_paths_stay_under_104_bytes(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    assert len(plugin.hs.address.encode()) < 104
    deep = launch.tmpdir()
    long_dir = os.path.join(deep, "d" * (100 - len(deep)))
    os.mkdir(long_dir)
    refused = launch({"PLUGIN_UNIX_SOCKET_DIR": long_dir}, handshake=False)
    assert refused.wait(15) == 4
    lines = refused.stderr_lines()
    assert len(lines) == 1 and "byte limit" in lines[0] and long_dir in lines[0], lines
    assert refused.read_rest_of_stdout(1) == b""
    assert leftovers(long_dir) == []
