"""Dead-letter records: the original bytes plus headers saying why and from where.

Every stage that gives up on an input writes it here, byte for byte, so nothing is
lost and an operator can replay it once the cause is fixed. Pure: no client.

Headers (all UTF-8):
  dlq.stage            parser | sink
  dlq.reason           short machine-readable code (see REASONS)
  dlq.error            human-readable detail
  dlq.source.topic / dlq.source.partition / dlq.source.offset
  dlq.time             when it was dead-lettered (ISO 8601, UTC)
  dlq.repeat           on a repeat marker only: the failure id it repeats
The input record's own headers (e.g. amqp.*) are kept after these.

One *failure* is (stage, reason, source body bytes): every record with the same
three is a copy of it. ``failure_id`` names it, computed from the record itself,
so records written before the id existed group too. ``edge dlq`` lists failures,
not copies. Copies are avoided where they can be: a replay writes none of a
failure the DLQ already holds, and a redriven record that meets the same failure
again is written as a *repeat marker* (``repeat_of``): no body, the ``dlq.*``
headers plus ``dlq.repeat`` = the failure id, the body staying at its first
record. What can still write a copy: the live stages meeting the same bad input
twice (a gateway that resends, at-least-once re-delivery after a crash).

A *resolution marker* is a record ``edge dlq redrive`` writes to the DLQ once the
redriven message is acknowledged by its stage's input topic: no body, no ``dlq.*``
headers, ``redrive.origin`` (the DLQ record redriven), ``redrive.failure`` (its
failure id), ``redrive.to`` (where it went) and ``redrive.time`` (the redrive's
moment, also on the redriven record).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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
REPEAT = "dlq.repeat"
FAILURE_ID_CHARS = 16  # 64 bits of SHA-256: no accidental collision in a DLQ's lifetime

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
    repeat: str | None = None,
) -> list[Header]:
    """The headers of a dead letter; with ``repeat`` (a failure id), of a repeat
    marker of that failure (written without a body)."""
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
    if repeat is not None:
        headers.append((REPEAT, repeat.encode()))
    headers.extend(h for h in (original or []) if not h[0].startswith("dlq."))
    return headers


def header_map(headers: list[Header] | None) -> dict[str, bytes]:
    """Headers as a dict (last one wins); convenient for readers and tests."""
    return {k: v for k, v in (headers or [])}


def failure_id(stage: str, reason: str, body: bytes | None) -> str:
    """The failure a dead letter is a copy of: a digest of (stage, reason, body)."""
    digest = hashlib.sha256()
    for part in (stage.encode(), reason.encode(), body or b""):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two splits collide
        digest.update(part)
    return digest.hexdigest()[:FAILURE_ID_CHARS]


# ---------------------------------------------------------------- reading back


def _text(headers: dict[str, bytes], key: str) -> str:
    value = headers.get(key)
    return value.decode("utf-8", "replace") if value is not None else ""


def parse_time(iso: str) -> datetime | None:
    """An ISO 8601 header value as an aware datetime (UTC if it names no offset)."""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _int(headers: dict[str, bytes], key: str) -> int | None:
    try:
        return int(headers[key])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class DeadLetter:
    """What the ``dlq.*`` headers of a DLQ record say (empty/None where missing)."""

    stage: str
    reason: str
    error: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    time: str

    @classmethod
    def from_headers(cls, headers: list[Header] | None) -> "DeadLetter":
        h = header_map(headers)
        return cls(
            stage=_text(h, "dlq.stage"),
            reason=_text(h, "dlq.reason"),
            error=_text(h, "dlq.error"),
            source_topic=_text(h, "dlq.source.topic"),
            source_partition=_int(h, "dlq.source.partition"),
            source_offset=_int(h, "dlq.source.offset"),
            time=_text(h, "dlq.time"),
        )

    @property
    def when(self) -> datetime | None:
        return parse_time(self.time)


# ---------------------------------------------------------------- redrive

# Set on a record an operator sent back from the DLQ (``edge dlq redrive``): where
# in the DLQ it came from (``<topic>:<partition>:<offset>``), its failure id and
# when. Not ``dlq.*``, so a record that fails again keeps them in its new DLQ record.
REDRIVE_FROM = "redrive.from"
REDRIVE_TIME = "redrive.time"
REDRIVE_FAILURE = "redrive.failure"  # also on a resolution marker
# On a resolution marker (see the module's docstring).
REDRIVE_ORIGIN = "redrive.origin"
REDRIVE_TO = "redrive.to"

# The topic a stage's dead letters go back to: the input of that stage.
REDRIVE_TARGET = {"parser": "raw", "sink": "parsed"}


def redrive_headers(
    headers: list[Header] | None, *, dlq_topic: str, partition: int, offset: int, failure: str,
    now: datetime | None = None,
) -> list[Header]:
    """The original record's headers (without ``dlq.*`` and any earlier
    ``redrive.*``) plus where in the DLQ this record was redriven from, the
    failure it is a copy of, and when."""
    kept = [(k, v) for k, v in (headers or []) if not k.startswith(("dlq.", "redrive."))]
    when = (now or datetime.now(timezone.utc)).isoformat()
    return kept + [
        (REDRIVE_FROM, f"{dlq_topic}:{partition}:{offset}".encode()),
        (REDRIVE_FAILURE, failure.encode()),
        (REDRIVE_TIME, when.encode()),
    ]


def repeat_of(stage: str, reason: str, body: bytes | None, headers: list[Header] | None) -> str | None:
    """The failure id when a redriven record (``redrive.failure``) fails again
    the same way: its DLQ record is then a repeat marker, not another copy of the
    body. None for any other record, and for a redrive that fails differently
    (another reason after a fix: a new failure, written in full)."""
    sent = header_map(headers).get(REDRIVE_FAILURE)
    if sent is None:
        return None
    failure = failure_id(stage, reason, body)
    return failure if sent == failure.encode() else None


def resolution_headers(*, origin: str, failure: str, sent_to: str, when: datetime) -> list[Header]:
    """The headers of a resolution marker: ``origin`` and ``sent_to`` as
    ``<topic>:<partition>:<offset>``, ``when`` the redrive's moment."""
    return [
        (REDRIVE_ORIGIN, origin.encode()),
        (REDRIVE_FAILURE, failure.encode()),
        (REDRIVE_TO, sent_to.encode()),
        (REDRIVE_TIME, when.isoformat().encode()),
    ]
