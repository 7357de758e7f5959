"""Which AMQP deliveries of one channel may be acked now. Pure.

The bridge acks a delivery only after Kafka acknowledged its record. Delivery
reports come back out of order (different partitions), so the tracker keeps the
channel's unsettled delivery tags in delivery order and, on each ``settle()``:

- every failed delivery is nacked on its own (requeue: RabbitMQ redelivers it),
  every permanently refused one is rejected on its own (no requeue: the queue's
  dead-letter exchange takes it, if one is configured);
- the longest run of settled deliveries from the oldest one is acked with one
  ``basic_ack(last_tag, multiple=True)``. The failed/refused ones inside that run
  are sent first, so the multiple ack never covers them; a success behind a
  still-pending delivery waits for it.

Delivery tags are per channel: a tracker belongs to one channel. When the channel
goes away the tracker is closed, and late delivery reports for it are ignored (the
broker redelivers those messages; a duplicate downstream is harmless).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING, OK, FAILED, REFUSED = 0, 1, 2, 3


@dataclass
class Settlement:
    ack_upto: int | None = None  # basic_ack(ack_upto, multiple=True)
    acked: int = 0  # how many deliveries that ack covers
    nack: list[int] = field(default_factory=list)  # basic_nack(tag, requeue=True)
    reject: list[int] = field(default_factory=list)  # basic_reject(tag, requeue=False)

    def __bool__(self) -> bool:
        return self.ack_upto is not None or bool(self.nack) or bool(self.reject)


class AckTracker:
    def __init__(self) -> None:
        self._state: dict[int, int] = {}  # insertion order = delivery order
        self._settled_count = 0  # non-pending entries, so settle() is cheap when idle
        self.closed = False

    def __len__(self) -> int:
        return len(self._state)

    def delivered(self, tag: int) -> None:
        self._state[tag] = PENDING

    def succeeded(self, tag: int) -> None:
        self._mark(tag, OK)

    def failed(self, tag: int) -> None:
        self._mark(tag, FAILED)

    def refused(self, tag: int) -> None:
        self._mark(tag, REFUSED)

    def _mark(self, tag: int, state: int) -> None:
        if self.closed or self._state.get(tag) != PENDING:
            return
        self._state[tag] = state
        self._settled_count += 1

    def close(self) -> None:
        self.closed = True
        self._state.clear()
        self._settled_count = 0

    def settle(self) -> Settlement:
        result = Settlement()
        if self.closed or not self._settled_count:
            return result
        done: list[int] = []
        in_prefix = True
        for tag, state in self._state.items():
            if state == PENDING:
                in_prefix = False
                continue
            if state == FAILED:
                result.nack.append(tag)
                done.append(tag)
            elif state == REFUSED:
                result.reject.append(tag)
                done.append(tag)
            elif in_prefix:  # OK
                result.ack_upto = tag
                result.acked += 1
                done.append(tag)
        for tag in done:
            del self._state[tag]
        self._settled_count -= len(done)
        return result
