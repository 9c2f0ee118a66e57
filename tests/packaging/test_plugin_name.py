"""The plugin's default name (logs, debug mode's reattach JSON) is its package's under
``python -m pkg``, not ``__main__.py``; a host launching ``python -m pkg`` names it ``pkg``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rpcplugin.plugin_name import from_argv

from .conftest import host_env


def first_reattach_line(argv: list[str], tmp: Path, pythonpath: str | None = None) -> str:
    """Run a plugin in debug mode (RPCPLUGIN_DEBUG=1); the name its reattach JSON gives."""
    env = {**host_env(tmp), "RPCPLUGIN_DEBUG": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert line, err.decode()
    (name,) = json.loads(line)
    return str(name)


def test_python_m_names_the_plugin_after_its_package(
    conformance_package: Path, tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", conformance_package.name]
    name = first_reattach_line(argv, tmp_path, pythonpath=str(conformance_package.parent))
    assert name == "conformance_plugin"


def test_host_names_a_python_m_plugin_after_its_package() -> None:
    assert from_argv([sys.executable, "-m", "calculator"]) == "calculator"
    assert from_argv(["/opt/plugins/terraform-provider-x_v1.0.0"]) == "terraform-provider-x_v1.0.0"
    assert from_argv([sys.executable, "plugin.py"]) == Path(sys.executable).name
