"""``rpcplugin-gen pack``: a generated plugin as one executable that a real Go host (go-plugin
1.0.1, ``tests/gopeers.py``) launches with SecureConfig on, and refuses with a wrong checksum."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from gopeers import GoHostRun, run_go_host

from rpcplugin_gen import cli

from .conftest import host_env
from .test_plugin_name import first_reattach_line

pytestmark = pytest.mark.go

NAME = "terraform-provider-conformance_v0.1.0"


def pack(package: Path, out: Path, *extra: str) -> tuple[Path, str]:
    """Run ``rpcplugin-gen pack``; the executable and the SHA-256 it printed."""
    args = ["pack", str(package), "--name", NAME, "-o", str(out), *extra]
    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    digest, _, printed = result.stdout.strip().partition("  ")
    target = out / NAME
    assert Path(printed) == target
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    return target, digest


def go_host(executable: Path, checksum: str, tmp: Path) -> GoHostRun:
    flags = ["-versions", "1", "-calls", "ping,echo", "-checksum", checksum]
    return run_go_host([str(executable)], *flags, env=host_env(tmp), timeout=300)


@pytest.fixture(scope="module")
def onefile(
    conformance_package: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    return pack(conformance_package, tmp_path_factory.mktemp("dist"), "--onefile")


def test_go_host_launches_the_single_file_with_its_checksum(
    onefile: tuple[Path, str], tmp_path: Path
) -> None:
    executable, digest = onefile
    result = go_host(executable, digest, tmp_path)
    assert result.returncode == 0, result
    assert result.one("started")["version"] == 1
    assert result.one("echo")["text"] == "hello"
    assert result.one("killed")["graceful"] is True, result
    # the name the plugin logs under is the executable's, as the host shows it


def test_go_host_refuses_the_single_file_with_a_wrong_checksum(
    onefile: tuple[Path, str], tmp_path: Path
) -> None:
    executable, digest = onefile
    wrong = hashlib.sha256(b"not the plugin").hexdigest()
    assert wrong != digest
    result = go_host(executable, wrong, tmp_path)
    assert result.returncode == 1, result
    assert result.of("started") == [], result
    (error,) = result.errors
    assert error["stage"] == "start" and "checksums did not match" in error["error"], result


def test_single_file_plugin_is_named_after_its_file(
    onefile: tuple[Path, str], tmp_path: Path
) -> None:
    executable, _ = onefile
    assert first_reattach_line([str(executable)], tmp_path) == NAME


def test_launcher_runs_the_package_with_the_chosen_interpreter(
    conformance_package: Path, tmp_path: Path
) -> None:
    executable, digest = pack(conformance_package, tmp_path / "dist", "--python", sys.executable)
    assert executable.read_text().startswith("#!/bin/sh\n")
    assert sys.executable in executable.read_text()
    result = go_host(executable, digest, tmp_path)
    assert result.returncode == 0, result
    assert result.one("echo")["text"] == "hello"


def test_pack_refuses_a_directory_that_is_not_a_generated_package(tmp_path: Path) -> None:
    (tmp_path / "notapkg").mkdir()
    args = ["pack", str(tmp_path / "notapkg"), "-o", str(tmp_path / "dist")]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1
    assert "not a generated plugin package" in result.stderr
    assert "Traceback" not in result.output
