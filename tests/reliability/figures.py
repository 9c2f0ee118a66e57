"""The suite's tally: what was tried, what was injected, what leaked, which calls failed.

Every test adds its figures with :func:`record`; ``conftest.py`` prints them as one line at the
end of the session::

    reliability: 4213 cases, 1187 faults injected, 0 leaks, 0 failed calls (of 15360)

Counts are sized by :func:`scaled`: the CI figure by default, the soak figure when
``RELIABILITY_SOAK=1`` (``python -m tests.reliability.soak`` / ``make soak`` set it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

SOAK = os.environ.get("RELIABILITY_SOAK", "") not in ("", "0")
"""Soak mode: longer runs, larger counts (never in CI)."""


def scaled(ci: int, soak: int) -> int:
    """``ci`` in a normal run, ``soak`` in soak mode."""
    return soak if SOAK else ci


@dataclass
class Area:
    cases: int = 0
    faults: int = 0
    leaks: int = 0
    calls: int = 0
    failed_calls: int = 0


@dataclass
class Tally:
    areas: dict[str, Area] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def total(self) -> Area:
        total = Area()
        for area in self.areas.values():
            total.cases += area.cases
            total.faults += area.faults
            total.leaks += area.leaks
            total.calls += area.calls
            total.failed_calls += area.failed_calls
        return total


TALLY = Tally()


def record(
    area: str,
    *,
    cases: int = 0,
    faults: int = 0,
    leaks: int = 0,
    calls: int = 0,
    failed_calls: int = 0,
) -> None:
    """Add figures under ``area`` (faults, fuzz, security, load; and issue 18's families:
    signals, lifecycle, settings, certificates)."""
    entry = TALLY.areas.setdefault(area, Area())
    entry.cases += cases
    entry.faults += faults
    entry.leaks += leaks
    entry.calls += calls
    entry.failed_calls += failed_calls


def leaks(area: str, problems: list[str]) -> list[str]:
    """Count a leak check's findings (each problem is one leak) and hand them back to assert."""
    record(area, leaks=len(problems))
    return problems


def summary_line(failed_tests: int = 0) -> str:
    total = TALLY.total()
    line = (
        f"reliability: {total.cases} cases, {total.faults} faults injected, {total.leaks} leaks, "
        f"{total.failed_calls} failed calls (of {total.calls})"
    )
    if failed_tests:
        line += f", {failed_tests} failed tests"
    return line


def detail_lines() -> list[str]:
    return [
        f"reliability[{name}]: {a.cases} cases, {a.faults} faults, {a.leaks} leaks, "
        f"{a.failed_calls}/{a.calls} failed calls"
        for name, a in sorted(TALLY.areas.items())
    ]


class Hang(Exception):
    """A call under :func:`time_limit` ran past its limit."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread if the body runs longer than ``seconds``.

    A Python-level endless loop is interrupted by the SIGALRM handler between two bytecodes,
    so a parser that hangs fails the test instead of stalling the suite.
    """

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"{what} still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Stopwatch:
    """``with Stopwatch() as t: ...; t.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start
