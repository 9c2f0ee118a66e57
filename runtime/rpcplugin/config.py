"""Plugin-side settings: go-plugin's ``PLUGIN_*`` variables and our own ``RPCPLUGIN_*`` ones,
plus the ``RPCPLUGIN_CONNECT_*`` ones a Python host reads (:class:`ConnectSettings`).

Read and validated when the server starts, never at import. A bad value raises
:class:`~rpcplugin.errors.ConfigError` naming the variable, its value and what is allowed;
the server turns that into one line on stderr and exit status 2.

:data:`SETTINGS` is the one table of every setting: each :class:`Setting` names its variable,
the attribute it fills, how its text is parsed and checked (a :class:`Kind`), its default and
what it means. Parsing (:meth:`PluginSettings.from_env`), the defaults of a settings object and
the table in docs/configuration.md (:func:`settings_markdown`) all come from it, and
tests/test_config.py proves that the typed attributes agree with it.

Adding a setting: one :class:`Setting` in :data:`PLUGIN_SETTINGS` (or :data:`CONNECT_SETTINGS`),
its typed attribute on the settings class, and ``python -m tests.test_docs`` to rewrite the
docs table. A rule that involves more than one setting is a function in :data:`PLUGIN_CHECKS`
(or :data:`CONNECT_CHECKS`): it receives the parsed settings and the environment, raises
:class:`ConfigError`, or fills a derived value with :func:`derive`.

No ``dataclasses`` here: this module is on every plugin's start-up path.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import ClassVar, Literal, Self

from .errors import ConfigError
from .handshake import parse_version_list
from .record import Record

LogFormat = Literal["json", "text"]
TLSBackend = Literal["auto", "openssl", "grpc"]
Network = Literal["unix", "tcp"]
MetricsChoice = Literal["off", "auto", "otel"]
SetBy = Literal["host", "user"]

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


class Kind:
    """How a setting's text becomes a value. ``parse`` gets the variable's name and its
    non-empty text (also empty text when :attr:`keeps_empty`) and raises :class:`ConfigError`
    for a value it refuses."""

    __slots__ = ()
    keeps_empty: ClassVar[bool] = False
    """Empty text is parsed too; otherwise an empty variable counts as unset."""

    def parse(self, name: str, raw: str) -> object:
        raise NotImplementedError


class Text(Kind):
    """Any text, as it is."""

    __slots__ = ()

    def parse(self, name: str, raw: str) -> object:
        return raw


class AbsolutePath(Kind):
    """A filesystem path that must be absolute."""

    __slots__ = ()

    def parse(self, name: str, raw: str) -> object:
        if not os.path.isabs(raw):
            raise ConfigError(name, raw, "must be an absolute path")
        return raw


class Present(Kind):
    """True whenever the variable is set to anything (go-plugin's own flags)."""

    __slots__ = ()

    def parse(self, name: str, raw: str) -> object:
        return True


class Bool(Kind):
    """true/false, 1/0, yes/no, on/off in any case; anything else is refused."""

    __slots__ = ()

    def parse(self, name: str, raw: str) -> object:
        try:
            return _BOOL_WORDS[raw.strip().lower()]
        except KeyError:
            raise ConfigError(name, raw, "use true or false (also 1/0, yes/no, on/off)") from None


class Choice(Kind):
    """One of a few words (compared after stripping; ``fold``: in any case)."""

    __slots__ = ("choices", "fold")

    def __init__(self, *choices: str, fold: bool = False) -> None:
        self.choices = choices
        self.fold = fold

    def parse(self, name: str, raw: str) -> object:
        value = raw.strip().lower() if self.fold else raw.strip()
        if value not in self.choices:
            raise ConfigError(name, raw, "one of " + ", ".join(self.choices))
        return value


class Int(Kind):
    """A whole number from ``low`` to ``high``."""

    __slots__ = ("high", "low")

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def parse(self, name: str, raw: str) -> object:
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or not self.low <= value <= self.high:
            raise ConfigError(name, raw, f"a whole number from {self.low} to {self.high}")
        return value


class Float(Kind):
    """A finite number from ``low`` to ``high``."""

    __slots__ = ("high", "low")

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high

    def parse(self, name: str, raw: str) -> object:
        try:
            value = float(raw.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ConfigError(name, raw, f"a number from {self.low:g} to {self.high:g}")
        return value


class VersionList(Kind):
    """go-plugin's comma-separated version list. Items that are not numbers are skipped (Go
    does the same); :func:`_version_junk` keeps them for the warning."""

    __slots__ = ()
    keeps_empty = True

    def parse(self, name: str, raw: str) -> object:
        return tuple(parse_version_list(raw)[0])


class ListenAddress(Kind):
    """``host:port`` with a port up to 65535; an IPv6 host in brackets. Blank: unset."""

    __slots__ = ()

    def parse(self, name: str, raw: str) -> object:
        value = raw.strip()
        if not value:
            return None
        host, sep, port = value.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(name, raw, "host:port, e.g. 0.0.0.0:7000 or [::1]:7000")
        if ":" in host and not bracketed:
            raise ConfigError(name, raw, "an IPv6 host goes in brackets: [::1]:7000")
        return value


class Setting:
    """One setting: its variable, who sets it, the attribute it fills, how it is parsed, its
    default and what it does. ``shown`` is the default as the docs word it, when rendering
    ``default`` would not say it (a default computed later, or one that depends on the OS)."""

    __slots__ = ("default", "field", "kind", "meaning", "name", "set_by", "shown")

    def __init__(
        self,
        name: str,
        set_by: SetBy,
        field: str,
        kind: Kind,
        default: object,
        meaning: str,
        *,
        shown: str | None = None,
    ) -> None:
        self.name = name
        self.set_by = set_by
        self.field = field
        self.kind = kind
        self.default = default
        self.meaning = meaning
        self.shown = shown

    def __repr__(self) -> str:
        return f"Setting({self.name!r})"

    @property
    def documented_default(self) -> str:
        """The default as the table in docs/configuration.md shows it."""
        if self.shown is not None:
            return self.shown
        value = self.default
        if value is None:
            return "(unset)"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def read(self, env: Mapping[str, str]) -> object:
        """The value ``env`` gives this setting: parsed, or the default when it is unset."""
        raw = env.get(self.name)
        if raw is None or (raw == "" and not self.kind.keeps_empty):
            return self.default
        return self.kind.parse(self.name, raw)


_PORT = Int(1, 65535)

HANDLER_THREADS = Setting(
    "RPCPLUGIN_HANDLER_THREADS",
    "user",
    "handler_threads",
    Int(1, 1024),
    32,
    "Worker threads for servicer methods written as plain `def` (1 to 1024); more calls of "
    "such methods than threads wait for one. Made on the first such call, never for "
    "`async def` methods.",
)
STALL_WARNING = Setting(
    "RPCPLUGIN_STALL_WARNING",
    "user",
    "stall_warning",
    Float(0.0, 3600.0),
    0.5,
    "Seconds a handler may keep the event loop from turning before the plugin logs one "
    "WARNING naming its method (once per method). 0 turns the detector off.",
)

PLUGIN_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "PLUGIN_PROTOCOL_VERSIONS",
        "host",
        "protocol_versions",
        VersionList(),
        None,
        "App protocol versions the host speaks, comma-separated, any order. The plugin "
        "announces the highest one it also serves, else its lowest.",
    ),
    Setting(
        "PLUGIN_MIN_PORT",
        "host",
        "min_port",
        _PORT,
        None,
        "Lowest TCP port to try in tcp mode. Set together with PLUGIN_MAX_PORT. Both are "
        "ignored (not even checked) with the unix transport, as go-plugin does.",
    ),
    Setting(
        "PLUGIN_MAX_PORT",
        "host",
        "max_port",
        _PORT,
        None,
        "Highest TCP port to try in tcp mode. Both unset: the OS picks a port.",
    ),
    Setting(
        "PLUGIN_CLIENT_CERT",
        "host",
        "client_cert_pem",
        Text(),
        None,
        "The host's AutoMTLS certificate (PEM). Set: serve mutual TLS trusting only it. "
        "Unset: serve plaintext.",
    ),
    Setting(
        "PLUGIN_UNIX_SOCKET_DIR",
        "host",
        "unix_socket_dir",
        AbsolutePath(),
        None,
        "Directory for unix sockets (the main one and the broker's).",
        shown="$TMPDIR or /tmp",
    ),
    Setting(
        "PLUGIN_UNIX_SOCKET_GROUP",
        "host",
        "unix_socket_group",
        Text(),
        None,
        "Group name or gid that may connect: the socket is chowned to it and made 0660.",
    ),
    Setting(
        "PLUGIN_MULTIPLEX_GRPC",
        "host",
        "multiplex_requested",
        Present(),
        False,
        "The host asks for a yamux-multiplexed broker. This runtime answers 'false' "
        "(not supported), so such a host fails at start with a clear error.",
        shown="(unset)",
    ),
    Setting(
        "RPCPLUGIN_TRANSPORT",
        "user",
        "transport",
        Choice("unix", "tcp"),
        "tcp" if sys.platform == "win32" else "unix",
        "'unix' or 'tcp' (127.0.0.1).",
        shown="unix (tcp on Windows)",
    ),
    Setting(
        "RPCPLUGIN_TLS_BACKEND",
        "user",
        "tls_backend",
        Choice("auto", "openssl", "grpc"),
        "auto",
        "'auto': grpcio's own TLS when it can verify the host's key, else the OpenSSL "
        "relay (needed for go-plugin hosts' P-521 certificates). 'openssl' or 'grpc' force "
        "one.",
    ),
    Setting(
        "RPCPLUGIN_LOG_LEVEL",
        "user",
        "log_level",
        Choice(*LOG_LEVELS, fold=True),
        "info",
        "Lowest level of the plugin's own log lines on stderr (the runtime's and the plugin "
        "code's): trace, debug, info, warn, error.",
    ),
    Setting(
        "RPCPLUGIN_LIBRARY_LOG_LEVEL",
        "user",
        "library_log_level",
        Choice(*LOG_LEVELS, fold=True),
        "warn",
        "Lowest level of the libraries' log lines (grpc, asyncio, google, opentelemetry, ...): "
        "they stay at warn whatever RPCPLUGIN_LOG_LEVEL says, as grpc logs every call at debug.",
    ),
    Setting(
        "RPCPLUGIN_LOG_FORMAT",
        "user",
        "log_format",
        Choice("json", "text"),
        "json",
        "'json' (go-plugin hclog lines the host parses) or 'text' ('[LEVEL] message').",
    ),
    Setting(
        "RPCPLUGIN_STDIO_BUFFER",
        "user",
        "stdio_buffer",
        Int(0, 1 << 30),
        1 << 20,
        "Bytes of sys.stdout/sys.stderr output kept for GRPCStdio while no host listens; "
        "older output is dropped, writers never block.",
    ),
    Setting(
        "RPCPLUGIN_PARENT_WATCH",
        "user",
        "parent_watch",
        Bool(),
        True,
        "Exit when the host process dies (true/false). Always off in debug mode.",
    ),
    Setting(
        "RPCPLUGIN_REFLECTION",
        "user",
        "reflection",
        Bool(),
        True,
        "Serve gRPC server reflection (true/false), as go-plugin plugins do: grpcurl and "
        "'rpcplugin services' can then list and describe the plugin's services. "
        "grpcio-reflection is imported on the first reflection call, not at start.",
    ),
    Setting(
        "RPCPLUGIN_DEBUG",
        "user",
        "debug",
        Bool(),
        False,
        "Debug mode (true/false): no cookie check, no handshake line, plaintext; prints the "
        "reattach JSON and serves until stopped, so a host can attach to a plugin you run "
        "under a debugger.",
    ),
    Setting(
        "RPCPLUGIN_RATE_LIMIT",
        "user",
        "rate_limit",
        Float(0.001, 1e9),
        None,
        "Calls per second the plugin's own services accept on average (a token bucket; "
        "decimals allowed). Over it a call fails with RESOURCE_EXHAUSTED. Health, controller, "
        "stdio and broker calls are never limited. Unset: no limit.",
    ),
    Setting(
        "RPCPLUGIN_RATE_BURST",
        "user",
        "rate_burst",
        Int(1, 1 << 30),
        None,
        "Calls the token bucket lets through at once after a quiet spell (its size). Needs "
        "RPCPLUGIN_RATE_LIMIT.",
        shown="the rate, rounded up",
    ),
    HANDLER_THREADS,
    STALL_WARNING,
    Setting(
        "RPCPLUGIN_METRICS",
        "user",
        "metrics",
        Choice("off", "auto", "otel"),
        "off",
        "'off'; 'auto': OpenTelemetry metrics and spans for every call when the opentelemetry "
        "package is installed; 'otel': the same, and an error if it is not installed.",
    ),
    Setting(
        "RPCPLUGIN_LISTEN",
        "user",
        "listen",
        ListenAddress(),
        None,
        "Server mode: listen on this host:port (port 0: any free port, logged) as a network "
        "service, instead of being launched by a host: no cookie check, no handshake line, no "
        "controller/stdio/broker services; SIGTERM or SIGINT drains and stops it. Needs "
        "RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY unless the host is a loopback address.",
    ),
    Setting(
        "RPCPLUGIN_TLS_CERT",
        "user",
        "tls_cert",
        Text(),
        None,
        "Server mode: the server's certificate chain, a PEM file (or the PEM text itself).",
    ),
    Setting(
        "RPCPLUGIN_TLS_KEY",
        "user",
        "tls_key",
        Text(),
        None,
        "Server mode: the private key of RPCPLUGIN_TLS_CERT, a PEM file (or the PEM text).",
    ),
    Setting(
        "RPCPLUGIN_TLS_CLIENT_CA",
        "user",
        "tls_client_ca",
        Text(),
        None,
        "Server mode: require client certificates signed by this CA (PEM file or text): "
        "mutual TLS. Unset: TLS without client certificates.",
    ),
    Setting(
        "RPCPLUGIN_DRAIN",
        "user",
        "drain",
        Float(0.0, 600.0),
        0.5,
        "Server mode: seconds the server reports NOT_SERVING to health watchers before it "
        "stops, so that clients balancing over several servers move their calls elsewhere.",
    ),
)
"""What a plugin reads (:class:`PluginSettings`), in the order of the docs table."""

