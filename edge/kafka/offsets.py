"""Which input offsets may be committed: the highest contiguous fully-acknowledged one.

Pure bookkeeping, no client. A consumer records every input offset it starts work
on (``begin``) with the number of outputs it produced for it; each acknowledged
output calls ``done``. ``committable()`` gives, per partition, the offset to commit
(Kafka's convention: the next offset to read), which never passes an input with an
unacknowledged output, whatever order the acknowledgements arrive in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Partition:
    order: deque[int] = field(default_factory=deque)  # offsets in consumption order
    remaining: dict[int, int] = field(default_factory=dict)  # offset -> outputs not yet acked
    next_commit: int | None = None  # first offset not yet known complete
    committed: int | None = None  # last offset handed to commit()


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[int, _Partition] = {}
        self.in_flight = 0  # outputs produced and not yet acknowledged

    def begin(self, partition: int, offset: int, outputs: int) -> None:
        p = self._partitions.setdefault(partition, _Partition())
        p.order.append(offset)
        p.remaining[offset] = outputs
        self.in_flight += outputs
        if outputs == 0:
            self._advance(p)

    def done(self, partition: int, offset: int) -> None:
        p = self._partitions.get(partition)
        if p is None or offset not in p.remaining:
            return  # partition revoked or reset meanwhile: nothing to do
        p.remaining[offset] -= 1
        self.in_flight -= 1
        if p.remaining[offset] == 0 and p.order and p.order[0] == offset:
            self._advance(p)

    @staticmethod
    def _advance(p: _Partition) -> None:
        while p.order and p.remaining[p.order[0]] == 0:
            offset = p.order.popleft()
            del p.remaining[offset]
            p.next_commit = offset + 1

    def committable(self) -> dict[int, int]:
        """Partition -> offset to commit, for partitions that moved since last time."""
        out = {}
        for number, p in self._partitions.items():
            if p.next_commit is not None and p.next_commit != p.committed:
                out[number] = p.next_commit
        return out

    def mark_committed(self, offsets: dict[int, int]) -> None:
        for number, offset in offsets.items():
            if number in self._partitions:
                self._partitions[number].committed = offset

    def first_incomplete(self, partition: int) -> int | None:
        """The lowest offset of ``partition`` still waiting for outputs."""
        p = self._partitions.get(partition)
        return p.order[0] if p and p.order else None

    def forget(self, partition: int) -> None:
        p = self._partitions.pop(partition, None)
        if p is not None:
            self.in_flight -= sum(p.remaining.values())

    def partitions(self) -> list[int]:
        return list(self._partitions)
