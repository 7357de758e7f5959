"""The unit of archiving, and which of them a run covers. Pure.

A *window* is one UTC day of one measurement for one site in one retention
policy: the unit that is exported, written, uploaded, verified and then deleted
from InfluxDB. Its files sit in ``edge.archive.layout``'s hive directory.
Only complete days are archived (``archive_range``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from edge.archive.layout import MANIFEST_NAME, day_directory, part_name
from edge.core.errors import UsageError

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, order=True)
class Window:
    measurement: str
    day: date
    site_id: str
    retention_policy: str = ""
    table: str = ""  # its directory's name: the measurement, or <measurement>__<policy>

    @property
    def start_ns(self) -> int:
        return day_start_ns(self.day)

    @property
    def end_ns(self) -> int:
        return self.start_ns + NS_PER_DAY

    @property
    def directory(self) -> str:
        """Relative hive directory of this window, '/'-separated, no trailing '/'."""
        return day_directory(self.table or self.measurement, self.site_id, self.day)

    @property
    def delete_key(self) -> tuple[str, str, date]:
        """What one DELETE removes: this window in every retention policy."""
        return (self.measurement, self.site_id, self.day)

    @property
    def manifest_key(self) -> str:
        return f"{self.directory}/{MANIFEST_NAME}"

    def part_key(self, index: int) -> str:
        return f"{self.directory}/{part_name(index)}"

    def label(self) -> str:
        policy = f" rp={self.retention_policy}" if self.retention_policy else ""
        return f"{self.measurement} site_id={self.site_id or '-'} {self.day.isoformat()}{policy}"


def day_start_ns(day: date) -> int:
    return (day - date(1970, 1, 1)).days * NS_PER_DAY


def day_of_ns(ns: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ns // NS_PER_DAY)


def to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def floor_day(ns: int) -> int:
    return ns - ns % NS_PER_DAY


def archive_range(
    now: datetime,
    older_than_days: float,
    start: datetime | None,
    end: datetime | None,
    *,
    settle_minutes: float = 0.0,
    include_today: bool = False,
) -> tuple[int | None, int]:
    """[start, end) in ns covering whole, complete UTC days only.

    A window (a UTC day) is complete once its end is ``settle_minutes`` in the past;
    only complete windows are archived unless ``include_today`` lets in the ones
    still open (today's, and yesterday's within the settle time). The end is
    rounded down to a day boundary, so a window is never split between runs; an
    age of 0 means "up to the last complete window". The start is rounded down
    too (None: from the earliest point). Contradictory or empty ranges raise
    ``UsageError``.
    """
    if older_than_days < 0:
        raise UsageError(f"--older-than {older_than_days:g}: an age cannot be negative")
    if start is not None and end is not None and to_ns(start) >= to_ns(end):
        raise UsageError(f"--start {start.isoformat()} is not before --end {end.isoformat()}")
    now_ns = to_ns(now)
    complete_end = floor_day(now_ns - int(settle_minutes * 60 * 1_000_000_000))
    limit = floor_day(now_ns) + NS_PER_DAY if include_today else complete_end
    if end is not None:
        end_ns = floor_day(to_ns(end))
        if end_ns > limit:
            raise UsageError(
                f"--end {end.isoformat()} reaches days that are not complete yet (the last complete"
                f" day ends {_iso_day(complete_end)}, settle_minutes={settle_minutes:g}); pass"
                " --include-today to archive them anyway"
            )
    elif older_than_days > 0:
        end_ns = min(floor_day(to_ns(now - timedelta(days=older_than_days))), limit)
    else:
        end_ns = limit
    start_ns = None if start is None else floor_day(to_ns(start))
    if start_ns is not None and start_ns >= end_ns:
        raise UsageError(
            f"nothing to archive: no whole day between --start {_iso_day(start_ns)} and the end"
            f" {_iso_day(end_ns)} (exclusive; only complete days unless --include-today)"
        )
    return start_ns, end_ns


def _iso_day(ns: int) -> str:
    return day_of_ns(ns).isoformat()
