"""``python -m bench`` (``make bench``): run the suite, write the markdown results table.

python -m bench                       # everything, ~4 minutes on 2 cores
python -m bench --smoke               # tiny counts, no peers: checks the code still runs
python -m bench --only cold,calls     # some suites
python -m bench --cold-rounds 30      # more samples (see --help for every count)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import generated, prep, report
from .context import Context, Counts
from .gen_suite import gen_suite
from .go_suite import go_suite
from .import_suite import import_suite
from .pool_suite import pool_suite
from .runtime_suites import calls_suite, cold_suite
from .start_suite import start_suite

SUITES: dict[str, Callable[[Context], None]] = {
    "imports": import_suite,
    "cold": cold_suite,
    "start": start_suite,
    "calls": calls_suite,
    "gen": gen_suite,
    "go": go_suite,
    "pool": pool_suite,
}
DEFAULT_OUT = prep.BENCH / "results" / "latest.md"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="rpcplugin benchmarks (see bench/README.md)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny counts and no peers (pyvider, betterproto2, Go): seconds, "
        "not minutes; results go to the scratch dir unless --out is given",
    )
    parser.add_argument(
        "--only",
        default=",".join(SUITES),
        help=f"comma-separated suites to run (default: all of {','.join(SUITES)})",
    )
    parser.add_argument("--out", type=Path, help=f"results file (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not pip install the peers into bench/out/ (leave them out)",
    )
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="leave out pyvider-rpcplugin and betterproto2-compiler",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    for field in dataclasses.fields(Counts):
        default = field.default
        assert isinstance(default, int | float)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=type(default),
            default=None,
            help=f"(default {default})",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    counts = Counts.smoke() if args.smoke else Counts()
    for field in dataclasses.fields(Counts):
        value = getattr(args, field.name)
        if value is not None:
            setattr(counts, field.name, value)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        print(
            f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}",
            file=sys.stderr,
        )
        return 2
    if args.smoke and "go" in chosen and args.only == ",".join(SUITES):
        chosen.remove("go")  # building the Go peers can take longer than a smoke run may

    prep.bytecode_cache()
    scratch = prep.run_dir()
    ctx = Context(
        counts=counts,
        pb_dir=prep.compile_messages(),
        socket_dir=scratch / "sockets",
        scratch=scratch,
        log=scratch / "workers.log",
    )
    ctx.socket_dir.mkdir()
    ctx.load_at_start = os.getloadavg()
    started = time.monotonic()
    try:
        if not (args.smoke or args.no_peers):
            install = not args.no_install
            if {"cold", "calls", "imports"} & set(chosen):
                ctx.pyvider = prep.peer_venv("pyvider", prep.PYVIDER, install=install)
            if "gen" in chosen:
                ctx.bp2c = prep.peer_venv("bp2c", prep.BP2C, install=install)
        generated.prepare(ctx)
        if ctx.generator_problem:
            ctx.say(f"generated client and plugin left out: {ctx.generator_problem}")
        for name in chosen:
            ctx.say(f"suite {name}")
            began = time.monotonic()
            SUITES[name](ctx)
            ctx.say(f"suite {name} took {time.monotonic() - began:.1f} s")
        out = args.out or (scratch / "results.md" if args.smoke else DEFAULT_OUT)
        report.write(ctx, out)
        text = out.read_text()
        print(text)
        ctx.say(f"wrote {out} in {time.monotonic() - started:.0f} s")
        failed = [r for r in ctx.results.rows if r.error]
        for row in failed:
            ctx.say(f"failed: {row.section} / {row.measure} / {row.subject}: {row.error}")
        return 1 if args.smoke and failed else 0
    finally:
        if args.keep:
            ctx.say(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
