"""A host that holds a Go plugin and a Python plugin until a signal ends it.

``python dying_host.py CONFIG_JSON`` launches the Go plugin of tests/go (``go``: its path) and
:mod:`relplugin` with ``rpcplugin.launch``, writes one JSON line to stdout::

    {"host_pid": P, "plugins": [GO_PID, PY_PID], "watchdog": W}

and then waits until it is killed. CONFIG keys: ``go`` (the Go plugin's executable, or null
for none), ``orderly`` (install ``rpcplugin.close_on_signals()`` first), ``thread`` (launch from
an event loop in a worker thread that ends after the launch, the case that would make
``PR_SET_PDEATHSIG`` kill the plugins early), ``kill_watchdog`` (SIGKILL the watchdog after the
launch, then launch another Python plugin).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import Any

import rpcplugin
from rpcplugin.host.watchdog import WATCHDOG

HERE = os.path.dirname(os.path.abspath(__file__))
REL_ARGV = [sys.executable, os.path.join(HERE, "relplugin.py")]
REL_HANDSHAKE = rpcplugin.Handshake("RELIABILITY_PLUGIN", "reliability-v1")
GO_HANDSHAKE = rpcplugin.Handshake("RPCPLUGIN_CONFORMANCE", "conformance-v1")


async def launch_all(config: dict[str, Any]) -> list[rpcplugin.PluginConnection]:
    openings = [
        rpcplugin.launch(
            REL_ARGV,
            handshake=REL_HANDSHAKE,
            versions=[1],
            env={"PYTHONDONTWRITEBYTECODE": "1", "REL_COOKIE_EXPECTED": "reliability-v1"},
            start_timeout=30.0,
        )
    ]
    if config.get("go"):
        openings.insert(
            0,
            rpcplugin.launch(
                [config["go"]],
                handshake=GO_HANDSHAKE,
                versions=[1],
                env={"GOPLUGIN_LOG_LEVEL": "off"},
                start_timeout=30.0,
            ),
        )
    return list(await asyncio.gather(*openings))


def pid_running(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def kinds(config: dict[str, Any]) -> list[str]:
    return ["go", "python"] if config.get("go") else ["python"]


async def main(config: dict[str, Any]) -> None:
    if config.get("orderly"):
        rpcplugin.close_on_signals()
    conns = await launch_all(config)
    names = kinds(config)
    if config.get("kill_watchdog"):
        # somebody SIGKILLs the watchdog; the next launch must start another one and tell it
        # about the plugins launched before
        old = WATCHDOG.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        while pid_running(old):
            await asyncio.sleep(0.01)
        conns += await launch_all({})
        names.append("python-after")
        assert WATCHDOG.pid not in (None, old)
    for conn in conns:
        await conn.ping()
    report = {
        "host_pid": os.getpid(),
        "plugins": [c.pid for c in conns],
        "kinds": names,
        "watchdog": WATCHDOG.pid,
    }
    print(json.dumps(report), flush=True)
    await asyncio.Event().wait()


def in_a_thread(config: dict[str, Any]) -> None:
    """Launch from a loop in a thread that then ends; the main thread waits for the signal."""
    pids: list[int | None] = []

    def run() -> None:
        async def launch() -> None:
            pids.extend(c.pid for c in await launch_all(config))

        loop = asyncio.new_event_loop()
        loop.run_until_complete(launch())  # the connections are left open on purpose

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    report = {
        "host_pid": os.getpid(),
        "plugins": pids,
        "kinds": kinds(config),
        "watchdog": WATCHDOG.pid,
    }
    print(json.dumps(report), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    CONFIG = json.loads(sys.argv[1])
    if CONFIG.get("thread"):
        in_a_thread(CONFIG)
    else:
        asyncio.run(main(CONFIG))
