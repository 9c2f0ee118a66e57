"""examples/versioned: one generated plugin serving app protocol versions 1 and 2 (two proto
majors with a breaking change); hosts offering [1], [1, 2], [2] and [3].
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from example_tools import mypy_strict, run_sh_block

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "versioned"
GEN = Path(sys.executable).parent / "rpcplugin-gen"
PROTOS = [str(EXAMPLE / "v1" / "greeter.proto"), str(EXAMPLE / "v2" / "greeter.proto")]
MISMATCH = (
    "VersionMismatchError: the plugin answered app protocol version 1, but this host offered "
    "only 3; rebuild the plugin or host for a shared version"
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated ``greeter`` package around the example's servicer.py; returns its parent."""
    parent = tmp_path_factory.mktemp("versioned")
    package = parent / "greeter"
    package.mkdir()
    (package / "servicer.py").write_bytes((EXAMPLE / "servicer.py").read_bytes())
    command = [str(GEN), "-q", "-I", str(EXAMPLE), *PROTOS, "-o", str(package)]
    subprocess.run(command, check=True, timeout=60)
    return parent


def python(code: str, generated: Path, tmp_path: Path) -> str:
    """Run ``code`` next to the generated package and host.py; its stdout."""
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
    assert list(tmp_path.iterdir()) == [], "a plugin left its socket behind"
    return result.stdout


def test_generated_package_serves_both_versions(generated: Path) -> None:
    plugin = (generated / "greeter" / "plugin.py").read_text()
    assert "VERSIONS: _typing.Final = (1, 2)" in plugin
    for version in ("v1", "v2"):
        assert (generated / "greeter" / version / "greeter_rpc.py").is_file()


def test_each_host_gets_the_highest_version_both_speak(generated: Path, tmp_path: Path) -> None:
    code = f"""
import asyncio, dataclasses, json, host

async def main():
    return [dataclasses.asdict(await host.run(o, {str(generated)!r})) for o in host.OFFERS]

print(json.dumps(asyncio.run(main())))
"""
    outcomes = {tuple(o["offered"]): o for o in json.loads(python(code, generated, tmp_path))}
    assert list(outcomes) == [(1,), (1, 2), (2,), (3,)]
    v1 = {"version": 1, "greeting": "Hello, Ada!", "error": "", "returncode": 0}
    v2 = {"version": 2, "greeting": "Bonjour, Ada Lovelace!", "error": "", "returncode": 0}
    assert outcomes[(1,)] == {"offered": [1], **v1}
    assert outcomes[(1, 2)] == {"offered": [1, 2], **v2}
    assert outcomes[(2,)] == {"offered": [2], **v2}
    assert outcomes[(3,)]["version"] is None
    assert outcomes[(3,)]["error"] == MISMATCH


def test_only_the_negotiated_versions_service_is_served(generated: Path, tmp_path: Path) -> None:
    code = f"""
import asyncio, functools, sys, grpc, rpcplugin
from greeter import plugin
from greeter.v1 import greeter_pb2 as v1_pb2, greeter_rpc as v1_rpc
from greeter.v2 import greeter_pb2 as v2_pb2, greeter_rpc as v2_rpc

launch = functools.partial(
    rpcplugin.launch,
    [sys.executable, "-m", "greeter"],
    handshake=plugin.HANDSHAKE,
    env={{"PYTHONPATH": {str(generated)!r}}},
)

async def outcome(call):
    try:
        return (await call).message
    except grpc.aio.AioRpcError as exc:
        return f"{{exc.code().name}} {{exc.details()}}"

async def main():
    async with launch(versions=[1]) as conn:
        v2 = v2_rpc.GreeterClient(conn)
        print(conn.version, await outcome(v2.greet(v2_pb2.GreetRequest(language="en"))))
    async with launch(versions=[2]) as conn:
        v1 = v1_rpc.GreeterClient(conn)
        print(conn.version, await outcome(v1.greet(v1_pb2.GreetRequest(name="Ada"))))
        v2 = v2_rpc.GreeterClient(conn)
        print(conn.version, await outcome(v2.greet(v2_pb2.GreetRequest(language="la"))))

asyncio.run(main())
"""
    assert python(code, generated, tmp_path).splitlines() == [
        "1 UNIMPLEMENTED Method not found!",
        "2 UNIMPLEMENTED Method not found!",
        "2 INVALID_ARGUMENT no greeting in language 'la'",
    ]


def test_readme_commands_run(tmp_path: Path) -> None:
    result = run_sh_block(EXAMPLE / "README.md", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "the plugin serves versions [1, 2]",
        "host offers [1]        -> version 1: Hello, Ada!",
        "host offers [1, 2]     -> version 2: Bonjour, Ada Lovelace!",
        "host offers [2]        -> version 2: Bonjour, Ada Lovelace!",
        f"host offers [3]        -> {MISMATCH}",
    ]
    readme = (EXAMPLE / "README.md").read_text()
    assert "\n".join(result.stdout.splitlines()) in readme, "the README shows other output"


def test_host_servicer_and_generated_package_pass_mypy_strict(generated: Path) -> None:
    result = mypy_strict("versioned", [EXAMPLE / "host.py", generated / "greeter"], generated)
    assert result.returncode == 0, result.stdout + result.stderr