CONNECT_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "RPCPLUGIN_CONNECT_ATTEMPTS",
        "user",
        "attempts",
        Int(1, 1000),
        1,
        "Host side, rpcplugin.connect()/reattach() without retry=: attempts to reach a plugin "
        "server before giving up (1: no retry).",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_BACKOFF",
        "user",
        "backoff",
        Float(0.0, 3600.0),
        0.1,
        "Host side: seconds of the first wait between attempts; each wait is random between 0 "
        "and this doubled per failure (full jitter).",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_MAX_BACKOFF",
        "user",
        "max_backoff",
        Float(0.0, 3600.0),
        2.0,
        "Host side: the longest wait between two attempts, in seconds.",
    ),
    Setting(
        "RPCPLUGIN_CONNECT_DEADLINE",
        "user",
        "deadline",
        Float(0.001, 86400.0),
        10.0,
        "Host side: seconds after which connecting gives up, whatever attempts are left.",
    ),
)
"""What a Python host reads (:class:`ConnectSettings`)."""

SETTINGS: tuple[Setting, ...] = PLUGIN_SETTINGS + CONNECT_SETTINGS
"""Every setting, as docs/configuration.md lists them."""


class SettingsObject(Record):
    """Frozen settings filled from a table: one attribute per :class:`Setting` (named by its
    ``field``) plus the ``DERIVED`` ones that no variable sets directly. Keyword arguments
    override the table's defaults; :meth:`from_env` parses the environment and runs the
    cross-setting checks."""

    TABLE: ClassVar[tuple[Setting, ...]] = ()
    DERIVED: ClassVar[Mapping[str, object]] = {}
    """Attributes computed by a check, with their defaults."""

    def __init__(self, **values: object) -> None:
        defaults = self.defaults()
        unknown = values.keys() - defaults.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__}() has no setting {', '.join(sorted(unknown))}")
        for field, default in defaults.items():
            object.__setattr__(self, field, values.get(field, default))

    @classmethod
    def defaults(cls) -> dict[str, object]:
        """Every attribute and its default, from the table."""
        values = {setting.field: setting.default for setting in cls.TABLE}
        values.update(cls.DERIVED)
        return values

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Parse and validate the settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        settings = cls(**{setting.field: setting.read(env) for setting in cls.TABLE})
        settings.check(env)
        return settings

    def check(self, env: Mapping[str, str]) -> None:
        """The rules between settings (a subclass runs its checks)."""

    def _fields(self) -> tuple[str, ...]:
        return tuple(self.defaults())


