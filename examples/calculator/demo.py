"""`make demo`: generate the calculator plugin from its proto, launch it from a Python host with
AutoMTLS, call all four RPC kinds, and shut it down.

Everything it writes goes to ``demo-out/`` at the top of the repository.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def generate(out_parent: str) -> float:
    """Run the real CLI, as a user would; returns how long it took (ms)."""
    package = os.path.join(out_parent, "calculator")
    shutil.rmtree(out_parent, ignore_errors=True)
    os.makedirs(package)
    # the filled-in servicer is the user's file: generation must leave it alone
    shutil.copy(os.path.join(HERE, "servicer.py"), os.path.join(package, "servicer.py"))
    # run from the repository root with paths relative to it, so the output shows no machine path
    shown = os.path.relpath(package, ROOT) if package.startswith(ROOT + os.sep) else package
    proto = os.path.relpath(os.path.join(HERE, "calculator.proto"), ROOT)
    command = [
        os.path.join(os.path.dirname(sys.executable), "rpcplugin-gen"),
        "-I",
        os.path.relpath(HERE, ROOT),
        proto,
        "-o",
        shown,
    ]
    print(f"$ rpcplugin-gen -I {command[2]} {proto} -o {shown}/", flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    out_parent = os.path.join(ROOT, "demo-out")
    generate_ms = generate(out_parent)
    sys.path.insert(0, out_parent)
    sys.path.insert(0, HERE)
    import host  # the example host, importing the package generated just now

    print()
    print(
        "$ python examples/calculator/host.py   # launch the plugin, call it, close it", flush=True
    )
    report = asyncio.run(host.run(out_parent))
    report.timings_ms = {"generate (rpcplugin-gen)": generate_ms, **report.timings_ms}
    print(host.show(report))
    if report.results.get("exit status") != 0:
        sys.exit("the plugin did not exit cleanly")


if __name__ == "__main__":
    main()
