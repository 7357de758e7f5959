"""Simulated telemetry: sample.json-shaped messages for a (site, timestamp). Pure.

Without jitter the shipped sample's bytes are kept exactly as they are, including
the raw backspace inside a string (the parser's fallback path must handle it in
the field), and only the values of ``header.site_id`` and ``header.timestamp`` are
substituted at byte level. With jitter the document is parsed, every measurement
(a JSON float outside ``header``) is varied by up to ``±jitter`` (a fraction), and
re-serialized; integers (indexes, counts) and booleans are left alone, since they
identify things rather than measure them. The variation is seeded by (site,
timestamp), so a message is reproducible.

Schedule: message ``i`` of a run goes to site ``i % sites``, and each site's
timestamps step one second per message from ``start``, so every (site, timestamp)
pair of a run is unique: no two messages map to the same InfluxDB point.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

SAMPLE_PATH = Path(__file__).resolve().parents[2] / "sample" / "sample.json"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SITE_ID_WIDTH = 6

_SITE_ID = re.compile(rb'"site_id"\s*:\s*"([^"]*)"')
_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*"([^"]*)"')


def site_id(number: int) -> str:
    """Site ``number`` (1-based) as the gateway writes it: zero-padded, ``000001``."""
    return str(number).zfill(SITE_ID_WIDTH)


def schedule(count: int | None, sites: int, start: datetime) -> Iterator[tuple[str, datetime]]:
    """(site_id, timestamp) for each message of a run; endless when count is None."""
    if sites < 1:
        raise ValueError("sites must be >= 1")
    i = 0
    while count is None or i < count:
        step, site = divmod(i, sites)
        yield site_id(site + 1), start + timedelta(seconds=step)
        i += 1


@dataclass(frozen=True)
class MessageTemplate:
    """The sample split around its site_id and timestamp values."""

    head: bytes
    middle: bytes
    tail: bytes
    site_first: bool
    document: Any  # the parsed sample, for jittered messages

    @classmethod
    def from_bytes(cls, sample: bytes) -> "MessageTemplate":
        site = _SITE_ID.search(sample)
        ts = _TIMESTAMP.search(sample)
        if site is None or ts is None:
            raise ValueError("sample has no header.site_id or header.timestamp string")
        first, second = sorted((site, ts), key=lambda m: m.start(1))
        return cls(
            head=sample[: first.start(1)],
            middle=sample[first.end(1) : second.start(1)],
            tail=sample[second.end(1) :],
            site_first=first is site,
            document=json.loads(sample, strict=False),
        )

    @classmethod
    def load(cls, path: Path | str = SAMPLE_PATH) -> "MessageTemplate":
        return cls.from_bytes(Path(path).read_bytes())

    def render(self, site: str, timestamp: datetime, jitter: float = 0.0) -> bytes:
        ts = timestamp.strftime(TIMESTAMP_FORMAT)
        if jitter:
            return self._jittered(site, ts, jitter)
        a, b = (site, ts) if self.site_first else (ts, site)
        return b"".join((self.head, a.encode(), self.middle, b.encode(), self.tail))

    def _jittered(self, site: str, ts: str, jitter: float) -> bytes:
        rng = random.Random(f"{site}|{ts}")
        doc = {k: (v if k == "header" else _vary(v, rng, jitter)) for k, v in self.document.items()}
        doc["header"] = {**self.document["header"], "site_id": site, "timestamp": ts}
        return json.dumps(doc, ensure_ascii=False, indent=4).encode("utf-8")


def _vary(value: Any, rng: random.Random, jitter: float) -> Any:
    if isinstance(value, dict):
        return {k: _vary(v, rng, jitter) for k, v in value.items()}
    if isinstance(value, list):
        return [_vary(v, rng, jitter) for v in value]
    if isinstance(value, float):
        return round(value * (1.0 + rng.uniform(-jitter, jitter)), 3)
    return value


def parse_start(text: str | None, now: datetime) -> datetime:
    """``--start`` as a naive UTC datetime (``YYYY-MM-DD HH:MM:SS`` or ISO 8601; an
    explicit offset is converted to UTC); default: ``now`` truncated to the second."""
    if not text:
        return now.replace(microsecond=0, tzinfo=None)
    start = datetime.fromisoformat(text)
    if start.tzinfo is not None:
        start = start.astimezone(timezone.utc)
    return start.replace(microsecond=0, tzinfo=None)