def derive(settings: SettingsObject, field: str, value: object) -> None:
    """Set a value a check computed (a derived attribute, or a default that depends on
    another setting). Only checks call this, while :meth:`SettingsObject.from_env` runs."""
    object.__setattr__(settings, field, value)


class PluginSettings(SettingsObject):
    """Every setting a plugin reads, parsed (:data:`PLUGIN_SETTINGS`). Build it with
    :meth:`from_env`; keyword arguments override the defaults."""

    TABLE = PLUGIN_SETTINGS
    DERIVED: ClassVar[Mapping[str, object]] = {"protocol_version_junk": (), "ignored_ports": ()}

    protocol_versions: tuple[int, ...] | None
    protocol_version_junk: tuple[str, ...]
    """The items of ``PLUGIN_PROTOCOL_VERSIONS`` that were not numbers (for the warning)."""
    min_port: int | None
    max_port: int | None
    client_cert_pem: str | None
    unix_socket_dir: str | None
    unix_socket_group: str | None
    multiplex_requested: bool
    transport: Network
    tls_backend: TLSBackend
    log_level: str
    library_log_level: str
    log_format: LogFormat
    stdio_buffer: int
    parent_watch: bool
    reflection: bool
    debug: bool
    rate_limit: float | None
    rate_burst: int | None
    metrics: MetricsChoice
    listen: str | None
    """Server mode's ``host:port`` (``RPCPLUGIN_LISTEN``); None: launched by a host."""
    tls_cert: str | None
    tls_key: str | None
    tls_client_ca: str | None
    drain: float
    handler_threads: int
    stall_warning: float
    ignored_ports: tuple[str, ...]
    """``PLUGIN_MIN_PORT``/``PLUGIN_MAX_PORT`` when set but unused (the unix transport)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Parse and validate the settings from ``env`` (default: ``os.environ``); the port
        range only where a TCP listener uses it, as go-plugin reads it only there."""
        env = os.environ if env is None else env
        ignored = _unused_ports(env)
        if ignored:
            env = {key: value for key, value in env.items() if key not in ignored}
        settings = super().from_env(env)
        derive(settings, "ignored_ports", ignored)
        return settings

    def check(self, env: Mapping[str, str]) -> None:
        for rule in PLUGIN_CHECKS:
            rule(self, env)


