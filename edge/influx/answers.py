"""What an InfluxDB 1.x ``/write`` answer means. Pure.

InfluxDB answers a batch with one status for the whole body:

- 2xx: every line is stored.
- 400: the batch was (at least partly) refused, and the lines InfluxDB could use were
  stored anyway. The message names the culprit in only two cases:
  ``unable to parse '<line>': <why>`` (one per bad line, joined by newlines) and
  ``partial write: field type conflict: input field "f" on measurement "m" is type
  float, already exists as type boolean dropped=N`` (only the first conflict is
  described; ``dropped`` counts them all). Other refusals name no line at all:
  the server limits (``server_limit``): ``max-series-per-database limit exceeded:
  (N)``, ``max-values-per-tag limit exceeded (n/N): measurement=... tag=...
  value=...`` and ``points beyond retention policy``.
- 404 ``database not found``: the database is missing (created, then retried).
- anything else (5xx, 401/403, 413 body too large for ``max-body-size``, connection
  refused, timeout): the server or its configuration is unavailable; nothing may be
  given up, so the batch is retried (and the reason logged for the operator).

A 5xx or a timeout does not mean "not stored": it means "may have landed". InfluxDB
Enterprise answers 500 when the ``consistency=`` level was not met although the
points are on some replica or queued for hinted handoff (e.g. ``write failed:
hinted handoff queue not empty``), and any node can time out after its WAL took
the batch. The same lines are sent again: a point is
idempotent (same measurement, tags and timestamp: the field values are
overwritten with the same values), so a duplicate costs a write, never a count
(``may_have_landed``; tested against a real InfluxDB).

Statements are another matter: a ``DELETE`` on Enterprise while a data node is
down removes the points from the nodes it reached and answers with an error that
says "partial success"; deletes are not handed off, so the statement must be sent
again until it succeeds (``delete_incomplete``; the archive's retry loop).

Which lines of a refused batch InfluxDB refused: ``edge.influx.rejected``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import orjson


class Outcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # 400: some or all lines refused for good
    DATABASE_MISSING = "database_missing"
    RETRY = "retry"  # InfluxDB unavailable or failing: try the same lines later


@dataclass(frozen=True)
class WriteResult:
    outcome: Outcome
    status: int | None = None  # HTTP status; None when no answer came back
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def may_have_landed(self) -> bool:
        """A failure after which the points may be stored anyway (5xx, no answer):
        retried as it is, since writing a point twice stores it once."""
        return self.outcome is Outcome.RETRY and (self.status is None or self.status >= 500)


def error_message(body: bytes | str, header: str | None = None) -> str:
    """InfluxDB's error text: the ``X-Influxdb-Error`` header, else ``{"error": ...}``."""
    if header:
        return header
    raw = body.encode() if isinstance(body, str) else body
    try:
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"]
    except orjson.JSONDecodeError:
        pass
    return raw.decode("utf-8", "replace").strip()


def classify(status: int, message: str) -> WriteResult:
    if 200 <= status < 300:
        return WriteResult(Outcome.OK, status)
    if status == 400:
        return WriteResult(Outcome.REJECTED, status, message)
    if status == 404 and "database not found" in message:
        return WriteResult(Outcome.DATABASE_MISSING, status, message)
    return WriteResult(Outcome.RETRY, status, message)


# ---------------------------------------------------------------- error text

_UNABLE_TO_PARSE = re.compile(r"unable to parse '(.*)': (.*)$")
_TYPE_CONFLICT = re.compile(
    r'input field "(?P<field>(?:[^"\\]|\\.)*)" on measurement "(?P<measurement>(?:[^"\\]|\\.)*)" '
    r"is type (?P<type>\w+), already exists as type (?P<existing>\w+)"
)
_DROPPED = re.compile(r"dropped=(\d+)\s*$")


def unparsable_lines(message: str) -> dict[str, str]:
    """Lines named by ``unable to parse '<line>': <why>`` messages -> that message."""
    named: dict[str, str] = {}
    for part in message.split("\n"):
        part = part.removeprefix("partial write: ")
        m = _UNABLE_TO_PARSE.match(part)
        if m:
            named[m.group(1)] = part
    return named


@dataclass(frozen=True)
class TypeConflict:
    measurement: str
    field: str
    line_type: str  # the type the refused line carries
    existing_type: str


def type_conflict(message: str) -> TypeConflict | None:
    m = _TYPE_CONFLICT.search(message)
    if not m:
        return None
    return TypeConflict(
        measurement=m.group("measurement").replace('\\"', '"'),
        field=m.group("field").replace('\\"', '"'),
        line_type=m.group("type"),
        existing_type=m.group("existing"),
    )


# The server limits of a partial write: reason -> how InfluxDB 1.x says it.
SERVER_LIMITS: dict[str, str] = {
    "max_series_per_database": "max-series-per-database limit exceeded",
    "max_values_per_tag": "max-values-per-tag limit exceeded",
    "beyond_retention_policy": "points beyond retention policy",
}


def server_limit(message: str) -> str | None:
    """The server limit for which InfluxDB dropped a line (a ``SERVER_LIMITS`` key),
    or None when the refusal is about the line itself (syntax, field type)."""
    for reason, text in SERVER_LIMITS.items():
        if text in message:
            return reason
    return None


def dropped_count(message: str) -> int | None:
    m = _DROPPED.search(message)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- statements

# How InfluxDB Enterprise says a DELETE / DROP SERIES reached only some data nodes
# (one was down): matched case-insensitively, anywhere in the message.
PARTIAL_DELETE = "partial success"


def delete_incomplete(message: str) -> bool:
    """Whether a DELETE's error says it removed the points from only some nodes:
    send it again (it is idempotent) until it succeeds."""
    return PARTIAL_DELETE in message.lower()
