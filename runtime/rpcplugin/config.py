"""Plugin-side settings: go-plugin's ``PLUGIN_*`` variables and our own ``RPCPLUGIN_*`` ones,
plus the ``RPCPLUGIN_CONNECT_*`` ones a Python host reads (:class:`ConnectSettings`).

Read and validated when the server starts, never at import. A bad value raises
:class:`~rpcplugin.errors.ConfigError` naming the variable, its value and what is allowed;
the server turns that into one line on stderr and exit status 2. :data:`SETTINGS` is the single
table of every setting (docs/configuration.md mirrors it, and a test keeps the two in step).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .handshake import parse_version_list

LogFormat = Literal["json", "text"]
TLSBackend = Literal["auto", "openssl", "grpc"]
Network = Literal["unix", "tcp"]
MetricsChoice = Literal["off", "auto", "otel"]

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


@dataclass(frozen=True, slots=True)
class Setting:
    """One documented setting: its variable, who sets it, its default and what it does."""

    name: str
    set_by: Literal["host", "user"]
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "PLUGIN_PROTOCOL_VERSIONS",
        "host",
        "(unset)",
        "App protocol versions the host speaks, comma-separated, any order. The plugin "
        "announces the highest one it also serves, else its lowest.",
    ),
    Setting(
        "PLUGIN_MIN_PORT",
        "host",
        "(unset)",
        "Lowest TCP port to try in tcp mode. Set together with PLUGIN_MAX_PORT.",
    ),
    Setting(
        "PLUGIN_MAX_PORT",
        "host",
        "(unset)",
        "Highest TCP port to try in tcp mode. Both unset: the OS picks a port.",
    ),
    Setting(
        "PLUGIN_CLIENT_CERT",
        "host",
        "(unset)",
        "The host's AutoMTLS certificate (PEM). Set: serve mutual TLS trusting only it. "
        "Unset: serve plaintext.",
    ),
    Setting(
        "PLUGIN_UNIX_SOCKET_DIR",
        "host",
        "$TMPDIR or /tmp",
        "Directory for unix sockets (the main one and the broker's).",
    ),
    Setting(
        "PLUGIN_UNIX_SOCKET_GROUP",
        "host",
        "(unset)",
        "Group name or gid that may connect: the socket is chowned to it and made 0660.",
    ),
    Setting(
        "PLUGIN_MULTIPLEX_GRPC",
        "host",
        "(unset)",
        "The host asks for a yamux-multiplexed broker. This runtime answers 'false' "
        "(not supported), so such a host fails at start with a clear error.",
    ),
    Setting("RPCPLUGIN_TRANSPORT", "user", "unix", "'unix' or 'tcp' (127.0.0.1)."),
    Setting(
        "RPCPLUGIN_TLS_BACKEND",
        "user",
        "auto",
        "'auto': grpcio's own TLS when it can verify the host's key, else the OpenSSL "
        "relay (needed for go-plugin hosts' P-521 certificates). 'openssl' or 'grpc' force "
        "one.",
    ),
    Setting(
        "RPCPLUGIN_LOG_LEVEL",
        "user",
        "info",
        "Lowest level of the plugin's own log lines on stderr: trace, debug, info, warn, error.",
    ),
    Setting(
        "RPCPLUGIN_LOG_FORMAT",
        "user",
        "json",
        "'json' (go-plugin hclog lines the host parses) or 'text' ('[LEVEL] message').",
    ),
    Setting(
        "RPCPLUGIN_STDIO_BUFFER",
        "user",
        "1048576",
        "Bytes of sys.stdout/sys.stderr output kept for GRPCStdio while no host listens; "
        "older output is dropped, writers never block.",
    ),
    Setting(
        "RPCPLUGIN_PARENT_WATCH",
        "user",
        "true",
        "Exit when the host process dies (true/false). Always off in debug mode.",
    ),
    Setting(
        "RPCPLUGIN_RATE_LIMIT",
        "user",
        "(unset)",
        "Calls per second the plugin's own services accept on average (a token bucket; "
        "decimals allowed). Over it a call fails with RESOURCE_EXHAUSTED. Health, controller, "
        "stdio and broker calls are never limited. Unset: no limit.",
    ),
    Setting(
        "RPCPLUGIN_RATE_BURST",
        "user",
        "the rate, rounded up",
        "Calls the token bucket lets through at once after a quiet spell (its size). Needs "
        "RPCPLUGIN_RATE_LIMIT.",
    ),
    Setting(
        "RPCPLUGIN_METRICS",
        "user",
        "off",
        "'off'; 'auto': OpenTelemetry metrics and spans for every call when the opentelemetry "
        "package is installed; 'otel': the same, and an error if it is not installed.",
    ),
    Setting(
        "RPCPLUGIN_LISTEN",
        "user",
        "(unset)",
        "Server mode: listen on this host:port (port 0: any free port, logged) as a network "
        "service, instead of being launched by a host: no cookie check, no handshake line, no "
        "controller/stdio/broker services; SIGTERM or SIGINT drains and stops it. Needs "
        "RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY unless the host is a loopback address.",
    ),
    Setting(
        "RPCPLUGIN_TLS_CERT",
        "user",
        "(unset)",
        "Server mode: the server's certificate chain, a PEM file (or the PEM text itself).",
    ),
    Setting(
        "RPCPLUGIN_TLS_KEY",
        "user",
        "(unset)",
        "Server mode: the private key of RPCPLUGIN_TLS_CERT, a PEM file (or the PEM text).",
    ),
    Setting(
        "RPCPLUGIN_TLS_CLIENT_CA",
        "user",
        "(unset)",
        "Server mode: require client certificates signed by this CA (PEM file or text): "
        "mutual TLS. Unset: TLS without client certificates.",
    ),
    Setting(
        "RPCPLUGIN_DRAIN",
        "user",
        "0.5",
        "Server mode: seconds the server reports NOT_SERVING to health watchers before it "
        "stops, so that clients balancing over several servers move their calls elsewhere.",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_ATTEMPTS",
        "user",
        "1",
        "Host side, rpcplugin.connect()/reattach() without retry=: attempts to reach a plugin "
        "server before giving up (1: no retry).",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_BACKOFF",
        "user",
        "0.1",
        "Host side: seconds of the first wait between attempts; each wait is random between 0 "
        "and this doubled per failure (full jitter).",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_MAX_BACKOFF",
        "user",
        "2",
        "Host side: the longest wait between two attempts, in seconds.",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_DEADLINE",
        "user",
        "10",
        "Host side: seconds after which connecting gives up, whatever attempts are left.",
    ),
    Setting(
        "RPCPLUGIN_DEBUG",
        "user",
        "false",
        "Debug mode (true/false): no cookie check, no handshake line, plaintext; prints the "
        "reattach JSON and serves until stopped, so a host can attach to a plugin you run "
        "under a debugger.",
    ),
)


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """Every setting, parsed. Build it with :meth:`from_env`."""

    protocol_versions: tuple[int, ...] | None = None
    protocol_version_junk: tuple[str, ...] = ()
    min_port: int | None = None
    max_port: int | None = None
    client_cert_pem: str | None = None
    unix_socket_dir: str | None = None
    unix_socket_group: str | None = None
    multiplex_requested: bool = False
    transport: Network = "unix"
    tls_backend: TLSBackend = "auto"
    log_level: str = "info"
    log_format: LogFormat = "json"
    stdio_buffer: int = 1 << 20
    parent_watch: bool = True
    debug: bool = False
    rate_limit: float | None = None
    rate_burst: int | None = None
    metrics: MetricsChoice = "off"
    listen: str | None = None
    """Server mode's ``host:port`` (``RPCPLUGIN_LISTEN``); None: launched by a host."""
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    drain: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PluginSettings:
        """Parse and validate the settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        versions: tuple[int, ...] | None = None
        junk: tuple[str, ...] = ()
        raw_versions = env.get("PLUGIN_PROTOCOL_VERSIONS")
        if raw_versions is not None:
            parsed, bad = parse_version_list(raw_versions)
            versions, junk = tuple(parsed), tuple(bad)

        min_port = _port(env, "PLUGIN_MIN_PORT")
        max_port = _port(env, "PLUGIN_MAX_PORT")
        if (min_port is None) != (max_port is None):
            missing = "PLUGIN_MAX_PORT" if max_port is None else "PLUGIN_MIN_PORT"
            present = "PLUGIN_MIN_PORT" if max_port is None else "PLUGIN_MAX_PORT"
            raise ConfigError(
                present,
                env.get(present),
                f"set {missing} too, or neither (then the OS picks a port)",
            )
        if min_port is not None and max_port is not None and min_port > max_port:
            raise ConfigError(
                "PLUGIN_MIN_PORT",
                env["PLUGIN_MIN_PORT"],
                f"must not exceed PLUGIN_MAX_PORT={max_port}",
            )

        cert = env.get("PLUGIN_CLIENT_CERT") or None
        sock_dir = env.get("PLUGIN_UNIX_SOCKET_DIR") or None
        if sock_dir is not None and not os.path.isabs(sock_dir):
            raise ConfigError("PLUGIN_UNIX_SOCKET_DIR", sock_dir, "must be an absolute path")
        transport = _choice(
            env,
            "RPCPLUGIN_TRANSPORT",
            ("unix", "tcp"),
            "tcp" if sys.platform == "win32" else "unix",
        )
        rate_limit = _optional_float(env, "RPCPLUGIN_RATE_LIMIT", low=0.001, high=1e9)
        rate_burst = _int(env, "RPCPLUGIN_RATE_BURST", 0, low=1, high=1 << 30) or None
        if rate_burst is not None and rate_limit is None:
            raise ConfigError(
                "RPCPLUGIN_RATE_BURST",
                env.get("RPCPLUGIN_RATE_BURST"),
                "set RPCPLUGIN_RATE_LIMIT too",
            )
        if rate_limit is not None and rate_burst is None:
            rate_burst = max(1, math.ceil(rate_limit))
        listen = _listen_address(env)
        tls_files = {
            name: env.get(name) or None
            for name in ("RPCPLUGIN_TLS_CERT", "RPCPLUGIN_TLS_KEY", "RPCPLUGIN_TLS_CLIENT_CA")
        }
        for name, value in tls_files.items():
            if value is not None and listen is None:
                raise ConfigError(name, value, "only used in server mode: set RPCPLUGIN_LISTEN")
        server_cert, server_key = tls_files["RPCPLUGIN_TLS_CERT"], tls_files["RPCPLUGIN_TLS_KEY"]
        if (server_cert is None) != (server_key is None):
            name = "RPCPLUGIN_TLS_CERT" if server_cert is not None else "RPCPLUGIN_TLS_KEY"
            raise ConfigError(
                name, tls_files[name], "set RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY together"
            )
        if tls_files["RPCPLUGIN_TLS_CLIENT_CA"] is not None and server_cert is None:
            raise ConfigError(
                "RPCPLUGIN_TLS_CLIENT_CA",
                tls_files["RPCPLUGIN_TLS_CLIENT_CA"],
                "client certificates need TLS: set RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY",
            )
        if listen is not None and server_cert is None and not _is_loopback(listen):
            raise ConfigError(
                "RPCPLUGIN_LISTEN",
                listen,
                "serving beyond loopback needs TLS: set RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY "
                "(rpcplugin-certs makes them)",
            )
        return cls(
            protocol_versions=versions,
            protocol_version_junk=junk,
            min_port=min_port,
            max_port=max_port,
            client_cert_pem=cert,
            unix_socket_dir=sock_dir,
            unix_socket_group=env.get("PLUGIN_UNIX_SOCKET_GROUP") or None,
            multiplex_requested=bool(env.get("PLUGIN_MULTIPLEX_GRPC")),
            transport=transport,  # type: ignore[arg-type]
            tls_backend=_choice(env, "RPCPLUGIN_TLS_BACKEND", ("auto", "openssl", "grpc"), "auto"),  # type: ignore[arg-type]
            log_level=_choice(env, "RPCPLUGIN_LOG_LEVEL", LOG_LEVELS, "info", fold=True),
            log_format=_choice(env, "RPCPLUGIN_LOG_FORMAT", ("json", "text"), "json"),  # type: ignore[arg-type]
            stdio_buffer=_int(env, "RPCPLUGIN_STDIO_BUFFER", 1 << 20, low=0, high=1 << 30),
            parent_watch=parse_bool(env, "RPCPLUGIN_PARENT_WATCH", True),
            debug=parse_bool(env, "RPCPLUGIN_DEBUG", False),
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            metrics=_choice(env, "RPCPLUGIN_METRICS", ("off", "auto", "otel"), "off"),  # type: ignore[arg-type]
            listen=listen,
            tls_cert=server_cert,
            tls_key=server_key,
            tls_client_ca=tls_files["RPCPLUGIN_TLS_CLIENT_CA"],
            drain=_float(env, "RPCPLUGIN_DRAIN", 0.5, low=0.0, high=600.0),
        )


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """The host-side ``RPCPLUGIN_CONNECT_*`` settings (read by
    :meth:`rpcplugin.host.retry.RetryPolicy.from_env`)."""

    attempts: int = 1
    backoff: float = 0.1
    max_backoff: float = 2.0
    deadline: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectSettings:
        """Parse and validate the settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        backoff = _float(env, "RPCPLUGIN_CONNECT_BACKOFF", 0.1, low=0.0, high=3600.0)
        max_backoff = _float(
            env, "RPCPLUGIN_CONNECT_MAX_BACKOFF", max(2.0, backoff), low=0.0, high=3600.0
        )
        if max_backoff < backoff:
            raise ConfigError(
                "RPCPLUGIN_CONNECT_MAX_BACKOFF",
                env.get("RPCPLUGIN_CONNECT_MAX_BACKOFF"),
                f"must be at least RPCPLUGIN_CONNECT_BACKOFF={backoff:g}",
            )
        return cls(
            attempts=_int(env, "RPCPLUGIN_CONNECT_ATTEMPTS", 1, low=1, high=1000),
            backoff=backoff,
            max_backoff=max_backoff,
            deadline=_float(env, "RPCPLUGIN_CONNECT_DEADLINE", 10.0, low=0.001, high=86400.0),
        )


