"""Which plugin a command talks to: one it launches, one it reattaches to, or a direct address.

Every subcommand that needs a plugin takes the same options (:func:`target_options`) and
opens it with :func:`opened`, which also measures launch → ready and close → reaped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import click

import rpcplugin

from ..presets import PRESETS
from .status import EXIT_USAGE, CLIError

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["launch", "reattach", "address"]


@dataclass
class Target:
    """The plugin a command was pointed at, as the options gave it."""

    kind: Kind
    command: list[str] = field(default_factory=list)
    handshake: rpcplugin.Handshake | None = None
    preset: str | None = None
    versions: tuple[int, ...] = (1,)
    auto_mtls: bool = True
    transport: str = "unix"
    tls_backend: Literal["auto", "openssl", "grpc"] = "auto"
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0
    reattach: str = ""
    plugin: str | None = None
    address: str = ""
    tls: rpcplugin.TLSFiles | None = None

    @property
    def name(self) -> str:
        """How messages name the plugin."""
        if self.kind == "launch":
            if len(self.command) > 2 and self.command[1] == "-m":
                return self.command[2]  # python -m package
            return os.path.basename(self.command[0])
        if self.kind == "reattach":
            return self.plugin or "reattached plugin"
        return self.address


def _versions(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise CLIError(EXIT_USAGE, f"--versions {raw!r}: want integers like 1,2") from None
    if not values or any(v < 1 for v in values):
        raise CLIError(EXIT_USAGE, f"--versions {raw!r}: want positive integers like 1,2")
    return values


def _read_reattach(raw: str) -> str:
    if raw == "-":
        return sys.stdin.read()
    if raw.startswith("@"):
        try:
            with open(raw[1:]) as handle:
                return handle.read()
        except OSError as exc:
            raise CLIError(EXIT_USAGE, f"--reattach {raw}: {exc.strerror}") from None
    return raw


def target_options(function: F) -> F:
    """The options every plugin-using subcommand shares, plus ``COMMAND...`` after ``--``."""
    options = [
        click.argument("command", nargs=-1, metavar="[-- COMMAND [ARG]...]"),
        click.option(
            "--host",
            "preset",
            type=click.Choice(sorted(PRESETS), case_sensitive=False),
            help="Use a known host's magic cookie and versions.",
        ),
        click.option("--cookie-key", help="The magic cookie's variable name."),
        click.option("--cookie-value", help="The magic cookie's value."),
        click.option(
            "--versions",
            help="App protocol versions offered, e.g. 1,2 (default: the preset's, or 1).",
        ),
        click.option(
            "--auto-mtls/--no-auto-mtls",
            default=True,
            show_default=True,
            help="Mutual TLS with fresh certificates (AutoMTLS).",
        ),
        click.option(
            "--transport",
            type=click.Choice(["unix", "tcp"]),
            default="unix",
            show_default=True,
            help="Ask the plugin for this transport (RPCPLUGIN_TRANSPORT; go-plugin plugins "
            "always use unix sockets off Windows).",
        ),
        click.option(
            "--tls-backend",
            type=click.Choice(["auto", "openssl", "grpc"]),
            default="auto",
            show_default=True,
            help="grpcio's TLS, or the OpenSSL relay (auto: grpcio when it can verify the peer).",
        ),
        click.option(
            "--env", "env", multiple=True, metavar="KEY=VALUE", help="Plugin environment."
        ),
        click.option(
            "--start-timeout", type=float, default=30.0, show_default=True, help="Seconds."
        ),
        click.option(
            "--reattach",
            metavar="JSON|@FILE|-",
            help="Attach to a running plugin: go-plugin's reattach JSON (one config, or a "
            "TF_REATTACH_PROVIDERS-shaped map).",
        ),
        click.option("--plugin", help="Which entry of a reattach map (default: the only one)."),
        click.option(
            "--address", metavar="ADDR", help="Dial a plugin server: host:port or unix:/path."
        ),
        click.option("--ca", type=click.Path(dir_okay=False), help="CA file (--address with TLS)."),
        click.option(
            "--cert", type=click.Path(dir_okay=False), help="Our certificate (mutual TLS)."
        ),
        click.option(
            "--key", type=click.Path(dir_okay=False), help="Our private key (mutual TLS)."
        ),
        click.option("--server-name", help="The name to verify the server's certificate for."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_target(options: dict[str, Any]) -> Target:
    """A :class:`Target` from :func:`target_options`' values (popped from ``options``)."""
    command = list(options.pop("command"))
    preset_name = options.pop("preset")
    cookie_key, cookie_value = options.pop("cookie_key"), options.pop("cookie_value")
    versions_raw = options.pop("versions")
    reattach, plugin = options.pop("reattach"), options.pop("plugin")
    address = options.pop("address")
    ca, cert, key, server_name = (options.pop(k) for k in ("ca", "cert", "key", "server_name"))
    env_pairs = options.pop("env")
    given = [
        k for k, v in (("COMMAND", command), ("--reattach", reattach), ("--address", address)) if v
    ]
    if len(given) != 1:
        raise CLIError(
            EXIT_USAGE,
            "say which plugin: a command after --, --reattach JSON or --address ADDR"
            + (f" (got {' and '.join(given)})" if given else ""),
        )
    env: dict[str, str] = {}
    for pair in env_pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CLIError(EXIT_USAGE, f"--env {pair!r}: want KEY=VALUE")
        env[name] = value
    target = Target(
        kind="launch" if command else "reattach" if reattach else "address",
        command=command,
        auto_mtls=options.pop("auto_mtls"),
        transport=options.pop("transport"),
        tls_backend=options.pop("tls_backend"),
        env=env,
        start_timeout=options.pop("start_timeout"),
        reattach=reattach or "",
        plugin=plugin,
        address=address or "",
    )
    preset = PRESETS[preset_name.lower()] if preset_name else None
    target.preset = preset.name if preset else None
    if versions_raw:
        target.versions = _versions(versions_raw)
    elif preset is not None:
        target.versions = preset.versions
    if target.kind == "launch":
        if (cookie_key is None) != (cookie_value is None):
            raise CLIError(EXIT_USAGE, "give both --cookie-key and --cookie-value")
        if cookie_key is not None and cookie_value is not None:
            target.handshake = rpcplugin.Handshake(cookie_key, cookie_value)
        elif preset is not None:
            target.handshake = preset.handshake
        else:
            raise CLIError(
                EXIT_USAGE, "give the magic cookie: --host NAME or --cookie-key K --cookie-value V"
            )
    if ca:
        target.tls = rpcplugin.TLSFiles(ca, cert, key, server_name)
    elif cert or key:
        raise CLIError(EXIT_USAGE, "--cert and --key need --ca (the server's CA)")
    if target.tls is not None and target.kind != "address":
        raise CLIError(EXIT_USAGE, "--ca/--cert/--key are for --address only")
    return target


