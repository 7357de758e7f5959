"""Which input offsets may be committed: the highest contiguous fully-acknowledged one.

Pure bookkeeping, no client. A consumer records every input offset it starts work
on (``begin``) with the number of outputs it produced for it, and gets a
``Ticket``; each acknowledged output calls ``done(ticket)``. ``positions()`` gives,
per partition, the offset to commit (Kafka's convention: the next offset to read),
which never passes an input with an unacknowledged output, whatever order the
acknowledgements arrive in.

Generations: ``forget(partition)`` (a rewind, a revoke, a lost partition) starts a
new generation of that partition. A delivery report from before it carries the old
generation in its ticket and is ignored, so a late report can never be counted
against the same offset read again after the rewind (which would let the offset be
committed while its re-produced outputs are still in flight).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Ticket:
    partition: int
    generation: int
    offset: int


@dataclass
class _Partition:
    generation: int
    order: deque[int] = field(default_factory=deque)  # offsets in consumption order
    remaining: dict[int, int] = field(default_factory=dict)  # offset -> outputs not yet acked
    next_commit: int | None = None  # first offset not yet known complete


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}
        self._generations: dict[int, int] = {}  # survives forget(): the next generation
        self.in_flight = 0  # outputs produced and not yet acknowledged

    def begin(self, partition: int, offset: int, outputs: int) -> Ticket:
        p = self._partitions.get(partition)
        if p is None:
            p = self._partitions[partition] = _Partition(self._generations.get(partition, 0))
        p.order.append(offset)
        p.remaining[offset] = outputs
        self.in_flight += outputs
        if outputs == 0:
            self._advance(p)
        return Ticket(partition, p.generation, offset)

    def done(self, ticket: Ticket) -> None:
        p = self._partitions.get(ticket.partition)
        if p is None or p.generation != ticket.generation or ticket.offset not in p.remaining:
            return  # from before a rewind or revoke: that work is being redone
        p.remaining[ticket.offset] -= 1
        self.in_flight -= 1
        if p.remaining[ticket.offset] == 0 and p.order and p.order[0] == ticket.offset:
            self._advance(p)

    @staticmethod
    def _advance(p: _Partition) -> None:
        while p.order and p.remaining[p.order[0]] == 0:
            offset = p.order.popleft()
            del p.remaining[offset]
            p.next_commit = offset + 1

    def positions(self) -> dict[int, int]:
        """Partition -> offset that may be committed now."""
        return {n: p.next_commit for n, p in self._partitions.items() if p.next_commit is not None}

    def first_incomplete(self, partition: int) -> int | None:
        """The lowest offset of ``partition`` still waiting for outputs."""
        p = self._partitions.get(partition)
        return p.order[0] if p and p.order else None

    def forget(self, partition: int) -> None:
        """Drop the partition's state and start its next generation."""
        p = self._partitions.pop(partition, None)
        if p is not None:
            self.in_flight -= sum(p.remaining.values())
            self._generations[partition] = p.generation + 1

    def partitions(self) -> list[int]:
        return list(self._partitions)
