"""``edge topics`` against the real (tansu) Kafka broker."""

from __future__ import annotations

import os
import subprocess
import sys

from confluent_kafka.admin import AdminClient

from edge.settings import KafkaSettings
from edge.kafka.topics import ensure_topics
from tests.conftest import ROOT


def _delete(kafka: KafkaSettings, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.delete_topics(names).values():
        future.result(10)


def test_ensure_topics_creates_then_reports_existing(local_services, names):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=3)
    first = ensure_topics(kafka)
    try:
        assert [(s.name, s.action, s.partitions) for s in first] == [
            (f"{names['prefix']}.raw", "created", 3),
            (f"{names['prefix']}.parsed", "created", 3),
            (f"{names['prefix']}.dlq", "created", 3),
        ]
        second = ensure_topics(kafka)
        assert [(s.action, s.partitions) for s in second] == [("exists", 3)] * 3
        # A different partition count in config never alters an existing topic.
        third = ensure_topics(KafkaSettings(topic_prefix=names["prefix"], partitions=6))
        assert [(s.action, s.partitions) for s in third] == [("exists", 3)] * 3
        metadata = AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(timeout=10)
        assert all(len(metadata.topics[s.name].partitions) == 3 for s in first)
    finally:
        _delete(kafka, [s.name for s in first])


def test_cli_twice_is_harmless(local_services, names, edge_env):
    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli", "topics"],
            cwd=ROOT,
            env={**os.environ, **edge_env, "EDGE_KAFKA__PARTITIONS": "2"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    first, second = run(), run()
    try:
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        assert first.stdout.count(": created (partitions=2)") == 3
        assert second.stdout.count(": exists (partitions=2)") == 3
        assert f"topic {names['prefix']}.dlq" in second.stdout
    finally:
        _delete(KafkaSettings(), [f"{names['prefix']}.{s}" for s in ("raw", "parsed", "dlq")])
