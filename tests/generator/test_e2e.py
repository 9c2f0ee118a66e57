"""End to end: generate into a sub-package, implement the servicer, launch it as a plugin from a
host with the typed client, call all four kinds of RPC; change the proto, regenerate, and the
user's code is intact and still served.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

import rpcplugin

from .conftest import SAMPLE, copy_corpus, run_cli

IMPLEMENTATION = {
    # stub body (as generated) -> the user's code
    '        raise Unimplemented("/acme.svc.v1.Greeter/Get")  # TODO: implement\n': """\
        metadata = dict(current_call().invocation_metadata() or ())
        who = str(metadata.get("x-user", "nobody"))
        return common_pb2.Item(id=request.id, note=wrappers_pb2.StringValue(value=who))
""",
    '        raise Unimplemented("/acme.svc.v1.Greeter/List")  # TODO: implement\n'
    "        yield  # never reached; makes this an async generator\n": """\
        for i in range(request.limit):
            yield common_pb2.Item(id=f"{request.prefix}{i}")
""",
    '        raise Unimplemented("/acme.svc.v1.Greeter/Upload")  # TODO: implement\n': """\
        ids = [item.id async for item in requests]
        return svc_pb2.UploadSummary(count=len(ids))
""",
    '        raise Unimplemented("/acme.svc.v1.Greeter/Chat")  # TODO: implement\n'
    "        yield  # never reached; makes this an async generator\n": """\
        async for route in requests:
            yield svc_pb2.Route(type=route.type.upper())
""",
    '        raise Unimplemented("/acme.svc.v1.Greeter/Ping")  # TODO: implement\n': """\
        return empty_pb2.Empty()
