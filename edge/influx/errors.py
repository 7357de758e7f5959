"""What an InfluxDB 1.x ``/write`` answer means, and which lines it refused. Pure.

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

``find_rejected`` turns a 400 into the exact set of refused lines: lines a message
names as unparsable are refused outright; otherwise the suspects of a field type
conflict (or else halves) are written again until each refused line stands alone or
a group is refused whole. Writing a line again is harmless: InfluxDB
overwrites an identical series and time.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
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


# ---------------------------------------------------------------- line protocol


def _split_unescaped(text: str, sep: str, *, quotes: bool = False, limit: int = -1) -> list[str]:
    """Split on ``sep`` outside backslash escapes (and outside "strings" if asked)."""
    parts: list[str] = []
    start = 0
    i = 0
    in_quotes = False
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quotes and c == '"':
            in_quotes = not in_quotes
        elif c == sep and not in_quotes and (limit < 0 or len(parts) < limit):
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    # As InfluxDB 1.x reads keys: only comma, space and equals are escaped.
    return re.sub(r"\\([,= ])", r"\1", text)


def value_type(raw: str) -> str:
    """InfluxDB's name for the type of a line-protocol field value."""
    if raw.startswith('"'):
        return "string"
    if raw in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        return "boolean"
    if raw.endswith("i"):
        return "integer"
    if raw.endswith("u"):
        return "unsigned"
    return "float"


def line_fields(line: str) -> tuple[str, dict[str, str]]:
    """(measurement, {field key: InfluxDB type}) of one line-protocol line.

    Tolerant: a line too broken to split yields what could be read.
    """
    # Quotes are literal in the measurement and tags, and delimit string field values.
    parts = _split_unescaped(line, " ", limit=1)
    head = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    measurement = _unescape(_split_unescaped(head, ",", limit=1)[0])
    fields: dict[str, str] = {}
    field_set = _split_unescaped(rest, " ", quotes=True, limit=1)[0]
    for pair in _split_unescaped(field_set, ",", quotes=True):
        kv = _split_unescaped(pair, "=", limit=1)
        if len(kv) == 2:
            fields[_unescape(kv[0])] = value_type(kv[1])
    return measurement, fields


def conflicting_lines(conflict: TypeConflict, lines: Sequence[bytes]) -> list[int]:
    """Indices of the lines that carry ``conflict.field`` with the refused type."""
    found = []
    for i, raw in enumerate(lines):
        text = raw.decode("utf-8", "replace")
        measurement, fields = line_fields(text)
        if measurement == conflict.measurement and fields.get(conflict.field) == conflict.line_type:
            found.append(i)
    return found


# ---------------------------------------------------------------- isolation


def find_rejected(
    lines: Sequence[bytes],
    first: WriteResult,
    write: Callable[[bytes], WriteResult],
) -> dict[int, str]:
    """Indices of the lines InfluxDB refuses for good -> its message for them.

    ``first`` is the 400 answer for all of ``lines``; ``write`` writes a body again.
    Raises ``RetryLater`` (with the answer) when InfluxDB stops answering meanwhile:
    then nothing is decided and the caller retries the whole batch later.
    """
    rejected: dict[int, str] = {}
    work: list[tuple[list[int], str]] = [(list(range(len(lines))), first.error)]
    while work:
        group, message = work.pop()
        if len(group) == 1:
            rejected[group[0]] = message
            continue
        if dropped_count(message) == len(group) and not unparsable_lines(message):
            # Every line was parsed and every one dropped: all refused.
            rejected.update((i, message) for i in group)
            continue
        named = _unparsable_in(message, group, lines)
        rest = [i for i in group if i not in named]
        rejected.update(named)
        suspects = _conflicting_in(message, rest, lines)
        if named:
            # InfluxDB said exactly which lines it cannot parse; the rest is unknown.
            subgroups = [rest] if rest else []
        elif suspects and len(suspects) < len(rest):
            # Field type conflicts are per shard: confirm the suspects by writing them.
            chosen = set(suspects)
            subgroups = [suspects, [i for i in rest if i not in chosen]]
        else:
            half = len(group) // 2
            subgroups = [group[:half], group[half:]]
        for sub in subgroups:
            result = write(b"\n".join(lines[i] for i in sub))
            if result.outcome is Outcome.OK:
                continue
            if result.outcome is Outcome.REJECTED:
                work.append((sub, result.error))
                continue
            raise RetryLater(result)
    return rejected


def _unparsable_in(message: str, group: list[int], lines: Sequence[bytes]) -> dict[int, str]:
    unparsable = unparsable_lines(message)
    if not unparsable:
        return {}
    named: dict[int, str] = {}
    for i in group:
        why = unparsable.get(lines[i].decode("utf-8", "replace"))
        if why is not None:
            named[i] = why
    return named


def _conflicting_in(message: str, group: list[int], lines: Sequence[bytes]) -> list[int]:
    conflict = type_conflict(message)
    if conflict is None:
        return []
    return [group[j] for j in conflicting_lines(conflict, [lines[i] for i in group])]


class RetryLater(Exception):
    def __init__(self, result: WriteResult):
        super().__init__(f"InfluxDB unavailable: {result.status} {result.error}")
        self.result = result
