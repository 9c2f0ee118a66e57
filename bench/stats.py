"""Samples, rows and the numbers the table shows: median, p10–p90, ratio to a baseline."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (``q`` in 0..1) of ``values``; NaN when empty."""
    data = sorted(v for v in values if not math.isnan(v))
    if not data:
        return math.nan
    pos = (len(data) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


def rotate(items: Sequence[str], by: int) -> list[str]:
    """``items`` rotated left by ``by``: round r of an interleaved run starts with item r."""
    if not items:
        return []
    k = by % len(items)
    return [*items[k:], *items[:k]]


@dataclass
class Row:
    """One subject measured one way: its samples and what to compare it with.

    ``samples`` are in the display ``unit``. ``per_round`` holds one value per interleaved
    round (defaults to ``samples``); ratios pair it with the baseline's round by round, so
    drift that hit both sides in a round cancels out.
    """

    section: str
    measure: str
    subject: str
    unit: str
    samples: list[float] = field(default_factory=list)
    per_round: list[float] | None = None
    baseline: str | None = None
    higher_is_better: bool = False
    label: str = ""
    """How the subject is shown; defaults to the subject's name."""
    note: str = ""
    error: str | None = None

    @property
    def rounds(self) -> list[float]:
        return self.samples if self.per_round is None else self.per_round

    @property
    def median(self) -> float:
        return median(self.samples)

    @property
    def p10(self) -> float:
        return quantile(self.samples, 0.1)

    @property
    def p90(self) -> float:
        return quantile(self.samples, 0.9)


@dataclass(frozen=True)
class Ratio:
    """``subject / baseline``: the median of per-round ratios and their p10–p90."""

    median: float
    p10: float
    p90: float
    paired: bool


def ratio(row: Row, base: Row) -> Ratio | None:
    """Round-paired when both rows have the same number of rounds, else median over median."""
    a, b = row.rounds, base.rounds
    if not a or not b or row.error or base.error:
        return None
    if len(a) == len(b):
        pairs = [x / y for x, y in zip(a, b, strict=True) if y and not math.isnan(x / y)]
        if pairs:
            return Ratio(median(pairs), quantile(pairs, 0.1), quantile(pairs, 0.9), True)
    if not median(b):
        return None
    r = median(a) / median(b)
    return Ratio(r, r, r, False)


def difference(row: Row, base: Row) -> Ratio | None:
    """``subject - baseline``, round-paired like :func:`ratio` (used for import costs)."""
    a, b = row.rounds, base.rounds
    if not a or not b or row.error or base.error:
        return None
    if len(a) == len(b):
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        return Ratio(median(diffs), quantile(diffs, 0.1), quantile(diffs, 0.9), True)
    d = median(a) - median(b)
    return Ratio(d, d, d, False)


class Results:
    """Every row of a run, in the order they were added."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.notes: dict[str, list[str]] = {}

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)

    def find(self, section: str, measure: str, subject: str) -> Row | None:
        for row in self.rows:
            if (row.section, row.measure, row.subject) == (section, measure, subject):
                return row
        return None

    def sections(self) -> Iterator[str]:
        seen: list[str] = []
        for row in self.rows:
            if row.section not in seen:
                seen.append(row.section)
        for section in self.notes:
            if section not in seen:
                seen.append(section)
        yield from seen
