"""Real Go peers for the test suite (a go-plugin 1.0.1 host and plugin), and a builder for
the Go programs of the examples.

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
with ``-reattach-version N``; ``-checksum HEX`` (SecureConfig: the plugin executable's
SHA-256 must match, else Start fails with stage ``start``).

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
(plugin.DefaultGRPCServer, 4 MiB receive limit); grpc-go's server reflection
(``grpc.reflection.v1alpha``) as modern go-plugin has, unless ``GOPLUGIN_REFLECTION=off``;
``GOPLUGIN_LOG_LEVEL``
(debug; off). Misbehaviour: ``GOPLUGIN_SLOW_START_MS=N``,
``GOPLUGIN_EXIT_BEFORE_HANDSHAKE=CODE``, ``GOPLUGIN_HANDSHAKE_TEMPLATE=T``
(``{line}`` = the real line, ``\\n`` expanded), ``GOPLUGIN_EXIT_AFTER_HANDSHAKE_MS=N``
(with ``GOPLUGIN_EXIT_CODE``, default 3), ``GOPLUGIN_SHUTDOWN=ignore``.
``GOPLUGIN_DEBUG=1``: reattach mode, no cookie or handshake; prints
``{"Addr":{"Network":"unix","String":PATH},"Pid":P,"Protocol":"grpc",
"ProtocolVersion":N,"Test":true}`` and serves until Shutdown or SIGINT/SIGTERM.

build_go_program()
==================
``build_go_program(src_dir, protos, proto_path=[...])`` builds any other Go ``main``
package the same way (the examples' Go hosts and plugins): the ``protos`` (names
relative to a ``proto_path`` directory, as protoc takes them) are compiled with
protoc-gen-go and protoc-gen-go-grpc into the program's own GOPATH, at the import
paths their ``go_package`` options give; then ``go build`` runs in ``src_dir`` in
GOPATH mode with that GOPATH and Debian's ``/usr/share/gocode``. Its executable is
cached in ``tests/go/bin/programs/<name>/<name>`` (``name``: ``src_dir``'s name by
default) and rebuilt when a ``.go`` file in ``src_dir``, a listed proto or the
toolchain changes; the Go build cache is shared with the peers, so a fresh build of
a small program is mostly the link (~2 s). By hand it is::

    B=/some/dir; mkdir -p $B/src
    protoc -I PROTO_DIR --go_out=$B/src --go-grpc_out=$B/src PROTOS...
    CGO_ENABLED=0 GO111MODULE=off GOPATH=$B:/usr/share/gocode go build -o $B/prog ./SRC_DIR

Run ``python tests/gopeers.py`` to build and print both peer paths.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
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
    "build_go_program",
    "go_host_binary",
    "go_plugin_binary",
    "run_go_host",
]

TESTS_DIR = Path(__file__).resolve().parent
GO_DIR = TESTS_DIR / "go"
GO_SRC = GO_DIR / "src" / "rpcpeers"
BIN_DIR = GO_DIR / "bin"
PROGRAMS_DIR = BIN_DIR / "programs"
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
_PROGRAM_RECIPE = "go-program-build-1"
_BUILD_TIMEOUT = 900.0
_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_lock = threading.Lock()
_built: dict[str, Path] | None = None
_failure: RuntimeError | None = None
_programs: dict[tuple[object, ...], Path | RuntimeError] = {}


def go_host_binary() -> Path:
    """Return the gohost executable, building it first if needed."""
    return _build()["gohost"]


def go_plugin_binary() -> Path:
    """Return the goplugin executable, building it first if needed."""
    return _build()["goplugin"]


def build_go_program(
    src_dir: str | os.PathLike[str],
    protos: Sequence[str] = (),
    *,
    proto_path: Sequence[str | os.PathLike[str]] = (),
    name: str | None = None,
) -> Path:
    """Build the Go ``main`` package in ``src_dir`` and return its executable (cached).

    ``protos`` are proto file names as protoc takes them, relative to one of the
    ``proto_path`` directories (default: ``src_dir``); list every proto the Go code
    needs, imported ones included (well-known types excepted). They are compiled
    into the program's own GOPATH at their ``go_package`` import paths; the program
    imports them from there, and everything else from the standard library or
    Debian's ``/usr/share/gocode`` (GOPATH mode, no modules, no network).

    Raises ``RuntimeError`` with the tool's output when a step fails, or telling you
    to run ``make setup`` when the toolchain is missing.
    """
    src = Path(src_dir).resolve()
    program = src.name if name is None else name
    if not _NAME_OK.fullmatch(program):
        raise ValueError(f"build_go_program: {program!r} is not a usable program name")
    dirs = [Path(d).resolve() for d in proto_path] or [src]
    key: tuple[object, ...] = (src, tuple(protos), tuple(dirs), program)
    with _lock:
        done = _programs.get(key)
        if isinstance(done, RuntimeError):
            raise done
        if done is not None:
            return done
        try:
            path = _build_program(src, list(protos), dirs, program)
        except RuntimeError as exc:
            _programs[key] = exc
            raise
        _programs[key] = path
        return path


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
            "cannot build the Go programs: " + "; ".join(missing) + f". To fix: {SETUP_HINT}."
        )
    return _Tools(
        go=found["go"],
        protoc=found["protoc"],
        protoc_gen_go=found["protoc-gen-go"],
        protoc_gen_go_grpc=found["protoc-gen-go-grpc"],
    )


def _hash_toolchain(h: Any, tools: _Tools) -> None:
    """Feed the toolchain's identity (paths, sizes, mtimes) into ``h``."""
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


