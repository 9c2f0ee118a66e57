"""The CLI's own seams, without plugins: presets, colour rules, the missing-click message, the
certs commands (and their old alias), usage errors, the exit-status table in docs/cli.md."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpcplugin.cli import command, output, status
from rpcplugin.errors import ConfigError
from rpcplugin.presets import PRESETS, preset

from .clikit import BIN, ROOT, cli_env, run_cli


def test_presets_are_the_hosts_in_docs_compatibility() -> None:
    """The table people read and the table the code uses are the same table."""
    text = (ROOT / "docs" / "compatibility.md").read_text()
    rows = re.findall(r"^\| (\w+) [^|]*\| `(\w+)` \| `([\w-]+)` \| ([\d, –]+) \|$", text, re.M)
    documented = {}
    for host, key, value, versions in rows:
        if "–" in versions:
            low, high = (int(v) for v in versions.split("–"))
            numbers = tuple(range(low, high + 1))
        else:
            numbers = tuple(int(v) for v in versions.split(","))
        documented[host.lower()] = (key, value, numbers)
    assert documented == {
        name: (p.handshake.cookie_key, p.handshake.cookie_value, p.versions)
        for name, p in PRESETS.items()
    }
    assert preset("Terraform") is PRESETS["terraform"]
    with pytest.raises(ConfigError, match="nomad, terraform, vault"):
        preset("packer")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert output.paint("x", "red", _Terminal()) == "\x1b[31mx\x1b[0m"
    assert output.paint("x", "red", io.StringIO()) == "x"
    monkeypatch.setenv("NO_COLOR", "1")
    assert output.paint("x", "red", _Terminal()) == "x"
    progress_to = _Terminal()
    progress = output.Progress(progress_to)
    progress.show("launching…")
    progress.clear()
    assert progress_to.getvalue().startswith("\r\x1b[K") and "launching…" in progress_to.getvalue()
    piped = io.StringIO()
    quiet = output.Progress(piped)
    quiet.show("launching…")
    quiet.clear()
    assert piped.getvalue() == ""


def test_without_click_the_command_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'click' or name.startswith('click.'):\n"
        "            raise ImportError('no click here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rpcplugin.cli import main\n"
        "main(['--help'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert (
        result.stderr == "rpcplugin: the command line needs click: pip install 'rpcplugin[cli]'\n"
    )


def test_plugins_do_not_import_the_cli() -> None:
    code = (
        "import rpcplugin, rpcplugin.plugin.server, sys; rpcplugin.serve; "
        "print('rpcplugin.cli' in sys.modules, 'click' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_usage_errors_are_one_line_with_status_2() -> None:
    for args in (("inspect",), ("inspect", "--versions", "x", "--", "p"), ("nope",)):
        run = run_cli(*args)
        assert run.status == status.EXIT_USAGE, run
        assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("rpcplugin: error:"), run
    cookie = run_cli("inspect", "--cookie-key", "K", "--", "p")
    assert "give both --cookie-key and --cookie-value" in cookie.stderr


def test_certs_commands_and_the_old_alias(tmp_path: Path) -> None:
    runner = CliRunner()
    cli = command()
    pki = str(tmp_path / "pki")
    made = runner.invoke(cli, ["certs", "ca", "--dir", pki, "--name", "unit CA"])
    assert made.exit_code == 0, made.output
    assert made.output.startswith(f"wrote {pki}/ca.pem and {pki}/ca-key.pem")
    server = runner.invoke(cli, ["certs", "server", "--dir", pki, "localhost", "127.0.0.1"])
    assert server.exit_code == 0, server.output
    again = runner.invoke(cli, ["certs", "ca", "--dir", pki])
    assert again.exit_code == status.EXIT_FAILED and "--force" in again.output
    shown = runner.invoke(cli, ["certs", "inspect", "--json", f"{pki}/server.pem"])
    info = json.loads(shown.output)
    assert info["issuer"] == "CN=unit CA" and info["sans"] == ["DNS:localhost", "IP:127.0.0.1"]
    checked = runner.invoke(cli, ["certs", "inspect", "--check", f"{pki}/server.pem"])
    assert checked.exit_code == 0 and "  curve:      secp256r1" in checked.output
    # the old entry point is the same commands, as a real console script
    alias = subprocess.run(
        [str(BIN / "rpcplugin-certs"), "inspect", f"{pki}/ca.pem"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert alias.returncode == 0 and "  CA:         yes" in alias.stdout, alias.stderr


def test_exit_statuses_are_documented_in_docs_cli() -> None:
    """Every EXIT_* constant has a row in docs/cli.md's table, with its number."""
    text = (ROOT / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| (\d+)(?:\+code)? \| `(EXIT_\w+)` \|", text, re.M))
    constants = {name: getattr(status, name) for name in dir(status) if name.startswith("EXIT_")}
    assert {name: int(number) for number, name in rows.items()} == constants


def test_a_cookie_refusal_is_recognised_however_the_host_words_it() -> None:
    from rpcplugin.errors import PluginExitedError

    go_tail = (
        "This binary is a plugin. These are not meant to be executed directly.\n"
        "Please execute the program that consumes these plugins, which will\n"
        "load any plugins automatically"
    )
    plain = PluginExitedError(
        "plugin './p' exited before printing its handshake line", returncode=1, stderr_tail=go_tail
    )
    reworded = PluginExitedError(
        "plugin 'p' refused the magic cookie: this host's handshake settings and the plugin's "
        "differ",
        returncode=1,
        stderr_tail=go_tail,
    )
    for error in (plain, reworded):
        failure = status.classify(error)
        assert failure.status == status.EXIT_COOKIE
        assert "refused the magic cookie" in str(failure) and "\n" not in str(failure)
        assert str(failure).endswith(
            "it says: This binary is a plugin. These are not meant to be executed directly."
        )
    crashed = PluginExitedError(
        "plugin './p' exited before printing its handshake line",
        returncode=2,
        stderr_tail='panic: boom\n{"@level":"error","@message":"the last words"}',
    )
    failure = status.classify(crashed)
    assert failure.status == status.EXIT_HANDSHAKE
    assert str(failure).endswith("its last stderr line: the last words")
