"""Real Go peers for the test suite: a go-plugin 1.0.1 host and plugin.

Both are built from ``tests/go/src/rpcpeers`` (GOPATH mode, Debian's Go 1.19,
go-plugin 1.0.1 and grpc-go 1.33.3; the conformance protos are compiled with
protoc-gen-go / protoc-gen-go-grpc into ``tests/go/bin/gopath`` at build time)
and cached in ``tests/go/bin/``. The first build takes ~15 s on two cores, a
cached one ~0 s; a rebuild happens whenever a Go source, a conformance proto or
this file's build recipe changes (content hash). Concurrent pytest processes are
safe: builds are serialized with a file lock and binaries are swapped in with
``os.replace``. Without Go or the Debian packages, the functions raise
``RuntimeError`` telling you to run ``make setup``; tests never skip silently.

Usage::

    from gopeers import go_host_binary, go_plugin_binary, run_go_host

    run = run_go_host([str(go_plugin_binary())], "-automtls", "-versions", "1")
    assert run.returncode == 0, run
    assert run.one("echo")["text"] == "hello"
    assert run.one("killed")["graceful"]

gohost (``go_host_binary()``)
=============================
``gohost [flags] -- PLUGIN_ARGV...`` or ``gohost [flags] -reattach JSON``. It
launches the plugin with ``plugin.NewClient`` (AllowedProtocols grpc; VersionedPlugins
1 = conformance.v1 client, 2 = conformance.v2 client), makes the calls, kills
the plugin and writes one JSON object per line on stdout, ``"event"`` first.

Flags: ``-cookie-key K`` / ``-cookie-value V`` (default
``RPCPLUGIN_CONFORMANCE=conformance-v1``); ``-versions 1,2`` (offered versions;
any ints, may be empty); ``-automtls``; ``-calls LIST`` from ping, echo,
bigecho, count, sum, chat, info, echo2 plus host-only steps sleep and status
(default: v1 -> ping,echo,bigecho,count,sum,chat,info; v2 -> ping,echo2; other
versions -> ping); ``-text S`` (hello); ``-payload-size N`` (bigecho bytes,
default 5 MiB); ``-count-n N`` (5); ``-count-payload N`` (0); ``-sum-values
LIST`` (1,2,3,4,5); ``-chat LIST`` (a,b,c); ``-sleep D`` (100ms); ``-info-env
LIST`` (extra names; Info always asks for the -env names, the cookie key,
PLUGIN_PROTOCOL_VERSIONS, PLUGIN_MIN_PORT, PLUGIN_MAX_PORT); ``-env K=V``
(repeatable, plugin environment); ``-start-timeout D`` (1m); ``-call-timeout D``
(30s); ``-deadline D`` (2m watchdog: SIGKILL the plugin, exit 2);
``-keep-going`` (continue after a failed call); ``-stderr-events``;
``-log-level trace|debug|info|warn``; ``-reattach JSON`` (``{"Protocol":"grpc",
"Pid":P,"Addr":{"Network":"unix","String":PATH}}`` or a one-entry map of those)
with ``-reattach-version N``.

Events::

    {"event":"started","version":N,"pid":P,"ms":F,"protocol":"grpc","network":"unix",
     "addr":PATH,"automtls":B,"server_cert":B,"reattach":B}
    {"event":"ping","ok":true,"ms":F}
    {"event":"echo","text":S,"version":N,"ms":F}        (v1 Echo)
    {"event":"bigecho","size":N,"version":N,"ms":F}     (payload checked byte for byte)
    {"event":"count","values":[1..n],"payload_bytes":N,"ms":F}
    {"event":"sum","total":N,"count":N,"ms":F}
    {"event":"chat","replies":[...],"ms":F}
    {"event":"info","pid":P,"version":N,"env":{...},"implementation":S,"ms":F}
    {"event":"echo2","text":S,"version":N,"ms":F}       (v2 Echo)
    {"event":"sleep","ms":F}  {"event":"status","exited":B,"ms":F}
    {"event":"stderr","line":S}                         (with -stderr-events)
    {"event":"error","stage":"flags|start|client|dispense|<call>|deadline|panic","error":S}
    {"event":"killed","ms":F,"graceful":B,"exited":B}   (last, whenever a plugin ran)

``graceful``: go-plugin did not log "plugin failed to exit gracefully" (no
SIGKILL was needed); ``exited``: the pid is gone or a zombie once Kill returned.
Exit status 0 without error events, 1 with, 2 on the deadline. stderr: the
host's hclog text plus the plugin's raw stderr lines.

goplugin (``go_plugin_binary()``)
=================================
``plugin.Serve`` with VersionedPlugins {1: conformance.v1, 2: conformance.v2};
the version a service reports is the version whose PluginSet go-plugin
registered (1.0.1 has no API for the negotiated version). v1: Echo echoes text
and payload; Count sends i = 1..n with payload_size bytes of ``x``; Sum;
Chat answers each message with the same text; Info reports pid, version, the
requested env vars that are set, implementation ``go``. v2: Echo upper-cases.
Message limits are 2^31-1. Environment: ``GOPLUGIN_COOKIE_KEY`` /
``GOPLUGIN_COOKIE_VALUE``; ``GOPLUGIN_VERSIONS=1,2``; ``GOPLUGIN_V2_WITH_V1=1``
(v2 also serves the v1 service); ``GOPLUGIN_GRPC_SERVER=default``
(plugin.DefaultGRPCServer, 4 MiB receive limit); ``GOPLUGIN_LOG_LEVEL``
(debug; off). Misbehaviour: ``GOPLUGIN_SLOW_START_MS=N``,
``GOPLUGIN_EXIT_BEFORE_HANDSHAKE=CODE``, ``GOPLUGIN_HANDSHAKE_TEMPLATE=T``
(``{line}`` = the real line, ``\\n`` expanded), ``GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS=N``
(with ``GOPLUGIN_EXIT_CODE``, default 3), ``GOPLUGIN_SHUTDOWN=ignore``.
``GOPLUGIN_DEBUG=1``: reattach mode, no cookie or handshake; prints
``{"Addr":{"Network":"unix","String":PATH},"Pid":P,"Protocol":"grpc",
"ProtocolVersion":N,"Test":true}`` and serves until Shutdown or SIGINT/SIGTERM.

Run ``python tests/gopeers.py`` to build and print both paths.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GoHostRun",
    "go_host_binary",
    "go_plugin_binary",
    "run_go_host",
]

TESTS_DIR = Path(__file__).resolve().parent
GO_DIR = TESTS_DIR / "go"
GO_SRC = GO_DIR / "src" / "rpcpeers"
BIN_DIR = GO_DIR / "bin"
PROTO_DIR = TESTS_DIR / "protos"
PROTOS = ("conformance/v1/conformance.proto", "conformance/v2/conformance.proto")
GOCODE = Path("/usr/share/gocode")
GO_PLUGIN_SRC = GOCODE / "src/github.com/hashicorp/go-plugin"
PROGRAMS = ("gohost", "goplugin")

SETUP_HINT = (
    "run `make setup` (it installs Go 1.19, go-plugin 1.0.1, grpc-go, protoc, protoc-gen-go "
    "and protoc-gen-go-grpc from Debian)"
)

# Bump when the build recipe below changes in a way the content hash cannot see.
_RECIPE = "gopeers-build-1"
_BUILD_TIMEOUT = 900.0

_lock = threading.Lock()
_built: dict[str, Path] | None = None
_failure: RuntimeError | None = None


def go_host_binary() -> Path:
    """Return the gohost executable, building it first if needed."""
    return _build()["gohost"]


def go_plugin_binary() -> Path:
    """Return the goplugin executable, building it first if needed."""
    return _build()["goplugin"]


@dataclass(frozen=True)
class _Tools:
    go: str
    protoc: str
    protoc_gen_go: str
    protoc_gen_go_grpc: str


def _find_tools() -> _Tools:
    """Locate the toolchain, or explain how to get it."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in ("go", "protoc", "protoc-gen-go", "protoc-gen-go-grpc"):
        path = shutil.which(name)
        if path is None:
            missing.append(f"`{name}` is not on PATH")
        else:
            found[name] = path
    if not GO_PLUGIN_SRC.is_dir():
        missing.append(f"the Debian go-plugin sources are missing ({GO_PLUGIN_SRC})")
    if missing:
        raise RuntimeError(
            "cannot build the Go test peers: " + "; ".join(missing) + f". To fix: {SETUP_HINT}."
        )
    return _Tools(
        go=found["go"],
        protoc=found["protoc"],
        protoc_gen_go=found["protoc-gen-go"],
        protoc_gen_go_grpc=found["protoc-gen-go-grpc"],
    )


