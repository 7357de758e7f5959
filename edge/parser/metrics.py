"""Prometheus counters for what the parser reports about each message.

Imported by the parse stage only (the parser itself stays free of clients): call
:func:`count_result` for each parsed message and :func:`count_error` for each
ParseError.
"""

from __future__ import annotations

from prometheus_client import Counter

from edge.parser.errors import ParseError, ParseResult

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

_RESOLVED = AMBIGUOUS_LOCAL_TIMES.labels(resolution="received_at")
_UNRESOLVED = AMBIGUOUS_LOCAL_TIMES.labels(resolution="earlier_occurrence")


def count_result(result: ParseResult) -> None:
    if result.ambiguous_times_resolved:
        _RESOLVED.inc(result.ambiguous_times_resolved)
    if result.ambiguous_times_unresolved:
        _UNRESOLVED.inc(result.ambiguous_times_unresolved)
    if result.duplicate_points:
        DUPLICATE_POINTS.inc(result.duplicate_points)
    if result.unusable_readings:
        UNUSABLE_READINGS.inc(result.unusable_readings)


def count_error(error: ParseError) -> None:
    if error.reason == "nonexistent_local_time":
        NONEXISTENT_LOCAL_TIMES.inc()
