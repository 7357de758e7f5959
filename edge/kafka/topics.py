"""``edge topics``: create ``<prefix>.raw``, ``<prefix>.parsed`` and ``<prefix>.dlq``.

Partition count and replication factor come from ``[kafka]``. Idempotent: a topic
that exists is left as it is (its partition count is reported, never changed: on
Kafka, adding partitions to a keyed topic moves series between partitions), and a
concurrent creator winning the race counts as "exists".
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from edge.core.errors import UnreachableError
from edge.kafka.config import admin_config
from edge.settings import KafkaSettings, TopicsSettings

TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TopicStatus:
    name: str
    partitions: int
    action: str  # "created" | "exists"

    def line(self) -> str:
        return f"topic {self.name}: {self.action} (partitions={self.partitions})"


def topic_names(kafka: KafkaSettings) -> list[str]:
    return [kafka.raw_topic, kafka.parsed_topic, kafka.dlq_topic]


def ensure_topics(kafka: KafkaSettings, timeout_s: float = TIMEOUT_S) -> list[TopicStatus]:
    """Create the missing topics; report every topic with its partition count."""
    admin = AdminClient(admin_config(kafka, "edge-topics"))
    names = topic_names(kafka)
    try:
        # A broker that does not answer this soon is not there: say so, don't wait 30 s.
        existing = admin.list_topics(timeout=min(timeout_s, CONNECT_TIMEOUT_S)).topics
    except KafkaException as exc:
        admin.poll(0)  # hands librdkafka's own reason (refused, unresolved ...) to the log
        raise UnreachableError(
            f"kafka: no broker answered at {kafka.bootstrap_servers} within {CONNECT_TIMEOUT_S:g} s: "
            f"{exc.args[0].str()}"
        ) from None
    missing = [n for n in names if n not in existing]
    created: set[str] = set()
    if missing:
        futures = admin.create_topics(
            [NewTopic(n, kafka.partitions, kafka.replication_factor) for n in missing],
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout_s)
                created.add(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    metadata = admin.list_topics(timeout=timeout_s).topics
    report = []
    for name in names:
        topic = metadata.get(name)
        partitions = len(topic.partitions) if topic is not None and topic.error is None else 0
        report.append(TopicStatus(name, partitions, "created" if name in created else "exists"))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    settings = TopicsSettings.load(args.config)
    report = ensure_topics(settings.kafka)
    for status in report:
        print(status.line(), flush=True)
    if any(s.partitions == 0 for s in report):
        print("topics: some topics have no partitions in the cluster metadata", flush=True)
        return 1
    wanted = settings.kafka.partitions
    for status in report:
        if status.partitions != wanted:
            print(f"topics: note: {status.name} has {status.partitions} partitions, config says {wanted}", flush=True)
    return 0
