"""Start-up, memory, teardown and per-call figures: the floor, our runtime and pyvider, interleaved.

Each implementation's host runs in its own long-lived worker (:mod:`bench.worker`). Round r
visits the implementations in an order rotated by r (ABC, BCA, CAB, ...), so that drift on this
shared machine hits every side alike, and ratios are taken round by round.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from .context import Context
from .driver import Worker, WorkerError
from .stats import Row, median, rotate

COLD = "Cold start (exec → handshake → first Echo answered; unix socket)"
MEMORY = "Plugin memory and teardown"
CALLS = "Per call (one plugin, unix socket, TLS off)"
TLS = "TLS paths (our host and plugin, unix socket)"
MiB = 1024 * 1024


@contextlib.contextmanager
def workers(ctx: Context, impls: list[str]) -> Iterator[dict[str, Worker]]:
    """One worker per implementation in ``impls`` (``floor``, ``ours``, ``ours-gen``,
    ``pyvider``)."""
    started: dict[str, Worker] = {}
    log = open(ctx.log, "ab") if ctx.log else None  # noqa: SIM115 - closed below
    try:
        for impl in impls:
            python: str = ctx.python
            extra_env: dict[str, str] = {}
            extra_path: list[str] = []
            kind = {"floor": "bare", "ours-gen": "ours"}.get(impl, impl)
            if impl == "pyvider":
                assert ctx.pyvider is not None and ctx.pyvider.python is not None
                python = str(ctx.pyvider.python)
            if impl == "ours" and ctx.typed_client is not None:
                extra_env["BENCH_TYPED_CLIENT"] = ctx.typed_client[0]
                extra_env["BENCH_TYPED_PB"] = ctx.typed_client[0].rsplit(".", 1)[0] + (
                    ".conformance_pb2"
                )
                extra_path.append(str(ctx.typed_client[1]))
            if impl == "ours-gen":
                assert ctx.generated_plugin is not None
                package = ctx.generated_plugin
                extra_env["BENCH_PLUGIN_ARGV"] = json.dumps([ctx.python, "-m", package.name])
                extra_env["BENCH_PLUGIN_CWD"] = str(package.parent)
            started[impl] = Worker(
                kind,
                python,
                pb_dir=ctx.pb_dir,
                socket_dir=ctx.socket_dir,
                extra_env=extra_env,
                extra_path=extra_path,
                stderr=log,
            )
        yield started
    finally:
        for worker in started.values():
            worker.close()
        if log is not None:
            log.close()


def runtime_impls(ctx: Context) -> list[str]:
    impls = ["floor", "ours"]
    if ctx.generated_plugin is not None:
        impls.append("ours-gen")
    if ctx.pyvider is not None and ctx.pyvider.python is not None:
        impls.append("pyvider")
    return impls


@dataclass
class _Cold:
    start: list[float]
    cpu: list[float]
    line: list[float]
    rss: list[float]
    close: list[float]
    not_gone: int = 0
    error: str | None = None


def cold_suite(ctx: Context) -> None:
    """exec → first answer, plugin CPU, idle RSS and close → reaped, TLS off and on."""
    counts = ctx.counts
    impls = runtime_impls(ctx)
    data = {(i, t): _Cold([], [], [], [], []) for i in impls for t in ("off", "on")}
    with workers(ctx, impls) as pool:
        for r in range(-ctx.counts.warmup, counts.cold_rounds):  # warm-up rounds are r < 0
            ctx.say(f"cold start round {r + 1}/{counts.cold_rounds}")
            for tls in ("off", "on"):
                for impl in rotate(impls, r):
                    cell = data[impl, tls]
                    if cell.error:
                        continue
                    worker = pool[impl]
                    try:
                        opened = worker.call("open", sid="cold", tls=tls, timeout=60)
                        rss = worker.call("rss", sid="cold", settle=counts.rss_settle)
                        closed = worker.call("close", sid="cold", timeout=30)
                    except WorkerError as exc:
                        cell.error = str(exc)
                        with contextlib.suppress(WorkerError):
                            worker.call("close", sid="cold", timeout=30)
                        continue
                    if r < 0:
                        continue
                    cell.start.append(opened["start"] * 1000)
                    cell.cpu.append(opened["cpu"] * 1000)
                    if opened.get("line") is not None:
                        cell.line.append(opened["line"] * 1000)
                    cell.rss.append(rss["rss"] / MiB)
                    cell.close.append(closed["close"] * 1000)
                    cell.not_gone += 0 if closed["gone"] else 1
    res = ctx.results
    for tls in ("off", "on"):
        label = f"TLS {tls}"
        for impl in impls:
            cell = data[impl, tls]
            base = None if impl == "floor" else "floor"
            res.add(
                Row(
                    COLD,
                    f"exec → first answer, {label}",
                    impl,
                    "ms",
                    cell.start,
                    baseline=base,
                    error=cell.error,
                )
            )
        for impl in impls:
            cell = data[impl, tls]
            res.add(
                Row(
                    COLD,
                    f"plugin CPU until first answer, {label}",
                    impl,
                    "ms",
                    cell.cpu,
                    baseline=None if impl == "floor" else "floor",
                    error=cell.error,
                    note="plugin CPU: all its threads (/proc/PID/task/*/schedstat)",
                )
            )
        for impl in impls:
            cell = data[impl, tls]
            if not cell.line:
                continue
            res.add(
                Row(
                    COLD,
                    f"exec → handshake line read (+dial), {label}",
                    impl,
                    "ms",
                    cell.line,
                    baseline=None if impl == "floor" else "floor",
                    error=cell.error,
                    note="floor: line read; ours: line parsed and channel made",
                )
            )
    for tls in ("off", "on"):
        for impl in impls:
            cell = data[impl, tls]
            res.add(
                Row(
                    MEMORY,
                    f"plugin RSS idle, TLS {tls}",
                    impl,
                    "MiB",
                    cell.rss,
                    baseline=None if impl == "floor" else "floor",
                    error=cell.error,
                    note=f"VmRSS {ctx.counts.rss_settle:g} s after the first answer",
                )
            )
    for tls in ("off", "on"):
        for impl in impls:
            cell = data[impl, tls]
            note = {
                "floor": "close channel, SIGTERM, wait",
                "ours": "PluginConnection.close(): Shutdown RPC, close, wait, reap",
                "ours-gen": "PluginConnection.close()",
                "pyvider": "shutdown_plugin() + close(), as its `async with` exit",
            }[impl]
            if cell.not_gone:
                note += f"; process still there after close in {cell.not_gone} runs"
            res.add(
                Row(
                    MEMORY,
                    f"close → process reaped, TLS {tls}",
                    impl,
                    "ms",
                    cell.close,
                    baseline=None if impl == "floor" else "floor",
                    error=cell.error,
                    note=note,
                )
            )


@dataclass(frozen=True)
class _Subject:
    key: str
    impl: str
    sid: str
    client: str = "raw"


def _cpu_us(reply: dict[str, float], count: int) -> float:
    """Host + plugin CPU per call (or per message), in µs."""
    return (reply["cpu_host"] + reply["cpu_plugin"]) / count * 1e6


def calls_suite(ctx: Context) -> None:
    """Unary p50, 64 in-flight throughput and server-stream throughput, each also as CPU per
    call (host + plugin); then the same through the TLS paths."""
    counts = ctx.counts
    impls = [i for i in runtime_impls(ctx) if i != "ours-gen"]
    plain = [_Subject(i, i, "off") for i in impls]
    if ctx.typed_client is not None:
        plain.insert(2, _Subject("ours-typed", "ours", "off", "typed"))
    tls = [
        _Subject("grpcio TLS both sides", "ours", "on"),
        _Subject("OpenSSL relay in the plugin (Go host path)", "ours", "plugin-relay"),
        _Subject("OpenSSL relay in the host (Go plugin path)", "ours", "host-relay"),
    ]
    if counts.minimal:
        tls = tls[1:2]  # the relay path; TLS itself is exercised by the cold-start suite
    subjects = plain + tls
    ops = ("unary", "inflight", "stream")
    unary: dict[str, list[float]] = {s.key: [] for s in subjects}
    rate: dict[tuple[str, str], list[float]] = {(o, s.key): [] for o in ops for s in subjects}
    cpu: dict[tuple[str, str], list[float]] = {(o, s.key): [] for o in ops for s in subjects}
    errors: dict[str, str] = {}
    with workers(ctx, impls) as pool:
        opened: set[tuple[str, str]] = set()
        for s in subjects:
            if (s.impl, s.sid) in opened:
                continue
            try:
                pool[s.impl].call("open", sid=s.sid, tls=s.sid, timeout=60)
                opened.add((s.impl, s.sid))
            except WorkerError as exc:
                errors[s.key] = str(exc)
        for s in subjects:
            if (s.impl, s.sid) not in opened:
                errors.setdefault(s.key, f"{s.impl} plugin for {s.sid} did not start")
        keys = [s.key for s in subjects if s.key not in errors]
        by_key = {s.key: s for s in subjects}
        args = {
            "unary": {"n": counts.unary_calls},
            "inflight": {"n": counts.inflight_calls, "conc": counts.inflight},
            "stream": {"n": counts.stream_msgs, "size": counts.stream_size},
        }
        for r in range(-ctx.counts.warmup, counts.call_rounds):  # warm-up rounds are r < 0
            ctx.say(f"per-call round {r + 1}/{counts.call_rounds}")
            for op in ops:
                for key in rotate(keys, r):
                    if key in errors:
                        continue
                    s = by_key[key]
                    try:
                        reply = pool[s.impl].call(op, sid=s.sid, client=s.client, **args[op])
                    except WorkerError as exc:
                        errors[key] = str(exc)
                        continue
                    if r < 0:
                        continue
                    n = int(args[op]["n"])
                    cpu[op, key].append(_cpu_us(reply, n))
                    if op == "unary":
                        us = [x * 1e6 for x in reply["lat"]]
                        unary[key] += us
                        rate[op, key].append(median(us))
                    else:
                        rate[op, key].append(n / reply["seconds"] / 1000)
        for impl, sid in opened:
            with contextlib.suppress(WorkerError):
                pool[impl].call("close", sid=sid, timeout=30)

    res = ctx.results
    size = counts.stream_size
    names = {
        "unary": f"unary p50 ({counts.unary_calls} sequential Echo per round)",
        "inflight": f"{counts.inflight} in flight ({counts.inflight_calls} Echo per round)",
        "stream": f"server stream, {size} B messages ({counts.stream_msgs} per round)",
    }
    cpu_names = {
        "unary": "CPU per sequential Echo, host + plugin",
        "inflight": f"CPU per Echo, {counts.inflight} in flight, host + plugin",
        "stream": f"CPU per streamed {size} B message, host + plugin",
    }
    for section, group, base_key in ((CALLS, plain, "floor"), (TLS, tls, tls[0].key)):

        def base_of(key: str, base_key: str = base_key) -> str | None:
            if key == "ours-typed":
                return "ours"
            return None if key == base_key else base_key

        for op in ops:
            for s in group:
                if op == "unary":
                    row = Row(
                        section,
                        names[op],
                        s.key,
                        "µs",
                        unary[s.key],
                        per_round=rate[op, s.key],
                        baseline=base_of(s.key),
                        error=errors.get(s.key),
                        note="unary p50: p10–p90 over all calls; ratio of per-round medians",
                    )
                else:
                    unit = "k calls/s" if op == "inflight" else "k msgs/s"
                    row = Row(
                        section,
                        names[op],
                        s.key,
                        unit,
                        rate[op, s.key],
                        baseline=base_of(s.key),
                        higher_is_better=True,
                        error=errors.get(s.key),
                    )
                res.add(row)
        for op in ops:
            for s in group:
                res.add(
                    Row(
                        section,
                        cpu_names[op],
                        s.key,
                        "µs",
                        cpu[op, s.key],
                        baseline=base_of(s.key),
                        error=errors.get(s.key),
                        note="CPU: all threads of the host worker and of the plugin "
                        "(/proc/PID/task/*/schedstat) during the timed part",
                    )
                )
    if "ours" in unary:
        ctx.results.note(
            CALLS,
            "Every subject answers with the same hand-written grpcio handlers; the host side "
            "uses a raw grpc.aio stub on the channel the runtime made (the generated client "
            "row uses the typed client on that same channel). CPU per call is steadier than "
            "throughput when other processes share the machine.",
        )
