"""examples/callback: a plugin asks its host for a secret mid-call, through the broker: the
README's commands with a real process, and the host's calls on every TLS path in process
(``rpcplugin.testing``, whose broker works as a launched plugin's does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from example_tools import import_file, mypy_strict, run_sh_block

import rpcplugin.testing

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "callback"
GEN = Path(sys.executable).parent / "rpcplugin-gen"

EXPECTED = [
    "Deploy shop -> deployed shop with db password sha256:c4bbcb1f...",
    "Deploy blog -> FAILED_PRECONDITION: the host has no secret blog/db",
    "the plugin asked the host for: shop/db, shop/db, blog/db",
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated ``deploy`` package around the example's servicer.py; returns its parent."""
    parent = tmp_path_factory.mktemp("callback")
    package = parent / "deploy"
    package.mkdir()
    (package / "servicer.py").write_bytes((EXAMPLE / "servicer.py").read_bytes())
    proto = EXAMPLE / "deploy.proto"
    subprocess.run([str(GEN), "-q", "-I", str(EXAMPLE), str(proto), "-o", str(package)], check=True)
    return parent


def assert_ran(result: subprocess.CompletedProcess[str], tls: str) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"launched: python -m deploy, app protocol version 1, TLS {tls}"
    assert lines[1] == f"Secrets served through the broker as id 1, TLS {tls}"
    assert lines[2:5] == EXPECTED
    assert lines[5].startswith("Deploy with its callback took ")
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def host(generated: Path) -> Any:
    """The example host, importable in this process next to the generated package."""
    sys.path.insert(0, str(generated))
    return import_file(EXAMPLE / "host.py", "callback_example_host")


@pytest.mark.parametrize("tls", ["grpc", "openssl", "off"])
async def test_host_serves_secrets_the_plugin_asks_for(host: Any, tls: str) -> None:
    from deploy import plugin
    from deploy.servicer import Deployer

    handlers = plugin.handlers(deployer=Deployer())
    choice = {"grpc": "grpc", "openssl": "openssl", "off": False}[tls]
    async with rpcplugin.testing.start(handlers, tls=choice) as conn:
        lines = await host.deploy_with_secrets(conn)
    assert lines[0] == f"Secrets served through the broker as id 1, TLS {tls}"
    assert lines[1:4] == EXPECTED
    assert lines[4].startswith("Deploy with its callback took ")


def test_readme_commands_run_it(tmp_path: Path) -> None:
    result = run_sh_block(EXAMPLE / "README.md", tmp_path, timeout=120)
    assert_ran(result, "grpc")
    shown = (EXAMPLE / "README.md").read_text().splitlines()
    assert all(line in shown for line in EXPECTED), "the README shows other results"


def test_host_servicer_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    (generated / "host.py").write_bytes((EXAMPLE / "host.py").read_bytes())
    result = mypy_strict("callback", [generated / "deploy", generated / "host.py"], generated)
    assert result.returncode == 0, result.stdout + result.stderr
