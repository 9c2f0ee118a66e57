"""guard_stdout() pauses the cyclic garbage collector until the handshake line is out, and only
a pause it made itself is ended: a plugin that turned the collector off keeps it off."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json, os, sys
from rpcplugin.plugin import stdout_guard
if sys.argv[1] == "off":
    gc.disable()
seen = {}
stdout_guard.guard_stdout()
seen["during"] = gc.isenabled()
frozen = gc.get_freeze_count()
getattr(stdout_guard, sys.argv[2])(*sys.argv[3:])
seen["after"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count() > frozen
print(json.dumps(seen), file=sys.stderr)
"""


def run(*args: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def test_paused_until_the_handshake_line_then_frozen_and_resumed() -> None:
    assert run("on", "write_handshake", "1|1|unix|/x|grpc|\n") == {
        "during": False,
        "after": True,
        "frozen": True,
    }


def test_debug_mode_resumes_when_stdout_is_released() -> None:
    assert run("on", "release_stdout") == {"during": False, "after": True, "frozen": True}


def test_a_collector_the_plugin_turned_off_stays_off() -> None:
    assert run("off", "write_handshake", "1|1|unix|/x|grpc|\n") == {
        "during": False,
        "after": False,
        "frozen": False,
    }
