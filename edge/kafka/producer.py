"""Producing for a stage: backpressure that honours stop, and dead letters.

``StageProducer.produce`` waits while librdkafka's local queue is full (serving
delivery reports meanwhile, which is what frees it), keeps the watchdog fed while
it waits, and gives up when the service is stopping: the record was then not
produced, its input is not complete, so its offset or AMQP delivery is never
acknowledged and it is read again after the restart. Nothing is lost by giving up.

``DeadLetters.send`` is the one way any stage writes to ``<prefix>.dlq``: the
original bytes and key, the original headers, and ``dlq.*`` headers saying why and
where from (``edge.core.dlq``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Producer

from edge.core.dlq import dlq_headers
from edge.kafka.config import producer_config
from edge.config.settings import KafkaSettings


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
    """``<prefix>.dlq`` for one stage, counted by reason."""

    def __init__(self, producer: StageProducer, topic: str, stage: str, counter):
        self.producer = producer
        self.topic = topic
        self.stage = stage
        self.counter = counter

    def send(self, msg, reason: str, error: str, on_delivery: Callable | None = None) -> bool:
        headers = dlq_headers(stage=self.stage, reason=reason, error=error, topic=msg.topic(),
                              partition=msg.partition(), offset=msg.offset(), original=msg.headers())
        queued = self.producer.produce(self.topic, msg.value(), key=msg.key(), headers=headers,
                                       on_delivery=on_delivery)
        if queued:
            self.counter.labels(reason=reason).inc()
        return queued
