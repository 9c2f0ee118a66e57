"""A pool of launched plugins against one plugin, and the pool's picker against gRPC's own
``round_robin`` channel (issue 16), interleaved in one run.

Subjects, all in the ``ours`` worker, all called through ``rpcplugin.calls.Caller`` (the path
generated clients take), TLS off:

- *one plugin*: ``rpcplugin.launch`` of ``plugins/pooled.py`` (unix socket) — the baseline;
- *pool of 1, 2, 4*: ``rpcplugin.launch_pool`` of the same plugin (unix sockets);
- *pool of 2, TCP* and *round_robin over it*: a pool whose members listen on TCP, called
  through the pool's picker, and through one ``connect_balanced`` channel (gRPC's
  ``round_robin`` with health checking) over the same two member processes: the only setup
  where both balancing approaches can run (grpcio takes one unix socket per target; AutoMTLS
  pins a certificate per member).

Measures: *CPU-bound throughput*, ``pool_conc`` callers making ``pool_hash_calls`` Hash calls of
~``pool_work_ms`` of SHA-256 chaining each (calibrated in the worker), calls/s; and *unary p50*,
sequential Echo calls as in the per-call suite. Ratios are per round against one plugin (and the
round_robin channel against the picker over the same members).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .context import Context
from .driver import WorkerError
from .runtime_suites import workers
from .stats import Row, median, rotate

POOL = "Pool of launched plugins (issue 16; TLS off, called through the generated-client path)"


@dataclass(frozen=True)
class _Subject:
    key: str
    label: str
    kind: str
    size: int = 1
    transport: str = "unix"
    of: str = ""


def subjects(ctx: Context) -> list[_Subject]:
    found = [
        _Subject("one", "one plugin (launch)", "single"),
        _Subject("pool1", "pool of 1", "pool", 1),
        _Subject("pool2", "pool of 2", "pool", 2),
        _Subject("pool4", "pool of 4", "pool", 4),
        _Subject("pool2tcp", "pool of 2, TCP (picker)", "pool", 2, "tcp"),
        _Subject("rr2tcp", "round_robin channel over the same 2", "rr", 2, "tcp", "pool2tcp"),
    ]
    if ctx.counts.minimal:
        found = [s for s in found if s.key != "pool1"]
    return found


def pool_suite(ctx: Context) -> None:
    """CPU-bound throughput with 1, 2 and 4 members, and unary p50, against one plugin."""
    counts = ctx.counts
    chosen = subjects(ctx)
    by_key = {s.key: s for s in chosen}
    rate: dict[str, list[float]] = {s.key: [] for s in chosen}
    unary: dict[str, list[float]] = {s.key: [] for s in chosen}
    unary_rounds: dict[str, list[float]] = {s.key: [] for s in chosen}
    errors: dict[str, str] = {}
    iterations = 0
    with workers(ctx, ["ours"]) as pool:
        worker = pool["ours"]
        try:
            iterations = int(
                worker.call("pool_calibrate", ms=counts.pool_work_ms, timeout=60)["iterations"]
            )
        except WorkerError as exc:
            errors = {s.key: str(exc) for s in chosen}
        for s in chosen:
            if s.key in errors or (s.of and s.of in errors):
                errors.setdefault(s.key, f"{s.of} did not start")
                continue
            try:
                worker.call(
                    "pool_open",
                    sid=s.key,
                    kind=s.kind,
                    size=s.size,
                    transport=s.transport,
                    of=s.of,
                    timeout=120,
                )
            except WorkerError as exc:
                errors[s.key] = str(exc)
        keys = [s.key for s in chosen if s.key not in errors]
        for r in range(-counts.warmup, counts.pool_rounds):  # warm-up rounds are r < 0
            ctx.say(f"pool round {r + 1}/{counts.pool_rounds}")
            for key in rotate(keys, r):
                if key in errors:
                    continue
                try:
                    hashed = worker.call(
                        "pool_hash",
                        sid=key,
                        n=counts.pool_hash_calls,
                        conc=counts.pool_conc,
                        iterations=iterations,
                        timeout=300,
                    )
                    lat = worker.call("pool_unary", sid=key, n=counts.unary_calls)["lat"]
                except WorkerError as exc:
                    errors[key] = str(exc)
                    continue
                if r < 0:
                    continue
                rate[key].append(counts.pool_hash_calls / hashed["seconds"])
                us = [x * 1e6 for x in lat]
                unary[key] += us
                unary_rounds[key].append(median(us))
        for key in reversed(keys):  # round_robin channels before the pools they ride on
            with contextlib.suppress(WorkerError):
                worker.call("pool_close", sid=key, timeout=60)

    def base_of(key: str) -> str | None:
        if key == "one":
            return None
        return "pool2tcp" if key == "rr2tcp" else "one"

    res = ctx.results
    work = f"Hash ~{counts.pool_work_ms:g} ms CPU each"
    for s in chosen:
        res.add(
            Row(
                POOL,
                f"CPU-bound throughput ({work}, {counts.pool_conc} callers)",
                s.key,
                "calls/s",
                rate[s.key],
                baseline=base_of(s.key),
                higher_is_better=True,
                label=by_key[s.key].label,
                error=errors.get(s.key),
            )
        )
    for s in chosen:
        res.add(
            Row(
                POOL,
                f"unary p50 ({counts.unary_calls} sequential Echo per round)",
                s.key,
                "µs",
                unary[s.key],
                per_round=unary_rounds[s.key],
                baseline=base_of(s.key),
                label=by_key[s.key].label,
                error=errors.get(s.key),
                note="unary p50: p10–p90 over all calls; ratio of per-round medians",
            )
        )
    ctx.results.note(
        POOL,
        f"Hash: {iterations} chained SHA-256 rounds over 32 bytes (calibrated to "
        f"~{counts.pool_work_ms:g} ms of CPU in the host worker), on the plugin's event loop "
        "thread. A pool cannot go faster than the cores the machine has free: on 2 shared "
        "cores, 4 members compete with each other and with the host.",
    )
