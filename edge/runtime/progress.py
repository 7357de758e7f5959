"""How a long command shows where it is: one progress bar, and ranges in words.

``progress_bar`` is tqdm on stderr when a person watches (a terminal), and a
disabled tqdm otherwise: the caller updates it the same way either way, and a
log file or a pipe never fills with bar redraws. ``ProgressReport`` is that bar,
or, when nobody watches, a structured log line every few seconds with the rate
and the time left (a timer's journal, a CI log). ``span_text`` says a time range
the way an operator reads it ("on 2025-01-01", not "from 2025-01-01 to
2025-01-01").
"""

from __future__ import annotations

import sys
import time as clock
from datetime import UTC, date, datetime, time, timedelta

from tqdm import tqdm


def progress_bar(
    total: int | None, unit: str, desc: str, enabled: bool | None = None, smoothing: float = 0.3
) -> tqdm:
    """A bar on stderr; ``enabled`` None: only when stderr is a terminal.

    A disabled bar accepts ``update``, ``set_postfix`` and ``close`` and draws nothing.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(
        total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
        unit_scale=True, smoothing=smoothing, disable=not enabled,
    )


def want_bar(choice: str = "auto") -> bool:
    """``auto``: a bar when stderr is a terminal; ``bar`` / ``log`` force one way."""
    return sys.stderr.isatty() if choice == "auto" else choice == "bar"


class ProgressReport:
    """A bar (``bar`` true), else a log line ``event`` every ``every_s``, never both."""

    def __init__(self, total: int, *, unit: str, desc: str, bar: bool, log, event: str, every_s: float = 5.0):
        self.log = log
        self.event = event
        self.every_s = every_s
        self.total = total
        self.done = 0
        self._began = self._last_log = clock.monotonic()
        self.bar = progress_bar(total, unit, desc, enabled=bar, smoothing=0.1) if bar else None

    def update(self, done: int, **counts) -> None:
        """``done`` more units; ``counts`` are shown next to the bar, or logged with
        the rate and the time left."""
        self.done += done
        if self.bar is not None:
            self.bar.update(done)
            self.bar.set_postfix(counts, refresh=False)
            return
        now = clock.monotonic()
        if now - self._last_log >= self.every_s:
            self._last_log = now
            rate = self.done / (now - self._began)
            eta_s = round(max(0, self.total - self.done) / rate) if rate else None
            self.log.info(self.event, done=self.done, total=self.total, rate=round(rate), eta_s=eta_s, **counts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _midnight(moment: datetime) -> bool:
    return moment.astimezone(UTC).time() == time(0)


def span_text(start: date | datetime, end: date | datetime) -> str:
    """``[start, end)`` in words: whole UTC days by their dates (the last one
    included), other moments as given, the end excluded.

    ``2025-01-01 .. 2025-01-02`` -> "on 2025-01-01"; ``2025-01-01 .. 2025-01-04``
    -> "from 2025-01-01 through 2025-01-03"; otherwise "from <start> to <end>
    (end excluded)".
    """
    start = _as_moment(start)
    end = _as_moment(end)
    if _midnight(start) and _midnight(end) and end > start:
        first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(days=1)).date()
        if first == last:
            return f"on {first.isoformat()}"
        return f"from {first.isoformat()} through {last.isoformat()}"
    return f"from {_moment_text(start)} to {_moment_text(end)} (end excluded)"


def _as_moment(when: date | datetime) -> datetime:
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


def _moment_text(moment: datetime) -> str:
    if moment.utcoffset() == timedelta(0):
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return moment.isoformat()
