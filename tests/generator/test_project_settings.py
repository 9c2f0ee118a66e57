"""``[tool.rpcplugin-gen]`` in pyproject.toml: settings-only runs, flags over the file, errors
that name the key and the file, and the ``--host`` presets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rpcplugin_gen import project_settings

from .conftest import PROTOS, run_cli

TF = PROTOS / "tfplugin"
TF_COOKIE = (
    'cookie_key="TF_PLUGIN_MAGIC_COOKIE"',
    'cookie_value="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"',
)
SETTINGS = """\
[project]
name = "terraform-provider-example"

[tool.rpcplugin-gen]
protos = ["protos/tfplugin6.proto"]
proto-path = ["protos"]
out = "tfprovider"
host = "terraform"
name = "terraform-provider-example"
"""


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(project_settings.CONFIG_ENV, raising=False)


def project(tmp_path: Path, settings: str = SETTINGS) -> Path:
    """A provider project: its protos and a pyproject.toml holding the generator settings."""
    root = tmp_path / "provider"
    shutil.copytree(TF, root / "protos")
    (root / "pyproject.toml").write_text(settings)
    return root


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_settings_only_run_matches_the_flag_driven_run_byte_for_byte(tmp_path: Path) -> None:
    flags_out = tmp_path / "by-flags" / "tfprovider"
    args = ["-I", str(TF), str(TF / "tfplugin6.proto"), "-o", str(flags_out), "-q"]
    args += ["--host", "terraform", "--name", "terraform-provider-example"]
    assert run_cli(args, cwd=tmp_path).exit_code == 0

    root = project(tmp_path)
    result = run_cli([], cwd=root)  # no arguments at all
    assert result.exit_code == 0, result.stderr
    by_settings = files(root / "tfprovider")
    assert by_settings == files(flags_out)
    plugin = by_settings["plugin.py"].decode()
    assert all(part in plugin for part in TF_COOKIE)
    assert "VERSIONS: _typing.Final = (6,)" in plugin  # tfplugin6
    assert '"terraform-provider-example"' in plugin

    # --check uses the settings too, and sees a stale file
    assert run_cli(["--check"], cwd=root).exit_code == 0
    (root / "tfprovider" / "plugin.py").write_text("# edited\n")
    result = run_cli(["--check", "-q"], cwd=root)
    assert result.exit_code == 1 and "plugin.py" in result.stderr


def test_a_subdirectory_finds_the_project_settings(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "src").mkdir()
    assert run_cli(["-q"], cwd=root / "src").exit_code == 0
    assert (root / "tfprovider" / "plugin.py").is_file()  # paths relative to the file


def test_flags_override_the_file(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = run_cli(["--name", "other", "--cookie-value", "from-the-flag", "-q"], cwd=root)
    assert result.exit_code == 0, result.stderr
    plugin = (root / "tfprovider" / "plugin.py").read_text()
    assert '"other"' in plugin and 'cookie_value="from-the-flag"' in plugin
    assert TF_COOKIE[0] in plugin  # the key still comes from the preset


def test_handshake_may_be_a_sub_table(tmp_path: Path) -> None:
    settings = SETTINGS.replace('host = "terraform"\n', "") + (
        '\n[tool.rpcplugin-gen.handshake]\ncookie-key = "EXAMPLE_COOKIE"\n'
        'cookie-value = "example"\nprotocol-version = 5\n'
    )
    root = project(tmp_path, settings)
    assert run_cli(["-q"], cwd=root).exit_code == 0
    plugin = (root / "tfprovider" / "plugin.py").read_text()
    assert 'cookie_key="EXAMPLE_COOKIE"' in plugin and "(5,)" in plugin


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('out = "tfprovider"', 'outdir = "x"', "unknown key 'outdir'"),
        ('host = "terraform"', 'protocol-version = "6"', "'protocol-version' must be an integer"),
        ('protos = ["protos/tfplugin6.proto"]', 'protos = "protos/tfplugin6.proto"',
         "'protos' must be a list of strings"),
        ('host = "terraform"', "check = true", "unknown key 'check'"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key_and_the_file(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in SETTINGS
    root = project(tmp_path, SETTINGS.replace(old, new))
    result = run_cli([], cwd=root)
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert f"{root / 'pyproject.toml'}: [tool.rpcplugin-gen]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "tfprovider").exists() and not (root / "x").exists()


def test_presets_fill_cookie_and_check_versions(tmp_path: Path) -> None:
    base = ["-I", str(TF), str(TF / "tfplugin6.proto"), "-q"]
    result = run_cli([*base, "-o", str(tmp_path / "v"), "--host", "vault"])
    assert result.exit_code == 1
    assert "--host vault" in result.stderr and "speaks 3, 4, 5" in result.stderr
    result = run_cli(
        [*base, "-o", str(tmp_path / "v"), "--host", "vault", "--protocol-version", "5"]
    )
    assert result.exit_code == 0, result.stderr
    plugin = (tmp_path / "v" / "plugin.py").read_text()
    assert 'cookie_key="VAULT_BACKEND_PLUGIN"' in plugin and "(5,)" in plugin
    result = run_cli([*base, "-o", str(tmp_path / "n"), "--host", "nomad"])
    assert result.exit_code == 0, result.stderr  # nomad has one version: the preset sets it
    assert "(1,)" in (tmp_path / "n" / "plugin.py").read_text()
    result = run_cli([*base, "-o", str(tmp_path / "x"), "--host", "packer"])
    assert result.exit_code == 2 and "packer" in result.stderr