def _digest(tools: _Tools) -> str:
    """Hash everything a build depends on that the Go build cache cannot see."""
    h = hashlib.sha256(_RECIPE.encode())
    inputs = sorted(p for p in GO_SRC.rglob("*") if p.is_file() and p.suffix == ".go")
    inputs += [PROTO_DIR / p for p in PROTOS]
    for path in inputs:
        h.update(str(path.relative_to(TESTS_DIR)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    toolchain = [
        Path(tools.go),
        Path(tools.protoc),
        Path(tools.protoc_gen_go),
        Path(tools.protoc_gen_go_grpc),
        GO_PLUGIN_SRC / "client.go",
        GOCODE / "src/google.golang.org/grpc/version.go",
    ]
    for path in toolchain:
        try:
            st = path.resolve().stat()
        except OSError:
            continue
        h.update(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _run_tool(argv: Sequence[str], env: Mapping[str, str], what: str) -> None:
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env),
            cwd=GO_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"building the Go test peers: {what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"building the Go test peers: {what} failed (exit {proc.returncode}).\n"
            f"command: {' '.join(argv)}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
            f"If the toolchain looks broken, {SETUP_HINT}."
        )


def _compile(tools: _Tools) -> None:
    """Generate the protobuf code and build both programs into BIN_DIR."""
    gopath = BIN_DIR / "gopath"
    shutil.rmtree(gopath, ignore_errors=True)
    (gopath / "src").mkdir(parents=True)
    env = dict(os.environ)  # protoc finds its plugins on PATH, where _find_tools saw them
    _run_tool(
        [
            tools.protoc,
            f"-I{PROTO_DIR}",
            f"--go_out={gopath / 'src'}",
            f"--go-grpc_out={gopath / 'src'}",
            *PROTOS,
        ],
        env,
        "protoc",
    )
    env.update(
        GO111MODULE="off",
        GOPATH=os.pathsep.join([str(gopath), str(GO_DIR), str(GOCODE)]),
        GOCACHE=str(BIN_DIR / ".cache"),
        GOFLAGS="",
        GOENV="off",
        GOPROXY="off",
        CGO_ENABLED="0",
    )
    out = Path(tempfile.mkdtemp(prefix=".build-", dir=BIN_DIR))
    try:
        _run_tool(
            [tools.go, "build", "-o", f"{out}{os.sep}", *(f"rpcpeers/{p}" for p in PROGRAMS)],
            env,
            "go build",
        )
        for name in PROGRAMS:
            os.replace(out / name, BIN_DIR / name)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _build() -> dict[str, Path]:
    global _built, _failure
    with _lock:
        if _built is not None:
            return _built
        if _failure is not None:
            raise _failure
        try:
            tools = _find_tools()
            BIN_DIR.mkdir(parents=True, exist_ok=True)
            digest = _digest(tools)
            stamp = BIN_DIR / "stamp"
            paths = {name: BIN_DIR / name for name in PROGRAMS}
            with _file_lock(BIN_DIR / ".build.lock"):
                current = stamp.read_text() if stamp.exists() else ""
                if current != digest or not all(os.access(p, os.X_OK) for p in paths.values()):
                    stamp.unlink(missing_ok=True)
                    _compile(tools)
                    tmp = stamp.with_name(f".stamp-{os.getpid()}")
                    tmp.write_text(digest)
                    os.replace(tmp, stamp)
        except RuntimeError as exc:
            _failure = exc
            raise
        _built = paths
        return paths


# ---- running gohost ----


@dataclass(frozen=True)
class GoHostRun:
    """The outcome of one gohost run: its parsed JSON events and its stderr."""

    argv: list[str]
    returncode: int
    events: list[dict[str, Any]]
    stdout: str
    stderr: str
    unparsed: list[str] = field(default_factory=list)

    def of(self, name: str) -> list[dict[str, Any]]:
        """All events called ``name``, in order."""
        return [e for e in self.events if e.get("event") == name]

    def one(self, name: str) -> dict[str, Any]:
        """The single event called ``name``; AssertionError (with the run) otherwise."""
        found = self.of(name)
        if len(found) != 1:
            raise AssertionError(f"expected one {name!r} event, got {len(found)}\n{self}")
        return found[0]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The error events."""
        return self.of("error")

    def __str__(self) -> str:
        tail = self.stderr[-4000:]
        return (
            f"gohost exit {self.returncode}: {' '.join(self.argv)}\n"
            f"--- events ---\n{self.stdout}--- stderr (tail) ---\n{tail}"
        )


def run_go_host(
    plugin_argv: Sequence[str] | None,
    *flags: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> GoHostRun:
    """Run gohost with ``flags`` against ``plugin_argv`` (None with ``-reattach``).

    ``env`` replaces gohost's environment (the plugin inherits it); by default it
    inherits this process's. stdin is /dev/null because go-plugin hands the host's
    stdin to the plugin. ``timeout`` is a last resort: gohost's own ``-deadline``
    (2 min by default) fires first and also kills the plugin.
    """
    argv = [str(go_host_binary()), *flags]
    if plugin_argv is not None:
        argv += ["--", *plugin_argv]
    proc = subprocess.run(
        argv,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    events: list[dict[str, Any]] = []
    unparsed: list[str] = []
    for line in proc.stdout.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            unparsed.append(line)
            continue
        if isinstance(obj, dict):
            events.append(obj)
        else:
            unparsed.append(line)
    return GoHostRun(
        argv=argv,
        returncode=proc.returncode,
        events=events,
        stdout=proc.stdout,
        stderr=proc.stderr,
        unparsed=unparsed,
    )


if __name__ == "__main__":
    try:
        print(go_host_binary())
        print(go_plugin_binary())
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
