"""What a generated plugin imports before it prints its handshake line (issue 15: start-up at
the floor).

A host waits for the handshake line on every launch, so everything imported before it is paid on
every launch. ``python -m pkg`` of a generated package runs in a wrapper that records
``sys.modules`` at the moment the line is written (and, for each module, the file and line whose
``import`` loaded it). The test then allows what a bare grpcio plugin needs anyway (grpc and the
package's own ``_pb2`` messages), the package itself, and the lists below; anything else fails,
naming the module and where it was imported, so start-up cannot creep back unnoticed.

This pins *which* modules load, not how long they take (timing is ``bench/``'s job).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rpcplugin_gen import cli

REPO = Path(__file__).resolve().parent.parent
PROTOS = REPO / "tests" / "protos"
PACKAGE = "startgen"
COOKIE = ("STARTGEN_COOKIE", "startgen-v1")

RUNTIME_ALLOWED = frozenset(
    {
        "rpcplugin",
        "rpcplugin.errors",
        "rpcplugin.handshake",
        "rpcplugin.record",
        "rpcplugin.config",
        "rpcplugin.hclog",
        "rpcplugin.plugin_name",
        "rpcplugin.plugin",
        "rpcplugin.plugin.stdout_guard",
        "rpcplugin.plugin.server",
        "rpcplugin.plugin.running",
        "rpcplugin.plugin.interceptors",
        "rpcplugin._wire",
        "rpcplugin._wire.listeners",
        "rpcplugin._wire.transport",
        "rpcplugin._wire.tls_plan",
        "rpcplugin.services",
        # go-plugin's services as one small handler; the services themselves (health,
        # controller, broker, their messages) load right after the line, while the host dials
        "rpcplugin.services.goplugin",
        # the stdio buffer that catches output from the line on (its protobuf loads later)
        "rpcplugin.services.stdio",
        # reflection's registration shim (75 lines); grpc_reflection loads on the first call
        "rpcplugin.services.reflection",
        # the generated-code contract
        "rpcplugin.calls",
        "rpcplugin.servicer",
    }
)
"""The runtime's modules on the start-up path: the handshake, settings, logging, listeners and
what registers the services every host calls right after the handshake line."""

STDLIB_ALLOWED = frozenset(
    {
        # the socket directory: tempfile.gettempdir() (the floor plugin uses it too)
        "tempfile",
        "shutil",
        "random",
        "bisect",
        "_bisect",
        "_random",
        "_sha512",
        "_sha2",
        "bz2",
        "_bz2",
        "lzma",
        "_lzma",
        "_compression",
        "fnmatch",
        "zlib",
        # built in (no file to load): guard_stdout() pauses the collector until the line is out,
        # which cuts a generated plugin's CPU to its handshake line by about 6 % (bench/results)
        "gc",
    }
)
"""Standard library modules (and friends) the start-up path may load beyond grpc's own."""

TLS_ALLOWED = frozenset(
    {
        # the host's certificate read without cryptography, ours made by `openssl req`
        "rpcplugin._wire.der",
        "rpcplugin._wire.early_cert",
        "rpcplugin._wire.mtls",
    }
)
"""Extra modules with AutoMTLS (``PLUGIN_CLIENT_CERT`` set). ``cryptography`` (~40 ms) is only
allowed where the ``openssl`` command is missing, the one case that needs it."""

