"""``[kafka] assignment = "all"``: the instance reads every partition of its topic
itself, with no consumer-group membership.

Where each service runs as one instance (the systemd units: one bridge, parser,
sink per host), a group adds nothing but its joins: after a kill -9 and a restart
the broker hands the partitions back only after a join, which on some brokers
waits for the old member's session (measured on tansu: about 6 s, whatever the
session timeout). Assigned directly, a restarted instance reads from its group's
committed offsets at once. Offsets are committed to the same group as before, so
switching between the two modes keeps the positions.

What it costs: no failover to another instance and no sharing of partitions; two
instances running in this mode both read everything (duplicates downstream, which
InfluxDB stores once; nothing is lost, the committed offsets may move back). The
topic is looked at every ``GROW_CHECK_S``: partitions added later are taken too,
from their committed offsets.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException, TopicPartition

GROW_CHECK_S = 30.0


class DirectAssignment:
    def __init__(self, consumer, topic: str, log):
        self.consumer = consumer
        self.topic = topic
        self.log = log
        self.partitions: set[int] = set()
        self._next_check = 0.0

    def grow(self, timeout_s: float = 10.0) -> list[int]:
        """Assign the topic's partitions not assigned yet (all of them the first
        time), each from its committed offset; the new ones."""
        self._next_check = time.monotonic() + GROW_CHECK_S
        metadata = self.consumer.list_topics(self.topic, timeout=timeout_s)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            self._next_check = time.monotonic() + 1.0  # not created yet: look again soon
            return []
        new = sorted(set(topic.partitions) - self.partitions)
        if not new:
            return []
        committed = self.consumer.committed([TopicPartition(self.topic, p) for p in new], timeout=timeout_s)
        self.consumer.incremental_assign(committed)
        self.partitions.update(new)
        return new

    def due(self) -> bool:
        return time.monotonic() >= self._next_check

    def grow_quietly(self) -> list[int]:
        """``grow`` from the loop: a broker that does not answer now is asked later."""
        try:
            return self.grow(timeout_s=2.0)
        except KafkaException as exc:
            self.log.warning("partitions_check_failed", error=str(exc))
            return []
