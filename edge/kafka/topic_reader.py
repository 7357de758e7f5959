"""Reading a bounded stretch of a topic for the operator commands (thin Kafka shell).

The commands (``edge replay``, ``edge dlq``) read partitions from a start offset to
their end and stop; they never join the live services' consumer groups and never
commit. Partitions are assigned directly (no group join to wait for) and each one
is finished when the broker says it reached the end of the log (partition EOF) or
when the caller's ``finished(record)`` says so.

The end is the broker's partition EOF, not the high watermark: tansu, the
development broker, under-reports the high watermark after a multi-record batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from edge.core.errors import NotFoundError, UnreachableError
from edge.kafka.config import consumer_config
from edge.config.settings import KafkaSettings

METADATA_TIMEOUT_S = 15.0
BATCH = 500
# The reader's own consumer settings on top of ``consumer_config`` (bench.replay's
# broker floor reads with the same).
READ_SETTINGS = {"enable.partition.eof": True, "fetch.wait.max.ms": 100}


class TopicReader:
    def __init__(self, kafka: KafkaSettings, topic: str, *, group_id: str, client_id: str):
        self.topic = topic
        self.consumer = Consumer(
            consumer_config(kafka, group_id, client_id, **READ_SETTINGS)
        )
        self._partitions: list[int] | None = None

    def partitions(self) -> list[int]:
        if self._partitions is None:
            try:
                metadata = self.consumer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
            except KafkaException as exc:
                raise UnreachableError(f"kafka: {exc.args[0].str()} (topic {self.topic})") from None
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                raise NotFoundError(f"kafka: topic {self.topic} does not exist (edge topics creates it)")
            self._partitions = sorted(topic.partitions)
        return self._partitions

    def offsets_at(self, when_ms: int | None) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= ``when_ms`` (the
        log end where there is none); the beginning when ``when_ms`` is None."""
        parts = self.partitions()
        if when_ms is None:
            return {p: OFFSET_BEGINNING for p in parts}
        try:
            found = self.consumer.offsets_for_times(
                [TopicPartition(self.topic, p, when_ms) for p in parts], timeout=METADATA_TIMEOUT_S
            )
        except KafkaException as exc:
            raise UnreachableError(f"kafka: offsets for times on {self.topic}: {exc.args[0].str()}") from None
        return {tp.partition: tp.offset for tp in found}

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """Per partition, (low, high) as the broker reports them now."""
        out = {}
        for p in self.partitions():
            try:
                out[p] = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=METADATA_TIMEOUT_S, cached=False
                )
            except KafkaException as exc:
                raise UnreachableError(f"kafka: watermarks of {self.topic}[{p}]: {exc.args[0].str()}") from None
        return out

    def extents(self) -> dict[int, tuple[int, int]]:
        """Per partition, (low watermark, true log end): the offset after its last
        record, read up to the partition EOF (the high watermark can be
        under-reported); the high watermark for an empty partition."""
        marks = self.watermarks()
        tails = self.last_records(1)
        return {p: (low, tails[p][-1].offset() + 1 if tails.get(p) else high) for p, (low, high) in marks.items()}

    def first_records(self, starts: dict[int, int], count: int = 1) -> dict[int, list]:
        """Per partition, the first ``count`` records from its start offset (fewer,
        or none, where the log ends sooner)."""
        found: dict[int, list] = {p: [] for p in starts}
        seen = dict.fromkeys(starts, 0)

        def enough(msg) -> bool:  # asked before the record joins a batch
            seen[msg.partition()] += 1
            return seen[msg.partition()] > count

        for batch in self.read(starts, enough):
            for msg in batch:
                found[msg.partition()].append(msg)
        return found

    def last_records(self, count: int = 1) -> dict[int, list]:
        """Per partition, the last ``count`` records of the log, read up to the
        partition EOF: the true log end (the high watermark can be under-reported).
        Empty for an empty partition."""
        marks = self.watermarks()
        back = {p: max(count, 1) for p in marks}
        found: dict[int, list] = {}
        while back:
            starts = {p: max(marks[p][0], marks[p][1] - back[p]) for p in back}
            tails = {p: deque(maxlen=count) for p in starts}
            for batch in self.read(starts):
                for msg in batch:
                    tails[msg.partition()].append(msg)
            for p, tail in tails.items():
                if tail or starts[p] <= marks[p][0]:  # found, or read from the log start
                    found[p] = list(tail)
                    del back[p]
                else:  # nothing at or after the reported end-count (offset gaps): further back
                    back[p] *= 16
        return dict(sorted(found.items()))

    def read(
        self,
        starts: dict[int, int],
        finished: Callable[[object], bool] | None = None,
        stop: Callable[[], bool] | None = None,
        idle_timeout_s: float = 60.0,
    ) -> Iterator[list]:
        """Batches of records from ``starts`` until every partition is finished.

        A record for which ``finished`` is true ends its partition and is not
        returned. Raises UnreachableError when nothing at all arrives for
        ``idle_timeout_s`` (broker gone).
        """
        open_parts = {p for p, offset in starts.items() if offset is not None and offset >= OFFSET_BEGINNING}
        open_parts -= {p for p, offset in starts.items() if offset == -1}  # OFFSET_END: nothing to read
        if not open_parts:
            return
        self.consumer.incremental_assign([TopicPartition(self.topic, p, starts[p]) for p in sorted(open_parts)])
        last_event = time.monotonic()
        while open_parts and not (stop and stop()):
            batch = []
            # One record (handed over the moment it is there), then what else is
            # already fetched: ``consume(n, timeout)`` waits for n records or the
            # whole timeout, and a caller that produces meanwhile (replay) then
            # sits idle while fetched records wait in the queue.
            messages = self.consumer.consume(1, timeout=0.2)
            if messages:
                messages += self.consumer.consume(BATCH - 1, timeout=0)
            if messages:
                last_event = time.monotonic()
            elif time.monotonic() - last_event > idle_timeout_s:
                raise UnreachableError(f"kafka: nothing from {self.topic} for {idle_timeout_s:.0f} s")
            for msg in messages:
                partition = msg.partition()
                if partition not in open_parts:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._close(partition, open_parts)
                        continue
                    raise UnreachableError(f"kafka: reading {self.topic}[{partition}]: {err.str()}")
                if finished is not None and finished(msg):
                    self._close(partition, open_parts)
                    continue
                batch.append(msg)
            if batch:
                yield batch

    def _close(self, partition: int, open_parts: set[int]) -> None:
        open_parts.discard(partition)
        self.consumer.incremental_unassign([TopicPartition(self.topic, partition)])

    def close(self) -> None:
        self.consumer.close()
