"""``rpcplugin services`` and ``rpcplugin call``: a plugin's schema, and one call as JSON."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import message as pb_message

from .app import cli, run
from .output import emit_json, paint
from .schema import GO_PLUGIN_SERVICES, Method, Schema, load, parse_request, to_json
from .status import EXIT_USAGE, CLIError
from .target import make_target, opened, target_options

F = TypeVar("F", bound=Callable[..., Any])


def schema_options(function: F) -> F:
    """``--proto`` and ``-I``."""
    function = click.option(
        "-I",
        "--proto-path",
        "include",
        multiple=True,
        type=click.Path(file_okay=False),
        help="Where imports are found (default: each --proto file's directory).",
    )(function)
    return click.option(
        "--proto",
        "protos",
        multiple=True,
        metavar="FILE",
        help="A .proto file of the plugin (used instead of reflection).",
    )(function)


def _service_json(schema: Schema, service: str) -> dict[str, Any]:
    return {
        "name": service,
        "go_plugin": service in GO_PLUGIN_SERVICES,
        "methods": [
            {
                "name": m.name,
                "input": m.input.full_name,
                "output": m.output.full_name,
                "client_streaming": m.client_streaming,
                "server_streaming": m.server_streaming,
            }
            for m in schema.methods(service)
        ],
    }


@cli.command("services")
@schema_options
@target_options
@click.option("--all", "show_all", is_flag=True, help="Also list go-plugin's own services.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the list.")
def services_command(
    protos: tuple[str, ...], include: tuple[str, ...], show_all: bool, as_json: bool, **options: Any
) -> None:
    """List a plugin's services and methods: from reflection when the plugin serves it, else
    from the --proto files.

    \b
    rpcplugin services --host terraform -- ./terraform-provider-null
    rpcplugin services --proto kv.proto --cookie-key K --cookie-value V -- ./kv-plugin
    """
    target = make_target(options)

    async def main() -> int:
        async with opened(target) as result:
            schema = await load(result.conn.channel, protos, include)
        names = schema.services if show_all else schema.user_services()
        if as_json:
            emit_json(
                {
                    "source": schema.source,
                    "from": schema.detail,
                    "services": [_service_json(schema, s) for s in names],
                    "undescribed": schema.undescribed,
                }
            )
            return 0
        click.echo(paint(f"# from {schema.source} ({schema.detail})", "dim"))
        for service in names:
            click.echo(paint(service, "cyan"))
            for method in schema.methods(service):
                click.echo(f"  {method.signature()}")
        hidden = len(schema.services) - len(names)
        if hidden:
            click.echo(paint(f"# and {hidden} of go-plugin's own services (--all)", "dim"))
        if schema.undescribed:
            undescribed = ", ".join(schema.undescribed)
            click.echo(paint(f"# listed, but not described by the plugin: {undescribed}", "dim"))
        return 0

    run(main)


def _read_data(data: str | None) -> str:
    if data is None:
        return ""
    if data in ("@", "-"):
        return sys.stdin.read()
    if data.startswith("@"):
        try:
            with open(data[1:]) as handle:
                return handle.read()
        except OSError as exc:
            raise CLIError(EXIT_USAGE, f"-d {data}: {exc.strerror}") from None
    return data


def _metadata(headers: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for header in headers:
        key, sep, value = header.partition(":")
        if not sep:
            key, sep, value = header.partition("=")
        if not sep or not key.strip():
            raise CLIError(EXIT_USAGE, f"-H {header!r}: want 'key: value'")
        pairs.append((key.strip().lower(), value.strip()))
    return pairs


async def invoke(
    channel: grpc.aio.Channel,
    schema: Schema,
    method: Method,
    requests: list[pb_message.Message],
    *,
    timeout: float | None,
    metadata: list[tuple[str, str]],
) -> AsyncIterator[pb_message.Message]:
    """Call ``method`` with ``requests``; yield the response message(s)."""
    reply_class = schema.message_class(method.output)
    serialize = type(requests[0]).SerializeToString
    kwargs: dict[str, Any] = {"timeout": timeout, "metadata": metadata or None}
    if not method.client_streaming and not method.server_streaming:
        unary = channel.unary_unary(
            method.path, request_serializer=serialize, response_deserializer=reply_class.FromString
        )
        yield await unary(requests[0], **kwargs)
        return
    if not method.client_streaming:
        server_stream = channel.unary_stream(
            method.path, request_serializer=serialize, response_deserializer=reply_class.FromString
        )
        async for reply in server_stream(requests[0], **kwargs):
            yield reply
        return
    if not method.server_streaming:
        client_stream = channel.stream_unary(
            method.path, request_serializer=serialize, response_deserializer=reply_class.FromString
        )
        yield await client_stream(iter(requests), **kwargs)
        return
    bidi = channel.stream_stream(
        method.path, request_serializer=serialize, response_deserializer=reply_class.FromString
    )
    async for reply in bidi(iter(requests), **kwargs):
        yield reply


@cli.command("call")
@click.argument("method_name", metavar="METHOD")
@schema_options
@target_options
@click.option(
    "-d",
    "--data",
    metavar="JSON|@FILE|@",
    help="The request as JSON; @FILE reads a file, @ or - stdin (default: {}). Client "
    "streams take a JSON array or one object per line.",
)
@click.option("-H", "--header", "headers", multiple=True, metavar="'KEY: VALUE'", help="Metadata.")
@click.option("--timeout", type=float, help="Deadline of the call, in seconds.")
@click.option("--compact", is_flag=True, help="A unary reply on one line.")
def call_command(
    method_name: str,
    protos: tuple[str, ...],
    include: tuple[str, ...],
    data: str | None,
    headers: tuple[str, ...],
    timeout: float | None,
    compact: bool,
    **options: Any,
) -> None:
    """Call METHOD (package.Service/Method, or a method name only one service has) with a JSON
    request; print the reply as JSON, one object per line for a stream.

    \b
    rpcplugin call -d '{"key": "a"}' kv.v1.KV/Get --cookie-key K --cookie-value V -- ./kv-plugin
    rpcplugin call Count -d '{"n": 3}' --reattach "$TF_REATTACH_PROVIDERS"
    rpcplugin call Echo -d @req.json --address 10.0.0.5:7000 --ca ca.pem --cert c.pem --key k.pem
    """
    target = make_target(options)
    text = _read_data(data)
    metadata = _metadata(headers)

    async def main() -> int:
        schema_now = None
        if protos:  # a bad request fails before anything is launched
            from .schema import from_protos

            schema_now = from_protos(protos, include)
            chosen = schema_now.find(method_name)
            parse_request(schema_now, chosen, text)
        async with opened(target) as result:
            schema = schema_now or await load(result.conn.channel, protos, include)
            method = schema.find(method_name)
            requests = parse_request(schema, method, text)
            streaming = method.server_streaming
            try:
                async for reply in invoke(
                    result.conn.channel,
                    schema,
                    method,
                    requests,
                    timeout=timeout,
                    metadata=metadata,
                ):
                    click.echo(to_json(reply, indent=None if streaming or compact else 2))
            except grpc.aio.AioRpcError as exc:
                explained = await result.conn.explain_failure(exc)
                raise (explained or exc) from None
        return 0

    run(main)


__all__ = ["call_command", "invoke", "schema_options", "services_command"]
