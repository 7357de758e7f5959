"""Both ends of the bridge in tests: the RabbitMQ queue and the Kafka raw topic."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter

import pika
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from edge.config.settings import AmqpSettings, SimulatorSettings
from edge.simulator.publish import SimulationSummary, publish


def _channel(amqp: AmqpSettings):
    connection = pika.BlockingConnection(pika.ConnectionParameters(amqp.host, amqp.port))
    return connection, connection.channel()


def queue_ready(amqp: AmqpSettings) -> int:
    """Ready (not delivered, or handed back) messages, counted by the broker."""
    connection, channel = _channel(amqp)
    try:
        return channel.queue_declare(amqp.queue, passive=True).method.message_count
    finally:
        connection.close()


def drain_queue(amqp: AmqpSettings) -> list[bytes]:
    """Take every ready message out of the queue and delete it."""
    connection, channel = _channel(amqp)
    try:
        bodies = []
        while True:
            method, _props, body = channel.basic_get(amqp.queue, auto_ack=True)
            if method is None:
                break
            bodies.append(body)
        channel.queue_delete(amqp.queue)
        return bodies
    finally:
        connection.close()


def delete_queue(amqp: AmqpSettings) -> None:
    connection, channel = _channel(amqp)
    try:
        channel.queue_delete(amqp.queue)
    finally:
        connection.close()


def site_and_time(body: bytes) -> tuple[str, str]:
    header = json.loads(body, strict=False)["header"]
    return header["site_id"], header["timestamp"]


_QUIET = logging.getLogger("tests.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
_QUIET.disabled = True


class RawTopicReader:
    """Reads a topic from the beginning of every partition, without a consumer
    group (no join delay), accumulating what it has seen across calls."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "unused-assign-only",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                # A broker stopped on purpose is not news: keep librdkafka quiet.
                "logger": _QUIET,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.records: list[tuple[bytes, dict[str, bytes]]] = []
        self.offsets: list[tuple[int, int]] = []

    def poll(self, seconds: float = 0.5) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.consumer.consume(1000, 0.2):
                if message.error() is None:
                    self.records.append((message.value(), dict(message.headers() or [])))
                    self.offsets.append((message.partition(), message.offset()))
        return len(self.records)

    def keys(self) -> Counter:
        return Counter(site_and_time(value) for value, _ in self.records)

    def wait_distinct(self, expected: int, timeout: float) -> Counter:
        deadline = time.monotonic() + timeout
        keys = Counter()
        while time.monotonic() < deadline:
            self.poll(0.5)
            keys = self.keys()
            if len(keys) >= expected:
                return keys
        raise AssertionError(f"only {len(keys)} of {expected} distinct messages on the topic after {timeout}s")

    def wait_count(self, at_least: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll(0.3) >= at_least:
                return len(self.records)
        raise AssertionError(f"fewer than {at_least} records on the topic after {timeout}s")

    def close(self) -> None:
        self.consumer.close()


class BackgroundPublisher(threading.Thread):
    """The simulator publishing at a steady rate while the test does other things."""

    def __init__(self, amqp: AmqpSettings, **kwargs):
        super().__init__(daemon=True)
        self.settings = SimulatorSettings(amqp=amqp)
        self.kwargs = kwargs
        self.summary: SimulationSummary | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.summary = publish(self.settings, **self.kwargs)
        except BaseException as exc:  # surfaced by result()
            self.error = exc

    def result(self, timeout: float = 60) -> SimulationSummary:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.summary is not None, "publisher did not finish"
        return self.summary
