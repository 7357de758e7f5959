"""Dead letters as an operator sees them: table rows, safe text, addresses. Pure.

A DLQ record is addressed as ``PARTITION:OFFSET`` (``2:17``); a bare ``OFFSET``
is accepted when the DLQ topic has a single partition. Ranges are
``PARTITION:FIRST-LAST`` (inclusive) or ``FIRST-LAST`` on a single partition.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from edge.core import lineproto
from edge.core.dlq import DeadLetter, Header
from edge.core.errors import UsageError
from edge.parser.site_activity import site_of_raw, site_of_series_key


@dataclass(frozen=True)
class Letter:
    """One record of the DLQ topic, as read."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: list[Header] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def dead_letter(self) -> DeadLetter:
        return DeadLetter.from_headers(self.headers)


# ---------------------------------------------------------------- safe text

_KEEP = {"\n", "\t"}


def safe_text(data: bytes | None) -> str:
    """``data`` as printable text: invalid UTF-8 as ``\\xNN``, control and format
    characters (terminal escapes, bidi overrides, the gateway's backspace) as
    ``\\xNN`` / ``\\uNNNN``; newlines and tabs kept."""
    if data is None:
        return ""
    text = data.decode("utf-8", "backslashreplace")
    out = []
    for ch in text:
        if ch in _KEEP or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def one_line(text: str, width: int) -> str:
    flat = text.replace("\n", "\\n").replace("\t", " ")
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


# ---------------------------------------------------------------- site


def site_of(letter: Letter) -> str | None:
    """The site a dead letter is about, where its body tells."""
    stage = letter.dead_letter.stage
    if stage == "parser":
        return site_of_raw(letter.value)
    if stage == "sink" and letter.value:
        return site_of_series_key(lineproto.series_key(letter.value))
    return None


# ---------------------------------------------------------------- table

COLUMNS = ("at", "time", "stage", "reason", "site", "source", "error")


def row(letter: Letter) -> tuple[str, ...]:
    d = letter.dead_letter
    source = f"{d.source_topic}:{'' if d.source_partition is None else d.source_partition}" \
             f":{'' if d.source_offset is None else d.source_offset}"
    return (
        letter.address,
        d.time[:19].replace("T", " ") if d.time else "",
        d.stage or "?",
        d.reason or "?",
        safe_text((site_of(letter) or "").encode()) or "-",
        source if d.source_topic else "-",
        safe_text(d.error.encode()),
    )


def table(rows: list[tuple[str, ...]], error_width: int = 80, columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text table with a header line; the last (error) column is cut to one line."""
    shown = [columns] + [r[:-1] + (one_line(r[-1], error_width),) for r in rows]
    widths = [max(len(r[i]) for r in shown) for i in range(len(columns) - 1)]
    lines = []
    for r in shown:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1])
    return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------- addresses


def parse_address(text: str, partitions: list[int]) -> tuple[int, int]:
    """``P:O`` (or ``O`` on a single-partition DLQ) -> (partition, offset)."""
    part, sep, offset = text.strip().rpartition(":")
    try:
        if sep:
            address = (int(part), int(offset))
        elif len(partitions) == 1:
            address = (partitions[0], int(offset))
        else:
            raise UsageError(f"{text!r}: the DLQ has {len(partitions)} partitions, give PARTITION:OFFSET")
    except ValueError:
        raise UsageError(f"{text!r} is not PARTITION:OFFSET") from None
    if address[0] not in partitions:
        raise UsageError(f"{text!r}: the DLQ has no partition {address[0]} (it has {partitions})")
    if address[1] < 0:
        raise UsageError(f"{text!r}: offsets are 0 or more")
    return address


def parse_range(text: str, partitions: list[int]) -> tuple[int, int, int]:
    """``P:A-B`` (or ``A-B`` on a single-partition DLQ) -> (partition, A, B), inclusive."""
    part, sep, span = text.strip().rpartition(":")
    first, dash, last = span.partition("-")
    if not dash:
        first = last = span
    partition, start = parse_address(f"{part}{sep}{first}", partitions)
    try:
        end = int(last)
    except ValueError:
        raise UsageError(f"{text!r} is not PARTITION:FIRST-LAST") from None
    if end < start:
        raise UsageError(f"{text!r}: the range ends before it starts")
    return partition, start, end


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on; every given criterion must hold."""

    reasons: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    ranges: tuple[tuple[int, int, int], ...] = ()
    since: datetime | None = None

    def __call__(self, letter: Letter) -> bool:
        d = letter.dead_letter
        if self.reasons and d.reason not in self.reasons:
            return False
        if self.stages and d.stage not in self.stages:
            return False
        if self.ranges and not any(p == letter.partition and a <= letter.offset <= b for p, a, b in self.ranges):
            return False
        if self.since is not None and d.when is not None and d.when < self.since:  # undated: never hidden
            return False
        return True

