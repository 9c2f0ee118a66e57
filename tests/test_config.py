"""Every documented setting is read by ``PluginSettings.from_env`` and validated there, and the
one table (``config.SETTINGS``) agrees with the typed attributes it fills."""

from __future__ import annotations

import types
import typing

import pytest

from rpcplugin.config import (
    SETTINGS,
    Choice,
    ConnectSettings,
    PluginSettings,
    Setting,
    SettingsObject,
)
from rpcplugin.errors import ConfigError

CLASSES: tuple[type[SettingsObject], ...] = (PluginSettings, ConnectSettings)

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
        {"PLUGIN_MIN_PORT": "12000", "PLUGIN_MAX_PORT": "12010", "RPCPLUGIN_TRANSPORT": "tcp"},
        "min_port",
        12000,
    ),
    "PLUGIN_MAX_PORT": (
        {"PLUGIN_MIN_PORT": "12000", "PLUGIN_MAX_PORT": "12010", "RPCPLUGIN_TRANSPORT": "tcp"},
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
    "RPCPLUGIN_LIBRARY_LOG_LEVEL": (
        {"RPCPLUGIN_LIBRARY_LOG_LEVEL": "Debug"},
        "library_log_level",
        "debug",
    ),
    "RPCPLUGIN_LOG_FORMAT": ({"RPCPLUGIN_LOG_FORMAT": "text"}, "log_format", "text"),
    "RPCPLUGIN_STDIO_BUFFER": ({"RPCPLUGIN_STDIO_BUFFER": "4096"}, "stdio_buffer", 4096),
    "RPCPLUGIN_PARENT_WATCH": ({"RPCPLUGIN_PARENT_WATCH": "off"}, "parent_watch", False),
    "RPCPLUGIN_REFLECTION": ({"RPCPLUGIN_REFLECTION": "false"}, "reflection", False),
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
    "RPCPLUGIN_HANDLER_THREADS": ({"RPCPLUGIN_HANDLER_THREADS": "64"}, "handler_threads", 64),
    "RPCPLUGIN_STALL_WARNING": ({"RPCPLUGIN_STALL_WARNING": "0"}, "stall_warning", 0.0),
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
    "PLUGIN_MIN_PORT": {
        "PLUGIN_MIN_PORT": "70000",
        "PLUGIN_MAX_PORT": "70001",
        "RPCPLUGIN_TRANSPORT": "tcp",
    },
    "PLUGIN_MAX_PORT": {
        "PLUGIN_MAX_PORT": "-1",
        "PLUGIN_MIN_PORT": "1",
        "RPCPLUGIN_TRANSPORT": "tcp",
    },
    "PLUGIN_UNIX_SOCKET_DIR": {"PLUGIN_UNIX_SOCKET_DIR": "relative/dir"},
    "RPCPLUGIN_TRANSPORT": {"RPCPLUGIN_TRANSPORT": "pipe"},
    "RPCPLUGIN_TLS_BACKEND": {"RPCPLUGIN_TLS_BACKEND": "boringssl"},
    "RPCPLUGIN_LOG_LEVEL": {"RPCPLUGIN_LOG_LEVEL": "loud"},
    "RPCPLUGIN_LIBRARY_LOG_LEVEL": {"RPCPLUGIN_LIBRARY_LOG_LEVEL": "chatty"},
    "RPCPLUGIN_LOG_FORMAT": {"RPCPLUGIN_LOG_FORMAT": "xml"},
    "RPCPLUGIN_STDIO_BUFFER": {"RPCPLUGIN_STDIO_BUFFER": "lots"},
    "RPCPLUGIN_PARENT_WATCH": {"RPCPLUGIN_PARENT_WATCH": "maybe"},
    "RPCPLUGIN_REFLECTION": {"RPCPLUGIN_REFLECTION": "maybe"},
    "RPCPLUGIN_DEBUG": {"RPCPLUGIN_DEBUG": "maybe"},
    "RPCPLUGIN_RATE_LIMIT": {"RPCPLUGIN_RATE_LIMIT": "0"},
    "RPCPLUGIN_RATE_BURST": {"RPCPLUGIN_RATE_LIMIT": "5", "RPCPLUGIN_RATE_BURST": "0.5"},
    "RPCPLUGIN_METRICS": {"RPCPLUGIN_METRICS": "prometheus"},
    "RPCPLUGIN_LISTEN": {"RPCPLUGIN_LISTEN": "7000"},
    "RPCPLUGIN_TLS_CERT": {"RPCPLUGIN_TLS_CERT": "/pki/server.pem"},  # without RPCPLUGIN_LISTEN
    "RPCPLUGIN_TLS_KEY": {"RPCPLUGIN_LISTEN": "0.0.0.0:7000", "RPCPLUGIN_TLS_KEY": "/k.pem"},
    "RPCPLUGIN_TLS_CLIENT_CA": {"RPCPLUGIN_LISTEN": "[::1]:7", "RPCPLUGIN_TLS_CLIENT_CA": "/ca"},
    "RPCPLUGIN_DRAIN": {"RPCPLUGIN_DRAIN": "-1"},
    "RPCPLUGIN_HANDLER_THREADS": {"RPCPLUGIN_HANDLER_THREADS": "0"},
    "RPCPLUGIN_STALL_WARNING": {"RPCPLUGIN_STALL_WARNING": "soon"},
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
    parsed = getattr(ConnectSettings.from_env(env), attribute)
    assert parsed == expected
    assert _conforms(parsed, _attributes(ConnectSettings)[attribute])


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
    parsed = getattr(PluginSettings.from_env(env), attribute)
    assert parsed == expected
    assert _conforms(parsed, _attributes(PluginSettings)[attribute])


@pytest.mark.parametrize("name", sorted(INVALID))
def test_bad_value_names_the_setting(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PluginSettings.from_env(INVALID[name])
    message = str(caught.value)
    assert message.startswith(name + "=") or name in message
    assert "invalid" in message


def test_port_range_needs_both_ends_and_order() -> None:
    with pytest.raises(ConfigError, match="PLUGIN_MAX_PORT too"):
        PluginSettings.from_env({"PLUGIN_MIN_PORT": "10000", "RPCPLUGIN_TRANSPORT": "tcp"})
    with pytest.raises(ConfigError, match="must not exceed"):
        PluginSettings.from_env(
            {"PLUGIN_MIN_PORT": "20", "PLUGIN_MAX_PORT": "10", "RPCPLUGIN_TRANSPORT": "tcp"}
        )


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


def _attributes(cls: type[SettingsObject]) -> dict[str, object]:
    """The typed instance attributes a settings class declares (its ClassVars left out)."""
    hints = typing.get_type_hints(cls)
    return {
        k: v
        for k, v in hints.items()
        if typing.get_origin(v) is not typing.ClassVar and not k.startswith("__")
    }


def _conforms(value: object, hint: object) -> bool:
    """Whether ``value`` is of the annotated type (the few forms settings use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        return isinstance(value, tuple) and all(_conforms(item, args[0]) for item in value)
    if hint is type(None):
        return value is None
    if hint is bool or hint is int or hint is float or hint is str:
        return type(value) is hint
    raise AssertionError(f"no rule for the annotation {hint!r}: extend _conforms")


def _owner(setting: Setting) -> type[SettingsObject]:
    return next(cls for cls in CLASSES if setting in cls.TABLE)


def test_every_setting_is_in_one_table_and_fills_one_declared_attribute() -> None:
    assert len({s.name for s in SETTINGS}) == len(SETTINGS), "a variable is listed twice"
    assert sorted(SETTINGS, key=id) == sorted([s for cls in CLASSES for s in cls.TABLE], key=id), (
        "SETTINGS is not the union of the settings classes' tables"
    )
    for cls in CLASSES:
        fields = [s.field for s in cls.TABLE]
        assert len(set(fields)) == len(fields), f"{cls.__name__}: two settings fill one attribute"
        declared = set(_attributes(cls))
        filled = set(fields) | set(cls.DERIVED)
        assert declared == filled, (
            f"{cls.__name__}: attributes without a Setting (or a DERIVED default): "
            f"{sorted(declared - filled)}; Settings filling an undeclared attribute: "
            f"{sorted(filled - declared)}"
        )


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_default_and_choices_agree_with_the_attribute_type(setting: Setting) -> None:
    cls = _owner(setting)
    hint = _attributes(cls)[setting.field]
    assert _conforms(setting.default, hint), f"default {setting.default!r} is not a {hint}"
    if isinstance(setting.kind, Choice):
        for choice in setting.kind.choices:
            assert _conforms(choice, hint), f"choice {choice!r} is not a {hint}"
    # the object built without arguments, and the one parsed from an empty environment, carry
    # the table's default (a check may only derive it from another setting, which is unset here)
    assert getattr(cls(), setting.field) == setting.default
    assert getattr(cls.from_env({}), setting.field) == setting.default


def test_derived_attributes_have_typed_defaults() -> None:
    for cls in CLASSES:
        for field, default in cls.DERIVED.items():
            assert _conforms(default, _attributes(cls)[field])


def test_settings_objects_are_frozen_values() -> None:
    settings = PluginSettings(unix_socket_dir="/run/p", unix_socket_group="wheel")
    assert settings.unix_socket_dir == "/run/p"
    assert settings.transport == PluginSettings().transport
    assert settings == PluginSettings(unix_socket_dir="/run/p", unix_socket_group="wheel")
    assert settings != PluginSettings()
    assert hash(settings) == hash(
        PluginSettings(unix_socket_dir="/run/p", unix_socket_group="wheel")
    )
    assert "unix_socket_dir='/run/p'" in repr(settings)
    with pytest.raises(AttributeError, match="immutable"):
        settings.debug = True
    with pytest.raises(TypeError, match="no setting colour"):
        PluginSettings(colour="blue")


def test_max_backoff_default_follows_a_larger_backoff() -> None:
    settings = ConnectSettings.from_env({"RPCPLUGIN_CONNECT_BACKOFF": "5"})
    assert settings.max_backoff == 5.0
    assert ConnectSettings.from_env({"RPCPLUGIN_CONNECT_MAX_BACKOFF": ""}).max_backoff == 2.0
