"""``rpcplugin-gen pack PACKAGE --name NAME``: a generated plugin package as one executable.

A Go host execs one file (and may check its SHA-256: go-plugin's ``SecureConfig``); Terraform
wants it named ``terraform-provider-NAME_vX.Y.Z``. Two forms:

- ``--python PY`` (the default form, with the running interpreter): a launcher script that runs
  ``PY -m PACKAGE`` with the package's parent directory on ``PYTHONPATH``. Small and fast to
  start; the interpreter (a venv with ``rpcplugin`` installed) must be on the target machine.
- ``--onefile``: a self-contained zipapp built with shiv: the package, the runtime it was
  generated against (the installed ``rpcplugin``, copied as installed), and the runtime's
  dependencies (grpcio, protobuf, cryptography) installed by pip as wheels for *this*
  interpreter's platform. Needs only the same ``pythonX.Y`` on the target; shiv unpacks it into
  ``~/.shiv`` (``SHIV_ROOT``) on the first run and starts from there afterwards.

Both print the file's SHA-256, the value for the host's ``SecureConfig``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from .errors import GenerationError

_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_ENTRY_MODULE = "_rpcplugin_pack_entry"
_SHEBANG = f"/usr/bin/env python{sys.version_info.major}.{sys.version_info.minor}"
"""The zipapp's default interpreter: this one's version, the ABI of the wheels pip picked."""
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def sha256(path: Path) -> str:
    """The hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class _Target:
    """A generated package inside its top-level package (itself, unless it is a sub-package)."""

    top: Path
    module: str
    """What ``python -m`` runs: ``pkg`` or ``myplugin.gen``."""


def _package(path: Path) -> _Target:
    package = path.resolve()
    if not (package / "__main__.py").is_file() or not (package / "plugin.py").is_file():
        raise GenerationError(
            f"{path}: not a generated plugin package (no __main__.py and plugin.py); "
            "run rpcplugin-gen PROTO -o DIR first"
        )
    top = package
    while (top.parent / "__init__.py").is_file():  # a sub-package ships with its parents
        top = top.parent
    parts = package.relative_to(top.parent).parts
    if not all(part.isidentifier() for part in parts):
        raise GenerationError(f"{path}: {'.'.join(parts)!r} is not an importable package name")
    return _Target(top, ".".join(parts))


def write_launcher(package: _Target, target: Path, python: str) -> None:
    """A POSIX shell launcher running ``python -m package`` from the package's parent."""
    text = (
        "#!/bin/sh\n"
        f"# Written by rpcplugin-gen pack: runs the go-plugin plugin {package.module}.\n"
        f"PYTHONPATH={shlex.quote(str(package.top.parent))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python)} -m {package.module} "$@"\n'
    )
    target.write_text(text, encoding="utf-8")
    target.chmod(0o755)


def _runtime_requirements() -> list[str]:
    """The installed runtime's own dependencies (no extras)."""
    try:
        requires = importlib.metadata.requires("rpcplugin") or []
    except importlib.metadata.PackageNotFoundError:
        raise GenerationError(
            "the rpcplugin runtime is not installed as a distribution here; install it "
            "(pip install rpcplugin) before packing"
        ) from None
    return [r for r in requires if "extra ==" not in r]


def _runtime_dir() -> Path:
    import rpcplugin

    return Path(rpcplugin.__file__).resolve().parent


def _shiv() -> list[str]:
    found = shutil.which("shiv", path=os.path.dirname(sys.executable)) or shutil.which("shiv")
    if found is None:
        raise GenerationError("--onefile needs shiv: pip install 'rpcplugin-gen[pack]' (or shiv)")
    return [found]


def write_onefile(
    package: _Target,
    target: Path,
    python: str,
    requirements: list[str],
    pip_args: list[str],
) -> None:
    """A shiv zipapp holding the package, the runtime and its dependencies."""
    with tempfile.TemporaryDirectory(prefix="rpcplugin-pack-") as tmp:
        site = Path(tmp) / "site-packages"
        site.mkdir()
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site)]
        pip += ["--only-binary", ":all:", *pip_args, *_runtime_requirements(), *requirements]
        done = subprocess.run(pip, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GenerationError(
                "pip could not install the plugin's dependencies:\n" + done.stderr.strip()
            )
        shutil.copytree(_runtime_dir(), site / "rpcplugin", ignore=_IGNORE)
        shutil.copytree(package.top, site / package.top.name, ignore=_IGNORE)
        (site / f"{_ENTRY_MODULE}.py").write_text(
            '"""Entry point of a packed plugin: ``python -m`` its package."""\n\n'
            "import runpy\n\n\n"
            "def main() -> None:\n"
            f"    runpy.run_module({package.module!r}, run_name='__main__')\n",
            encoding="utf-8",
        )
        argv = [
            *_shiv(),
            "--site-packages",
            str(site),
            "--entry-point",
            f"{_ENTRY_MODULE}:main",
            "--python",
            python,
            "--output-file",
            str(target),
            "--reproducible",
            "--no-modify",
            "--compressed",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GenerationError(f"shiv failed:\n{done.stdout}{done.stderr}".strip())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("package", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--name",
    help="File name of the executable, e.g. terraform-provider-example_v0.1.0 "
    "(default: the package's name).",
)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Directory the executable is written to.",
)
@click.option(
    "--onefile",
    is_flag=True,
    help="One self-contained file (a shiv zipapp with the runtime and grpcio) instead of a "
    "launcher script.",
)
@click.option(
    "--python",
    "python",
    help="Interpreter: the launcher's (default: this one, "
    "so use a venv's bin/python), or the zipapp's shebang (default: /usr/bin/env pythonX.Y, "
    "this interpreter's version, which the bundled native wheels are built for).",
)
@click.option(
    "-r",
    "--requirement",
    "requirements",
    multiple=True,
    help="--onefile: an extra requirement your servicer imports (repeatable).",
)
@click.option(
    "--pip-arg",
    "pip_args",
    multiple=True,
    help="--onefile: an argument for pip, e.g. --pip-arg=--platform=manylinux2014_aarch64.",
)
def command(
    package: Path,
    name: str | None,
    out_dir: Path,
    onefile: bool,
    python: str | None,
    requirements: tuple[str, ...],
    pip_args: tuple[str, ...],
) -> None:
    """Turn the generated plugin PACKAGE (with your servicer) into one executable a Go host
    runs, and print its SHA-256 (for the host's SecureConfig)."""
    try:
        pkg = _package(package)
        file_name = name or pkg.top.name
        if not _NAME_OK.fullmatch(file_name):
            raise GenerationError(f"--name {file_name!r}: not a usable file name")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / file_name
        if onefile:
            write_onefile(pkg, target, python or _SHEBANG, [*requirements], [*pip_args])
        else:
            write_launcher(pkg, target, python or sys.executable)
    except GenerationError as exc:
        click.echo(f"rpcplugin-gen pack: error: {exc.message}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"rpcplugin-gen pack: error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{sha256(target)}  {target}")
