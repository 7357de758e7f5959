"""Producing for a stage: backpressure that honours stop, and dead letters.

``StageProducer.produce`` waits while librdkafka's local queue is full (serving
delivery reports meanwhile, which is what frees it), keeps the watchdog fed while
it waits, and gives up when the service is stopping: the record was then not
produced, its input is not complete, so its offset or AMQP delivery is never
acknowledged and it is read again after the restart. Nothing is lost by giving up.

``DeadLetters.send`` is the one way any stage writes to ``<prefix>.dlq``: the
original bytes and key, the original headers, and ``dlq.*`` headers saying why and
where from (``edge.core.dlq``). A redriven record that fails the same way again
is written as a body-less repeat marker (``edge.core.dlq.repeat_of``). Given the
failure ids the DLQ holds (``known``, what ``edge replay`` reads first), it writes
nothing for those and adds each one it writes: one record per failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Producer

from edge.core.dlq import dlq_headers, failure_id, repeat_of
from edge.kafka.config import producer_config
from edge.config.settings import KafkaSettings

# Errors that mean the producer's idempotence state (producer id, epoch, sequence)
# is no longer accepted by the broker: every later record would fail the same way,
# so the producer is replaced (``StageProducer.replace``). Seen on a
# Kafka-compatible broker restarted with persistent storage after records timed
# out, and on tansu after records timed out while it stalled ("ProducerFenced"
# on every produce).
PRODUCER_STATE_ERRORS = {
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError.UNKNOWN_PRODUCER_ID,
    KafkaError.INVALID_PRODUCER_ID_MAPPING,
    KafkaError._FENCED,
}


class StageProducer:
    def __init__(self, kafka: KafkaSettings, client_id: str, *, stop, supervisor, health, **extra):
        self.stop = stop
        self.supervisor = supervisor
        self.health = health
        self._conf = producer_config(kafka, client_id, error_cb=health.on_error, **extra)
        self.client = Producer(self._conf)

    def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers=None,
                on_delivery: Callable | None = None) -> bool:
        """True once the record is queued; False if the service stops (or the
        producer failed fatally) first."""
        while True:
            try:
                self.client.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return True
            except BufferError:  # local queue full: serve acknowledgements to free it
                if self.stop.is_set() or self.health.fatal is not None:
                    return False
                self.supervisor.alive()
                self.client.poll(0.1)

    def poll(self, timeout: float = 0.0) -> int:
        return self.client.poll(timeout)

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every delivery report; returns what is left."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            remaining = self.client.flush(max(0.0, min(0.5, deadline - time.monotonic())))
            self.supervisor.alive()
            if not remaining or time.monotonic() >= deadline:
                return remaining

    def replace(self) -> None:
        """Drop every queued record (their delivery reports fail) and start a new
        producer: a new idempotent producer id."""
        self.client.purge()
        self.client.poll(0)
        self.client = Producer(self._conf)

    def __len__(self) -> int:
        return len(self.client)


class DeadLetters:
    """``<prefix>.dlq`` for one stage, counted by reason (``counter``). With
    ``known`` (failure ids already in the DLQ), a failure in it is counted in
    ``known_counter`` and in ``skipped``, and not written."""

    def __init__(self, producer: StageProducer, topic: str, stage: str, counter, *,
                 known: set[str] | None = None, known_counter=None):
        self.producer = producer
        self.topic = topic
        self.stage = stage
        self.counter = counter
        self.known = known
        self.known_counter = known_counter
        self.skipped = 0

    def send(self, msg, reason: str, error: str, on_delivery: Callable | None = None) -> bool:
        """True once queued (or known and skipped); False if the stage stops first."""
        body, original = msg.value(), msg.headers()
        repeat = None
        if self.known is not None:  # replay: the DLQ's content is known, a copy never needed
            failure = failure_id(self.stage, reason, body)
            if failure in self.known:
                self.skipped += 1
                if self.known_counter is not None:
                    self.known_counter.labels(reason=reason).inc()
                return True
        else:
            repeat = repeat_of(self.stage, reason, body, original)
        headers = dlq_headers(stage=self.stage, reason=reason, error=error, topic=msg.topic(),
                              partition=msg.partition(), offset=msg.offset(), original=original, repeat=repeat)
        queued = self.producer.produce(self.topic, None if repeat else body, key=msg.key(), headers=headers,
                                       on_delivery=on_delivery)
        if queued:
            self.counter.labels(reason=reason).inc()
            if self.known is not None:
                self.known.add(failure)
        return queued
