"""``rpcplugin``'s public names stay what they say, however the package was imported."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import rpcplugin


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    # importing a submodule binds it as a package attribute: a lazily exported name that
    # equals a submodule's name would then be the module, not the function or class
    for module in pkgutil.iter_modules(rpcplugin.__path__):
        importlib.import_module(f"rpcplugin.{module.name}")
    for name in rpcplugin.__all__:
        value = getattr(rpcplugin, name)
        assert not isinstance(value, types.ModuleType), f"rpcplugin.{name} is a module"


def test_importing_the_runtime_loads_neither_crypto_nor_generator_dependencies() -> None:
    # (grpc itself imports the top-level grpc_tools package as a shim when it is installed)
    code = (
        "import sys, rpcplugin; rpcplugin.serve; rpcplugin.launch\n"
        "print(sorted(m for m in ('cryptography', 'jinja2', 'click', 'grpc_tools.protoc',"
        " 'mypy_protobuf', 'rpcplugin_gen') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