_BOOL_WORDS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean setting: true/false, 1/0, yes/no, on/off (any case). Anything else is an error."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return _BOOL_WORDS[raw.strip().lower()]
    except KeyError:
        raise ConfigError(name, raw, "use true or false (also 1/0, yes/no, on/off)") from None


def _choice(
    env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str, *, fold: bool = False
) -> str:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower() if fold else raw.strip()
    if value not in allowed:
        raise ConfigError(name, raw, "one of " + ", ".join(allowed))
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, f"a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(name, raw, f"a whole number from {low} to {high}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    value = _optional_float(env, name, low=low, high=high)
    return default if value is None else value


def _optional_float(env: Mapping[str, str], name: str, *, low: float, high: float) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, f"a number from {low:g} to {high:g}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(name, raw, f"a number from {low:g} to {high:g}")
    return value


def _listen_address(env: Mapping[str, str]) -> str | None:
    raw = env.get("RPCPLUGIN_LISTEN")
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    host, sep, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError("RPCPLUGIN_LISTEN", raw, "host:port, e.g. 0.0.0.0:7000 or [::1]:7000")
    if ":" in host and not bracketed:
        raise ConfigError("RPCPLUGIN_LISTEN", raw, "an IPv6 host goes in brackets: [::1]:7000")
    return value


def _is_loopback(address: str) -> bool:
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    return _int(env, name, 0, low=0, high=65535)