def _digest(tools: _Tools) -> str:
    """Hash everything the peers' build depends on that the Go build cache cannot see."""
    h = hashlib.sha256(_RECIPE.encode())
    inputs = sorted(p for p in GO_SRC.rglob("*") if p.is_file() and p.suffix == ".go")
    inputs += [PROTO_DIR / p for p in PROTOS]
    for path in inputs:
        h.update(str(path.relative_to(TESTS_DIR)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    _hash_toolchain(h, tools)
    return h.hexdigest()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _run_tool(
    argv: Sequence[str], env: Mapping[str, str], what: str, *, cwd: Path = GO_DIR
) -> None:
    try:
        proc = subprocess.run(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"building {what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"building {what} failed (exit {proc.returncode}).\n"
            f"command: {' '.join(argv)}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
            f"If the toolchain looks broken, {SETUP_HINT}."
        )


def _protoc(
    tools: _Tools, proto_path: Sequence[Path], protos: Sequence[str], src: Path, what: str
) -> None:
    """Compile ``protos`` to Go under ``src`` (a GOPATH's src directory)."""
    # protoc finds its plugins on PATH, where _find_tools saw them
    _run_tool(
        [
            tools.protoc,
            *(f"-I{d}" for d in proto_path),
            f"--go_out={src}",
            f"--go-grpc_out={src}",
            *protos,
        ],
        os.environ,
        what,
    )


def _go_env(gopath: Sequence[Path]) -> dict[str, str]:
    """The environment of a GOPATH-mode ``go build`` against Debian's gocode, offline."""
    return {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": os.pathsep.join(str(p) for p in [*gopath, GOCODE]),
        "GOCACHE": str(BIN_DIR / ".cache"),  # shared by every program built here
        "GOFLAGS": "",
        "GOENV": "off",
        "GOPROXY": "off",
        "CGO_ENABLED": "0",
    }


def _compile(tools: _Tools) -> None:
    """Generate the protobuf code and build both peers into BIN_DIR."""
    gopath = BIN_DIR / "gopath"
    shutil.rmtree(gopath, ignore_errors=True)
    (gopath / "src").mkdir(parents=True)
    what = "the Go test peers: protoc"
    _protoc(tools, [PROTO_DIR], PROTOS, gopath / "src", what)
    out = Path(tempfile.mkdtemp(prefix=".build-", dir=BIN_DIR))
    try:
        _run_tool(
            [tools.go, "build", "-o", f"{out}{os.sep}", *(f"rpcpeers/{p}" for p in PROGRAMS)],
            _go_env([gopath, GO_DIR]),
            "the Go test peers: go build",
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
                    _write_stamp(stamp, digest)
        except RuntimeError as exc:
            _failure = exc
            raise
        _built = paths
        return paths


def _write_stamp(stamp: Path, digest: str) -> None:
    tmp = stamp.with_name(f".stamp-{os.getpid()}")
    tmp.write_text(digest)
    os.replace(tmp, stamp)


def _locate_protos(protos: Sequence[str], proto_path: Sequence[Path]) -> list[Path]:
    """The file each proto name refers to: the first ``proto_path`` entry holding it."""
    found: list[Path] = []
    for proto in protos:
        hits = [d / proto for d in proto_path if (d / proto).is_file()]
        if not hits:
            where = ", ".join(str(d) for d in proto_path)
            raise RuntimeError(f"build_go_program: {proto} is in none of: {where}")
        found.append(hits[0])
    return found


def _build_program(src: Path, protos: list[str], proto_path: list[Path], name: str) -> Path:
    """build_go_program's work, under the module lock."""
    if not src.is_dir():
        raise RuntimeError(f"build_go_program: {src} is not a directory")
    sources = sorted(
        p for p in src.iterdir() if p.suffix == ".go" and not p.name.endswith("_test.go")
    )
    if not sources:
        raise RuntimeError(f"build_go_program: no .go files in {src}")
    tools = _find_tools()
    h = hashlib.sha256(f"{_PROGRAM_RECIPE}\0{name}\0{src}\0".encode())
    h.update("\0".join(str(d) for d in proto_path).encode() + b"\0\0")
    for label, path in [
        *((p.name, p) for p in sources),
        *zip(protos, _locate_protos(protos, proto_path), strict=True),
    ]:
        h.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    _hash_toolchain(h, tools)
    digest = h.hexdigest()

    home = PROGRAMS_DIR / name
    home.mkdir(parents=True, exist_ok=True)
    binary, stamp = home / name, home / "stamp"
    with _file_lock(home / ".build.lock"):
        current = stamp.read_text() if stamp.exists() else ""
        if current == digest and os.access(binary, os.X_OK):
            return binary
        stamp.unlink(missing_ok=True)
        gopath = home / "gopath"
        shutil.rmtree(gopath, ignore_errors=True)
        (gopath / "src").mkdir(parents=True)
        if protos:
            _protoc(tools, proto_path, protos, gopath / "src", f"{name}: protoc")
        out = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
        try:
            _run_tool(
                [tools.go, "build", "-o", str(out / name), "."],
                _go_env([gopath]),
                f"{name}: go build",
                cwd=src,
            )
            os.replace(out / name, binary)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        _write_stamp(stamp, digest)
    return binary


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