def _unused_ports(env: Mapping[str, str]) -> tuple[str, ...]:
    """The port settings present in ``env`` that a plugin with its transport never uses."""
    if env.get("RPCPLUGIN_LISTEN") or _setting("RPCPLUGIN_TRANSPORT").read(env) != "unix":
        return ()
    return tuple(name for name in ("PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT") if env.get(name))


def _setting(name: str) -> Setting:
    return next(setting for setting in SETTINGS if setting.name == name)


class ConnectSettings(SettingsObject):
    """The host-side ``RPCPLUGIN_CONNECT_*`` settings (:data:`CONNECT_SETTINGS`, read by
    :meth:`rpcplugin.host.retry.RetryPolicy.from_env`)."""

    TABLE = CONNECT_SETTINGS

    attempts: int
    backoff: float
    max_backoff: float
    deadline: float

    def check(self, env: Mapping[str, str]) -> None:
        for rule in CONNECT_CHECKS:
            rule(self, env)


def _version_junk(settings: PluginSettings, env: Mapping[str, str]) -> None:
    raw = env.get("PLUGIN_PROTOCOL_VERSIONS")
    if raw is not None:
        derive(settings, "protocol_version_junk", tuple(parse_version_list(raw)[1]))


def _port_range(settings: PluginSettings, env: Mapping[str, str]) -> None:
    min_port, max_port = settings.min_port, settings.max_port
    if (min_port is None) != (max_port is None):
        missing = "PLUGIN_MAX_PORT" if max_port is None else "PLUGIN_MIN_PORT"
        present = "PLUGIN_MIN_PORT" if max_port is None else "PLUGIN_MAX_PORT"
        raise ConfigError(
            present, env.get(present), f"set {missing} too, or neither (then the OS picks a port)"
        )
    if min_port is not None and max_port is not None and min_port > max_port:
        raise ConfigError(
            "PLUGIN_MIN_PORT", env["PLUGIN_MIN_PORT"], f"must not exceed PLUGIN_MAX_PORT={max_port}"
        )


