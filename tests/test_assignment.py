"""``[kafka] assignment = "all"`` against the real broker: every partition is read
directly from the group's committed offsets (positions carry over from group
mode), and a topic that appears later is taken when it does. (Partitions added to
an existing topic take the same path, a set difference; tansu cannot add
partitions, so that case is not run here.)"""

from __future__ import annotations

import uuid

import structlog
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from edge.config.settings import KafkaSettings
from edge.kafka.assignment import DirectAssignment
from edge.kafka.config import consumer_config


def _consume(consumer: Consumer, n: int, timeout_s: float = 30.0) -> list:
    got: list = []
    for _ in range(int(timeout_s / 0.2)):
        got += [m for m in consumer.consume(n - len(got), timeout=0.2) if m.error() is None]
        if len(got) >= n:
            break
    return got


def test_every_partition_from_its_committed_offset_and_new_partitions_later(local_services):
    kafka = KafkaSettings(assignment="all")
    tag = uuid.uuid4().hex[:8]
    topic, group = f"t_assign_{tag}", f"g_assign_{tag}"
    admin = AdminClient(kafka.client_config())
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    producer = Producer(kafka.client_config())
    for i in range(30):
        producer.produce(topic, str(i).encode(), partition=i % 3)
    producer.flush(30)

    # A group member commits what it did (10 records of partition 0): the position a
    # service in group mode would leave behind.
    first = Consumer(consumer_config(kafka, group, "t-first"))
    first.assign([TopicPartition(topic, 0, 0)])
    done = _consume(first, 10)
    first.commit(offsets=[TopicPartition(topic, 0, done[-1].offset() + 1)], asynchronous=False)
    first.close()

    consumer = Consumer(consumer_config(kafka, group, "t-direct"))
    direct = DirectAssignment(consumer, topic, structlog.get_logger())
    assert direct.grow() == [0, 1, 2]
    got = _consume(consumer, 20)
    assert len(got) == 20  # partition 0 from its commit, 1 and 2 from the start
    assert {m.partition() for m in got} == {1, 2}
    assert direct.grow() == []
    consumer.close()
    admin.delete_topics([topic])


def test_a_topic_created_later_is_taken_when_it_appears(local_services):
    kafka = KafkaSettings(assignment="all")
    tag = uuid.uuid4().hex[:8]
    topic = f"t_later_{tag}"
    consumer = Consumer(consumer_config(kafka, f"g_later_{tag}", "t-later"))
    direct = DirectAssignment(consumer, topic, structlog.get_logger())
    assert direct.grow(timeout_s=5) == []
    assert direct.partitions == set()
    assert not direct.due()  # looked at again within a second, not after GROW_CHECK_S
    admin = AdminClient(kafka.client_config())
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    assert direct.grow(timeout_s=5) == [0, 1]
    producer = Producer(kafka.client_config())
    producer.produce(topic, b"first", partition=1)
    producer.flush(30)
    (first,) = _consume(consumer, 1)
    assert (first.partition(), first.value()) == (1, b"first")
    consumer.close()
    admin.delete_topics([topic])
