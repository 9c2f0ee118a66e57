"""Host-provided services (``option (rpcplugin.options.service) = {host_provided: true}``):
``XCallback`` instead of ``XPlugin``, left out of the plugin's ``serve()`` and skeleton, and
typed end to end. (Byte-for-byte output: the ``callback`` golden corpus; running it:
examples/callback.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import CALLBACK, HERE, copy_corpus, generate, mypy, run_cli

CASE = HERE / "typing_cases" / "check_callback.py"


def test_host_provided_services_get_a_callback_binding_and_stay_out_of_serve(
    tmp_path: Path,
) -> None:
    out = tmp_path / "deploy"
    generate(CALLBACK, out)
    rpc = (out / "deploy" / "v1" / "deploy_rpc.py").read_text()
    assert "SecretsCallback: _typing.Final = _servicer.Callback(" in rpc
    assert "SecretsPlugin" not in rpc and "DeployerPlugin" in rpc
    assert "SecretsClient" in rpc and "class SecretsServicer" in rpc  # both sides stay typed
    plugin = (out / "plugin.py").read_text()
    assert "deployer" in plugin and "secrets" not in plugin.lower()
    skeleton = (out / "servicer.py").read_text()
    assert "class Deployer(" in skeleton and "Secrets" not in skeleton


def test_generated_code_and_its_users_type_check(tmp_path: Path) -> None:
    generate(CALLBACK, tmp_path / "deploy")
    shutil.copy(CASE, tmp_path / CASE.name)
    errors = mypy([CASE.name, "deploy"], tmp_path)
    expected = {
        f"{CASE.name}:{n}"
        for n, line in enumerate(CASE.read_text().splitlines(), 1)
        if "# E: arg-type" in line
    }
    got = {":".join(e.split(":")[:2]) for e in errors}
    assert got == expected, "\n".join(errors)


def test_generated_modules_are_lint_clean(tmp_path: Path) -> None:
    generate(CALLBACK, tmp_path / "deploy")
    ours = [str(p) for p in (tmp_path / "deploy").rglob("*.py") if not p.name.endswith("_pb2.py")]
    ruff = [sys.executable, "-m", "ruff"]
    settings = ["--isolated", "--line-length", "100", "--target-version", "py311"]  # as golden's
    for args in (["format", "--check", "--diff"], ["check", "--select", "E,F,W,I,UP,B,SIM,RUF"]):
        done = subprocess.run([*ruff, args[0], *settings, *args[1:], *ours], capture_output=True)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_host_provided_belongs_to_a_service_not_a_file(tmp_path: Path) -> None:
    root, files = copy_corpus(CALLBACK, tmp_path / "protos")
    proto = root / files[0]
    text = proto.read_text().replace(
        'import "rpcplugin/protos/rpcplugin_options.proto";\n',
        'import "rpcplugin/protos/rpcplugin_options.proto";\n\n'
        "option (rpcplugin.options.plugin) = {host_provided: true};\n",
    )
    proto.write_text(text)
    result = run_cli(["-I", str(root), str(proto), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code != 0
    assert "host_provided is a per-service option" in result.stderr


def test_a_file_of_callbacks_only_has_no_plugin_module(tmp_path: Path) -> None:
    root, files = copy_corpus(CALLBACK, tmp_path / "protos")
    proto = root / files[0]
    text = proto.read_text()
    start = text.index("// Deployer is served by the plugin.")
    end = text.index("// Secrets is served by the host")
    proto.write_text(text[:start] + text[end:])
    out = tmp_path / "out"
    result = run_cli(["-I", str(root), str(proto), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    assert (out / "deploy" / "v1" / "deploy_rpc.py").exists()
    assert not (out / "plugin.py").exists() and not (out / "servicer.py").exists()
