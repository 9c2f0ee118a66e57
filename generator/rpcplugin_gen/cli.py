"""``rpcplugin-gen PROTO... -o OUT``: generate a typed plugin package, keep the servicer in step.

One run: protoc parses every input once, in process; the output package is generated in memory;
nothing is written unless everything succeeded; ``OUT/servicer.py`` is written only if absent
and is otherwise only checked for drift (or appended to, with ``--add-stubs``).

Every option can also be set in ``[tool.rpcplugin-gen]`` of the project's ``pyproject.toml``
(:mod:`.project_settings`); flags override it. ``rpcplugin-gen pack`` (:mod:`.pack`) turns a
generated package into one executable for a Go host.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from google.protobuf.compiler import plugin_pb2

from rpcplugin.presets import PRESETS

from . import __version__, codegen, compiler, output, project_settings, scaffold
from .errors import GenerationError
from .plugin_settings import Overrides, parse_versions
from .servicer_placement import place


@dataclass(frozen=True, slots=True)
class Options:
    protos: Sequence[str]
    out: Path
    include: Sequence[str]
    overrides: Overrides
    servicer: bool = True
    add_stubs: bool = False
    check: bool = False
    force: bool = False
    quiet: bool = False
    host: str | None = None
    """A host preset's name: the generated versions must be ones that host speaks."""
    servicer_file: str | None = None
    """The user's servicer outside OUT (``None``: ``OUT/servicer.py``)."""


def run(options: Options) -> int:
    """Generate (or ``check``); return the exit status. Raises :class:`GenerationError`."""
    include = list(options.include) or ["."]
    compiled = compiler.compile_protos(options.protos, include)

    def locate(name: str) -> str:
        for directory in include:
            candidate = os.path.join(directory, name)
            if os.path.exists(candidate):
                return os.path.normpath(candidate)
        return name

    request = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=[f.name for f in compiled.descriptors.file if compiler.is_local(f.name)],
        proto_file=compiled.descriptors.file,
    )
    placement = place(options.out, options.servicer_file, scaffold.FILE_NAME)
    generated = codegen.generate(
        request, compiled.python, options.overrides, locate=locate, servicer_module=placement.module
    )
    if options.host is not None and generated.package is not None:
        speaks = PRESETS[options.host].versions
        wrong = [v for v in generated.package.versions if v not in speaks]
        if wrong:
            raise GenerationError(
                f"--host {options.host}: the protos give app protocol version "
                f"{', '.join(map(str, wrong))}, but {options.host} speaks "
                f"{', '.join(map(str, speaks))}; give --protocol-version or --versions "
                f"(or the proto option)"
            )
    change = output.plan(options.out, generated.files, force=options.force)

    servicer_path = placement.path
    inside = not placement.prefix
    servicer_write: str | None = None  # new content of a servicer outside OUT
    drift = scaffold.Drift()
    added: list[str] = []
    if generated.package is not None:
        if servicer_path.exists():
            source = placement.from_user(servicer_path.read_text(encoding="utf-8"))
            drift = scaffold.drift(source, generated.package)
            if options.add_stubs and drift:
                updated, added = scaffold.append_stubs(source, generated.package)
                if added:
                    if inside:
                        change.write.append(
                            codegen.OutputFile(scaffold.FILE_NAME, updated, "create-only")
                        )
                    else:
                        servicer_write = placement.to_user(updated)
                    drift = scaffold.drift(updated, generated.package)
        elif options.servicer:
            content = scaffold.render(generated.package)
            if inside:
                change.write.append(codegen.OutputFile(scaffold.FILE_NAME, content, "create-only"))
            else:
                servicer_write = placement.to_user(content)
            added.append(f"{servicer_path} (new; yours to edit)")

    def say(text: str) -> None:
        if not options.quiet:
            click.echo(text, err=True)

    if options.check:
        problems = [f"{options.out / f.path}: missing or out of date" for f in change.write]
        if servicer_write is not None:
            problems.append(f"{servicer_path}: missing or out of date")
        problems += [f"{options.out / p}: stale (no proto generates it)" for p in change.delete]
        problems += change.blocked
        problems += [f"{servicer_path}: {finding}" for finding in drift.findings]
        for problem in problems:
            click.echo(problem, err=True)
        if problems:
            click.echo(f"rpcplugin-gen --check: {options.out} is not up to date", err=True)
            return 1
        say(f"rpcplugin-gen --check: {options.out} is up to date")
        return 0

    output.apply(change)
    written = [f.path for f in change.write]
    if servicer_write is not None:
        try:
            servicer_path.write_text(servicer_write, encoding="utf-8")
        except OSError as exc:
            raise GenerationError(f"cannot write {servicer_path}: {exc.strerror or exc}") from exc
        written.append(str(servicer_path))
    say(
        f"rpcplugin-gen: {options.out}: {len(written)} written, {len(change.delete)} removed, "
        f"{change.unchanged} unchanged"
    )
    for line in added:
        say(f"  + {line}")
    if drift:
        click.echo(f"{servicer_path} has drifted from the protos:", err=True)
        for finding in drift.findings:
            click.echo(f"  {finding}", err=True)
    return 0


