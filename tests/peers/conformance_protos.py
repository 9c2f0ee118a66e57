"""Compile ``tests/protos/conformance`` into importable ``_pb2`` modules, once.

The modules land in ``<out>/conformance/v1/conformance_pb2.py`` (and ``v2``), so with ``<out>`` on
``sys.path`` (or ``PYTHONPATH``) they import as ``conformance.v1.conformance_pb2``. Only messages
are generated: the conformance plugin and the tests write their gRPC handlers and stubs by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent.parent / "protos"
PROTOS = ("conformance/v1/conformance.proto", "conformance/v2/conformance.proto")


def digest() -> str:
    """A short hash of the proto sources (names a cache directory)."""
    h = hashlib.sha256()
    for name in PROTOS:
        h.update(name.encode() + b"\0" + (PROTO_ROOT / name).read_bytes())
    return h.hexdigest()[:16]


def compile_protos(out: Path) -> Path:
    """Generate the ``_pb2`` modules into ``out`` (made atomically; reused when present)."""
    marker = out / "conformance" / "v2" / "conformance_pb2.py"
    if marker.exists():
        return out
    from grpc_tools import protoc  # the generator's dependency; plugins never import it

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pb-", dir=out.parent))
    try:
        include = str(Path(protoc.__file__).parent / "_proto")
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={staging}", *PROTOS]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {PROTOS} (see stderr)")
        try:
            os.replace(staging, out)
        except OSError:  # someone else finished first
            if not marker.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def default_dir() -> Path:
    """A per-user cache directory keyed by the protos' content."""
    return Path(tempfile.gettempdir()) / f"rpcplugin-conformance-pb-{os.getuid()}-{digest()}"


def ensure_importable() -> Path:
    """Make ``conformance.v1.conformance_pb2`` importable, compiling into the cache if needed."""
    try:
        import conformance.v1.conformance_pb2

        return Path(conformance.v1.conformance_pb2.__file__).parents[2]
    except ImportError:
        pass
    out = compile_protos(default_dir())
    sys.path.insert(0, str(out))
    return out
