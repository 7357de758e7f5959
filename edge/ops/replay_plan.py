"""What ``edge replay`` reads: per partition, from which offset to which. Pure.

The raw records wanted are those whose Kafka timestamp is in ``[from, to)``,
``to`` being ``--to`` or the moment the replay started. Per partition:

- start: the first offset at or after ``from`` (``offsets_for_times``), never
  below the log start; none (the broker's -1) means nothing to read there;
- end: the offset at ``to`` when given, else the log end captured at start.

A partition is finished at the log end (partition EOF), or at the first record
at or past ``end`` whose timestamp is at or past ``to``. Records between that do
not fall in ``[from, to)`` are skipped. Both bounds are checked per record, so a
broker that answers ``offsets_for_times`` or the log end imprecisely (tansu, the
development broker, answers offset 0 and under-reports the end) still gives the
exact records, only read from further back.
"""

from __future__ import annotations

from dataclasses import dataclass

OFFSET_END = -1  # librdkafka: "no such offset", i.e. past the end


@dataclass(frozen=True)
class Window:
    from_ms: int
    to_ms: int

    def wanted(self, ts_ms: int) -> bool:
        return self.from_ms <= ts_ms < self.to_ms


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int  # first offset to read; OFFSET_END: nothing
    end: int  # offsets from here on end the partition once past the window

    @property
    def empty(self) -> bool:
        return self.start == OFFSET_END

    @property
    def estimate(self) -> int:
        """Records between start and end (what a progress bar can expect)."""
        return 0 if self.empty else max(0, self.end - self.start)

    def finished_at(self, offset: int, ts_ms: int, window: Window) -> bool:
        return offset >= self.end and ts_ms >= window.to_ms


def plan(
    starts: dict[int, int],
    watermarks: dict[int, tuple[int, int]],
    ends_at_to: dict[int, int] | None = None,
) -> dict[int, PartitionRange]:
    """Ranges per partition from the broker's answers at start.

    ``starts``: offsets_for_times(from); ``watermarks``: (low, high) per
    partition; ``ends_at_to``: offsets_for_times(to) when --to was given.
    """
    ranges = {}
    for partition, (low, high) in sorted(watermarks.items()):
        start = starts.get(partition, OFFSET_END)
        if start != OFFSET_END:
            start = max(start, low)
        end = high
        if ends_at_to is not None and ends_at_to.get(partition, OFFSET_END) != OFFSET_END:
            end = ends_at_to[partition]
        ranges[partition] = PartitionRange(partition, start, end)
    return ranges


@dataclass
class Progress:
    """Counts of a replay so far, and what they say about the rest."""

    expected: int
    messages: int = 0
    points: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # outside the window or another site
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.rate:
            return None
        return max(0.0, self.expected - self.messages - self.skipped) / self.rate

    def line(self) -> str:
        points_rate = self.points / self.seconds if self.seconds > 0 else 0.0
        return (
            f"messages={self.messages} points={self.points} dead_lettered={self.dead_lettered}"
            f" skipped={self.skipped} seconds={self.seconds:.1f} rate={self.rate:.0f} msgs/s"
            f" ({points_rate:.0f} points/s)"
        )
