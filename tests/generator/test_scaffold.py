"""servicer.py: written once, never overwritten; drift reported; --add-stubs; --check."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import KV, SAMPLE, copy_corpus, generate, run_cli

USER_GET = '''        """Get returns one item by id."""
        return common_pb2.Item(id=request.id)  # the user's code
'''


def _args(root: Path, files: list[str], out: Path, *extra: str) -> list[str]:
    return ["-I", str(root), *[str(root / f) for f in files], "-o", str(out), *extra]


def _implement_get(servicer: Path) -> None:
    text = servicer.read_text()
    stub = '''        """Get returns one item by id."""
        raise Unimplemented("/acme.svc.v1.Greeter/Get")  # TODO: implement
'''
    assert stub in text
    servicer.write_text(
        text.replace(stub, USER_GET) + "\n\ndef helper(x: int) -> int:\n    return x\n"
    )


def _edit_proto(root: Path) -> None:
    proto = root / "acme" / "svc" / "v1" / "svc.proto"
    text = proto.read_text()
    text = text.replace(
        "  // Close must not clash with anything a client inherits.\n"
        "  rpc Close(google.protobuf.Empty) returns (acme.common.v1.List);\n",
        "  // Stats is new.\n  rpc Stats(ListRequest) returns (stream UploadSummary);\n",
    )
    text = text.replace("rpc Upload(stream acme.common.v1.Item)", "rpc Upload(stream Route)")
    text += "\n// Audit is a new service.\nservice Audit {\n  rpc Log(Route) returns (Meta);\n}\n"
    proto.write_text(text)


def test_written_once_and_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    generate(SAMPLE, out)
    servicer = out / "servicer.py"
    assert servicer.read_text().startswith("# Written by rpcplugin-gen")
    _implement_get(servicer)
    edited = servicer.read_text()
    result = generate(SAMPLE, out)
    assert servicer.read_text() == edited
    assert "drifted" not in result.stderr


def test_no_servicer_flag(tmp_path: Path) -> None:
    generate(SAMPLE, tmp_path / "pkg", "--no-servicer")
    assert not (tmp_path / "pkg" / "servicer.py").exists()
    assert (tmp_path / "pkg" / "__main__.py").exists()


def test_drift_report_check_and_add_stubs(tmp_path: Path) -> None:
    root, files = copy_corpus(SAMPLE, tmp_path / "protos")
    out = tmp_path / "pkg"
    assert run_cli(_args(root, files, out, "-q")).exit_code == 0
    servicer = out / "servicer.py"
    _implement_get(servicer)
    edited = servicer.read_text()
    _edit_proto(root)

    check = run_cli(_args(root, files, out, "--check"))
    assert check.exit_code == 1
    assert "svc_rpc.py: missing or out of date" in check.stderr
    assert "+ acme.svc.v1.Audit: no class implements this service" in check.stderr
    assert "+ Greeter.stats: rpc Stats (" in check.stderr
    assert "- Greeter.close: acme.svc.v1.Greeter has no such rpc any more" in check.stderr
    assert "~ Greeter.upload: the request type is now acme.svc.v1.Route" in check.stderr
    assert "helper" not in check.stderr
    assert servicer.read_text() == edited

    report = run_cli(_args(root, files, out))
    assert report.exit_code == 0
    assert "servicer.py has drifted from the protos:" in report.stderr
    assert servicer.read_text() == edited

    added = run_cli(_args(root, files, out, "--add-stubs"))
    assert added.exit_code == 0, added.stderr
    assert "+ Greeter.stats" in added.stderr
    assert "+ class Audit (acme.svc.v1.Audit); add audit=Audit() to main()" in added.stderr
    text = servicer.read_text()
    assert USER_GET in text
    old_lines = edited.splitlines()
    new_lines = text.splitlines()
    remaining = iter(new_lines)
    assert all(line in remaining for line in old_lines), "an existing line was changed"
    tree = ast.parse(text)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert "stats" in {
        f.name for f in classes["Greeter"].body if isinstance(f, ast.AsyncFunctionDef)
    }
    assert "Audit" in classes
    names = [n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)]
    assert names.index("Audit") < names.index("main")

    again = run_cli(_args(root, files, out, "--check"))
    assert again.exit_code == 1  # close/upload remain: the user decides
    assert "+ " not in again.stderr.replace("+ class", "")
    assert "- Greeter.close" in again.stderr


def test_check_passes_on_fresh_output_and_fails_on_stale(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    root, files = KV
    assert run_cli(_args(root, files, out, "--check")).exit_code == 1  # nothing there yet
    assert not out.exists()
    generate(KV, out)
    ok = run_cli(_args(root, files, out, "--check"))
    assert ok.exit_code == 0, ok.stderr
    (out / "kvtest" / "v1" / "kv_pb2.py").unlink()
    stale = run_cli(_args(root, files, out, "--check"))
    assert stale.exit_code == 1
    assert "kv_pb2.py: missing or out of date" in stale.stderr


def test_check_accepts_sync_handlers(tmp_path: Path) -> None:
    """Plain ``def`` handlers with ``Iterator``/``RequestStream`` annotations are not drift."""
    root, files = copy_corpus(SAMPLE, tmp_path / "protos")
    out = tmp_path / "pkg"
    assert run_cli(_args(root, files, out, "-q")).exit_code == 0
    servicer = out / "servicer.py"
    text = servicer.read_text()
    text = text.replace("    async def ", "    def ").replace("AsyncIterator[", "Iterator[")
    text = text.replace(
        "requests: Iterator[svc_pb2.Route]", "requests: RequestStream[svc_pb2.Route]"
    )
    text = text.replace(
        "from collections.abc import AsyncIterator", "from collections.abc import Iterator"
    )
    text = text.replace(
        "from rpcplugin.servicer import Unimplemented",
        "from rpcplugin.servicer import RequestStream, Unimplemented",
    )
    servicer.write_text(text)
    ok = run_cli(_args(root, files, out, "--check"))
    assert ok.exit_code == 0, ok.stderr
    servicer.write_text(text.replace("-> Iterator[common_pb2.Item]", "-> common_pb2.Item", 1))
    drift = run_cli(_args(root, files, out, "--check"))
    assert "~ Greeter.list: the response is a stream in the proto" in drift.stderr
