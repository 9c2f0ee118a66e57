"""``rpcplugin inspect`` (alias ``launch``): start a plugin, report what a person debugging it
needs, close it cleanly."""

from __future__ import annotations

import contextlib
from typing import Any

import click

import rpcplugin

from .app import cli, run
from .output import Progress, emit_json, paint, report
from .target import Opened, Target, join, make_target, opened, target_options

CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
"""The NIST names of the curves go-plugin and rpcplugin use."""


def peer_certificate(der: bytes) -> dict[str, Any]:
    """Key type, curve, subject and validity of a DER certificate."""
    from cryptography import x509

    from ..ops import certs

    info = certs.describe(x509.load_der_x509_certificate(der))
    return {
        "key": info.key,
        "curve": CURVE_NAMES.get(info.curve or "", info.curve),
        "subject": info.subject,
        "sans": list(info.sans),
        "not_before": info.not_before,
        "not_after": info.not_after,
        "days_left": info.days_left,
        "sha256": info.sha256,
    }


async def server_certificate(
    target: Target, network: str, address: str, timeout: float = 10.0
) -> bytes | None:
    """A direct TLS server's certificate (DER), from a handshake of our own with the same CA and
    client certificate as the connection (verified: a certificate that does not verify is not
    reported)."""
    import asyncio
    import ssl

    if target.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=target.tls.ca_file)
    context.set_alpn_protocols(["h2"])
    if target.tls.cert_file and target.tls.key_file:
        context.load_cert_chain(target.tls.cert_file, target.tls.key_file)
    host = target.tls.server_name or (
        "localhost" if network == "unix" else address.rpartition(":")[0]
    )
    if network == "unix":
        opening = asyncio.open_unix_connection(address, ssl=context, server_hostname=host)
    else:
        name, _, port = address.rpartition(":")
        opening = asyncio.open_connection(
            name.strip("[]"), int(port), ssl=context, server_hostname=host.strip("[]")
        )
    _, writer = await asyncio.wait_for(opening, timeout)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der: bytes | None = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        return der
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def describe(opened_: Opened, health: str, peer_der: bytes | None = None) -> dict[str, Any]:
    """Everything ``inspect`` reports, as one JSON-ready object."""
    conn, target = opened_.conn, opened_.target
    line = conn.handshake_line
    facts: dict[str, Any] = {
        "plugin": target.name,
        "mode": conn.mode,
        "pid": conn.pid,
        "version": conn.version,
        "versions_offered": list(target.versions) if target.kind == "launch" else None,
        "transport": {"network": conn.endpoint.network, "address": conn.endpoint.address},
        "handshake": None,
        "tls": {"mode": _tls_mode(conn, target), "backend": conn.tls, "peer_certificate": None},
        "health": health,
        "launch_to_ready_ms": round(opened_.ready_seconds * 1000, 1),
    }
    if target.kind == "launch":
        facts["command"] = target.command
        facts["cookie_key"] = target.handshake.cookie_key if target.handshake else None
    if line is not None:
        facts["handshake"] = {
            "line": line.format().rstrip("\n"),
            "core_version": line.core_version,
            "app_version": line.app_version,
            "network": line.network,
            "address": line.address,
            "protocol": line.protocol,
            "server_cert": line.server_cert_der is not None,
            "multiplex": line.multiplex,
        }
        peer_der = line.server_cert_der
    if peer_der is not None:
        facts["tls"]["peer_certificate"] = peer_certificate(peer_der)
    return facts


def _tls_mode(conn: rpcplugin.PluginConnection, target: Target) -> str:
    if conn.tls == "off":
        return "off"
    if target.kind == "launch":
        return "AutoMTLS"
    return "mutual TLS" if target.tls is not None and target.tls.cert_file else "TLS"


def _short_line(line: str, limit: int = 72) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def text_rows(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The human report, as aligned rows."""
    rows = [("plugin", f"{facts['plugin']} (pid {facts['pid'] or 'unknown'}, {facts['mode']})")]
    shake = facts["handshake"]
    if shake is not None:
        rows.append(("handshake", _short_line(shake["line"])))
        parts = [
            f"core {shake['core_version']}",
            f"app {shake['app_version']}",
            shake["network"],
            shake["protocol"],
            "certificate" if shake["server_cert"] else "no certificate",
        ]
        if shake["multiplex"] is not None:
            parts.append(f"multiplex {'on' if shake['multiplex'] else 'off'}")
        rows.append(("", ", ".join(parts)))
    offered = facts["versions_offered"]
    version = str(facts["version"])
    if offered:
        version += f" (offered {join(offered)})"
    rows.append(("version", version))
    transport = facts["transport"]
    rows.append(("transport", f"{transport['network']} {transport['address']}"))
    tls = facts["tls"]
    backend = {"openssl": "the OpenSSL relay", "grpc": "grpcio's TLS"}.get(tls["backend"])
    rows.append(("TLS", tls["mode"] if backend is None else f"{tls['mode']} via {backend}"))
    peer = tls["peer_certificate"]
    if peer is not None:
        rows.append(("peer cert", f"{peer['key']} ({peer['curve']}), {peer['subject']}"))
        rows.append(("", f"valid {peer['not_before']} to {peer['not_after']}"))
    health = facts["health"]
    rows.append(("health", paint(health, "green" if health == "SERVING" else "red")))
    opening = "launch" if facts["mode"] == "launched" else "connect"
    rows.append((f"{opening} → ready", f"{facts['launch_to_ready_ms']:.1f} ms"))
    return rows


@cli.command("inspect")
@target_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the report.")
def inspect_command(as_json: bool, **options: Any) -> None:
    """Launch a plugin (or attach to one), report its handshake, version, transport, TLS and
    health, then close it and report close → reaped.

    \b
    rpcplugin inspect --host terraform -- ./terraform-provider-null
    rpcplugin inspect --cookie-key K --cookie-value V --versions 1,2 -- ./plugin
    """
    target = make_target(options)

    async def main() -> int:
        progress = Progress()
        async with opened(target, health_check=False) as result:
            progress.show("checking health…")
            try:
                await result.conn.ping()
                health = "SERVING"
            except rpcplugin.PluginError as exc:
                health = f"not healthy: {str(exc).splitlines()[0]}"
            peer_der = None
            if target.kind == "address" and target.tls is not None:
                try:
                    endpoint = result.conn.endpoint
                    peer_der = await server_certificate(target, endpoint.network, endpoint.address)
                except (OSError, TimeoutError) as exc:
                    progress.clear()
                    click.echo(f"rpcplugin: warning: no server certificate: {exc}", err=True)
            progress.clear()
            facts = describe(result, health, peer_der)
        facts["close_to_reaped_ms"] = round((result.close_seconds or 0) * 1000, 1)
        facts["exit_status"] = result.exit_status
        if as_json:
            emit_json(facts)
        else:
            rows = text_rows(facts)
            closed = f"{facts['close_to_reaped_ms']:.1f} ms"
            if result.exit_status is not None:
                closed += f" (exit status {result.exit_status})"
            rows.append(("close → reaped" if target.kind == "launch" else "close", closed))
            report(rows)
        return 0 if health == "SERVING" else 1

    run(main)


cli.add_command(inspect_command, "launch")

__all__ = ["describe", "inspect_command", "peer_certificate", "text_rows"]
