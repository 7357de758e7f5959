"""What the parser does with one raw Kafka record: the one handler that the live
parse stage (``edge parse``) and ``edge replay`` both call, so the two cannot
answer differently.

- :meth:`RawHandler.outcome` parses the record's body in the configured site
  time zones, with the record's received time (the AMQP timestamp the bridge
  carried in the ``amqp.timestamp`` header, else the Kafka timestamp) to tell
  the two occurrences of a fall-back hour apart. A refused message keeps the
  parser's own DLQ reason (``parse_error``, or ``nonexistent_local_time`` for a
  spring-forward gap). Nothing is produced or counted yet, so a caller can look
  first (replay's ``--site``).
- :meth:`RawHandler.emit` counts the parser's metrics (``edge.parser.metrics``)
  and produces: every point to the parsed topic keyed by series, a refused
  message to the DLQ, a partly usable one as its points plus a ``partial``
  dead letter. Every output reports to the caller's ``on_delivery``.

The handler holds no Kafka client: it is given ``produce`` (a
``StageProducer.produce``) and ``dead_letter`` (a ``DeadLetters.send``), both
returning False when the caller is stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.parser import ParseError, ParseResult, TimeZones, parse, received_at_ns
from edge.parser.metrics import MESSAGES_IN, POINTS_OUT, count_error, count_result
from edge.parser.site_activity import site_of_raw, site_of_series_key

PARSED = "parsed"  # outcome kind of a fully usable message (partial and DLQ reasons otherwise)
PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A parsed message (``result``) or a refused one (``reason``, ``error``, and
    ``fallback``: why the compiled parser handed it to the pure one, if it did)."""

    result: ParseResult | None
    reason: str = ""
    error: str = ""
    fallback: str | None = None

    @property
    def outputs(self) -> int:
        """Records ``emit`` produces for it (what the live stage waits for)."""
        result = self.result
        if result is None:
            return 1
        return len(result.points) + (1 if result.problems else 0)

    @property
    def kind(self) -> str:
        """``parsed``, ``partial``, or the DLQ reason of a refused message."""
        if self.result is None:
            return self.reason
        return PARTIAL if self.result.problems else PARSED

    def site(self, record) -> str | None:
        """The message's site: from its points' series keys, else its JSON header."""
        if self.result is not None and self.result.points:
            return site_of_series_key(self.result.points[0][0])
        return site_of_raw(record.value())


class RawHandler:
    def __init__(self, zones: TimeZones, parsed_topic: str, produce: Callable[..., bool],
                 dead_letter: Callable[..., bool]):
        self.zones = zones
        self.parsed_topic = parsed_topic
        self.produce = produce
        self.dead_letter = dead_letter

    @classmethod
    def from_settings(cls, settings, produce: Callable[..., bool], dead_letter: Callable[..., bool]) -> RawHandler:
        """From a ``ParserSettings``: its site time zones and parsed topic."""
        zones = TimeZones.from_names(settings.parser.default_timezone, settings.parser.site_timezones)
        return cls(zones, settings.kafka.parsed_topic, produce, dead_letter)

    def outcome(self, record) -> Outcome:
        raw = record.value()
        try:
            result = parse(raw if raw is not None else b"", self.zones,
                           received_at_ns=received_at_ns(record.headers(), record.timestamp()))
        except ParseError as exc:
            return Outcome(None, exc.reason, str(exc), exc.fallback)
        return Outcome(result)

    def emit(self, record, outcome: Outcome, on_delivery: Callable | None) -> bool:
        """Count and produce; False when producing stopped part-way (the caller is
        stopping: the record is read again after the restart)."""
        MESSAGES_IN.inc()
        result = outcome.result
        if result is None:
            count_error(outcome.reason, outcome.fallback)
            return self.dead_letter(record, outcome.reason, outcome.error, on_delivery)
        count_result(result)
        produce = self.produce
        topic = self.parsed_topic
        for key, line in result.points:
            if not produce(topic, line, key=key, on_delivery=on_delivery):
                return False
        POINTS_OUT.inc(len(result.points))
        if result.problems:
            return self.dead_letter(record, PARTIAL, "; ".join(result.problems), on_delivery)
        return True
