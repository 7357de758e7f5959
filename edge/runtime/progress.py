"""How a long command shows where it is: one progress bar, and ranges in words.

``progress_bar`` is tqdm on stderr when a person watches (a terminal), and a
disabled tqdm otherwise: the caller updates it the same way either way, and a
log file or a pipe never fills with bar redraws. ``span_text`` says a time range
the way an operator reads it ("on 2025-01-01", not "from 2025-01-01 to
2025-01-01").
"""

from __future__ import annotations

import sys
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
