"""Two distributions from one repository: the runtime wheel alone runs a generated plugin under
the real Go host and a Python host, with none of the generator's dependencies installed."""

from __future__ import annotations

import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from gopeers import run_go_host

from .conftest import COOKIE, GENERATOR_ONLY, RuntimeVenv, Wheels, host_env, run


def metadata(wheel: Path) -> tuple[list[str], list[str], str]:
    """The wheel's file names, its unconditional Requires-Dist names, its license."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(z.read(meta).decode())
    requires = [
        r.split(";")[0].split("=")[0].split(">")[0].strip()
        for r in message.get_all("Requires-Dist", [])
        if "extra ==" not in r
    ]
    return names, requires, str(message["License-Expression"])


def test_runtime_wheel_is_the_runtime_and_needs_only_what_a_deployed_plugin_uses(
    wheels: Wheels,
) -> None:
    names, requires, license_ = metadata(wheels.runtime)
    # grpcio-status: rpcplugin.Abort's details and status_details (imported only when used);
    # grpcio-reflection: plugin servers answer reflection by default (imported on first use)
    assert sorted(requires) == [
        "cryptography",
        "grpcio",
        "grpcio-reflection",
        "grpcio-status",
        "protobuf",
    ]
    assert license_ == "MPL-2.0"
    assert "rpcplugin/py.typed" in names
    assert "rpcplugin/protos/grpc_broker.proto" in names  # package data of a subpackage
    assert "rpcplugin/protos/grpc_broker_pb2.pyi" in names
    assert not [n for n in names if n.startswith("rpcplugin_gen")]
    # every runtime package directory ships (discovery, not a list)
    shipped = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    runtime = Path(__file__).resolve().parents[2] / "runtime"
    on_disk = {str(p.parent.relative_to(runtime)) for p in runtime.glob("rpcplugin/**/__init__.py")}
    assert shipped == on_disk


def test_generator_wheel_depends_on_the_runtime_and_holds_the_templates(wheels: Wheels) -> None:
    names, requires, license_ = metadata(wheels.generator)
    assert sorted(requires) == ["click", "grpcio-tools", "jinja2", "mypy-protobuf", "rpcplugin"]
    assert license_ == "MPL-2.0"
    assert "rpcplugin_gen/templates/plugin.py.j2" in names
    assert not [n for n in names if n.startswith("rpcplugin/")]


@pytest.mark.go
def test_runtime_only_venv_runs_a_generated_plugin_under_the_go_host(
    runtime_venv: RuntimeVenv, conformance_package: Path, tmp_path: Path
) -> None:
    installed = runtime_venv.installed
    assert "rpcplugin" in installed and "grpcio" in installed
    assert [name for name in GENERATOR_ONLY if name in installed] == []
    print(f"runtime-only venv: {runtime_venv.size / 1e6:.1f} MB; {sorted(installed)}")

    env = host_env(tmp_path)
    env["PYTHONPATH"] = str(conformance_package.parent)  # the plugin's own code, not installed
    argv = [str(runtime_venv.python), "-m", conformance_package.name]
    result = run_go_host(argv, "-versions", "1", "-calls", "ping,echo", env=env, timeout=300)
    assert result.returncode == 0, result
    assert result.one("echo")["text"] == "hello"
    assert result.one("killed")["graceful"] is True, result


HOST = """\
import asyncio, sys
import rpcplugin
from conformance_plugin import plugin
from conformance_plugin.conformance.v1.conformance_pb2 import EchoRequest
from conformance_plugin.conformance.v1.conformance_rpc import ConformanceClient

async def main() -> None:
    async with rpcplugin.launch(
        [sys.executable, "-m", "conformance_plugin"],
        handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS,
    ) as conn:
        reply = await ConformanceClient(conn, timeout=30).echo(EchoRequest(text="from python"))
        print(reply.text)

asyncio.run(main())
"""


def test_runtime_only_venv_runs_a_python_host(
    runtime_venv: RuntimeVenv, conformance_package: Path, tmp_path: Path
) -> None:
    env = host_env(tmp_path)
    env["PYTHONPATH"] = str(conformance_package.parent)
    env.pop(COOKIE[0], None)
    done = run([str(runtime_venv.python), "-c", HOST], env=env, timeout=300)
    assert done.stdout.strip() == "from python"
