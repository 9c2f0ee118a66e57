"""Bad input: one message with file:line where there is one, exit status 1, nothing written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import SAMPLE, generate, run_cli

BAD = {
    "syntax.proto": (
        'syntax = "proto3";\npackage bad;\nmessage A {\n  string a = 1\n}\n',
        r"syntax\.proto:5:1: error: Expected \";\"",
    ),
    "missing_import.proto": (
        'syntax = "proto3";\nimport "nope/missing.proto";\nmessage A { nope.M m = 1; }\n',
        r"missing_import\.proto:2:1: error: Import \"nope/missing\.proto\" was not found",
    ),
    "unknown_option.proto": (
        'syntax = "proto3";\npackage bad;\noption (foo.bar) = 3;\nmessage A {}\n',
        r"unknown_option\.proto:3:8: error: Option \"\(foo\.bar\)\" unknown",
    ),
    "unknown_field_in_option.proto": (
        'syntax = "proto3";\npackage bad;\nimport "rpcplugin/protos/rpcplugin_options.proto";\n'
        'option (rpcplugin.options.plugin) = { cookie: "x" };\n',
        r"unknown_field_in_option\.proto:4:\d+: error: .*cookie",
    ),
    "rpc_clash.proto": (
        'syntax = "proto3";\npackage bad;\nmessage M {}\nservice S {\n'
        "  rpc GetFoo(M) returns (M);\n  rpc Get_Foo(M) returns (M);\n}\n",
        r"rpc_clash\.proto:6:3: error: rpc Get_Foo and rpc GetFoo \(.*rpc_clash\.proto:5:3\) "
        r"of service S both become the Python method get_foo\(\)",
    ),
    "service_clash.proto": (
        'syntax = "proto3";\npackage bad;\nmessage M {}\n'
        "service Foo {\n  rpc A(M) returns (M);\n}\n"
        "service FooClient {\n  rpc B(M) returns (M);\n}\n",
        r"service_clash\.proto:7:1: error: service FooClient and the client of service Foo "
        r"\(.*service_clash\.proto:4:1\) would both be named FooClient",
    ),
    "bad_cookie_key.proto": (
        'syntax = "proto3";\npackage bad;\nimport "rpcplugin/protos/rpcplugin_options.proto";\n'
        'option (rpcplugin.options.plugin) = { cookie_key: "NOT A VAR" };\n'
        "message M {}\nservice S {\n  rpc A(M) returns (M);\n}\n",
        r"bad_cookie_key\.proto:6:1: error: service S: cookie key 'NOT A VAR' is not a valid",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_proto(name: str, tmp_path: Path) -> None:
    source, message = BAD[name]
    (tmp_path / name).write_text(source)
    result = run_cli([name, "-o", "out"], cwd=tmp_path)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_cookie_conflict_names_both_services(tmp_path: Path) -> None:
    for package in ("a", "b"):
        (tmp_path / f"{package}.proto").write_text(
            f'syntax = "proto3";\npackage {package};\nmessage M {{}}\n'
            f"service S{package} {{\n  rpc A(M) returns (M);\n}}\n"
        )
    result = run_cli(["a.proto", "b.proto", "-o", "out"], cwd=tmp_path)
    assert result.exit_code == 1
    assert "b.proto:4:1: error: service b.Sb has cookie B_PLUGIN_COOKIE=" in result.stderr
    assert "but a.Sa (a.proto:4:1) has A_PLUGIN_COOKIE=" in result.stderr
    assert not (tmp_path / "out").exists()
    fixed = run_cli(
        ["a.proto", "b.proto", "-o", "out", "--cookie-key", "K", "--cookie-value", "V", "-q"],
        cwd=tmp_path,
    )
    assert fixed.exit_code == 0, fixed.stderr


def test_missing_input_file(tmp_path: Path) -> None:
    result = run_cli(["nope.proto", "-o", "out"], cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip() == "nope.proto: error: file not found"


def test_input_outside_include_path(tmp_path: Path) -> None:
    (tmp_path / "x.proto").write_text('syntax = "proto3";\n')
    (tmp_path / "inc").mkdir()
    result = run_cli(["x.proto", "-I", "inc", "-o", "out"], cwd=tmp_path)
    assert result.exit_code == 1
    assert "is not under any include directory" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        root, files = SAMPLE
        result = run_cli(["-I", str(root), str(root / files[0]), "-o", str(locked / "pkg")])
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 1
    assert "error: cannot write to" in result.stderr
    assert list(locked.iterdir()) == []


def test_output_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "pkg").write_text("not a directory")
    root, files = SAMPLE
    result = run_cli(["-I", str(root), str(root / files[0]), "-o", str(tmp_path / "pkg")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "pkg").read_text() == "not a directory"


def test_unwritable_even_as_root(tmp_path: Path) -> None:
    """/proc refuses everyone: the error is one line and nothing is left behind."""
    root, files = SAMPLE
    result = run_cli(["-I", str(root), str(root / files[0]), "-o", "/proc/rpcplugin-gen-test"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("rpcplugin-gen: error: cannot write to")
    assert result.stderr.count("\n") == 1


def test_hand_edited_generated_file_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    generate(SAMPLE, out)
    rpc = out / "acme" / "svc" / "v1" / "svc_rpc.py"
    rpc.write_text(rpc.read_text() + "# my tweak\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    root, files = SAMPLE
    args = ["-I", str(root), str(root / files[0]), "-o", str(out)]
    result = run_cli(args)
    assert result.exit_code == 1
    assert "generated file was edited by hand" in result.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert run_cli([*args, "--force", "-q"]).exit_code == 0
    assert "# my tweak" not in rpc.read_text()


def test_foreign_file_in_the_way(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "plugin.py").write_text("# mine\n")
    (out / "__init__.py").write_text("VERSION = 1\n")
    root, files = SAMPLE
    result = run_cli(["-I", str(root), str(root / files[0]), "-o", str(out)])
    assert result.exit_code == 1
    assert "plugin.py: not a file rpcplugin-gen wrote" in result.stderr
    assert (out / "plugin.py").read_text() == "# mine\n"
    (out / "plugin.py").unlink()
    assert run_cli(["-I", str(root), str(root / files[0]), "-o", str(out), "-q"]).exit_code == 0
    assert (out / "__init__.py").read_text() == "VERSION = 1\n"  # a user's __init__ is kept


def test_stale_generated_files_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    generate(SAMPLE, out)
    stale = out / "old" / "gone_rpc.py"
    stale.parent.mkdir()
    stale.write_text((out / "plugin.py").read_text())  # an intact generated file
    generate(SAMPLE, out)
    assert not stale.exists()
