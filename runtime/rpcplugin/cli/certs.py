"""``rpcplugin certs``: a CA and server/client certificates for plugin servers that other
machines reach with mutual TLS, and ``inspect``. The library functions are
:mod:`rpcplugin.certs`; ``rpcplugin-certs`` is an alias kept for one release.

::

    rpcplugin certs ca --dir pki                         # pki/ca.pem, pki/ca-key.pem
    rpcplugin certs server --dir pki plugins.example.net 10.0.0.5
    rpcplugin certs client --dir pki ci-runner           # pki/client.pem, pki/client-key.pem
    rpcplugin certs inspect pki/server.pem               # subject, SANs, curve, expiry
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, NoReturn, TypeVar

import click

from ..errors import ConfigError, SecurityError
from ..ops import certs as lib
from .app import cli
from .output import error_line
from .status import EXIT_FAILED

F = TypeVar("F", bound=Callable[..., Any])


@cli.group("certs")
def certs_group() -> None:
    """Make a CA and server/client certificates for plugin servers reached with mutual TLS,
    and inspect certificates."""


def _common(function: F) -> F:
    for option in reversed(
        [
            click.option("--dir", "directory", default=".", help="Directory for the files."),
            click.option("--days", type=click.IntRange(min=1), help="Validity in days."),
            click.option(
                "--curve", type=click.Choice(lib.CURVES), default="secp256r1", show_default=True
            ),
            click.option("--force", is_flag=True, help="Overwrite existing files."),
        ]
    ):
        function = option(function)
    return function


def _failing(action: Callable[[], int]) -> int:
    """Run a certs action: a runtime error is one line and exit status 1."""
    try:
        return action()
    except (ConfigError, SecurityError) as exc:
        error_line(str(exc))
        sys.exit(EXIT_FAILED)


@certs_group.command("ca", help=f"Create a CA (ca.pem, ca-key.pem; {lib.CA_DAYS} days).")
@_common
@click.option("--name", default="rpcplugin CA", show_default=True, help="The CA's common name.")
def ca_command(directory: str, days: int | None, curve: str, force: bool, name: str) -> None:
    def action() -> int:
        os.makedirs(directory, exist_ok=True)
        issued = lib.create_ca(name, days=days or lib.CA_DAYS, curve=curve)
        cert_path = os.path.join(directory, "ca.pem")
        key_path = os.path.join(directory, "ca-key.pem")
        lib.write_issued(issued, cert_path, key_path, force=force)
        click.echo(
            f"wrote {cert_path} and {key_path} (keep the key private: it signs certificates)"
        )
        return 0

    sys.exit(_failing(action))


def _leaf(usage: lib.Usage, what: str) -> None:
    @certs_group.command(
        usage, help=f"Issue a {usage} certificate from the CA ({lib.LEAF_DAYS} days)."
    )
    @_common
    @click.argument("names", nargs=-1, required=True, metavar="NAME...")
    @click.option("--ca", "ca_cert", help="CA certificate (default: DIR/ca.pem).")
    @click.option("--ca-key", help="CA key (default: DIR/ca-key.pem).")
    @click.option("--out", help=f"File stem (default: {usage}, giving {usage}.pem).")
    def command(
        directory: str,
        days: int | None,
        curve: str,
        force: bool,
        names: tuple[str, ...],
        ca_cert: str | None,
        ca_key: str | None,
        out: str | None,
    ) -> None:
        def action() -> int:
            os.makedirs(directory, exist_ok=True)
            ca = lib.Issued(
                lib.read_pem(ca_cert or os.path.join(directory, "ca.pem"), what="--ca"),
                lib.read_pem(ca_key or os.path.join(directory, "ca-key.pem"), what="--ca-key"),
            )
            issued = lib.issue(
                ca,
                names[0],
                names=list(names[1:]),
                usage=usage,
                days=days or lib.LEAF_DAYS,
                curve=curve,
            )
            stem = out or usage
            cert_path = os.path.join(directory, f"{stem}.pem")
            key_path = os.path.join(directory, f"{stem}-key.pem")
            lib.write_issued(issued, cert_path, key_path, force=force)
            click.echo(f"wrote {cert_path} and {key_path}")
            return 0

        sys.exit(_failing(action))

    command.__doc__ = f"NAME...: {what}; the first is the common name."


_leaf("server", "DNS names / IP addresses")
_leaf("client", "the client's name")


@certs_group.command("inspect")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option(
    "--check",
    is_flag=True,
    help=f"Exit 1 when a certificate has less than {lib.EXPIRY_WARNING_DAYS} days left.",
)
def inspect_command(files: tuple[str, ...], as_json: bool, check: bool) -> None:
    """Show subject, SANs, key and curve, usages and expiry."""

    def action() -> int:
        status = 0
        for path in files:
            info = lib.describe(lib.load_certificate(path, what="certificate"))
            if check and info.days_left < lib.EXPIRY_WARNING_DAYS:
                status = EXIT_FAILED
            if as_json:
                click.echo(json.dumps({"file": path, **asdict(info)}))
                continue
            click.echo(f"{path}:")
            for key, value in (
                ("subject", info.subject),
                ("issuer", info.issuer),
                ("SANs", ", ".join(info.sans) or "(none)"),
                ("key", info.key),
                ("curve", info.curve or "(not EC)"),
                ("CA", "yes" if info.is_ca else "no"),
                ("usages", ", ".join(info.usages) or "(any)"),
                ("valid from", info.not_before),
                ("expires", f"{info.not_after} ({info.days_left:g} days left)"),
                ("sha256", info.sha256),
            ):
                click.echo(f"  {key + ':':<11} {value}")
        return status

    sys.exit(_failing(action))


def legacy_main(argv: Sequence[str] | None = None) -> NoReturn:
    """``rpcplugin-certs``: the same commands as ``rpcplugin certs`` (an alias for one release).
    Exit status: 0 done, 1 failed (or ``--check`` found a certificate close to expiry), 2 bad
    usage."""
    from . import run_click

    run_click(certs_group, argv, prog_name="rpcplugin-certs")
