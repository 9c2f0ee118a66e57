"""Through a generated package, in a real plugin process: a host reads an aborted call's code,
message and typed details from the generated client's error; a plain ``def`` override and an
``async def`` one serve side by side; an exception's 1 MiB message arrives cut, as UNKNOWN."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import grpc.aio
import pytest
from generator.conftest import SAMPLE, copy_corpus, mypy, run_cli
from google.rpc import error_details_pb2

import rpcplugin

IMPL = """\
import threading

import grpc
from google.protobuf import empty_pb2
from google.rpc import error_details_pb2

import rpcplugin

rpcplugin.guard_stdout()

from store import plugin  # noqa: E402
from store.acme.common.v1 import common_pb2  # noqa: E402
from store.acme.svc.v1 import svc_pb2, svc_rpc  # noqa: E402


class Greeter(svc_rpc.GreeterServicer):
    def get(self, request: svc_pb2.GetRequest, /) -> common_pb2.Item:  # on a worker thread
        if request.id == "missing":
            raise rpcplugin.Abort(
                grpc.StatusCode.NOT_FOUND,
                f"no item {request.id!r}",
                details=[
                    error_details_pb2.ErrorInfo(reason="NO_ITEM", metadata={"id": request.id}),
                    error_details_pb2.Help(links=[error_details_pb2.Help.Link(url="u")]),
                ],
            )
        if request.id == "huge":
            raise RuntimeError("h" * (1 << 20))
        return common_pb2.Item(id=threading.current_thread().name)

    async def ping(self, request: empty_pb2.Empty, /) -> empty_pb2.Empty:  # on the loop
        return empty_pb2.Empty()


if __name__ == "__main__":
    plugin.serve(greeter=Greeter(), admin=svc_rpc.AdminServicer())
"""

HOST = """\
import grpc
from google.rpc import error_details_pb2

import rpcplugin
from store.acme.svc.v1 import svc_pb2, svc_rpc


async def reason_of_missing(client: svc_rpc.GreeterClient) -> str:
    try:
        await client.get(svc_pb2.GetRequest(id="missing"))
    except grpc.aio.AioRpcError as err:
        for info in rpcplugin.status_details(err, error_details_pb2.ErrorInfo):
            return info.reason
    return ""
"""

# googleapis-common-protos ships google.rpc's stubs without a py.typed marker (docs/errors.md)
MYPY_CONFIG = """\
[mypy]

[mypy-google.rpc.*]
follow_untyped_imports = True
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root, files = copy_corpus(SAMPLE, tmp_path / "protos")
    result = run_cli(["-I", str(root), str(root / files[0]), "-o", str(tmp_path / "store"), "-q"])
    assert result.exit_code == 0, result.stderr
    (tmp_path / "impl.py").write_text(IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


async def test_host_reads_abort_details_through_the_generated_client(app: Path) -> None:
    from store import plugin  # type: ignore[import-not-found]
    from store.acme.svc.v1 import svc_pb2, svc_rpc  # type: ignore[import-not-found]

    async with rpcplugin.launch(
        [sys.executable, str(app / "impl.py")],
        cwd=str(app),
        handshake=plugin.HANDSHAKE,
        versions=plugin.VERSIONS,
    ) as conn:
        client = svc_rpc.GreeterClient(conn, timeout=30)
        item = await client.get(svc_pb2.GetRequest(id="a"))
        assert item.id.startswith("rpcplugin-handler")
        await client.ping()

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.get(svc_pb2.GetRequest(id="missing"))
        err = info.value
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert err.details() == "no item 'missing'"
        (reason,) = rpcplugin.status_details(err, error_details_pb2.ErrorInfo)
        assert (reason.reason, dict(reason.metadata)) == ("NO_ITEM", {"id": "missing"})
        (help_,) = rpcplugin.status_details(err, error_details_pb2.Help)
        assert help_.links[0].url == "u"
        assert len(rpcplugin.status_details(err)) == 2

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.get(svc_pb2.GetRequest(id="huge"))
        assert info.value.code() == grpc.StatusCode.UNKNOWN
        assert (info.value.details() or "").endswith(f" ... [cut: {1 << 20} bytes in all]")
        assert rpcplugin.status_details(info.value) == ()


UNOVERRIDDEN = """\
import asyncio, sys, tempfile, threading
import grpc
from rpcplugin.servicer import is_unimplemented_stub
from store import plugin
from store.acme.common.v1 import common_pb2
from store.acme.svc.v1 import svc_pb2, svc_rpc
sys.path.insert(0, sys.argv[1])
from handlers.inprocess import serving

async def main():
    versions = plugin.handlers(greeter=svc_rpc.GreeterServicer(), admin=svc_rpc.AdminServicer())
    with tempfile.TemporaryDirectory() as tmp:
        async with serving(versions[1][0], tmp) as caller:
            client = svc_rpc.GreeterClient(caller.channel, timeout=30)
            calls = (
                client.get(svc_pb2.GetRequest()),
                client.upload([common_pb2.Item()]),
                client.list(svc_pb2.ListRequest()).__anext__(),
                client.chat([svc_pb2.Route()]).__anext__(),
            )
            for call in calls:
                try:
                    await call
                except grpc.aio.AioRpcError as err:
                    print(err.code().name)
    print(is_unimplemented_stub(svc_rpc.GreeterServicer().get, "/acme.svc.v1.Greeter/Get"))
    print("concurrent.futures.thread" in sys.modules)
    print([t.name for t in threading.enumerate() if t.name.startswith("rpcplugin-handler")])

asyncio.run(main())
"""


def test_rpcs_left_to_the_generated_base_need_no_worker_thread(app: Path) -> None:
    """The generated base class's stubs are plain ``def``s that raise Unimplemented: they are
    answered on the loop, and a plugin that overrides only with ``async def`` starts no
    worker pool for them."""
    (app / "unoverridden.py").write_text(UNOVERRIDDEN)
    tests = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(app / "unoverridden.py"), str(tests)],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:-1] == ["UNIMPLEMENTED"] * 4 + ["True", "False", "[]"]


def test_a_plugin_with_a_def_and_an_async_def_method_and_its_host_type_check(app: Path) -> None:
    """mypy --strict accepts the plugin above (a def override beside an async def one, Abort
    with details) and a host reading typed details; ``info.reason`` is checked as an
    ``ErrorInfo`` field, not ``Any``."""
    (app / "host.py").write_text(HOST)
    (app / "mypy.ini").write_text(MYPY_CONFIG)
    assert mypy(["impl.py", "host.py"], app) == []
    (app / "host.py").write_text(HOST.replace("info.reason", "info.no_such_field"))
    assert any("no_such_field" in line for line in mypy(["impl.py", "host.py"], app))
