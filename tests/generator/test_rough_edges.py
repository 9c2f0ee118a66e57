"""The generator's rough edges, each fixed and pinned: ``--add-stubs`` and import aliases,
``@not_implemented`` for ``--check``, section comments, proto directories and service names
that would hide the package's own modules, and ``deadline=`` on generated clients."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from rpcplugin.servicer import current_call, not_implemented

from .conftest import SAMPLE, copy_corpus, mypy, run_cli


def _args(root: Path, files: list[str], out: Path, *extra: str) -> list[str]:
    return ["-I", str(root), *[str(root / f) for f in files], "-o", str(out), *extra]


def _write_proto(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text('syntax = "proto3";\n' + text)


def _drop_stub(text: str, attr: str) -> str:
    """``text`` without the scaffolded stub of ``attr``."""
    stub = re.compile(rf"\n    async def {attr}\(.*?# TODO: implement\n", re.DOTALL)
    assert stub.search(text), attr
    return stub.sub("", text, count=1)


def test_add_stubs_writes_the_files_own_import_aliases(tmp_path: Path) -> None:
    root, files = copy_corpus(SAMPLE, tmp_path / "protos")
    out = tmp_path / "app" / "pkg"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    assert run_cli(_args(root, files, out, "-q")).exit_code == 0
    servicer = out / "servicer.py"
    text = servicer.read_text()
    imports = "from .acme.svc.v1 import svc_pb2, svc_rpc\n"
    assert imports in text
    text = text.replace("svc_pb2.", "pb.").replace(
        imports, "from .acme.svc.v1 import svc_pb2 as pb\nfrom .acme.svc.v1 import svc_rpc\n"
    )
    servicer.write_text(text)
    proto = root / files[0]
    source = proto.read_text().replace(
        'import "google/protobuf/empty.proto";',
        'import "google/protobuf/empty.proto";\nimport "google/protobuf/timestamp.proto";',
    )
    assert "timestamp.proto" in source
    source = source.replace(
        "  rpc Ping(",
        "  rpc Stats(ListRequest) returns (stream UploadSummary);\n"
        "  rpc Stamp(Meta) returns (google.protobuf.Timestamp);\n  rpc Ping(",
    )
    proto.write_text(source)

    added = run_cli(_args(root, files, out, "--add-stubs"))
    assert added.exit_code == 0, added.stderr
    text = servicer.read_text()
    assert "def stats(self, request: pb.ListRequest, /) -> AsyncIterator[pb.UploadSummary]:" in text
    assert "def stamp(self, request: pb.Meta, /) -> timestamp_pb2.Timestamp:" in text
    assert "svc_pb2." not in text
    assert "from google.protobuf import timestamp_pb2\n" in text  # missing: imported
    assert mypy(["app"], tmp_path) == []


def test_not_implemented_marks_rpcs_for_check_and_add_stubs(tmp_path: Path) -> None:
    root, files = copy_corpus(SAMPLE, tmp_path / "protos")
    out = tmp_path / "pkg"
    assert run_cli(_args(root, files, out, "-q")).exit_code == 0
    servicer = out / "servicer.py"
    text = _drop_stub(_drop_stub(servicer.read_text(), "close"), "import_")
    text = text.replace(
        "from rpcplugin.servicer import Unimplemented\n",
        "from rpcplugin.servicer import Unimplemented, not_implemented\n",
    ).replace("\nclass Greeter(", '\n@not_implemented("close")\nclass Greeter(')
    servicer.write_text(text)

    check = run_cli(_args(root, files, out, "--check"))
    assert check.exit_code == 1  # import_ is missing, and not marked
    assert "+ Greeter.import_: rpc Import" in check.stderr
    assert "Greeter.close" not in check.stderr

    servicer.write_text(
        text.replace('@not_implemented("close")', '@not_implemented("close", "import_", "gone")')
    )
    check = run_cli(_args(root, files, out, "--check"))
    assert check.exit_code == 1
    assert "- Greeter.gone: @not_implemented names it, but acme.svc.v1.Greeter has no such rpc" in (
        check.stderr
    )
    assert "import_" not in check.stderr

    servicer.write_text(
        text.replace('@not_implemented("close")', '@not_implemented("close", "import_")')
    )
    assert run_cli(_args(root, files, out, "--check")).exit_code == 0
    assert run_cli(_args(root, files, out, "--add-stubs")).exit_code == 0
    assert "def close(" not in servicer.read_text()  # no stub for a declined rpc


def test_not_implemented_refuses_unknown_and_defined_methods() -> None:
    class Base:
        def get(self) -> None: ...

        def put(self) -> None: ...

    @not_implemented("put")
    class Fine(Base):
        def get(self) -> None: ...

    assert issubclass(Fine, Base)
    with pytest.raises(TypeError, match=r"Wrong has no RPC method gett\(\)"):

        @not_implemented("gett")
        class Wrong(Base): ...

    with pytest.raises(TypeError, match=r"Both defines get\(\) itself"):

        @not_implemented("get")
        class Both(Base):
            def get(self) -> None: ...


SECTIONS = """\
package sections.v1;

