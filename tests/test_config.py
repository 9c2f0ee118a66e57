"""Every documented setting is read by ``PluginSettings.from_env`` and validated there."""

from __future__ import annotations

import pytest

from rpcplugin.config import SETTINGS, ConnectSettings, PluginSettings
from rpcplugin.errors import ConfigError

SERVER_TLS = {
    "RPCPLUGIN_LISTEN": "0.0.0.0:7000",
    "RPCPLUGIN_TLS_CERT": "/pki/server.pem",
    "RPCPLUGIN_TLS_KEY": "/pki/server-key.pem",
}

# a value that changes the parsed settings, and the attribute that shows it
EFFECTIVE: dict[str, tuple[dict[str, str], str, object]] = {
    "PLUGIN_PROTOCOL_VERSIONS": (
        {"PLUGIN_PROTOCOL_VERSIONS": "6, x,5"},
        "protocol_versions",
        (6, 5),
    ),
    "PLUGIN_MIN_PORT": (
        {"PLUGIN_MIN_PORT": "12000", "PLUGIN_MAX_PORT": "12010"},
        "min_port",
        12000,
    ),
    "PLUGIN_MAX_PORT": (
        {"PLUGIN_MIN_PORT": "12000", "PLUGIN_MAX_PORT": "12010"},
        "max_port",
        12010,
    ),
    "PLUGIN_CLIENT_CERT": ({"PLUGIN_CLIENT_CERT": "PEM"}, "client_cert_pem", "PEM"),
    "PLUGIN_UNIX_SOCKET_DIR": ({"PLUGIN_UNIX_SOCKET_DIR": "/run/x"}, "unix_socket_dir", "/run/x"),
    "PLUGIN_UNIX_SOCKET_GROUP": (
        {"PLUGIN_UNIX_SOCKET_GROUP": "wheel"},
        "unix_socket_group",
        "wheel",
    ),
    "PLUGIN_MULTIPLEX_GRPC": ({"PLUGIN_MULTIPLEX_GRPC": "true"}, "multiplex_requested", True),
    "RPCPLUGIN_TRANSPORT": ({"RPCPLUGIN_TRANSPORT": "tcp"}, "transport", "tcp"),
    "RPCPLUGIN_TLS_BACKEND": ({"RPCPLUGIN_TLS_BACKEND": "openssl"}, "tls_backend", "openssl"),
    "RPCPLUGIN_LOG_LEVEL": ({"RPCPLUGIN_LOG_LEVEL": "WARN"}, "log_level", "warn"),
    "RPCPLUGIN_LOG_FORMAT": ({"RPCPLUGIN_LOG_FORMAT": "text"}, "log_format", "text"),
    "RPCPLUGIN_STDIO_BUFFER": ({"RPCPLUGIN_STDIO_BUFFER": "4096"}, "stdio_buffer", 4096),
    "RPCPLUGIN_PARENT_WATCH": ({"RPCPLUGIN_PARENT_WATCH": "off"}, "parent_watch", False),
    "RPCPLUGIN_DEBUG": ({"RPCPLUGIN_DEBUG": "yes"}, "debug", True),
    "RPCPLUGIN_RATE_LIMIT": ({"RPCPLUGIN_RATE_LIMIT": "2.5"}, "rate_limit", 2.5),
    "RPCPLUGIN_RATE_BURST": (
        {"RPCPLUGIN_RATE_LIMIT": "5", "RPCPLUGIN_RATE_BURST": "7"},
        "rate_burst",
        7,
    ),
    "RPCPLUGIN_METRICS": ({"RPCPLUGIN_METRICS": "auto"}, "metrics", "auto"),
    "RPCPLUGIN_LISTEN": ({"RPCPLUGIN_LISTEN": "127.0.0.1:7000"}, "listen", "127.0.0.1:7000"),
    "RPCPLUGIN_TLS_CERT": (SERVER_TLS, "tls_cert", "/pki/server.pem"),
    "RPCPLUGIN_TLS_KEY": (SERVER_TLS, "tls_key", "/pki/server-key.pem"),
    "RPCPLUGIN_TLS_CLIENT_CA": (
        {**SERVER_TLS, "RPCPLUGIN_TLS_CLIENT_CA": "/pki/ca.pem"},
        "tls_client_ca",
        "/pki/ca.pem",
    ),
    "RPCPLUGIN_DRAIN": ({"RPCPLUGIN_DRAIN": "2"}, "drain", 2.0),
}

# host-side settings, read by ConnectSettings.from_env (rpcplugin.retry.RetryPolicy.from_env)
HOST_EFFECTIVE: dict[str, tuple[dict[str, str], str, object]] = {
    "RPCPLUGIN_CONNECT_ATTEMPTS": ({"RPCPLUGIN_CONNECT_ATTEMPTS": "4"}, "attempts", 4),
    "RPCPLUGIN_CONNECT_BACKOFF": ({"RPCPLUGIN_CONNECT_BACKOFF": "0.5"}, "backoff", 0.5),
    "RPCPLUGIN_CONNECT_MAX_BACKOFF": (
        {"RPCPLUGIN_CONNECT_MAX_BACKOFF": "7"},
        "max_backoff",
        7.0,
    ),
    "RPCPLUGIN_CONNECT_DEADLINE": ({"RPCPLUGIN_CONNECT_DEADLINE": "30"}, "deadline", 30.0),
}