""",
}
IMPORTS = (
    "from google.protobuf import empty_pb2, struct_pb2\n",
    "from google.protobuf import empty_pb2, struct_pb2, wrappers_pb2\n"
    "from rpcplugin.servicer import current_call\n",
)


def _implement(servicer: Path) -> None:
    text = servicer.read_text()
    for stub, code in IMPLEMENTATION.items():
        assert stub in text, stub
        text = text.replace(stub, code, 1)
    assert IMPORTS[0] in text
    servicer.write_text(text.replace(IMPORTS[0], IMPORTS[1]))


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``<tmp>/myapp/plugins/store``: the sample generated as a sub-package, implemented."""
    for package in ("myapp", "myapp/plugins"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    root, files = copy_corpus(SAMPLE, tmp_path / "protos")
    out = tmp_path / "myapp" / "plugins" / "store"
    result = run_cli(["-I", str(root), str(root / files[0]), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    _implement(out / "servicer.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


async def test_host_launches_generated_plugin(app: Path) -> None:
    from myapp.plugins.store import plugin  # type: ignore[import-not-found]
    from myapp.plugins.store.acme.common.v1 import common_pb2  # type: ignore[import-not-found]
    from myapp.plugins.store.acme.svc.v1 import svc_pb2, svc_rpc  # type: ignore[import-not-found]

    command = [sys.executable, "-m", "myapp.plugins.store"]
    async with rpcplugin.launch(
        command, cwd=str(app), handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS
    ) as conn:
        assert conn.version == 1
        client = svc_rpc.GreeterClient(conn, timeout=10)
        item = await client.get(svc_pb2.GetRequest(id="a"), metadata={"x-user": "ann"})
        assert (item.id, item.note.value) == ("a", "ann")

        listed = [i.id async for i in client.list(svc_pb2.ListRequest(prefix="p", limit=3))]
        assert listed == ["p0", "p1", "p2"]

        async def items() -> AsyncIterator[object]:
            for n in range(4):
                yield common_pb2.Item(id=str(n))

        assert (await client.upload([common_pb2.Item(id="x")])).count == 1
        assert (await client.upload(items())).count == 4

        chat = client.chat()
        await chat.send(svc_pb2.Route(type="hello"))
        assert (await anext(chat)).type == "HELLO"
        await chat.done_writing()
        assert [r async for r in chat] == []
        routes = client.chat([svc_pb2.Route(type="a"), svc_pb2.Route(type="b")])
        assert [r.type async for r in routes] == ["A", "B"]

        assert await client.ping() == empty_pb2.Empty()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.close()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED

        admin = svc_rpc.AdminPlugin.client(conn)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await admin.with_options_()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


HOST = """\
import asyncio, sys
import rpcplugin
from myapp.plugins.store import plugin
from myapp.plugins.store.acme.svc.v1 import svc_pb2, svc_rpc

async def main():
    async with rpcplugin.launch([sys.executable, "-m", "myapp.plugins.store"],
                                handshake=plugin.HANDSHAKE, versions=plugin.VERSIONS) as conn:
        client = svc_rpc.GreeterClient(conn, timeout=10)
        item = await client.get(svc_pb2.GetRequest(id="z"))
        print("get", item.id, item.note.value)
        try:
            [s async for s in client.stats(svc_pb2.ListRequest())]
        except Exception as exc:
            print("stats", exc.code().name)

asyncio.run(main())
"""


def test_regenerate_keeps_the_users_code(app: Path) -> None:
    servicer = app / "myapp" / "plugins" / "store" / "servicer.py"
    implemented = servicer.read_text()
    proto = app / "protos" / "acme" / "svc" / "v1" / "svc.proto"
    proto.write_text(
        proto.read_text()
        .replace("service Admin {", "service Admin {\n  rpc Stats2(ListRequest) returns (Meta);")
        .replace(
            "  rpc Ping(",
            "  // Stats is new.\n  rpc Stats(ListRequest) returns (stream Meta);\n  rpc Ping(",
        )
    )
    out = app / "myapp" / "plugins" / "store"
    args = ["-I", str(app / "protos"), str(proto), "-o", str(out), "--add-stubs", "-q"]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    text = servicer.read_text()
    for code in IMPLEMENTATION.values():
        assert code in text
    assert "async def stats(self, request: svc_pb2.ListRequest, /)" in text
    assert len(text) > len(implemented)
    host = app / "host.py"
    host.write_text(HOST)
    done = subprocess.run(
        [sys.executable, str(host)], cwd=app, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["get z nobody", "stats UNIMPLEMENTED"]


def test_generated_package_needs_only_the_runtime(app: Path) -> None:
    """Importing a generated package (and the servicer) loads no generator dependency."""
    code = textwrap.dedent(
        """
        import sys
        import grpc  # grpcio itself imports grpc_tools when installed (as grpc.tools)
        baseline = set(sys.modules)
        import myapp.plugins.store.plugin, myapp.plugins.store.servicer
        import myapp.plugins.store.acme.svc.v1.svc_rpc
        banned = {"jinja2", "click", "grpc_tools", "mypy_protobuf", "rpcplugin_gen", "mypy"}
        new = set(sys.modules) - baseline
        print(sorted(m for m in new if m.split(".")[0] in banned))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=app, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_python_dash_m_without_host_explains_itself(app: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "myapp.plugins.store"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "plugin" in done.stderr.lower()
    assert done.stdout == ""


KV_IMPLEMENTATION = {
    "v1": "        return v1_kv_pb2.GetResponse(value=b'one:' + request.key.encode())\n",
    "v2": "        return v2_kv_pb2.GetResponse(value=b'two:' + request.key.encode())\n",
}


async def test_two_majors_negotiate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kvtest.v1 and v2 in one package: the host gets the highest version both sides speak."""
    from .conftest import KV

    root, files = KV
    out = tmp_path / "kvapp"
    args = ["-I", str(root), *[str(root / f) for f in files], "-o", str(out), "-q"]
    assert run_cli(args).exit_code == 0
    servicer = out / "servicer.py"
    text = servicer.read_text()
    for version in ("v1", "v2"):
        stub = f'        raise Unimplemented("/kvtest.{version}.KV/Get")  # TODO: implement\n'
        assert text.count(stub) == 1
        text = text.replace(stub, KV_IMPLEMENTATION[version])
    servicer.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    from kvapp import plugin  # type: ignore[import-not-found]
    from kvapp.kvtest.v1 import kv_pb2 as p1  # type: ignore[import-not-found]
    from kvapp.kvtest.v1 import kv_rpc as r1
    from kvapp.kvtest.v2 import kv_pb2 as p2  # type: ignore[import-not-found]
    from kvapp.kvtest.v2 import kv_rpc as r2

    assert plugin.VERSIONS == (1, 2)
    command = [sys.executable, "-m", "kvapp"]
    seen = {}
    for versions in ([1], [2, 1], [2]):
        async with rpcplugin.launch(
            command, cwd=str(tmp_path), handshake=plugin.HANDSHAKE, versions=versions
        ) as conn:
            if conn.version == 1:
                reply = await r1.KVPlugin.client(conn).get(p1.GetRequest(key="k"))
            else:
                reply = await r2.KVClient(conn).get(p2.GetRequest(key="k"))
            seen[tuple(versions)] = (conn.version, reply.value)
    assert seen == {(1,): (1, b"one:k"), (2, 1): (2, b"two:k"), (2,): (2, b"two:k")}