class _Command(click.Command):
    """The generate command, reading its defaults from ``[tool.rpcplugin-gen]``, with ``pack``
    as a sub-command (``rpcplugin-gen pack ...``) beside the positional PROTO arguments."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        command: click.Command = self
        if argv[:1] == ["pack"]:
            from . import pack

            command, argv, prog_name = pack.command, argv[1:], "rpcplugin-gen pack"
        if command is self:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        return command.main(argv, prog_name, complete_var, standalone_mode, **extra)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if not any(a in ("-h", "--help", "--version") for a in args):
            try:
                path = project_settings.find()
                if path is not None:
                    settings = project_settings.load(self, path)
                    extra["default_map"] = {**settings.defaults, **extra.get("default_map", {})}
            except GenerationError as exc:
                click.echo(f"rpcplugin-gen: error: {exc.message}", err=True)
                sys.exit(1)
        return super().make_context(info_name, args, parent, **extra)


@click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("protos", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output package directory (created if missing; must be importable as a package).",
)
@click.option(
    "-I",
    "--proto-path",
    "include",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Directory to search for imports (repeatable; default: the current directory).",
)
@click.option("--cookie-key", help="Magic cookie key (overrides the proto option).")
@click.option("--cookie-value", help="Magic cookie value (overrides the proto option).")
@click.option(
    "--protocol-version",
    type=click.IntRange(min=1),
    help="App protocol version of every service (overrides option and package suffix).",
)
@click.option(
    "--versions",
    "versions",
    multiple=True,
    metavar="[TARGET=]V,V...",
    help="Serve a service, proto file or package (TARGET; none: every service) as each of these "
    "app protocol versions, e.g. --versions tfplugin5.proto=5,6 (repeatable).",
)
@click.option("--name", help="Plugin name used in logs.")
@click.option(
    "--host",
    type=click.Choice(sorted(PRESETS)),
    help="A known host's cookie (and version, where it has one): docs/compatibility.md.",
)
@click.option(
    "--servicer/--no-servicer",
    default=True,
    show_default=True,
    help="Write OUT/servicer.py, the skeleton you edit, if it does not exist.",
)
@click.option(
    "--servicer-file",
    type=click.Path(dir_okay=False),
    help="Your servicer's file, if not OUT/servicer.py: in a package containing OUT "
    "(e.g. myplugin/servicer.py with -o myplugin/gen), so OUT can stay out of version control.",
)
@click.option("--add-stubs", is_flag=True, help="Append stubs for new RPCs to servicer.py.")
@click.option(
    "--check", is_flag=True, help="Write nothing; exit 1 if output is stale or servicer.py drifted."
)
@click.option("--force", is_flag=True, help="Overwrite hand-edited generated files.")
@click.option("-q", "--quiet", is_flag=True, help="Only print problems.")
@click.version_option(__version__, prog_name="rpcplugin-gen")
def main(
    protos: tuple[str, ...],
    out: Path,
    include: tuple[str, ...],
    cookie_key: str | None,
    cookie_value: str | None,
    protocol_version: int | None,
    versions: tuple[str, ...],
    name: str | None,
    host: str | None,
    servicer: bool,
    servicer_file: str | None,
    add_stubs: bool,
    check: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Generate a typed go-plugin plugin package from PROTO files.

    OUT gets, per proto: message modules (_pb2.py/.pyi) and, for services, a _rpc.py module
    with a Protocol, a servicer base, a typed client and a plugin binding; plugin.py and
    __main__.py for the package; and servicer.py, the skeleton you fill in (written once).

    Settings may live in [tool.rpcplugin-gen] of pyproject.toml (keys: the long option names,
    and protos); flags override them. `rpcplugin-gen pack --help`: ship a plugin as one file.
    """
    try:
        by_target = parse_versions(versions)
    except GenerationError as exc:
        click.echo(f"rpcplugin-gen: error: {exc.message}", err=True)
        sys.exit(1)
    if host is not None:
        known = PRESETS[host]
        cookie_key = cookie_key or known.handshake.cookie_key
        cookie_value = cookie_value or known.handshake.cookie_value
        if protocol_version is None and len(known.versions) == 1 and "" not in by_target:
            protocol_version = known.versions[0]
    options = Options(
        protos=protos,
        out=out,
        include=include,
        overrides=Overrides(cookie_key, cookie_value, protocol_version, name, by_target),
        servicer=servicer,
        add_stubs=add_stubs,
        check=check,
        force=force,
        quiet=quiet,
        host=host,
        servicer_file=servicer_file,
    )
    try:
        status = run(options)
    except GenerationError as exc:
        if exc.location is not None:
            click.echo(f"{exc.location}: error: {exc.message}", err=True)
        else:
            click.echo(f"rpcplugin-gen: error: {exc.message}", err=True)
        sys.exit(1)
    sys.exit(status)
