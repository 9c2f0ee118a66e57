"""Fixtures of the CLI tests: the Go conformance plugin (built by tests/gopeers.py, with
grpc-go's reflection) and the calculator example generated into a temporary package."""

from __future__ import annotations

import pytest
from gopeers import go_plugin_binary

from .clikit import calculator_cookie, generate_calculator


@pytest.fixture(scope="session")
def goplugin() -> str:
    """The Go plugin's path."""
    return str(go_plugin_binary())


@pytest.fixture(scope="session")
def calculator(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """Options and command launching the generated Python calculator plugin:
    ``(*cookie_options, "--", python, "-m", "calculator")``."""
    parent = generate_calculator(tmp_path_factory.mktemp("calc"))
    import sys

    return (*calculator_cookie(parent), "--", sys.executable, "-m", "calculator")
