"""Batches of parsed records on their way to InfluxDB: bounds and checks. Pure.

The sink keeps, per assigned partition, the records consumed but not yet written
(oldest first). A write is due when the records held reach ``max_lines`` or
``max_bytes``, or when the oldest has waited ``max_age_s``. One request takes
records from the heads of the partitions, never more than the bounds (a single
record larger than ``max_bytes`` still goes, alone).

Per-line work is kept to what C does for us (``join``, ``count``, ``decode`` of the
whole body); the per-record look only runs when the whole-body check fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.core.site_routes import DEFAULT_NODE


@dataclass(frozen=True)
class BatchLimits:
    max_lines: int
    max_bytes: int
    max_age_s: float


@dataclass
class PartitionBuffer:
    """Records of one partition consumed and not yet written, oldest first: with
    several InfluxDB nodes, those of one partition for one node (a "lane").

    ``records`` holds the consumer's message objects (value, key, headers, offset
    are read only when needed); ``next_offset`` is the offset expected next, so a
    record fetched a second time (after a pause or a seek) is recognised (with
    several nodes, the sink keeps that per partition instead). Records being
    written are not here any more, and come back (at the head) if that fails.
    """

    partition: int
    records: list = field(default_factory=list)
    nbytes: int = 0
    next_offset: int = -1
    oldest_at: float | None = None  # when the oldest record held was fetched
    node: str = DEFAULT_NODE  # the InfluxDB node these records go to


def write_due(lines: int, nbytes: int, oldest_at: float | None, now: float, limits: BatchLimits) -> bool:
    if lines >= limits.max_lines or nbytes >= limits.max_bytes:
        return True
    return oldest_at is not None and lines > 0 and now - oldest_at >= limits.max_age_s


def take_counts(sizes: Sequence[Sequence[int]], limits: BatchLimits) -> list[int]:
    """How many records to take from the head of each partition for one request.

    ``sizes[p]`` are the byte lengths of partition p's records, oldest first. The
    result never exceeds ``max_lines`` in total nor ``max_bytes`` (but takes at least
    one record when any is held).
    """
    counts = [0] * len(sizes)
    lines = 0
    nbytes = 0
    for p, part in enumerate(sizes):
        for size in part:
            if lines >= limits.max_lines:
                return counts
            if lines and nbytes + size + 1 > limits.max_bytes:
                return counts
            counts[p] += 1
            lines += 1
            nbytes += size + 1
    return counts


def request_counts(buffers: Sequence[PartitionBuffer], limits: BatchLimits) -> list[tuple[int, int]]:
    """(records, bytes) to take from the head of each buffer, in order, for one
    request across partitions: what ``take_counts`` gives, but a buffer that fits
    whole is taken without looking at its records (the hot path under load)."""
    taken: list[tuple[int, int]] = []
    lines = 0
    total = 0  # bytes with a newline each
    for buf in buffers:
        held = buf.records
        if lines + len(held) <= limits.max_lines and total + buf.nbytes + len(held) <= limits.max_bytes:
            n, nbytes = len(held), buf.nbytes
        else:
            n = nbytes = 0
            for msg in held:
                size = len(msg)
                if lines + n >= limits.max_lines or (lines + n and total + nbytes + n + size + 1 > limits.max_bytes):
                    break
                n += 1
                nbytes += size
        taken.append((n, nbytes))
        lines += n
        total += nbytes + n
        if n < len(held):
            break  # the request is full
    return taken


def body_is_clean(body: bytes, lines: int) -> bool:
    """True when ``body`` (the values joined by newlines) holds ``lines`` usable lines.

    Usable: not empty, no newline of its own, valid UTF-8. Whole-body checks only.
    """
    if not body or body.count(b"\n") != lines - 1:
        return False
    if body[:1] == b"\n" or body[-1:] == b"\n" or b"\n\n" in body:
        return False
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def record_problem(value: bytes | None) -> str | None:
    """Why one record's value cannot be a line-protocol line, or None if it can."""
    if value is None:
        return "record has no value"
    if not value.strip():
        return "record value is empty"
    if b"\n" in value:
        return "record value holds more than one line"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"record value is not valid UTF-8: {exc}"
    return None


def split_bad_records(values: Sequence[bytes | None]) -> tuple[list[int], dict[int, str]]:
    """(indices of usable values, {index of unusable value: why})."""
    good: list[int] = []
    bad: dict[int, str] = {}
    for i, value in enumerate(values):
        problem = record_problem(value)
        if problem is None:
            good.append(i)
        else:
            bad[i] = problem
    return good, bad
