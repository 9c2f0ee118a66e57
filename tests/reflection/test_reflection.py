"""P26: plugin servers answer gRPC server reflection, as go-plugin plugins do, unless
``RPCPLUGIN_REFLECTION=false``; grpcio-reflection is imported on the first reflection call, not
at start (services/reflection.py). The reflection client is the ``rpcplugin`` command's own
(``rpcplugin.cli.schema``, what ``rpcplugin services`` and ``call`` use)."""

from __future__ import annotations

from types import SimpleNamespace

from peers.harness import Conformance, Launcher, dial

from rpcplugin.cli import schema

MODULE = "module:grpc_reflection.v1alpha.reflection"  # (grpc imports the bare package)
GO_PLUGIN = {  # health is hand-coded, without a descriptor to reflect
    "plugin.GRPCController",
    "plugin.GRPCStdio",
    "plugin.GRPCBroker",
}


async def test_a_plugin_process_lists_its_services_by_reflection(
    launch: Launcher, pb: SimpleNamespace
) -> None:
    plugin = launch({"PLUGIN_PROTOCOL_VERSIONS": "1"})
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        conformance = Conformance(dialed.channel, pb)
        before = await conformance.info(pb.v1.InfoRequest(env=[MODULE]))
        assert before.env[MODULE] == "absent"  # nothing paid for it at start
        found = await schema.from_reflection(dialed.channel)
        after = await conformance.info(pb.v1.InfoRequest(env=[MODULE]))
    assert after.env[MODULE] == "loaded"
    assert found is not None and found.source == "reflection"
    assert found.detail == "grpc.reflection.v1alpha.ServerReflection"
    assert found.user_services() == ["conformance.v1.Conformance"]
    kinds = {
        m.name: (m.client_streaming, m.server_streaming)
        for m in found.methods("conformance.v1.Conformance")
    }
    assert kinds == {
        "Echo": (False, False),
        "Count": (False, True),
        "Sum": (True, False),
        "Chat": (True, True),
        "Info": (False, False),
    }
    assert found.undescribed == []  # every service listed is described
    assert set(found.services) >= GO_PLUGIN | {"grpc.reflection.v1alpha.ServerReflection"}


async def test_the_v1_name_is_answered_too(launch: Launcher) -> None:
    plugin = launch({"PLUGIN_PROTOCOL_VERSIONS": "1"})
    assert plugin.hs is not None
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    async with dial(plugin.hs) as dialed:
        method = dialed.channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        replies = [r async for r in method(iter([rpb.ServerReflectionRequest(list_services="")]))]
    names = {s.name for s in replies[0].list_services_response.service}
    # listed: what the server can describe (the v1 name has no descriptor here, nor health)
    assert names == {
        "conformance.v1.Conformance",
        "plugin.GRPCBroker",
        "plugin.GRPCController",
        "plugin.GRPCStdio",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_reflection_off_by_setting(launch: Launcher, pb: SimpleNamespace) -> None:
    plugin = launch({"PLUGIN_PROTOCOL_VERSIONS": "1", "RPCPLUGIN_REFLECTION": "false"})
    assert plugin.hs is not None
    async with dial(plugin.hs) as dialed:
        assert await schema.from_reflection(dialed.channel) is None
        info = await Conformance(dialed.channel, pb).info(pb.v1.InfoRequest(env=[MODULE]))
    assert info.env[MODULE] == "absent"


async def test_a_bad_setting_is_refused(launch: Launcher) -> None:
    plugin = launch({"RPCPLUGIN_REFLECTION": "maybe"}, handshake=False)
    assert plugin.wait(20) == 2
    assert "RPCPLUGIN_REFLECTION" in plugin.stderr_text()
