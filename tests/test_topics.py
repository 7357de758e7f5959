"""``edge topics`` against the real (tansu) Kafka broker: topics with their configs,
drift shown and applied; the pure parts (configs from settings, drift, a broker's
refusal in one line) on their own."""

from __future__ import annotations

import os
import subprocess
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from edge.kafka.topics import Drift, broker_refusal, config_drift, ensure_topics, topic_configs
from edge.config.settings import KafkaSettings
from tests.conftest import ROOT

DAY_MS = 24 * 3600 * 1000


def _delete(kafka: KafkaSettings, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.delete_topics(names).values():
        future.result(10)


def _configs(kafka: KafkaSettings, name: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()
    return {k: v.value for k, v in future.result(10).items()}


def test_configs_come_from_the_settings():
    kafka = KafkaSettings(topic_prefix="p", replication_factor=3, raw_retention_ms=5 * DAY_MS)
    configs = topic_configs(kafka)
    assert configs["p.raw"] == {"cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": str(5 * DAY_MS)}
    assert configs["p.parsed"]["retention.ms"] == str(7 * DAY_MS)
    assert configs["p.dlq"]["retention.ms"] == str(30 * DAY_MS)
    # Replay reaches 7 days back by default.
    assert KafkaSettings().raw_retention_ms == 7 * DAY_MS
    assert topic_configs(KafkaSettings(topic_prefix="p", replication_factor=1))["p.dlq"]["min.insync.replicas"] == "1"
    assert topic_configs(KafkaSettings(topic_prefix="p", replication_factor=2))["p.dlq"]["min.insync.replicas"] == "2"


def test_drift_names_each_differing_key():
    wanted = {"cleanup.policy": "delete", "min.insync.replicas": "2", "retention.ms": "7"}
    drift = config_drift(wanted, {"cleanup.policy": "compact", "retention.ms": "7"})
    assert drift == [Drift("cleanup.policy", "compact", "delete"), Drift("min.insync.replicas", None, "2")]
    assert drift[1].text() == "min.insync.replicas=(broker default) (settings: 2)"
    assert config_drift(wanted, dict(wanted)) == []


def test_a_broker_refusal_is_one_line_naming_it():
    unsupported = KafkaException(KafkaError(KafkaError._UNSUPPORTED_FEATURE, "DescribeConfigs not supported"))
    assert broker_refusal("describe topic configs", unsupported) == (
        "the broker refused to describe topic configs (this broker does not support it):"
        " _UNSUPPORTED_FEATURE: DescribeConfigs not supported"
    )
    denied = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not allowed"))
    assert broker_refusal("alter topic configs", denied) == (
        "the broker refused to alter topic configs: TOPIC_AUTHORIZATION_FAILED: not allowed"
    )


def test_ensure_topics_creates_then_reports_existing(local_services, names):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=3)
    first = ensure_topics(kafka)
    try:
        assert [(s.name, s.action, s.partitions) for s in first] == [
            (f"{names['prefix']}.raw", "created", 3),
            (f"{names['prefix']}.parsed", "created", 3),
            (f"{names['prefix']}.dlq", "created", 3),
        ]
        # Created with their configs, read back from the broker.
        assert all(s.drift == () and s.configs_error == "" for s in first)
        assert _configs(kafka, kafka.raw_topic) == {
            "cleanup.policy": "delete", "min.insync.replicas": "1", "retention.ms": str(7 * DAY_MS)}
        assert _configs(kafka, kafka.dlq_topic)["retention.ms"] == str(30 * DAY_MS)
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


def test_drift_of_existing_topics_is_shown_then_applied(local_services, names):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=1)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    # Topics made by hand: raw with a 1-day retention, the others with no configs.
    made = admin.create_topics([
        NewTopic(kafka.raw_topic, 1, 1, config={"retention.ms": str(DAY_MS), "cleanup.policy": "delete"}),
        NewTopic(kafka.parsed_topic, 1, 1),
        NewTopic(kafka.dlq_topic, 1, 1),
    ])
    for future in made.values():
        future.result(10)
    try:
        shown = {s.name: s for s in ensure_topics(kafka)}
        assert [d.key for d in shown[kafka.raw_topic].drift] == ["min.insync.replicas", "retention.ms"]
        assert shown[kafka.raw_topic].drift[1] == Drift("retention.ms", str(DAY_MS), str(7 * DAY_MS))
        assert [d.key for d in shown[kafka.dlq_topic].drift] == ["cleanup.policy", "min.insync.replicas", "retention.ms"]
        assert "drift: min.insync.replicas=" in shown[kafka.raw_topic].line()
        assert _configs(kafka, kafka.raw_topic)["retention.ms"] == str(DAY_MS)  # shown, not changed

        applied = {s.name: s for s in ensure_topics(kafka, apply=True)}
        assert all(s.applied and s.configs_error == "" for s in applied.values())
        assert "applied: " in applied[kafka.raw_topic].line()
        for name, wanted in topic_configs(kafka).items():
            got = _configs(kafka, name)
            assert {k: got.get(k) for k in wanted} == wanted, name
        assert all(s.drift == () for s in ensure_topics(kafka))
    finally:
        _delete(kafka, [kafka.raw_topic, kafka.parsed_topic, kafka.dlq_topic])


def test_cli_shows_drift_and_apply_fixes_it(local_services, names, edge_env):
    def run(*argv: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli", "topics", *argv],
            cwd=ROOT, env={**os.environ, **edge_env, "EDGE_KAFKA__PARTITIONS": "1", **env},
            capture_output=True, text=True, timeout=60,
        )

    prefix = names["prefix"]
    try:
        assert run().returncode == 0
        longer = str(14 * DAY_MS)
        drift = run(EDGE_KAFKA__RAW_RETENTION_MS=longer)
        assert drift.returncode == 0, drift.stderr
        assert f"topic {prefix}.raw: exists (partitions=1); drift: retention.ms={7 * DAY_MS} (settings: {longer})" in drift.stdout
        assert f"topic {prefix}.dlq: exists (partitions=1); configs as in the settings" in drift.stdout
        assert "`edge topics --apply` sets them" in drift.stdout
        fixed = run("--apply", EDGE_KAFKA__RAW_RETENTION_MS=longer)
        assert fixed.returncode == 0, fixed.stderr
        assert f"topic {prefix}.raw: exists (partitions=1); applied: retention.ms={7 * DAY_MS} (settings: {longer})" in fixed.stdout
        assert "Traceback" not in fixed.stderr
        assert _configs(KafkaSettings(), f"{prefix}.raw")["retention.ms"] == longer
    finally:
        _delete(KafkaSettings(), [f"{prefix}.{s}" for s in ("raw", "parsed", "dlq")])
