"""Absolute imports of generated modules become relative, in .py and .pyi; others stay."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from rpcplugin_gen.import_rewrite import rewrite

LOCAL = {("acme", "common", "v1", "common_pb2"), ("root_pb2",), ("acme", "svc", "v1", "svc_pb2")}


@pytest.mark.parametrize(
    ("line", "package", "expected"),
    [
        (
            "from acme.common.v1 import common_pb2 as acme_dot_common__pb2",
            ("acme", "svc", "v1"),
            "from ...common.v1 import common_pb2 as acme_dot_common__pb2",
        ),
        (
            "from acme.svc.v1 import svc_pb2 as _svc_pb2",
            ("acme", "svc", "v1"),
            "from . import svc_pb2 as _svc_pb2",
        ),
        ("import root_pb2 as root__pb2", (), "from . import root_pb2 as root__pb2"),
        ("import root_pb2 as root__pb2", ("a", "b"), "from ... import root_pb2 as root__pb2"),
        (
            "from acme.common.v1.common_pb2 import *",
            ("acme", "svc", "v1"),
            "from ...common.v1.common_pb2 import *",
        ),
        ("from root_pb2 import *", ("x",), "from ..root_pb2 import *"),
        (
            "from google.protobuf import empty_pb2 as _empty_pb2",
            ("acme",),
            "from google.protobuf import empty_pb2 as _empty_pb2",
        ),
        (
            "from rpcplugin.protos import rpcplugin_options_pb2 as x",
            ("acme",),
            "from rpcplugin.protos import rpcplugin_options_pb2 as x",
        ),
        (
            "    from acme.common.v1 import common_pb2",
            ("z",),
            "    from acme.common.v1 import common_pb2",
        ),
    ],
)
def test_rewrite(line: str, package: tuple[str, ...], expected: str) -> None:
    assert rewrite(line + "\n", package, LOCAL) == expected + "\n"


def test_builder_module_name() -> None:
    call = "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, {}, _globals)"
    source = f"DESCRIPTOR = 1\n{call.format(repr('acme.svc.v1.svc_pb2'))}\n"
    assert rewrite(source, (), LOCAL) == f"DESCRIPTOR = 1\n{call.format('__name__')}\n"


def test_output_imports_as_a_sub_package(sample_out: Path) -> None:
    """The sample, generated into ``app/gen/sample``, imports from any parent package."""
    root = str(sample_out.parent.parent.parent)
    sys.path.insert(0, root)
    try:
        common = importlib.import_module("app.gen.sample.acme.common.v1.common_pb2")
        svc = importlib.import_module("app.gen.sample.acme.svc.v1.svc_pb2")
        rpc = importlib.import_module("app.gen.sample.acme.svc.v1.svc_rpc")
    finally:
        sys.path.remove(root)
    summary = svc.UploadSummary(rejected=[common.Item(id="x")], worst=common.COLOR_RED)
    assert svc.UploadSummary.FromString(summary.SerializeToString()) == summary
    # The real module path, not protoc's "acme.common.v1.common_pb2" (with upb, a message class
    # is shared by every identical copy of a file, so another test's copy may have named it).
    assert common.Item.__module__.endswith(".acme.common.v1.common_pb2")
    assert getattr(common.Item(**{"from": "x"}), "from") == "x"  # keyword fields: getattr only
    assert rpc.GreeterPlugin.service.name == "acme.svc.v1.Greeter"
    assert "import_" in rpc.GreeterPlugin.service.methods
