"""Dead letters grouped into failures, with their state. Pure.

A failure is (stage, reason, source body bytes) (``edge.core.dlq.failure_id``).
Each replay of a window, and each redrive of a message that still fails, writes
another DLQ record for the same failure: a *copy*. Copies are kept (the DLQ is
append-only, and a copy is evidence: it says the failure happened again, and
when); they are collapsed here, into one row per failure with the number of
copies and when it was first and last seen.

State, from the resolution markers ``edge dlq redrive`` writes:

- ``open``: never redriven;
- ``resolved``: redriven, and no copy since;
- ``reopened``: a copy arrived after the latest redrive (dead-lettered after the
  redrive's moment, or carrying that redrive's ``redrive.time``): the cause is
  not fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from edge.core.dlq import REDRIVE_FAILURE, REDRIVE_ORIGIN, REDRIVE_TIME, failure_id, header_map, parse_time
from edge.ops.dlq_view import Letter, Selection, row

OPEN, RESOLVED, REOPENED = "open", "resolved", "reopened"
COLUMNS = ("at", "first seen", "last seen", "copies", "state", "stage", "reason", "site", "source", "error")

_NEVER = datetime.min.replace(tzinfo=timezone.utc)  # sorts undated records first


def is_marker(letter: Letter) -> bool:
    """A resolution marker, not a dead letter."""
    return REDRIVE_ORIGIN in header_map(letter.headers)


def failure_of(letter: Letter) -> str:
    d = letter.dead_letter
    return failure_id(d.stage, d.reason, letter.value)


def _seen(letter: Letter) -> datetime:
    return letter.dead_letter.when or _NEVER


def _redrive_time(letter: Letter) -> datetime | None:
    value = header_map(letter.headers).get(REDRIVE_TIME)
    return parse_time(value.decode("utf-8", "replace")) if value is not None else None


@dataclass
class Failure:
    """One failure: its copies (oldest first) and the moments it was redriven."""

    id: str
    copies: list[Letter] = field(default_factory=list)
    redriven: list[datetime] = field(default_factory=list)

    @property
    def latest(self) -> Letter:
        return self.copies[-1]

    @property
    def first_seen(self) -> datetime:
        return _seen(self.copies[0])

    @property
    def last_seen(self) -> datetime:
        return _seen(self.latest)

    @property
    def state(self) -> str:
        if not self.redriven:
            return OPEN
        last = max(self.redriven)
        for copy in self.copies:
            again = _redrive_time(copy)
            if _seen(copy) > last or (again is not None and again >= last):
                return REOPENED
        return RESOLVED

    @property
    def address(self) -> str:
        """The latest copy's address: what ``show`` prints and ``redrive`` sends."""
        return self.latest.address


def group_failures(letters: list[Letter]) -> list[Failure]:
    """The failures among ``letters`` (dead letters and markers, any order),
    sorted by when they were last seen, then by address."""
    failures: dict[str, Failure] = {}
    markers = []
    for letter in letters:
        if is_marker(letter):
            markers.append(letter)
            continue
        key = failure_of(letter)
        failures.setdefault(key, Failure(key)).copies.append(letter)
    for failure in failures.values():
        failure.copies.sort(key=lambda c: (_seen(c), c.partition, c.offset))
    for marker in markers:
        headers = header_map(marker.headers)
        failure = failures.get(headers.get(REDRIVE_FAILURE, b"").decode("utf-8", "replace"))
        when = _redrive_time(marker)
        if failure is not None and when is not None:  # a failure aged out of the DLQ: nothing to mark
            failure.redriven.append(when)
    return sorted(failures.values(), key=lambda f: (f.last_seen, f.latest.partition, f.latest.offset))


def select(failures: list[Failure], selection: Selection) -> list[Failure]:
    """The failures one of whose copies the selection picks."""
    return [f for f in failures if any(selection(c) for c in f.copies)]


def _moment(when: datetime) -> str:
    return "" if when == _NEVER else when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def failure_row(failure: Failure) -> tuple[str, ...]:
    """A table row: the latest copy's row with first/last seen, copies and state."""
    at, _time, *rest = row(failure.latest)
    return (at, _moment(failure.first_seen), _moment(failure.last_seen), str(len(failure.copies)),
            failure.state, *rest)