message M {}

////////////////////////////////////////
// Storage keeps data.
////////////////////////////////////////
service Storage {
  //////// Reads

  // Get returns one.
  rpc Get(M) returns (M);
}

service Inline { // Inline keeps its same-line comment.
  rpc Get(M) returns (M);
}
"""


def test_section_comments_are_not_docstrings(tmp_path: Path) -> None:
    _write_proto(tmp_path / "protos", "sections/v1/s.proto", SECTIONS)
    out = tmp_path / "pkg"
    result = run_cli(_args(tmp_path / "protos", ["sections/v1/s.proto"], out, "-q"))
    assert result.exit_code == 0, result.stderr
    rpc = (out / "sections" / "v1" / "s_rpc.py").read_text()
    assert "//" not in rpc
    assert "Reads" not in rpc  # the section heading belongs to no service
    assert '"""Storage keeps data.\n\n    ``sections.v1.Storage`` as a protocol' in rpc
    assert '"""Inline keeps its same-line comment.\n' in rpc
    assert '"""Get returns one."""' in rpc


@pytest.mark.parametrize("directory", ["plugin", "servicer", "__main__"])
def test_a_proto_directory_may_not_hide_the_packages_modules(
    tmp_path: Path, directory: str
) -> None:
    name = f"{directory}/v1/p.proto"
    _write_proto(
        tmp_path / "protos",
        name,
        "package x.v1;\nmessage M {}\nservice S { rpc A(M) returns (M); }\n",
    )
    result = run_cli(_args(tmp_path / "protos", [name], tmp_path / "pkg"))
    assert result.exit_code == 1
    assert f"the proto directory {directory}/ would become the subpackage {directory}" in (
        result.stderr
    )
    assert str(tmp_path / "protos" / name) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pkg").exists()


NAMES = """\
package names.v1;

message M {}

service plugin { rpc Get(M) returns (M); }
service NoReturn { rpc Get(M) returns (M); }
service Handlers { rpc Get(M) returns (stream M); }
"""


def test_service_names_do_not_hide_the_skeletons_names(tmp_path: Path) -> None:
    _write_proto(tmp_path / "protos", "names/v1/n.proto", NAMES)
    out = tmp_path / "namespkg"
    result = run_cli(_args(tmp_path / "protos", ["names/v1/n.proto"], out, "-q"))
    assert result.exit_code == 0, result.stderr
    servicer = (out / "servicer.py").read_text()
    assert "class pluginImpl(n_rpc.pluginServicer):" in servicer
    assert "class NoReturnImpl(n_rpc.NoReturnServicer):" in servicer
    assert "plugin.serve(plugin=pluginImpl(), no_return=NoReturnImpl(), handlers_=Handlers())" in (
        servicer
    )
    assert mypy(["namespkg"], tmp_path) == []


async def test_deadline_is_an_absolute_time(
    sample_out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(sample_out.parents[2]))
    from app.gen.sample.acme.common.v1 import common_pb2  # type: ignore[import-not-found]
    from app.gen.sample.acme.svc.v1 import svc_pb2, svc_rpc  # type: ignore[import-not-found]

    class Greeter(svc_rpc.GreeterServicer):  # type: ignore[misc]
        """Reports the time left before the call's deadline; ``slow`` waits until cancelled."""

        async def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:
            if request.id == "slow":
                await asyncio.sleep(60)
            left = current_call().time_remaining()
            return common_pb2.Item(note=wrappers_pb2.StringValue(value=repr(left)))

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([svc_rpc.GreeterPlugin.handler(Greeter())])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = svc_rpc.GreeterClient(channel, timeout=1000)
            item = await client.get(svc_pb2.GetRequest(id="a"), deadline=time.time() + 30)
            assert 10 < float(item.note.value) <= 30  # the deadline, not the 1000 s default
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await client.get(svc_pb2.GetRequest(id="slow"), deadline=time.time() + 0.5)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            with pytest.raises(grpc.aio.AioRpcError) as past:
                await client.get(svc_pb2.GetRequest(id="a"), deadline=time.time() - 5)
            assert past.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            stream = client.list(svc_pb2.ListRequest(), deadline=time.time() - 5)
            with pytest.raises(grpc.aio.AioRpcError) as streamed:
                async for _ in stream:
                    pass
            assert streamed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            with pytest.raises(TypeError, match="timeout= or deadline=, not both"):
                await client.get(svc_pb2.GetRequest(), timeout=1, deadline=time.time() + 1)
    finally:
        await server.stop(None)


def test_fit_splits_at_top_level_commas_only() -> None:
    """Commas and brackets inside string literals or nested brackets do not split a line."""
    from rpcplugin_gen.rendering import fit

    line = '    raise X("' + "a" * 60 + ', (b", g(1, [2, 3]), "' + "c" * 30 + '")'
    assert fit(line) == (
        "    raise X(\n"
        '        "' + "a" * 60 + ', (b",\n'
        "        g(1, [2, 3]),\n"
        '        "' + "c" * 30 + '",\n'
        "    )"
    )
    assert fit("    short(a, b)") == "    short(a, b)"
