"""Our generator's output for the bench service: a typed client and a generated plugin package.

``rpcplugin-gen`` turns ``conformance/v1`` into ``<scratch>/gen/benchgen`` (fresh each run); the
servicer, the one file a user writes, is :data:`SERVICER` (the same Echo and Count as
``plugins/service.py``, through the generated servicer base). When the generator is missing or
fails, the suites leave its rows out and the results say why.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import prep
from .context import Context

PACKAGE = "benchgen"
CLIENT = f"{PACKAGE}.conformance.v1.conformance_rpc:ConformanceClient"

SERVICER = '''\
"""The bench service through the generated servicer base (written by bench/generated.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn

from . import plugin
from .conformance.v1 import conformance_pb2, conformance_rpc


class Conformance(conformance_rpc.ConformanceServicer):
    async def echo(self, request: conformance_pb2.EchoRequest, /) -> conformance_pb2.EchoReply:
        return conformance_pb2.EchoReply(text=request.text, payload=request.payload, version=1)

    async def count(
        self, request: conformance_pb2.CountRequest, /
    ) -> AsyncIterator[conformance_pb2.CountReply]:
        filler = b"x" * request.payload_size
        for i in range(1, request.n + 1):
            yield conformance_pb2.CountReply(i=i, payload=filler)


def main() -> NoReturn:
    plugin.serve(conformance=Conformance())
'''


def prepare(ctx: Context) -> None:
    """Generate the package; set ``ctx.typed_client`` and ``ctx.generated_plugin``, or
    ``ctx.generator_problem``."""
    tool = Path(ctx.python).parent / "rpcplugin-gen"
    if not tool.exists():
        ctx.generator_problem = f"the generator has not landed ({tool} does not exist)"
        return
    root = ctx.scratch / "gen"  # per run: a smoke test may run beside a full run
    shutil.rmtree(root, ignore_errors=True)
    package = root / PACKAGE
    argv = [
        str(tool),
        "-q",
        "--no-servicer",
        "-o",
        str(package),
        "-I",
        str(prep.PROTO_ROOT),
        "--cookie-key",
        "RPCPLUGIN_BENCH",
        "--cookie-value",
        "bench-v1",
        str(prep.PROTO_ROOT / prep.CONFORMANCE),
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        ctx.generator_problem = f"rpcplugin-gen failed to run: {exc}"
        return
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        ctx.generator_problem = f"rpcplugin-gen failed (exit {done.returncode}): {' '.join(tail)}"
        return
    (package / "servicer.py").write_text(SERVICER)
    check = subprocess.run(
        [ctx.python, "-c", f"import {CLIENT.split(':')[0]}, {PACKAGE}.servicer"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check.returncode != 0:
        tail = check.stderr.strip().splitlines()[-1:]
        ctx.generator_problem = f"the generated package does not import: {' '.join(tail)}"
        return
    ctx.typed_client = (CLIENT, root)
    ctx.generated_plugin = package