def _rate_burst(settings: PluginSettings, env: Mapping[str, str]) -> None:
    if settings.rate_burst is not None and settings.rate_limit is None:
        raise ConfigError(
            "RPCPLUGIN_RATE_BURST", env.get("RPCPLUGIN_RATE_BURST"), "set RPCPLUGIN_RATE_LIMIT too"
        )
    if settings.rate_limit is not None and settings.rate_burst is None:
        derive(settings, "rate_burst", max(1, math.ceil(settings.rate_limit)))


def _server_mode_tls(settings: PluginSettings, env: Mapping[str, str]) -> None:
    files = {
        "RPCPLUGIN_TLS_CERT": settings.tls_cert,
        "RPCPLUGIN_TLS_KEY": settings.tls_key,
        "RPCPLUGIN_TLS_CLIENT_CA": settings.tls_client_ca,
    }
    for name, value in files.items():
        if value is not None and settings.listen is None:
            raise ConfigError(name, value, "only used in server mode: set RPCPLUGIN_LISTEN")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        name = "RPCPLUGIN_TLS_CERT" if settings.tls_cert is not None else "RPCPLUGIN_TLS_KEY"
        raise ConfigError(
            name, files[name], "set RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY together"
        )
    if settings.tls_client_ca is not None and settings.tls_cert is None:
        raise ConfigError(
            "RPCPLUGIN_TLS_CLIENT_CA",
            settings.tls_client_ca,
            "client certificates need TLS: set RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY",
        )
    listen = settings.listen
    if listen is not None and settings.tls_cert is None and not _is_loopback(listen):
        raise ConfigError(
            "RPCPLUGIN_LISTEN",
            listen,
            "serving beyond loopback needs TLS: set RPCPLUGIN_TLS_CERT and RPCPLUGIN_TLS_KEY "
            "(rpcplugin-certs makes them)",
        )


