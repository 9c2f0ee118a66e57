"""examples/go-plugin-from-python: the Python host with the generated ``KVClient`` drives a Go
plugin served with go-plugin 1.0.1, AutoMTLS on (through the OpenSSL relay) and off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from example_tools import mypy_strict, run_sh_block
from gopeers import build_go_program

pytestmark = pytest.mark.go

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "go-plugin-from-python"
KV_DIR = ROOT / "examples" / "kv-go-host"  # kv.proto is shared with that example, not copied
GEN = Path(sys.executable).parent / "rpcplugin-gen"

EXPECTED = [
    "Put fruit/apple = red",
    "Put fruit/banana = yellow",
    "Put veg/kale = green",
    "Get fruit/apple -> red",
    'Get fruit/cherry -> NOT_FOUND: no value under "fruit/cherry"',
    "List fruit/ -> fruit/apple=red fruit/banana=yellow",
]


def kvplugin() -> Path:
    """The example's Go plugin, built (or taken from the cache) the way its README builds it."""
    return build_go_program(
        EXAMPLE,
        ["kv.proto", "rpcplugin/protos/rpcplugin_options.proto"],
        proto_path=[KV_DIR, ROOT / "runtime"],
        name="kvplugin",
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host's ``kv`` package (no servicer); returns its parent."""
    parent = tmp_path_factory.mktemp("go-plugin-from-python")
    command = [str(GEN), "-q", "--no-servicer", "-I", str(KV_DIR), str(KV_DIR / "kv.proto")]
    subprocess.run([*command, "-o", str(parent / "kv")], check=True, timeout=60)
    assert not (parent / "kv" / "servicer.py").exists()
    return parent


def run_host(generated: Path, tmp_path: Path, *, auto_mtls: bool) -> dict[str, Any]:
    """host.run() in a fresh interpreter; its Report as a dict."""
    code = (
        "import asyncio, dataclasses, json, sys, host\n"
        f"r = asyncio.run(host.run([{str(kvplugin())!r}], auto_mtls={auto_mtls}))\n"
        "print(json.dumps(dataclasses.asdict(r)))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(generated), str(EXAMPLE)]),
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not a report:\n{result.stdout}\n{result.stderr}") from None
    return report


@pytest.mark.parametrize("auto_mtls", [True, False], ids=["automtls", "plaintext"])
def test_python_host_drives_the_go_plugin(generated: Path, tmp_path: Path, auto_mtls: bool) -> None:
    report = run_host(generated, tmp_path, auto_mtls=auto_mtls)
    assert report["lines"] == EXPECTED
    assert report["version"] == 1
    # go-plugin's P-521 certificates take the OpenSSL relay; grpcio's TLS cannot verify them
    assert report["tls"] == ("openssl" if auto_mtls else "off")
    assert report["endpoint"].startswith("unix:")
    assert report["returncode"] == 0  # Shutdown over GRPCController, then a clean exit
    assert report["close_ms"] < 2000
    assert list(tmp_path.iterdir()) == [], "a socket or relay directory was left behind"


def test_readme_commands_build_and_run_it(tmp_path: Path) -> None:
    result = run_sh_block(EXAMPLE / "README.md", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = result.stdout.split("launched: ")[1:]
    assert len(runs) == 2, result.stdout
    tls_lines = ["TLS: on: mutual (AutoMTLS), OpenSSL relay", "TLS: off"]
    for run, tls in zip(runs, tls_lines, strict=True):
        lines = run.splitlines()
        assert lines[1].startswith(tls), run
        assert lines[2:-1] == EXPECTED, run
        assert lines[-1].startswith("closed: exit status 0 after "), run
    readme = (EXAMPLE / "README.md").read_text()
    assert "\n".join(EXPECTED) in readme, "the README shows other results"


def test_host_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    files = [EXAMPLE / "host.py", generated / "kv"]
    result = mypy_strict("go-plugin-from-python", files, generated)
    assert result.returncode == 0, result.stdout + result.stderr