INVALID: dict[str, dict[str, str]] = {
    "PLUGIN_MIN_PORT": {"PLUGIN_MIN_PORT": "70000", "PLUGIN_MAX_PORT": "70001"},
    "PLUGIN_MAX_PORT": {"PLUGIN_MAX_PORT": "-1", "PLUGIN_MIN_PORT": "1"},
    "PLUGIN_UNIX_SOCKET_DIR": {"PLUGIN_UNIX_SOCKET_DIR": "relative/dir"},
    "RPCPLUGIN_TRANSPORT": {"RPCPLUGIN_TRANSPORT": "pipe"},
    "RPCPLUGIN_TLS_BACKEND": {"RPCPLUGIN_TLS_BACKEND": "boringssl"},
    "RPCPLUGIN_LOG_LEVEL": {"RPCPLUGIN_LOG_LEVEL": "loud"},
    "RPCPLUGIN_LOG_FORMAT": {"RPCPLUGIN_LOG_FORMAT": "xml"},
    "RPCPLUGIN_STDIO_BUFFER": {"RPCPLUGIN_STDIO_BUFFER": "lots"},
    "RPCPLUGIN_PARENT_WATCH": {"RPCPLUGIN_PARENT_WATCH": "maybe"},
    "RPCPLUGIN_DEBUG": {"RPCPLUGIN_DEBUG": "maybe"},
    "RPCPLUGIN_RATE_LIMIT": {"RPCPLUGIN_RATE_LIMIT": "0"},
    "RPCPLUGIN_RATE_BURST": {"RPCPLUGIN_RATE_LIMIT": "5", "RPCPLUGIN_RATE_BURST": "0.5"},
    "RPCPLUGIN_METRICS": {"RPCPLUGIN_METRICS": "prometheus"},
    "RPCPLUGIN_LISTEN": {"RPCPLUGIN_LISTEN": "7000"},
    "RPCPLUGIN_TLS_CERT": {"RPCPLUGIN_TLS_CERT": "/pki/server.pem"},  # without RPCPLUGIN_LISTEN
    "RPCPLUGIN_TLS_KEY": {"RPCPLUGIN_LISTEN": "0.0.0.0:7000", "RPCPLUGIN_TLS_KEY": "/k.pem"},
    "RPCPLUGIN_TLS_CLIENT_CA": {"RPCPLUGIN_LISTEN": "[::1]:7", "RPCPLUGIN_TLS_CLIENT_CA": "/ca"},
    "RPCPLUGIN_DRAIN": {"RPCPLUGIN_DRAIN": "-1"},
}

HOST_INVALID: dict[str, dict[str, str]] = {
    "RPCPLUGIN_CONNECT_ATTEMPTS": {"RPCPLUGIN_CONNECT_ATTEMPTS": "0"},
    "RPCPLUGIN_CONNECT_BACKOFF": {"RPCPLUGIN_CONNECT_BACKOFF": "-1"},
    "RPCPLUGIN_CONNECT_MAX_BACKOFF": {
        "RPCPLUGIN_CONNECT_BACKOFF": "3",
        "RPCPLUGIN_CONNECT_MAX_BACKOFF": "1",
    },
    "RPCPLUGIN_CONNECT_DEADLINE": {"RPCPLUGIN_CONNECT_DEADLINE": "soon"},
}


def test_every_setting_has_an_effect_test() -> None:
    assert set(EFFECTIVE) | set(HOST_EFFECTIVE) == {s.name for s in SETTINGS}
    assert not set(EFFECTIVE) & set(HOST_EFFECTIVE)


@pytest.mark.parametrize("name", sorted(HOST_EFFECTIVE))
def test_host_setting_is_read(name: str) -> None:
    env, attribute, expected = HOST_EFFECTIVE[name]
    assert getattr(ConnectSettings.from_env({}), attribute) != expected
    assert getattr(ConnectSettings.from_env(env), attribute) == expected


@pytest.mark.parametrize("name", sorted(HOST_INVALID))
def test_bad_host_value_names_the_setting(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectSettings.from_env(HOST_INVALID[name])
    assert name in str(caught.value)
    assert "invalid" in str(caught.value)


@pytest.mark.parametrize("name", sorted(EFFECTIVE))
def test_setting_is_read(name: str) -> None:
    env, attribute, expected = EFFECTIVE[name]
    assert getattr(PluginSettings.from_env({}), attribute) != expected
    assert getattr(PluginSettings.from_env(env), attribute) == expected


@pytest.mark.parametrize("name", sorted(INVALID))
def test_bad_value_names_the_setting(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PluginSettings.from_env(INVALID[name])
    message = str(caught.value)
    assert message.startswith(name + "=") or name in message
    assert "invalid" in message


def test_port_range_needs_both_ends_and_order() -> None:
    with pytest.raises(ConfigError, match="PLUGIN_MAX_PORT too"):
        PluginSettings.from_env({"PLUGIN_MIN_PORT": "10000"})
    with pytest.raises(ConfigError, match="must not exceed"):
        PluginSettings.from_env({"PLUGIN_MIN_PORT": "20", "PLUGIN_MAX_PORT": "10"})


def test_server_mode_needs_tls_beyond_loopback() -> None:
    for address in ("127.0.0.1:0", "[::1]:7000", "localhost:7000"):
        assert PluginSettings.from_env({"RPCPLUGIN_LISTEN": address}).listen == address
    with pytest.raises(ConfigError, match="beyond loopback needs TLS"):
        PluginSettings.from_env({"RPCPLUGIN_LISTEN": "0.0.0.0:7000"})
    with pytest.raises(ConfigError, match="in brackets"):
        PluginSettings.from_env({"RPCPLUGIN_LISTEN": "::1:7000"})
    assert PluginSettings.from_env(SERVER_TLS).tls_client_ca is None


def test_version_junk_is_kept_for_the_warning() -> None:
    settings = PluginSettings.from_env({"PLUGIN_PROTOCOL_VERSIONS": "a,,2,b"})
    assert settings.protocol_versions == (2,)
    assert settings.protocol_version_junk == ("a", "b")