PluginCheck = Callable[[PluginSettings, Mapping[str, str]], None]
ConnectCheck = Callable[[ConnectSettings, Mapping[str, str]], None]

PLUGIN_CHECKS: tuple[PluginCheck, ...] = (_version_junk, _port_range, _rate_burst, _server_mode_tls)
"""The rules between plugin settings, in the order they run (after every setting parsed)."""


def _backoff_order(settings: ConnectSettings, env: Mapping[str, str]) -> None:
    if "RPCPLUGIN_CONNECT_MAX_BACKOFF" not in env or env["RPCPLUGIN_CONNECT_MAX_BACKOFF"] == "":
        # the default ceiling is never below the first wait
        derive(settings, "max_backoff", max(settings.max_backoff, settings.backoff))
    elif settings.max_backoff < settings.backoff:
        raise ConfigError(
            "RPCPLUGIN_CONNECT_MAX_BACKOFF",
            env.get("RPCPLUGIN_CONNECT_MAX_BACKOFF"),
            f"must be at least RPCPLUGIN_CONNECT_BACKOFF={settings.backoff:g}",
        )


CONNECT_CHECKS: tuple[ConnectCheck, ...] = (_backoff_order,)
"""The rules between host-side settings."""


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


def handler_threads(env: Mapping[str, str]) -> int:
    """``RPCPLUGIN_HANDLER_THREADS``: the size of the pool that runs plain ``def`` handlers."""
    value = HANDLER_THREADS.read(env)
    assert isinstance(value, int)
    return value


def stall_warning(env: Mapping[str, str]) -> float:
    """``RPCPLUGIN_STALL_WARNING``: seconds of a blocked event loop before a warning; 0: off."""
    value = STALL_WARNING.read(env)
    assert isinstance(value, float)
    return value


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean setting: true/false, 1/0, yes/no, on/off (any case). Anything else is an error."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return bool(Bool().parse(name, raw))


def _is_loopback(address: str) -> bool:
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_markdown() -> str:
    """The settings table of docs/configuration.md, rendered from :data:`SETTINGS`."""
    lines = ["| Variable | Set by | Default | Meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        cells = (f"`{setting.name}`", setting.set_by, setting.documented_default, setting.meaning)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