SPY = r"""
import os, sys

out = os.environ["STARTUP_IMPORTS_OUT"]
origin = {}


class _Where:
    # remembers, for every module imported, the first frame outside the import machinery
    def find_spec(self, name, path=None, target=None):
        if name not in origin:
            frame = sys._getframe(1)
            while frame is not None and (
                frame.f_code.co_filename.startswith("<")
                or "importlib" in frame.f_code.co_filename
            ):
                frame = frame.f_back
            origin[name] = (
                f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"
            )
        return None


sys.meta_path.insert(0, _Where())
_write = os.write


def _spy(fd, data):
    if bytes(data[:2]) == b"1|" and not os.path.exists(out):
        loaded = {name: origin.get(name, "") for name in list(sys.modules)}
        import json

        with open(out, "w") as f:
            json.dump(loaded, f)
        import threading

        threading.Thread(target=_after_line, daemon=True).start()
    return _write(fd, data)


def _after_line():
    # which of go-plugin's services get built after the line, with no call made (up to 60 s)
    import json, time

    wanted = os.environ.get("STARTUP_AFTER_LINE", "").split(",")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(m in sys.modules for m in wanted):
        time.sleep(0.01)
    with open(out + ".after.tmp", "w") as f:
        json.dump(sorted(m for m in wanted if m in sys.modules), f)
    os.rename(out + ".after.tmp", out + ".after")


os.write = _spy
sys.path[0] = os.getcwd()
import runpy

runpy._run_module_as_main(sys.argv.pop(1))
"""
"""Runs ``python -m PKG`` (``runpy._run_module_as_main``, as ``-m`` does) and writes every module
in ``sys.modules`` when the handshake line (``1|...``) is written, with where it was imported;
then, to ``OUT.after``, which of the modules named in ``STARTUP_AFTER_LINE`` are loaded once all
are, or after 60 s."""

SERVICER = """\
from __future__ import annotations

from typing import NoReturn

from . import plugin
from .conformance.v1 import conformance_pb2, conformance_rpc


class Conformance(conformance_rpc.ConformanceServicer):
    async def echo(self, request: conformance_pb2.EchoRequest, /) -> conformance_pb2.EchoReply:
        return conformance_pb2.EchoReply(text=request.text, version=1)


def main() -> NoReturn:
    plugin.serve(conformance=Conformance())
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated conformance plugin with a servicer, as a user would have it."""
    root = tmp_path_factory.mktemp("startup")
    out = root / PACKAGE
    proto = PROTOS / "conformance/v1/conformance.proto"
    args = ["-q", "--no-servicer", "-I", str(PROTOS), str(proto), "-o", str(out)]
    args += ["--cookie-key", COOKIE[0], "--cookie-value", COOKIE[1]]
    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    (out / "servicer.py").write_text(SERVICER)
    return out


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "RPCPLUGIN_"))}
    env.pop("PYTHONPATH", None)
    env.update({COOKIE[0]: COOKIE[1], "PLUGIN_PROTOCOL_VERSIONS": "1"})
    env["PLUGIN_UNIX_SOCKET_DIR"] = str(tmp)
    return env


