"""What ``edge replay`` reads, said in words before it runs, and what it did. Pure.

The raw records wanted are those whose Kafka timestamp is in ``[from, to)``,
``to`` being ``--to`` or the moment the replay started. Per partition the replay
reads the offsets ``[start, end)`` and nothing else:

- start: the broker's first offset at or after ``from`` (``offsets_for_times``),
  never below the log start; the log start when a record before it is already in
  the window (an imprecise answer must not lose records);
- end: the broker's offset at ``to`` when ``--to`` is given and the record there
  is really at or past ``to``; else the true log end (read up to the partition
  EOF: tansu, the development broker, under-reports the high watermark and
  answers every ``offsets_for_times`` with offset 0).

Records in ``[start, end)`` outside the window are read and skipped, and so are
other sites' messages under ``--site``; the plan's count is what the run reads,
and the run's summary accounts for every one of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

OFFSET_END = -1  # librdkafka: "no such offset", i.e. past the end


@dataclass(frozen=True)
class Window:
    from_ms: int
    to_ms: int

    def wanted(self, ts_ms: int) -> bool:
        return self.from_ms <= ts_ms < self.to_ms


# ------------------------------------------------------------------ bounds


def start_offset(answer: int, low: int, log_end: int) -> int:
    """The broker's offset for ``from`` within the log (none: nothing to read)."""
    if answer == OFFSET_END:
        return log_end
    return min(max(answer, low), log_end)


def end_offset(answer: int | None, start: int, log_end: int) -> int:
    """The broker's offset for ``to`` (None: no ``--to``) within [start, log end]."""
    if answer is None or answer == OFFSET_END:
        return log_end
    return min(max(answer, start), log_end)


def checked_start(start: int, low: int, before: list[tuple[int, int]], window: Window) -> int:
    """``start``, or the log start when a record just before it (``before``:
    (offset, timestamp) pairs read from ``start - 1``) is already at or past ``from``."""
    if any(offset < start and ts >= window.from_ms for offset, ts in before):
        return low
    return start


def checked_end(end: int, log_end: int, at_end: list[tuple[int, int]], window: Window) -> int:
    """``end``, or the log end when the record at ``end`` is still before ``to``."""
    if any(offset >= end and ts < window.to_ms for offset, ts in at_end[:1]):
        return log_end
    return end


# ------------------------------------------------------------------ the plan


def stamp(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PartitionPlan:
    partition: int
    start: int  # first offset read
    end: int  # past the last offset read
    first_ms: int | None = None  # timestamps of the records at start and end - 1
    last_ms: int | None = None

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)

    def line(self, window: Window) -> str:
        if not self.count:
            return f"  partition {self.partition}: nothing in range"
        text = (f"  partition {self.partition}: offsets {self.start}..{self.end - 1} ({self.count} messages),"
                f" first {stamp(self.first_ms)}, last {stamp(self.last_ms)}")
        if (self.first_ms is not None and self.first_ms < window.from_ms) or (
                self.last_ms is not None and self.last_ms >= window.to_ms):
            text += " (starts or ends outside the window: those records are read and skipped)"
        return text


@dataclass(frozen=True)
class Plan:
    source: str
    target: str
    dlq: str
    window: Window
    partitions: list[PartitionPlan]
    sites: tuple[str, ...] = ()
    settings_toml: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(p.count for p in self.partitions)

    def lines(self) -> list[str]:
        out = [
            f"replay plan: {self.total} messages from {self.source} into {self.target} (refused ones to {self.dlq})",
            f"  window: Kafka timestamps from {stamp(self.window.from_ms)} to {stamp(self.window.to_ms)} (exclusive)",
            "  sites: " + (", ".join(self.sites) + " only (other sites' messages are read and skipped)"
                           if self.sites else "all"),
        ]
        out += [p.line(self.window) for p in self.partitions]
        out.append(f"  total: {self.total} messages to read")
        out.append("parser settings used (the live parser's, from the same configuration):")
        out += ["  " + line if line else "" for line in self.settings_toml]
        return out


# ------------------------------------------------------------------ what the run did


@dataclass
class Progress:
    """Counts of a replay so far: every message read is in exactly one of
    ``outcomes`` (parsed, partial, or a DLQ reason), ``outside_window`` or
    ``other_sites``."""

    expected: int
    outcomes: Counter = field(default_factory=Counter)
    points: int = 0
    outside_window: int = 0
    other_sites: int = 0
    seconds: float = 0.0
    known: int = 0  # dead-lettered ones whose failure the DLQ already held: not written again

    @property
    def messages(self) -> int:
        """Messages handled (parsed or dead-lettered)."""
        return sum(self.outcomes.values())

    @property
    def read(self) -> int:
        return self.messages + self.outside_window + self.other_sites

    @property
    def dead_lettered(self) -> int:
        return sum(n for kind, n in self.outcomes.items() if kind != "parsed")

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict:
        """Flat counts for a log line."""
        return {"read": self.read, "planned": self.expected, "points": self.points,
                "outside_window": self.outside_window, "other_sites": self.other_sites, "dlq_known": self.known,
                **{kind: n for kind, n in sorted(self.outcomes.items())}, "seconds": round(self.seconds, 2)}

    def summary(self, state: str) -> list[str]:
        points_rate = self.points / self.seconds if self.seconds > 0 else 0.0
        parsed = self.outcomes.get("parsed", 0)
        partial = self.outcomes.get("partial", 0)
        refused = sorted((kind, n) for kind, n in self.outcomes.items() if kind not in ("parsed", "partial"))
        return [
            f"replay {state}: read {self.read} of {self.expected} planned messages in {self.seconds:.1f} s"
            f" ({self.rate:.0f} msgs/s, {points_rate:.0f} points/s)",
            f"  parsed: {parsed} messages; {self.points} points produced",
            f"  partial: {partial} (usable points produced, the message to the DLQ as partial)",
            "  dead-lettered: " + (", ".join(f"{kind} {n}" for kind, n in refused) if refused else "0")
            + (f"; {self.known} already in the DLQ, not added again" if self.known else ""),
            f"  skipped: {self.outside_window} outside the window, {self.other_sites} of other sites",
        ]
