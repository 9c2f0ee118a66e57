"""``python -m bench.pack_start``: start time of a packed plugin, per form.

Start time = exec to the handshake line on stdout (what a Go host waits for), for the calculator
example as ``python -m calculator``, the ``rpcplugin-gen pack`` launcher script, the ``--onefile``
shiv zipapp (first run, which unpacks, then warm runs) and, when the ``pex`` command is on PATH,
the same contents as a pex (for the choice of tool). Prints the median of ``--rounds`` runs each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "calculator"
COOKIE_KEY = "CALCULATOR_PLUGIN_COOKIE"


def _cookie(package: Path) -> str:
    text = (package / "plugin.py").read_text()
    return text.split("cookie_value=", 1)[1].split('"')[1]


def time_to_handshake(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from exec to the first stdout line; the plugin is then terminated."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - started
    proc.terminate()
    proc.wait(timeout=30)
    if not line.startswith(b"1|"):
        raise RuntimeError(f"{argv}: no handshake line (got {line!r})")
    return elapsed


def _pex(package: Path, out: Path) -> Path | None:
    pex = shutil.which("pex")
    if pex is None:
        return None
    import rpcplugin

    src = out / "pex-src"
    shutil.copytree(Path(rpcplugin.__file__).parent, src / "rpcplugin")
    shutil.copytree(package, src / package.name)
    target = out / "calculator.pex"
    subprocess.run(
        [pex, "grpcio", "protobuf", "cryptography", "-D", str(src), "-m", package.name,
         "-o", str(target)],
        check=True,
    )  # fmt: skip
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    gen = Path(os.path.dirname(sys.executable)) / "rpcplugin-gen"
    with tempfile.TemporaryDirectory(prefix="pack-start-") as tmp:
        out = Path(tmp)
        package = out / "calculator"
        package.mkdir()
        shutil.copy(EXAMPLE / "servicer.py", package / "servicer.py")
        subprocess.run([gen, "calculator.proto", "-o", package, "-q"], cwd=EXAMPLE, check=True)
        dist = out / "dist"
        for extra in ([], ["--onefile"]):
            subprocess.run(
                [gen, "pack", package, "-o", dist, *extra, "--name",
                 "onefile" if extra else "launcher"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        env = {**os.environ, COOKIE_KEY: _cookie(package), "SHIV_ROOT": str(out / "shiv")}
        env["PEX_ROOT"] = str(out / "pex-root")
        forms = {
            "python -m calculator": [sys.executable, "-m", "calculator"],
            "launcher script": [str(dist / "launcher")],
            "onefile (shiv)": [str(dist / "onefile")],
        }
        pex = _pex(package, out)
        if pex is not None:
            forms["pex (for comparison)"] = [str(pex)]
        pm_env = {**env, "PYTHONPATH": str(out)}
        first = {}
        for label, argv in forms.items():
            if label.startswith(("onefile", "pex")):
                first[label] = time_to_handshake(argv, env)
        print(f"start to handshake line, median of {args.rounds} (ms):")
        for label, argv in forms.items():
            use = pm_env if label.startswith("python -m") else env
            runs = [time_to_handshake(argv, use) for _ in range(args.rounds)]
            note = f"   (first run, unpacking: {first[label] * 1000:.0f})" if label in first else ""
            print(f"  {label:24} {statistics.median(runs) * 1000:7.0f}{note}")
        for label, argv in forms.items():
            if label != "python -m calculator":
                size = Path(argv[0]).stat().st_size
                print(f"  size of {label:16} {size / 1e6:7.2f} MB")


if __name__ == "__main__":
    main()
