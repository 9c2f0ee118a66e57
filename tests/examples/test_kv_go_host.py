"""examples/kv-go-host: a Go host written with go-plugin 1.0.1 drives a plugin made with
rpcplugin-gen, with AutoMTLS on (and off), and kills it gracefully.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from example_tools import mypy_strict, run_sh_block
from gopeers import build_go_program

pytestmark = pytest.mark.go

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "kv-go-host"
GEN = Path(sys.executable).parent / "rpcplugin-gen"

EXPECTED = [
    "Put fruit/apple = red",
    "Put fruit/banana = yellow",
    "Put veg/kale = green",
    "Get fruit/apple -> red",
    "Get fruit/cherry -> NotFound: no value under 'fruit/cherry'",
    "List fruit/ -> fruit/apple=red fruit/banana=yellow",
]


def kvhost() -> Path:
    """The example's Go host, built (or taken from the cache) the way its README builds it."""
    return build_go_program(
        EXAMPLE,
        ["kv.proto", "rpcplugin/protos/rpcplugin_options.proto"],
        proto_path=[EXAMPLE, ROOT / "runtime"],
        name="kvhost",
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated ``kv`` package around the example's servicer.py; returns its parent."""
    parent = tmp_path_factory.mktemp("kv-go-host")
    package = parent / "kv"
    package.mkdir()
    (package / "servicer.py").write_bytes((EXAMPLE / "servicer.py").read_bytes())
    command = [str(GEN), "-q", "-I", str(EXAMPLE), str(EXAMPLE / "kv.proto"), "-o", str(package)]
    subprocess.run(command, check=True, timeout=60)
    return parent


def assert_ran(result: subprocess.CompletedProcess[str], *, tls: bool) -> None:
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = out.splitlines()
    assert lines[0].startswith("launched: "), out
    assert "app protocol version 1, unix " in lines[0], out
    assert [line for line in lines if line.startswith(("Put ", "Get ", "List "))] == EXPECTED
    (tls_line,) = [line for line in lines if line.startswith("TLS: ")]
    if tls:
        assert tls_line.startswith("TLS: on, TLS 1.3, "), out
        assert 'plugin certificate "localhost"' in tls_line, out
    else:
        assert tls_line == "TLS: off", out
    # go-plugin's Kill: GRPCController.Shutdown, and the plugin exited by itself (no SIGKILL)
    assert lines[-1].startswith("killed: exit status 0 after "), out
    assert int(lines[-1].split()[-2]) < 2000, out
    assert "failed to exit gracefully" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("auto_mtls", [True, False], ids=["automtls", "plaintext"])
def test_go_host_drives_the_python_plugin(generated: Path, tmp_path: Path, auto_mtls: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(generated), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [str(kvhost()), f"-automtls={str(auto_mtls).lower()}", "--", sys.executable, "-m", "kv"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=90,
    )
    assert_ran(result, tls=auto_mtls)
    assert list(tmp_path.iterdir()) == [], "the plugin left its socket behind"


def test_readme_commands_build_and_run_it(tmp_path: Path) -> None:
    result = run_sh_block(EXAMPLE / "README.md", tmp_path)
    assert_ran(result, tls=True)
    assert (tmp_path / "kvhost").exists() and (tmp_path / "py" / "kv" / "kv_rpc.py").exists()
    readme = (EXAMPLE / "README.md").read_text()
    readme_lines = readme.splitlines()
    assert all(line in readme_lines for line in EXPECTED), "the README shows other results"


def test_servicer_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    result = mypy_strict("kv-go-host", [generated / "kv"], generated)
    assert result.returncode == 0, result.stdout + result.stderr