@dataclass
class Opened:
    """A connected plugin and how long opening (and later closing) it took."""

    conn: rpcplugin.PluginConnection
    target: Target
    ready_seconds: float
    close_seconds: float | None = None
    exit_status: int | None = None


@contextlib.asynccontextmanager
async def opened(
    target: Target,
    *,
    health_check: bool = True,
    stdout: Callable[[bytes], object] | None = None,
    stderr: Callable[[bytes], object] | None = None,
    logger: logging.Logger | None = None,
    show_progress: bool = True,
) -> AsyncIterator[Opened]:
    """Open the target; on leaving, close it and record close → reaped. A progress line on
    stderr says what is going on meanwhile, when stderr is a terminal."""
    from .output import Progress

    progress = Progress(enabled=show_progress)
    progress.show(f"launching {target.name}…" if target.kind == "launch" else "connecting…")
    started = time.monotonic()
    to_stderr = _write_to(sys.stderr)
    opening: rpcplugin.Opening[rpcplugin.PluginConnection]
    if target.kind == "launch":
        assert target.handshake is not None
        env = dict(target.env)
        if target.transport == "tcp":
            env["RPCPLUGIN_TRANSPORT"] = "tcp"
        opening = rpcplugin.launch(
            target.command,
            name=target.name,
            handshake=target.handshake,
            versions=target.versions,
            env=env,
            auto_mtls=target.auto_mtls,
            tls_backend=target.tls_backend,
            start_timeout=target.start_timeout,
            stdout=stdout or to_stderr,
            stderr=stderr or to_stderr,
            logger=logger,
            health_check=health_check,
        )
    elif target.kind == "reattach":
        opening = rpcplugin.reattach(
            _read_reattach(target.reattach),
            name=target.plugin,
            health_check=health_check,
            stdout=stdout or to_stderr,
            stderr=stderr or to_stderr,
        )
    else:
        opening = rpcplugin.connect(
            target.address,
            tls=target.tls,
            tls_backend=target.tls_backend,
            version=target.versions[0],
            health_check=health_check,
        )
    try:
        conn = await opening
    finally:
        progress.clear()
    result = Opened(conn, target, time.monotonic() - started)
    try:
        yield result
    finally:
        progress.show("closing…")
        closing = time.monotonic()
        try:
            await conn.close()
        finally:
            progress.clear()
        result.close_seconds = time.monotonic() - closing
        result.exit_status = conn.returncode


def _write_to(stream: Any) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()

    return write


def join(values: Sequence[int]) -> str:
    """``1,2``."""
    return ",".join(str(v) for v in values)
