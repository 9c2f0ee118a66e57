"""``rpcplugin``: the operator's command line — launch, inspect, list and call any go-plugin
plugin (Go or Python), stream its logs, make certificates (docs/cli.md).

It needs the ``cli`` extra (click): ``pip install 'rpcplugin[cli]'``. Plugins never import this
package.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import click

INSTALL_HINT = "rpcplugin: the command line needs click: pip install 'rpcplugin[cli]'"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``rpcplugin`` console script."""
    try:
        import click  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(1)
    run_click(command(), argv, prog_name="rpcplugin")


def command() -> click.Group:
    """The ``rpcplugin`` click group with every subcommand (for ``CliRunner`` and embedding)."""
    from . import call, certs, inspect, logs  # noqa: F401  (they register the subcommands)
    from .app import cli

    return cli


def run_click(group: click.Command, argv: Sequence[str] | None, *, prog_name: str) -> NoReturn:
    """Run a click command; a usage error is one line (exit 2), not click's usage block."""
    import click

    from .output import error_line
    from .status import EXIT_USAGE, CLIError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = group.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2: bare `rpcplugin`
            click.echo(exc.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        where = exc.ctx.command_path if exc.ctx else prog_name
        error_line(f"{exc.format_message()} (see {where} --help)")
        sys.exit(EXIT_USAGE)
    except CLIError as exc:
        error_line(str(exc))
        sys.exit(exc.status)
    except click.exceptions.Abort:
        error_line("interrupted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        error_line(exc.format_message())
        sys.exit(exc.exit_code)
    sys.exit(status if isinstance(status, int) else 0)


__all__ = ["INSTALL_HINT", "command", "main", "run_click"]
