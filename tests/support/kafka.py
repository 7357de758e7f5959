"""Reading and writing the real broker from tests (confluent-kafka, no fakes)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from edge.config.settings import KafkaSettings


def produce_all(kafka: KafkaSettings, topic: str, values: list[bytes], headers=None) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "linger.ms": 5})
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    for value in values:
        producer.produce(topic, value=value, headers=headers, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    md = consumer.list_topics(topic, timeout=10)
    return sorted(md.topics[topic].partitions)


def read_all(kafka: KafkaSettings, topic: str, idle: float = 1.5, timeout: float = 60.0) -> list:
    """Every record currently in ``topic`` (all partitions, from the beginning).

    Reads until no record arrived for ``idle`` seconds. (tansu's high watermark is
    not the log end after a multi-record batch -- it reports the batch's base offset
    + 1 until the next append -- so watermarks cannot say where the log ends.)
    """
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = _partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        records = []
        deadline = time.monotonic() + timeout
        last_arrival = time.monotonic()
        while time.monotonic() - last_arrival < idle:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} kept growing for {timeout}s")
            batch = [m for m in consumer.consume(1000, timeout=0.2) if not m.error()]
            if batch:
                records.extend(batch)
                last_arrival = time.monotonic()
        return records
    finally:
        consumer.close()


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """Partition -> log end offset (last offset + 1), found by reading the topic."""
    ends: dict[int, int] = {}
    for record in read_all(kafka, topic, idle=0.7):
        ends[record.partition()] = max(ends.get(record.partition(), 0), record.offset() + 1)
    return ends


def group_lag(kafka: KafkaSettings, group: str, topic: str) -> int:
    """Records in ``topic`` not yet committed by ``group`` (all partitions)."""
    ends = end_offsets(kafka, topic)
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        return sum(ends[tp.partition] - max(tp.offset, 0) for tp in committed)
    finally:
        consumer.close()
