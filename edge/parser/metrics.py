"""Prometheus counters of the parser's work on raw messages (``edge_parser_*``).

Counted by ``edge.parser.handler.RawHandler``, the one per-message handler the
live parse stage and ``edge replay`` share, so both count the same things (the
parser itself stays free of clients). The live stage's own gauges (in flight,
lag, commits) and the per-site activity (``edge.parser.site_activity``) are not
here: replay does not count those.
"""

from __future__ import annotations

from prometheus_client import Counter

from edge.parser.errors import ParseResult

MESSAGES_IN = Counter("edge_parser_messages", "Raw messages consumed")
POINTS_OUT = Counter("edge_parser_points", "Points produced to the parsed topic")
DLQ_RECORDS = Counter("edge_parser_dlq_records", "Raw messages sent to the DLQ", ["reason"])
DLQ_KNOWN = Counter(
    "edge_parser_dlq_known",
    "Raw messages a replay refused again whose failure the DLQ already held: not written again",
    ["reason"],
)
DROPPED_VALUES = Counter("edge_parser_dropped_values", "NaN/infinite readings dropped")
EMPTY_POINTS = Counter("edge_parser_empty_points", "Points not emitted: no field left")

AMBIGUOUS_LOCAL_TIMES = Counter(
    "edge_parser_ambiguous_local_times",
    "Messages whose header.timestamp fell in a repeated (fall-back) local hour, by how the occurrence was chosen: "
    "received_at (nearer to the AMQP/Kafka timestamp) or earlier_occurrence (no usable receive time)",
    ["resolution"],
)
NONEXISTENT_LOCAL_TIMES = Counter(
    "edge_parser_nonexistent_local_times",
    "Messages whose header.timestamp fell in a skipped (spring-forward) local hour: dead-lettered, no points",
)
DUPLICATE_POINTS = Counter(
    "edge_parser_duplicate_points",
    "Points not emitted: an earlier point of the same message has the same series and time",
)
UNUSABLE_READINGS = Counter(
    "edge_parser_unusable_readings",
    "Numbers/booleans that could not be stored (name InfluxDB cannot keep, name taken, nested too deep)",
)
FALLBACKS = Counter(
    "edge_parser_fallbacks",
    "Messages the compiled parser (edge.parser.onepass) handed to the pure-Python parser, by why: "
    "list, deep_object, escape, name, number, duplicate_key, duplicate_series, syntax, shape, time, site, "
    "no_points, large_object, input, reentrant",
    ["reason"],
)

_RESOLVED = AMBIGUOUS_LOCAL_TIMES.labels(resolution="received_at")
_UNRESOLVED = AMBIGUOUS_LOCAL_TIMES.labels(resolution="earlier_occurrence")


def count_result(result: ParseResult) -> None:
    if result.fallback:
        FALLBACKS.labels(reason=result.fallback).inc()
    if result.ambiguous_times_resolved:
        _RESOLVED.inc(result.ambiguous_times_resolved)
    if result.ambiguous_times_unresolved:
        _UNRESOLVED.inc(result.ambiguous_times_unresolved)
    if result.duplicate_points:
        DUPLICATE_POINTS.inc(result.duplicate_points)
    if result.unusable_readings:
        UNUSABLE_READINGS.inc(result.unusable_readings)
    if result.dropped_values:
        DROPPED_VALUES.inc(result.dropped_values)
    if result.empty_points:
        EMPTY_POINTS.inc(result.empty_points)


def count_error(reason: str, fallback: str | None = None) -> None:
    """A refused message, by its DLQ reason (``ParseError.reason``) and, when the
    compiled parser handed it to the pure one, why (``ParseError.fallback``)."""
    if fallback:
        FALLBACKS.labels(reason=fallback).inc()
    if reason == "nonexistent_local_time":
        NONEXISTENT_LOCAL_TIMES.inc()


# Every family above: what a replay writes to its metrics textfile.
FAMILIES = tuple(metric._name for metric in (MESSAGES_IN, POINTS_OUT, DLQ_RECORDS, DLQ_KNOWN, DROPPED_VALUES,
                                             EMPTY_POINTS, AMBIGUOUS_LOCAL_TIMES, NONEXISTENT_LOCAL_TIMES, DUPLICATE_POINTS,
                                             UNUSABLE_READINGS, FALLBACKS))