def _spied(package: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m`` the package under :data:`SPY` (``STARTUP_IMPORTS_OUT`` set in ``env``)."""
    return subprocess.Popen(
        [sys.executable, "-c", SPY, package.name],
        cwd=package.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _modules_at_handshake(package: Path, env: dict[str, str], out: Path) -> dict[str, str]:
    env = {**env, "STARTUP_IMPORTS_OUT": str(out)}
    proc = _spied(package, env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the plugin's start-up; the kill below ends it
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=60)
    assert line.startswith(b"1|"), f"no handshake line: {line!r}\n{stderr.decode()}"
    loaded: dict[str, str] = json.loads(out.read_text())
    return loaded


def _baseline(package: Path, env: dict[str, str]) -> set[str]:
    """What a bare grpcio plugin of the same service loads: grpc (with grpc.aio) and the
    messages, run the way ``-m`` runs a package (runpy)."""
    code = (
        "import sys, runpy, grpc, grpc.aio; "
        f"import {package.name}.conformance.v1.conformance_pb2; "
        "print('\\n'.join(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=package.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(done.stdout.split())


def _allowed(name: str, tls: bool) -> bool:
    if name in RUNTIME_ALLOWED or name in STDLIB_ALLOWED:
        return True
    if name == PACKAGE or name.startswith(PACKAGE + "."):
        return True
    if name.split(".")[0] == "grpc":  # grpc's own modules, loaded as the server starts
        return True
    if not tls:
        return False
    return name in TLS_ALLOWED or (shutil.which("openssl") is None and _cryptography(name))


def _cryptography(name: str) -> bool:
    """``cryptography`` and what its import brings (email, hashlib, ...)."""
    return name.split(".")[0] in {
        "cryptography", "_cffi_backend", "_openssl", "email", "hashlib", "_hashlib", "_blake2",
        "hmac", "quopri", "dataclasses", "datetime", "_datetime",
    }  # fmt: skip


def _creep(loaded: dict[str, str], baseline: set[str], tls: bool) -> list[str]:
    return sorted(
        f"{name} (imported at {loaded[name] or 'an unknown place'})"
        for name in loaded
        if name not in baseline and not _allowed(name, tls)
    )


HOW_TO_FIX = (
    "These modules were imported by `python -m {pkg}` before its handshake line, and are not "
    "on the start-up allow-list of tests/test_startup_imports.py. A host pays for every one of "
    "them on every launch. Import them where they are first used instead: inside the function "
    "or method that needs them (`from ..x import y` in the function body), or through a lazy "
    "registration that imports on the first call. If a module really is needed before the "
    "handshake, add it to RUNTIME_ALLOWED or STDLIB_ALLOWED there, with the reason, and show "
    "the cold-start numbers from `python -m bench --only cold`.\n  "
)


@pytest.mark.parametrize("tls", [False, True], ids=["tls-off", "tls-on"])
def test_plugin_imports_only_what_the_handshake_needs(
    package: Path, tmp_path: Path, tls: bool
) -> None:
    env = _env(tmp_path)
    if tls:
        from rpcplugin._wire import mtls

        env["PLUGIN_CLIENT_CERT"] = mtls.generate_certificate().cert_pem.decode()
    loaded = _modules_at_handshake(package, env, tmp_path / "modules.json")
    assert f"{PACKAGE}.servicer" in loaded  # the spy saw the real start-up
    creep = _creep(loaded, _baseline(package, env), tls)
    assert not creep, HOW_TO_FIX.format(pkg=PACKAGE) + "\n  ".join(creep)


def test_a_module_imported_at_start_is_named_with_its_import(package: Path, tmp_path: Path) -> None:
    """The check can fail: a servicer that imports a module off the list is reported, with the
    file and line of its import."""
    servicer = package / "servicer.py"
    original = servicer.read_text()
    planted = original.replace("from . import plugin\n", "import xml.dom\nfrom . import plugin\n")
    servicer.write_text(planted)
    try:
        env = _env(tmp_path)
        loaded = _modules_at_handshake(package, env, tmp_path / "modules.json")
    finally:
        servicer.write_text(original)
    creep = _creep(loaded, _baseline(package, env), tls=False)
    assert any(c.startswith("xml.dom (imported at ") and "servicer.py:5" in c for c in creep), creep


GO_PLUGIN_SERVICES = (
    "rpcplugin.services.health",
    "rpcplugin.services.controller",
    "rpcplugin.services.broker",
    "rpcplugin.protos.grpc_stdio_pb2",
)


def test_go_plugin_services_are_built_after_the_line_without_a_call(
    package: Path, tmp_path: Path
) -> None:
    """The services left out of the start-up are built in the wait after the line, not on the
    first call: nobody connects here."""
    out = tmp_path / "modules.json"
    env = {**_env(tmp_path), "STARTUP_IMPORTS_OUT": str(out)}
    env["STARTUP_AFTER_LINE"] = ",".join(GO_PLUGIN_SERVICES)
    proc = _spied(package, env)
    after = tmp_path / "modules.json.after"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(b"1|"), line
        deadline = time.monotonic() + 90  # the spy itself gives up after 60 s
        while not after.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=60)
    assert after.exists(), stderr.decode()
    at_line = json.loads(out.read_text())
    assert not [m for m in GO_PLUGIN_SERVICES if m in at_line]  # not before the line ...
    assert json.loads(after.read_text()) == sorted(GO_PLUGIN_SERVICES)  # ... but right after


def test_serve_alone_loads_no_generated_code_contract_and_no_protobuf() -> None:
    """``rpcplugin.serve`` for plain grpcio handlers loads neither the generated-code contract
    (``rpcplugin.calls``, ``rpcplugin.servicer``) nor protobuf: go-plugin's services load after
    the handshake line, and the servicer machinery only with generated code."""
    probe = (
        "import sys, rpcplugin; rpcplugin.serve; "
        "print(sorted(m for m in sys.modules if m in ('rpcplugin.calls', 'rpcplugin.servicer') "
        "or m.startswith('google.protobuf')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
