"""``gopeers.build_go_program``: the examples' Go programs are built, cached, and explained when
they cannot be built.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import gopeers
import pytest
from gopeers import build_go_program

pytestmark = pytest.mark.go

HELLO = """package main

import (
	"fmt"

	"google.golang.org/grpc/codes"
)

func main() { fmt.Println("hello from Go,", codes.NotFound) }
"""


def test_builds_a_program_against_debian_gocode_and_caches_it(tmp_path: Path) -> None:
    src = tmp_path / "hello"
    src.mkdir()
    (src / "main.go").write_text(HELLO)
    binary = build_go_program(src, name="selftest-hello")
    assert binary == gopeers.PROGRAMS_DIR / "selftest-hello" / "selftest-hello"
    out = subprocess.run([binary], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout == "hello from Go, NotFound\n"
    stamp = binary.parent / "stamp"
    before = (binary.stat().st_mtime_ns, stamp.read_text())
    gopeers._programs.clear()  # forget this process's memo: the stamp alone must say "up to date"
    assert build_go_program(src, name="selftest-hello") == binary
    assert (binary.stat().st_mtime_ns, stamp.read_text()) == before


def test_a_compile_error_is_reported_with_the_compilers_words(tmp_path: Path) -> None:
    src = tmp_path / "broken"
    src.mkdir()
    (src / "main.go").write_text("package main\n\nfunc main() { undefinedThing() }\n")
    with pytest.raises(RuntimeError, match="selftest-broken: go build failed") as info:
        build_go_program(src, name="selftest-broken")
    assert "undefined: undefinedThing" in str(info.value)


def test_a_missing_proto_names_the_directories_searched(tmp_path: Path) -> None:
    (tmp_path / "main.go").write_text(HELLO)
    with pytest.raises(RuntimeError, match=r"nowhere\.proto is in none of: "):
        build_go_program(tmp_path, ["nowhere.proto"], name="selftest-noproto")


def test_a_bad_program_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a usable program name"):
        build_go_program(tmp_path, name="../escape")
