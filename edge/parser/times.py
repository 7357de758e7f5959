"""``header.timestamp`` -> nanoseconds since the epoch, daylight saving included. Pure.

The gateway writes local wall-clock time with no offset (``YYYY-MM-DD HH:MM:SS``),
read in the site's configured zone. Two hours a year that is not one instant:

- **fall-back** (the repeated hour, e.g. Europe/Berlin 2023-10-29 02:30 happens at
  00:30 and at 01:30 UTC): the occurrence whose UTC instant is nearer to the time
  the message was received (``received_at_ns``: the AMQP timestamp property when the
  gateway set one, else the Kafka record's timestamp; see :func:`received_at_ns`)
  wins. With no usable hint the earlier occurrence is used, and counted;
- **spring-forward** (the skipped hour, e.g. 2023-03-26 02:30 in Berlin): no
  instant has that local time, so there is no honest point to write: ParseError
  with reason ``nonexistent_local_time``.

A hint more than :data:`MAX_HINT_DISTANCE_NS` from both occurrences (a publisher
clock that is wrong, or a replay long after the fact) tells nothing: it is not used.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.parser.errors import ParseError

NS_PER_S = 1_000_000_000
MAX_HINT_DISTANCE_NS = 12 * 3600 * NS_PER_S

# How the bridge carries the AMQP timestamp property (edge/bridge/headers.py): whole
# seconds since the epoch, as decimal text. A value stands for any instant in that
# second, so its middle is the best single estimate.
AMQP_TIMESTAMP_HEADER = "amqp.timestamp"
_AMQP_RESOLUTION_MIDDLE_NS = NS_PER_S // 2
_KAFKA_TIMESTAMP_NOT_AVAILABLE = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE

# Outcomes of reading a local time.
UNAMBIGUOUS, RESOLVED_BY_HINT, EARLIER_OCCURRENCE = 0, 1, 2


@dataclass(frozen=True)
class TimeZones:
    """Site id -> time zone of its ``header.timestamp``; others use ``default``."""

    default: tzinfo = timezone.utc
    sites: Mapping[str, tzinfo] = field(default_factory=dict)

    @classmethod
    def from_names(cls, default: str = "UTC", sites: Mapping[str, str] | None = None) -> "TimeZones":
        try:
            return cls(
                default=_zone(default),
                sites={site: _zone(name) for site, name in (sites or {}).items()},
            )
        except ZoneInfoNotFoundError as exc:
            raise ValueError(f"unknown time zone: {exc}") from None

    def for_site(self, site_id: str) -> tzinfo:
        return self.sites.get(site_id, self.default)


def _zone(name: str) -> tzinfo:
    return timezone.utc if name.upper() == "UTC" else ZoneInfo(name)


UTC_ONLY = TimeZones()

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\Z")
_MIN_NS = 1  # never a point at time 0 (or before the epoch)
_MAX_NS = 9_223_372_036_854_775_806  # InfluxDB's largest timestamp (2262-04-11)


def timestamp_ns(value: object, zone: tzinfo, received_at_ns: int | None = None) -> tuple[int, int]:
    """(nanoseconds, outcome) for a ``header.timestamp``; outcome is UNAMBIGUOUS,
    RESOLVED_BY_HINT or EARLIER_OCCURRENCE. Raises ParseError."""
    if not isinstance(value, str) or not value:
        raise ParseError(f"header.timestamp missing or not a string: {value!r:.60}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ParseError(_not_a_moment(value, exc)) from None
    outcome = UNAMBIGUOUS
    if moment.tzinfo is not None:
        ns = _ns(moment, value)
    elif isinstance(zone, timezone):  # a fixed offset (UTC): one instant per wall time
        ns = _ns(moment.replace(tzinfo=zone), value)
    else:
        ns, outcome = _local_ns(moment, zone, value, received_at_ns)
    return ns, outcome


def _not_a_moment(value: str, exc: ValueError) -> str:
    """Why ``value`` is no moment: the wrong shape, or the right shape naming a day or
    time that does not exist (``2026-02-30``, ``25:00:00``): said apart."""
    if _SHAPE.match(value):
        return f"header.timestamp {value!r:.40} is not a real date and time: {exc}"
    return f"header.timestamp not 'YYYY-MM-DD HH:MM:SS': {value!r:.60}"


def _local_ns(moment: datetime, zone: tzinfo, value: str, received_at_ns: int | None) -> tuple[int, int]:
    first = moment.replace(tzinfo=zone, fold=0)
    second = moment.replace(tzinfo=zone, fold=1)
    before, after = first.utcoffset(), second.utcoffset()
    if before == after:
        return _ns(first, value), UNAMBIGUOUS
    # PEP 495: fold=0 takes the offset in force before the transition, fold=1 the
    # one after. The clock went back (repeated hour) if the earlier offset is larger.
    if before < after:
        raise ParseError(
            f"header.timestamp {value!r:.40} does not exist in {zone}: the clocks skipped it "
            f"(daylight saving starts)",
            reason="nonexistent_local_time",
        )
    earlier, later = _ns(first, value), _ns(second, value)
    if received_at_ns is None:
        return earlier, EARLIER_OCCURRENCE
    to_earlier, to_later = abs(received_at_ns - earlier), abs(received_at_ns - later)
    if min(to_earlier, to_later) > MAX_HINT_DISTANCE_NS:
        return earlier, EARLIER_OCCURRENCE
    return (later if to_later < to_earlier else earlier), RESOLVED_BY_HINT


def _ns(moment: datetime, value: str) -> int:
    delta = moment - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    if not _MIN_NS <= ns <= _MAX_NS:
        raise ParseError(f"header.timestamp out of range: {value!r:.60}")
    return ns


def received_at_ns(headers: Iterable[tuple[str, bytes]] | None, timestamp: tuple[int, int] | None = None) -> int | None:
    """When a raw Kafka record was received, for telling a repeated local hour apart:
    the AMQP timestamp property the bridge carried over (``amqp.timestamp``, whole
    seconds: the middle of that second), else the record's own timestamp
    (confluent-kafka's ``(type, milliseconds)``), else None."""
    for name, value in headers or ():
        if name == AMQP_TIMESTAMP_HEADER:
            try:
                seconds = int(value)
            except (TypeError, ValueError):
                break  # not a number: the record's own timestamp is the next best
            return seconds * NS_PER_S + _AMQP_RESOLUTION_MIDDLE_NS
    if timestamp is not None:
        kind, ms = timestamp
        if kind != _KAFKA_TIMESTAMP_NOT_AVAILABLE and ms > 0:
            return ms * 1_000_000
    return None
