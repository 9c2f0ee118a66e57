"""docs/protocol.md §6, P20–P26: the services every go-plugin host expects, called with hand-encoded
bytes on their exact method paths."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from peers.harness import (
    HEALTH_CHECK,
    SHUTDOWN,
    START_STREAM,
    Conformance,
    Identity,
    Launcher,
    PluginProcess,
    conn_info,
    dial,
    health_check,
    health_request,
    leftovers,
    rss_kib,
    shutdown,
    stdio_chunk,
    stdio_stream,
)

STDOUT, STDERR = 1, 2
GO_PLUGIN_PROTOS = Path("/usr/share/gocode/src/github.com/hashicorp/go-plugin/internal/plugin")
RUNTIME_PROTOS = Path(__file__).resolve().parents[2] / "runtime" / "rpcplugin" / "protos"


def launch_backend(launch: Launcher, backend: str) -> tuple[PluginProcess, Identity | None]:
    if backend == "plaintext":
        return launch(), None
    identity = launch.identity("secp256r1" if backend == "grpc" else "secp521r1")
    return launch({"PLUGIN_CLIENT_CERT": identity.pem}), identity


async def read_until(call: Any, marker: bytes, timeout: float = 10.0) -> dict[int, bytes]:
    """Read StdioData chunks until ``marker`` shows up on STDOUT; returns bytes per channel."""
    got: dict[int, bytes] = {STDOUT: b"", STDERR: b""}
    deadline = time.monotonic() + timeout
    while marker not in got[STDOUT]:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the stdio stream; got {got!r:.300}"
        message = await asyncio.wait_for(call.read(), left)
        assert message is not grpc.aio.EOF, f"stdio stream ended early: {await call.code()}"
        channel, data = stdio_chunk(message)
        assert data, "empty chunks must be skipped"
        got[channel] = got.get(channel, b"") + data
    return got


# ---- P20 ----


async def test_p20_health_plugin_and_empty_service_are_serving(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        check: Any = dialed.channel.unary_unary(HEALTH_CHECK)
        assert await check(b"\x0a\x06plugin", timeout=10) == b"\x08\x01"  # go-plugin's bytes
        assert await check(b"", timeout=10) == b"\x08\x01"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(health_request("no.such.Service"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


# ---- P21 ----


@pytest.mark.parametrize("backend", ["plaintext", "grpc", "openssl"])
async def test_p21_shutdown_exits_within_2s_and_removes_the_socket(
    launch: Launcher, pb: SimpleNamespace, backend: str
) -> None:
    plugin, identity = launch_backend(launch, backend)
    assert plugin.hs is not None
    async with dial(plugin.hs, identity) as dialed:
        stub = Conformance(dialed.channel, pb)
        # a busy plugin: a call in flight and the two long-lived streams a host keeps open
        stdio = stdio_stream(dialed.channel)
        broker: Any = dialed.channel.stream_stream(START_STREAM)(iter(()))
        sleeper = asyncio.ensure_future(stub.command("sleep 30"))
        assert await health_check(dialed.channel) == 1
        await asyncio.sleep(0.05)
        started = time.monotonic()
        code = await shutdown(dialed.channel)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE), code
        status = await plugin.wait_async(10.0)  # a plugin not stopped runs 30 s (the sleeper)
        elapsed = time.monotonic() - started
        assert status == 0
        print(f"Shutdown → exit ({backend}): {elapsed * 1000:.0f} ms")
        assert leftovers(plugin.env["TMPDIR"]) == []
        # the stdio stream ends with OK or a cancellation, never an error a host would spin on
        await asyncio.wait_for(stdio.code(), 5)
        assert await stdio.code() in (
            grpc.StatusCode.OK,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNAVAILABLE,
        )
        broker.cancel()
        with pytest.raises(grpc.aio.AioRpcError):
            await sleeper


# ---- P22 ----


async def test_p22_stdio_streams_prints_tagged_by_channel(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        # written before anyone subscribed: kept (bounded) for the first subscriber
        assert await stub.command("print early bird") == "ok"
        stream = stdio_stream(dialed.channel)
        assert await stub.command("eprint to stderr") == "ok"
        assert await stub.command("print MARK") == "ok"
        got = await read_until(stream, b"MARK\n")
        assert got[STDOUT] == b"early bird\nMARK\n"
        assert got[STDERR] == b"to stderr\n"
        stream.cancel()
    # none of it went to the real stdout
    assert plugin.read_rest_of_stdout(0.2) == b""


async def test_p22_ten_megabytes_without_a_subscriber_never_block(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        await stub.command("write 1000")  # warm up
        rss_before = rss_kib(plugin.pid)
        seconds = float(await stub.command("write 10000000", timeout=20))
        print(f"writing 10 MB took {seconds:.2f} s in the plugin")  # blocked: never (timeout=20)
        assert await health_check(dialed.channel) == 1
        grown = rss_kib(plugin.pid) - rss_before
        assert grown < 30_000, f"RSS grew by {grown} KiB: output is not bounded"
        # a late subscriber gets only the newest output, at most the buffer size (1 MiB)
        stream = stdio_stream(dialed.channel)
        await stub.command("print END")
        got = await read_until(stream, b"END\n")
        backlog = got[STDOUT][: -len(b"END\n")]
        assert 0 < len(backlog) <= 1 << 20
        assert backlog.endswith(b"o\n")
        stream.cancel()


async def test_p22_a_subscriber_that_never_reads_does_not_block_the_plugin(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        stream = stdio_stream(dialed.channel)  # opened, never read: a stuck host
        await stub.command("print hello")
        # a writer blocked by the stuck host would never finish (the command's timeout=20)
        seconds = float(await stub.command("write 10000000", timeout=20))
        print(f"writing 10 MB with a stuck subscriber took {seconds:.2f} s in the plugin")
        assert await health_check(dialed.channel) == 1
        stream.cancel()


async def test_p22_one_subscriber_a_newer_one_takes_over(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        stub = Conformance(dialed.channel, pb)
        first = stdio_stream(dialed.channel)
        await stub.command("print one")
        assert (await read_until(first, b"one\n"))[STDOUT] == b"one\n"
        second = stdio_stream(dialed.channel)
        await stub.command("print two")
        assert (await read_until(second, b"two\n"))[STDOUT] == b"two\n"
        # the first stream ended cleanly (OK), so a host's receive loop stops
        assert await asyncio.wait_for(first.read(), 5) is grpc.aio.EOF
        assert await first.code() == grpc.StatusCode.OK
        second.cancel()


# ---- P23 ----


async def test_p23_broker_stream_stays_open_for_the_session(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        call: Any = dialed.channel.stream_stream(START_STREAM)()
        await call.write(conn_info(1, "unix", "/tmp/host-broker-1"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(call.read()), 0.3)
        assert await health_check(dialed.channel) == 1
        await call.done_writing()  # the host closes its side: the stream ends with OK
        assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.OK


# ---- P24 ----


async def test_p24_go_plugin_method_paths_are_served(launch: Launcher) -> None:
    plugin = launch()
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        channel = dialed.channel
        unary: Any = channel.unary_unary(HEALTH_CHECK)
        assert await unary(health_request("plugin"), timeout=10) == b"\x08\x01"
        stdio: Any = stdio_stream(channel)
        broker: Any = channel.stream_stream(START_STREAM)()
        for call in (stdio, broker):
            with pytest.raises(asyncio.TimeoutError):  # open, not UNIMPLEMENTED
                await asyncio.wait_for(asyncio.shield(call.read()), 0.2)
            call.cancel()
        wrong: Any = channel.unary_unary("/plugin.GRPCController/ShutDown")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await wrong(b"", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED  # paths are exact
        controller: Any = channel.unary_unary(SHUTDOWN)
        assert await controller(b"", timeout=10) == b""
    assert plugin.wait(5) == 0


def _descriptors(proto_dir: Path, names: list[str], tmp_path: Path) -> dict[str, Any]:
    from grpc_tools import protoc

    out = tmp_path / f"{proto_dir.name}.pb"
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{proto_dir}", f"-I{include}", f"--descriptor_set_out={out}", *names]
    assert protoc.main(args) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {f.name: f for f in files}


@pytest.mark.go
def test_p24_runtime_protos_match_go_plugin_1_0_1(tmp_path: Path) -> None:
    assert GO_PLUGIN_PROTOS.is_dir(), (
        f"Debian's go-plugin sources are missing ({GO_PLUGIN_PROTOS}); run `make setup`"
    )
    names = ["grpc_broker.proto", "grpc_controller.proto"]
    go = _descriptors(GO_PLUGIN_PROTOS, names, tmp_path)
    ours = _descriptors(RUNTIME_PROTOS, names, tmp_path)
    for name in names:
        assert ours[name].package == go[name].package == "plugin"
        for service in go[name].service:
            mine = {s.name: s for s in ours[name].service}[service.name]
            assert [
                (m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                for m in mine.method
            ] == [
                (m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                for m in service.method
            ]
        for message in go[name].message_type:
            mine_fields = {
                (f.name, f.number, f.type)
                for f in {m.name: m for m in ours[name].message_type}[message.name].field
            }
            assert {(f.name, f.number, f.type) for f in message.field} <= mine_fields


def test_p24_stdio_proto_has_go_plugins_names_and_numbers(tmp_path: Path) -> None:
    (stdio,) = _descriptors(RUNTIME_PROTOS, ["grpc_stdio.proto"], tmp_path).values()
    assert stdio.package == "plugin"
    (service,) = stdio.service
    assert service.name == "GRPCStdio"
    (method,) = service.method
    assert (method.name, method.input_type, method.output_type, method.server_streaming) == (
        "StreamStdio",
        ".google.protobuf.Empty",
        ".plugin.StdioData",
        True,
    )
    (message,) = stdio.message_type
    assert [(f.name, f.number) for f in message.field] == [("channel", 1), ("data", 2)]
    assert [(v.name, v.number) for v in message.enum_type[0].value] == [
        ("INVALID", 0),
        ("STDOUT", 1),
        ("STDERR", 2),
    ]


# ---- P25 ----


@pytest.mark.parametrize("backend", ["plaintext", "grpc", "openssl"])
async def test_p25_messages_over_4_mib_both_ways(
    launch: Launcher, pb: SimpleNamespace, backend: str
) -> None:
    plugin, identity = launch_backend(launch, backend)
    assert plugin.hs is not None
    payload = bytes(range(256)) * (6 * 4096)  # 6 MiB, over grpcio's 4 MiB default
    async with dial(plugin.hs, identity) as dialed:
        stub = Conformance(dialed.channel, pb)
        reply = await stub.echo(pb.v1.EchoRequest(text="big", payload=payload), timeout=30)
        assert reply.payload == payload
        sizes = [
            len(r.payload) async for r in stub.count(pb.v1.CountRequest(n=2, payload_size=5 << 20))
        ]
        assert sizes == [5 << 20, 5 << 20]
