"""Which lines of a batch InfluxDB refused (its 400 answer names at most a few).

``find_rejected`` turns a 400 into the exact set of refused lines: lines a message
names as unparsable are refused outright; otherwise the suspects of a field type
conflict (or else halves) are written again until each refused line stands alone or
a group is refused whole. Writing a line again is harmless: InfluxDB
overwrites an identical series and time. Pure: the caller passes the write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge.core import lineproto
from edge.influx.answers import (
    Outcome,
    TypeConflict,
    WriteResult,
    dropped_count,
    type_conflict,
    unparsable_lines,
)


def conflicting_lines(conflict: TypeConflict, lines: Sequence[bytes]) -> list[int]:
    """Indices of the lines that carry ``conflict.field`` with the refused type
    (a line too broken to read is no suspect: halving finds it)."""
    found = []
    for i, raw in enumerate(lines):
        try:
            line = lineproto.read(raw)
        except lineproto.LineError:
            continue
        written = line.fields.get(conflict.field)
        if line.measurement == conflict.measurement and written is not None \
                and lineproto.value_type(written) == conflict.line_type:
            found.append(i)
    return found


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
