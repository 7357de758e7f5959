"""Dead letters grouped into failures, with their state. Pure.

A failure is (stage, reason, source body bytes) (``edge.core.dlq.failure_id``).
A replay writes none of a failure the DLQ holds, and a redrive that fails the
same way again writes a body-less *repeat marker* (``dlq.repeat`` = the failure
id), but the live stages meeting the same bad input twice (a resend, a
re-delivery after a crash) write another record with the body: a *copy*. Both
are collapsed here, into one row per failure with the number of copies (records
with the body) and when it was first and last seen (a repeat counts as seen).

State, from the resolution markers ``edge dlq redrive`` writes:

- ``open``: never redriven;
- ``resolved``: redriven, and no copy since;
- ``reopened``: a copy or a repeat arrived after the latest redrive
  (dead-lettered after the redrive's moment, or carrying that redrive's
  ``redrive.time``): the cause is not fixed.

A failure whose every copy aged out of the DLQ while a repeat stayed is listed
with 0 copies; its body is still in the source topic (the repeat's
``dlq.source.*``), and redrive leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from edge.core.dlq import REDRIVE_FAILURE, REDRIVE_ORIGIN, REDRIVE_TIME, REPEAT, failure_id, header_map, parse_time
from edge.ops.dlq_view import Letter, Selection, row

OPEN, RESOLVED, REOPENED = "open", "resolved", "reopened"
COLUMNS = ("at", "first seen", "last seen", "copies", "state", "stage", "reason", "site", "source", "error")

_NEVER = datetime.min.replace(tzinfo=timezone.utc)  # sorts undated records first


def is_marker(letter: Letter) -> bool:
    """A resolution marker, not a dead letter."""
    return REDRIVE_ORIGIN in header_map(letter.headers)


def is_repeat(letter: Letter) -> bool:
    """A repeat marker: the failure happened again, its body is at another record."""
    return REPEAT in header_map(letter.headers)


def failure_of(letter: Letter) -> str:
    if is_repeat(letter):
        return header_map(letter.headers)[REPEAT].decode("utf-8", "replace")
    d = letter.dead_letter
    return failure_id(d.stage, d.reason, letter.value)


def _seen(letter: Letter) -> datetime:
    return letter.dead_letter.when or _NEVER


def _redrive_time(letter: Letter) -> datetime | None:
    value = header_map(letter.headers).get(REDRIVE_TIME)
    return parse_time(value.decode("utf-8", "replace")) if value is not None else None


@dataclass
class Failure:
    """One failure: its copies (records with the body, oldest first), its
    repeats (body-less, oldest first) and the moments it was redriven."""

    id: str
    copies: list[Letter] = field(default_factory=list)
    repeats: list[Letter] = field(default_factory=list)
    redriven: list[datetime] = field(default_factory=list)

    @property
    def records(self) -> list[Letter]:
        return self.copies + self.repeats

    @property
    def latest(self) -> Letter:
        """The latest copy (the latest repeat when no copy is left)."""
        return (self.copies or self.repeats)[-1]

    @property
    def first_seen(self) -> datetime:
        return min(map(_seen, self.records))

    @property
    def last_seen(self) -> datetime:
        return max(map(_seen, self.records))

    @property
    def state(self) -> str:
        if not self.redriven:
            return OPEN
        last = max(self.redriven)
        for copy in self.records:
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
        failure = failures.setdefault(key, Failure(key))
        (failure.repeats if is_repeat(letter) else failure.copies).append(letter)
    for failure in failures.values():
        failure.copies.sort(key=lambda c: (_seen(c), c.partition, c.offset))
        failure.repeats.sort(key=lambda c: (_seen(c), c.partition, c.offset))
    for marker in markers:
        headers = header_map(marker.headers)
        failure = failures.get(headers.get(REDRIVE_FAILURE, b"").decode("utf-8", "replace"))
        when = _redrive_time(marker)
        if failure is not None and when is not None:  # a failure aged out of the DLQ: nothing to mark
            failure.redriven.append(when)
    return sorted(failures.values(), key=lambda f: (f.last_seen, f.latest.partition, f.latest.offset))


def select(failures: list[Failure], selection: Selection) -> list[Failure]:
    """The failures one of whose records (copies or repeats) the selection picks."""
    return [f for f in failures if any(selection(c) for c in f.records)]


def _moment(when: datetime) -> str:
    return "" if when == _NEVER else when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def failure_row(failure: Failure) -> tuple[str, ...]:
    """A table row: the latest copy's row (its address holds the body) with
    first/last seen (repeats included), copies and state."""
    at, _time, *rest = row(failure.latest)
    return (at, _moment(failure.first_seen), _moment(failure.last_seen), str(len(failure.copies)),
            failure.state, *rest)
