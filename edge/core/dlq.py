"""Dead-letter records: the original bytes plus headers saying why and from where.

Every stage that gives up on an input writes it here, byte for byte, so nothing is
lost and an operator can replay it once the cause is fixed. Pure: no client.

Headers (all UTF-8):
  dlq.stage            parser | sink
  dlq.reason           short machine-readable code (see REASONS)
  dlq.error            human-readable detail
  dlq.source.topic / dlq.source.partition / dlq.source.offset
  dlq.time             when it was dead-lettered (ISO 8601, UTC)
The input record's own headers (e.g. amqp.*) are kept after these.
"""

from __future__ import annotations

from datetime import datetime, timezone

REASONS = {
    "parse_error": "the raw message could not be turned into any point",
    "nonexistent_local_time": (
        "header.timestamp is a local time the site's clocks skipped (daylight saving starts): no instant, no points"
    ),
    "partial": (
        "some parts of the raw message were unusable (the usable points were still emitted); each problem names "
        "its JSON path, and a 'duplicate_series:' problem names two points of the message with the same series"
    ),
    "influx_rejected": "InfluxDB refused the line (400: field type conflict, bad syntax, ...)",
    "bad_record": "the parsed record is not a usable line-protocol line",
}

MAX_ERROR_CHARS = 2000

Header = tuple[str, bytes]


def dlq_headers(
    *,
    stage: str,
    reason: str,
    error: str,
    topic: str,
    partition: int,
    offset: int,
    original: list[Header] | None = None,
    now: datetime | None = None,
) -> list[Header]:
    if reason not in REASONS:
        raise ValueError(f"unknown DLQ reason {reason!r}")
    when = (now or datetime.now(timezone.utc)).isoformat()
    headers: list[Header] = [
        ("dlq.stage", stage.encode()),
        ("dlq.reason", reason.encode()),
        ("dlq.error", error[:MAX_ERROR_CHARS].encode("utf-8", "replace")),
        ("dlq.source.topic", topic.encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
        ("dlq.time", when.encode()),
    ]
    headers.extend(h for h in (original or []) if not h[0].startswith("dlq."))
    return headers


def header_map(headers: list[Header] | None) -> dict[str, bytes]:
    """Headers as a dict (last one wins); convenient for readers and tests."""
    return {k: v for k, v in (headers or [])}
