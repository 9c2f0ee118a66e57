"""What every suite shares in one run: options, paths, the peers that could be installed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import prep
from .stats import Results

SUBJECTS = {
    "floor": "bare grpcio floor",
    "ours": "rpcplugin (ours)",
    "ours-typed": "ours, generated client",
    "ours-gen": "ours, generated plugin",
    "pyvider": "pyvider-rpcplugin 0.5.5",
}


@dataclass
class Counts:
    """Iteration counts; ``--smoke`` shrinks them all to seconds."""

    cold_rounds: int = 15
    rss_settle: float = 0.3
    call_rounds: int = 12
    unary_calls: int = 200
    inflight_calls: int = 640
    inflight: int = 64
    stream_msgs: int = 2000
    stream_size: int = 1024
    import_rounds: int = 15
    importtime_runs: int = 5
    gen_rounds_typical: int = 5
    gen_rounds_synth: int = 3
    synth_files: int = 40
    go_rounds: int = 6
    pool_rounds: int = 5
    pool_hash_calls: int = 96
    pool_conc: int = 8
    pool_work_ms: float = 20.0
    warmup: int = 1
    """Unrecorded rounds first (hosts, page cache and channels warm up)."""
    minimal: int = 0
    """1 (``--smoke``): each code path once, leaving out subjects that only repeat one."""

    @classmethod
    def smoke(cls) -> Counts:
        return cls(
            cold_rounds=1,
            rss_settle=0.05,
            call_rounds=1,
            unary_calls=20,
            inflight_calls=64,
            inflight=16,
            stream_msgs=50,
            import_rounds=1,
            importtime_runs=1,
            gen_rounds_typical=1,
            gen_rounds_synth=1,
            synth_files=2,
            go_rounds=1,
            pool_rounds=1,
            pool_hash_calls=8,
            pool_conc=4,
            pool_work_ms=2.0,
            warmup=0,
            minimal=1,
        )


@dataclass
class Context:
    counts: Counts
    pb_dir: Path
    socket_dir: Path
    scratch: Path
    results: Results = field(default_factory=Results)
    pyvider: prep.Venv | None = None
    bp2c: prep.Venv | None = None
    typed_client: tuple[str, Path] | None = None
    """``("module:Class", sys.path entry)`` of the generated client, once the generator exists."""
    generated_plugin: Path | None = None
    """A generated plugin package's directory (run as ``python -m``), once the generator exists."""
    generator_problem: str | None = None
    log: Path | None = None
    load_at_start: tuple[float, float, float] | None = None

    @property
    def python(self) -> str:
        return sys.executable

    def say(self, text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)
