"""Consumer lag per partition, as a Prometheus gauge: records not yet fetched.

Lag of a partition = its high watermark - the consumer's position (the next offset
it will fetch). Both come from librdkafka's own state (the fetcher's cached high
watermark, no broker round trip), so refreshing it every few seconds costs nothing
on the hot path. Records fetched but not yet written/committed are the services'
``in_flight`` / ``buffered`` gauges; together they say where a backlog sits.

tansu (the development broker) reports a wrong high watermark after a
multi-record batch (the batch's base offset + 1), so on tansu this figure can read
low; Apache Kafka reports it right. A negative difference is shown as 0.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_INVALID, KafkaException


def partition_lag(high: int, position: int) -> int | None:
    """Records behind: None when the position is not known yet."""
    if position is None or position < 0 or high is None or high < 0:
        return None
    return max(0, high - position)


class LagGauge:
    """Refreshes ``gauge`` (labelled by ``partition``) at most every ``every_s``."""

    def __init__(self, gauge, every_s: float = 5.0):
        self.gauge = gauge
        self.every_s = every_s
        self._next = 0.0
        self._shown: set[str] = set()

    def refresh(self, consumer, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.every_s
        try:
            assignment = consumer.assignment()
            positions = consumer.position(assignment) if assignment else []
        except KafkaException:
            return
        shown: set[str] = set()
        for tp in positions:
            if tp.offset == OFFSET_INVALID:
                continue
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            lag = partition_lag(high, tp.offset)
            if lag is None:
                continue
            label = str(tp.partition)
            self.gauge.labels(partition=label).set(lag)
            shown.add(label)
        for gone in self._shown - shown:  # revoked: no longer ours to report
            try:
                self.gauge.remove(gone)
            except KeyError:
                pass
        self._shown = shown
