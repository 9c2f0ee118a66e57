"""The CLI's schema sources against grpcio's own reflection server (what Python plugins serve
once they register reflection) and against proto files, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from grpc_reflection.v1alpha import reflection

from rpcplugin.cli import schema
from rpcplugin.cli.status import EXIT_BAD_JSON, EXIT_PROTOS, EXIT_UNKNOWN_METHOD, CLIError

from .clikit import ROOT

PROTOS = ROOT / "tests" / "protos"


@pytest.fixture
async def reflecting_server(pb: SimpleNamespace) -> AsyncIterator[str]:
    """A grpc.aio server with reflection for conformance.v1 (descriptors from protobuf's default
    pool, as a Python plugin's would be) and no Conformance handlers."""
    server = grpc.aio.server()
    names = [
        pb.v1.DESCRIPTOR.services_by_name["Conformance"].full_name,
        reflection.SERVICE_NAME,
        "example.NoDescriptors",  # listed, as a hand-written service would be, but not described
    ]
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_reflection_from_grpcio_server(reflecting_server: str) -> None:
    async with grpc.aio.insecure_channel(reflecting_server) as channel:
        found = await schema.from_reflection(channel)
    assert found is not None and found.source == "reflection"
    assert found.user_services() == ["conformance.v1.Conformance"]
    assert found.undescribed == ["example.NoDescriptors"]
    with pytest.raises(CLIError, match="does not describe it: give its protos"):
        found.find("example.NoDescriptors/Do")
    count = found.find("conformance.v1.Conformance/Count")
    assert (count.client_streaming, count.server_streaming) == (False, True)
    assert count.input.full_name == "conformance.v1.CountRequest"
    [request] = schema.parse_request(found, count, '{"n": 2, "payload_size": 1}')
    assert request.SerializeToString() == b"\x08\x02\x10\x01"
    info = found.find("Info")
    reply = found.message_class(info.output)(env={"A": "1"}, implementation="py")
    assert schema.to_json(reply) == (
        '{"pid": 0, "version": 0, "env": {"A": "1"}, "implementation": "py"}'
    )


async def test_a_server_without_reflection_gives_none() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await schema.from_reflection(channel) is None
            with pytest.raises(CLIError, match="serves no reflection") as caught:
                await schema.load(channel, (), ())
            assert caught.value.status == EXIT_PROTOS
    finally:
        await server.stop(None)


def test_protos_compile_in_process_and_errors_are_one_line(tmp_path: Path) -> None:
    found = schema.from_protos([str(PROTOS / "conformance/v2/conformance.proto")], [str(PROTOS)])
    assert found.services == ["conformance.v2.Conformance"]
    assert found.detail == "conformance/v2/conformance.proto"
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3";\nmessage M { strin x = 1; }\n')
    with pytest.raises(CLIError) as caught:
        schema.from_protos([str(broken)], [])
    assert caught.value.status == EXIT_PROTOS
    assert "\n" not in str(caught.value) and "broken.proto" in str(caught.value)
    with pytest.raises(CLIError, match=r"no such \.proto file"):
        schema.from_protos([str(tmp_path / "absent.proto")], [])


def test_method_lookup_and_request_errors() -> None:
    found = schema.from_protos([str(PROTOS / "conformance/v1/conformance.proto")], [str(PROTOS)])
    assert found.find("conformance.v1.Conformance.Sum").kind == "client-streaming"
    assert found.find("/conformance.v1.Conformance/Chat").kind == "bidi-streaming"
    for spec, message in (
        ("Nope", "no service has a method 'Nope'"),
        ("other.Svc/Echo", "unknown service 'other.Svc'"),
    ):
        with pytest.raises(CLIError, match=message) as caught:
            found.find(spec)
        assert caught.value.status == EXIT_UNKNOWN_METHOD
    total = found.find("Sum")
    assert len(schema.parse_request(found, total, '{"value": 1}\n{"value": 2}\n')) == 2
    assert len(schema.parse_request(found, total, '[{"value": 1}]')) == 1
    assert schema.parse_request(found, found.find("Echo"), "")[0].ByteSize() == 0
    for text in ("[1, 2]", '{"text": 5}', "{"):
        with pytest.raises(CLIError) as caught:
            schema.parse_request(found, found.find("Echo"), text)
        assert caught.value.status == EXIT_BAD_JSON
