"""Python names for proto names, and the names generated code relies on in the runtime."""

from __future__ import annotations

import keyword

import pytest

import rpcplugin.calls
import rpcplugin.servicer
from rpcplugin_gen import model, naming


@pytest.mark.parametrize(
    ("rpc", "attr"),
    [
        ("Get", "get"),
        ("GetFoo", "get_foo"),
        ("Get_Foo", "get_foo"),
        ("HTTPGet", "http_get"),
        ("GetHTTP2Config", "get_http2_config"),
        ("List", "list"),  # builtins stay: generated code writes _builtins.X
        ("Import", "import_"),
        ("Lambda", "lambda_"),
        ("Async", "async_"),
        ("None", "none"),
        ("WithOptions", "with_options_"),  # ClientBase's public method
        ("__Init__", "_init_"),  # underscores collapse: never a dunder
    ],
)
def test_method_names(rpc: str, attr: str) -> None:
    assert naming.method_name(rpc) == attr
    assert not keyword.iskeyword(naming.method_name(rpc))


def test_keyword_service_names() -> None:
    assert naming.escape_keyword("None") == "None_"
    assert naming.escape_keyword("Greeter") == "Greeter"


def test_unique_aliases() -> None:
    paths = [("a", "v1", "x_pb2"), ("b", "v1", "x_pb2"), ("c", "y_pb2"), ("x_pb2",)]
    assert naming.unique_aliases(paths, "_") == {
        ("a", "v1", "x_pb2"): "_a_v1_x_pb2",
        ("b", "v1", "x_pb2"): "_b_v1_x_pb2",
        ("c", "y_pb2"): "_y_pb2",
        ("x_pb2",): "_x_pb2",
    }


def test_generated_code_matches_the_runtime() -> None:
    """Names the templates write into generated code exist in the runtime, so they can't drift."""
    kinds = {model.UNARY, model.SERVER_STREAM, model.CLIENT_STREAM, model.BIDI_STREAM}
    assert kinds == {kind.name for kind in rpcplugin.calls.RpcKind}
    public = {name for name in dir(rpcplugin.calls.ClientBase) if not name.startswith("_")}
    assert public == set(naming.CLIENT_RESERVED)
    for name in ("Method", "Metadata", "ServerStream", "BidiStream", "ClientBase"):
        assert hasattr(rpcplugin.calls, name)
    for name in ("Service", "PluginBinding", "Unimplemented"):
        assert hasattr(rpcplugin.servicer, name)
    for method in ("unary", "server_stream", "client_stream", "bidi_stream"):
        assert callable(getattr(rpcplugin.calls.Caller, method))
