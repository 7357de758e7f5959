"""``edge topics`` against the real (tansu) Kafka broker: topics with their configs,
drift shown and applied; ``--delete`` asking first, removing the prefix's topics
and its own groups only, refused while a consumer is active (dynamic, and a real
parser with static membership, which tansu keeps ``STABLE`` after it stopped, so
that only ``--force`` deletes it); the pure parts (configs from settings, drift, a
broker's refusal in one line, which groups are the prefix's and whether the broker
can tell they are in use) on their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys


import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from edge.commands.topics import refusal
from edge.kafka.teardown import CANNOT_TELL, IDLE, IN_USE, Group, teardown_plan
from edge.ops.running import Running
from edge.ops.status import answers
from edge.kafka.topics import Drift, broker_refusal, config_drift, ensure_topics, topic_configs, topic_names
from edge.config.settings import KafkaSettings
from tests.conftest import ROOT, TEST_KAFKA_CLIENT
from tests.support.pipeline import free_port
from tests.support.processes import EdgeProcess, wait_for

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


# ------------------------------------------------------------------ --delete


def test_a_prefixs_groups_are_those_with_offsets_only_on_its_topics():
    ours = ["p.raw", "p.parsed", "p.dlq"]
    groups = [
        Group("p.parser", frozenset({"p.raw"}), "EMPTY"),
        Group("p.sink", frozenset({"p.parsed"}), "STABLE", members=2),
        Group("shared", frozenset({"p.raw", "q.raw"}), "STABLE"),
        Group("q.parser", frozenset({"q.raw"}), "STABLE", members=1),
        Group("no-offsets", frozenset(), "STABLE", members=1),
    ]
    plan = teardown_plan(ours, {"p.raw", "p.dlq", "q.raw"}, groups)
    assert plan.topics == ("p.raw", "p.dlq") and plan.groups == ("p.parser", "p.sink")
    assert plan.kept == (("shared", ("q.raw",)),) and plan.busy == (groups[1],) and plan.unsure == (groups[2],)
    assert plan.lines()[-1] == "consumer group shared: kept (also has offsets on q.raw)"
    assert teardown_plan(ours, {"q.raw"}, groups[3:]).empty


def test_the_broker_tells_a_group_in_use_by_its_members_and_idle_by_its_state():
    # Members listed: in use whatever the state; none listed: EMPTY and DEAD are idle,
    # any other state (tansu's STABLE, for a running group and for stopped static
    # members alike; UNKNOWN) cannot be told.
    assert [Group("g", frozenset(), state, members).activity for state, members in [
        ("STABLE", 1), ("EMPTY", 1), ("EMPTY", 0), ("DEAD", 0), ("STABLE", 0),
        ("PREPARING_REBALANCING", 0), ("UNKNOWN", 0)]] == [IN_USE, IN_USE, IDLE, IDLE] + [CANNOT_TELL] * 3


def test_force_overrides_only_what_the_broker_cannot_tell():
    unsure = Group("p.parser", frozenset({"p.raw"}), "STABLE")
    listed = Group("p.sink", frozenset({"p.parsed"}), "STABLE", members=1)
    plan = teardown_plan(["p.raw", "p.parsed"], {"p.raw"}, [unsure])
    assert refusal(plan, force=True, running=[]) is None
    why = refusal(plan, force=False, running=[Running("bridge", 9641, None)])
    assert why.startswith("cannot tell whether consumer group p.parser (STABLE) is in use: the broker reports it")
    assert "static members (group.instance.id" in why and "systemctl stop edge-bridge edge-parser edge-sink" in why
    assert "then run again with --force; note: the bridge answers on metrics port 9641 here; nothing deleted" in why
    two = teardown_plan(["p.raw", "p.parsed"], set(), [unsure, Group("p.x", frozenset({"p.raw"}), "UNKNOWN")])
    assert "consumer groups p.parser (STABLE), p.x (UNKNOWN) are in use: the broker reports them" in refusal(two, False, [])
    # Evidence that it is in use is never forced: members listed, or its service answering here.
    busy = teardown_plan(["p.raw", "p.parsed"], set(), [unsure, listed])
    assert refusal(busy, True, []).startswith("consumer group p.sink (1 member listed by the broker) in use")
    held = refusal(plan, True, [Running("parser", 9642, "p.parser")])
    assert held.startswith("consumer group p.parser (the parser answers on metrics port 9642 here, consumer group"
                           " p.parser) in use on these topics: stop")
    assert held.endswith("nothing deleted (--force does not override this)")
    assert refusal(plan, True, [Running("parser", 9642, "other.parser")]) is None


def _commit(kafka: KafkaSettings, group: str, topics: list[str]) -> None:
    """Offsets for ``group`` on ``topics``, committed without joining (as a stopped service leaves them)."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(t, 0, 0) for t in topics], asynchronous=False)
    finally:
        consumer.close()


def _groups(kafka: KafkaSettings) -> set[str]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}


def _offsets(kafka: KafkaSettings, group: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    (future,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    return {tp.topic for tp in future.result(10).topic_partitions}


def _topics(kafka: KafkaSettings) -> set[str]:
    return set(AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(timeout=10).topics)


@pytest.fixture
def prefix_with_groups(local_services, names, edge_env):
    """The prefix's three topics, a group of its own, a group that also reads
    another topic, and a group of that other topic only."""
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=1)
    ensure_topics(kafka)
    other = f"{names['prefix']}-other.raw"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(other, 1, 1)])[other].result(10)
    groups = {"own": f"{names['prefix']}.parser", "shared": f"{names['prefix']}-shared",
              "other": f"{names['prefix']}-other"}
    _commit(kafka, groups["own"], [kafka.raw_topic, kafka.parsed_topic])
    _commit(kafka, groups["shared"], [kafka.raw_topic, other])
    _commit(kafka, groups["other"], [other])
    yield kafka, groups, other
    left = [t for t in [*topic_names(kafka), other] if t in _topics(kafka)]
    for future in (admin.delete_topics(left).values() if left else []):
        future.result(10)
    gone = [g for g in groups.values() if g in _groups(kafka)]
    for future in (admin.delete_consumer_groups(gone).values() if gone else []):
        future.result(10)


def _unused_ports(**given: int) -> dict[str, str]:
    """The services' metrics ports for ``edge topics``: ``given``, the others where
    nothing listens (whatever runs on the fixed ports of this host is not the test's)."""
    return {"EDGE_METRICS__PORTS": json.dumps({s: free_port() for s in ("bridge", "parser", "sink")} | given)}


def _delete_cli(env: dict, *argv: str, answer: str | None = None, **ports: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", "topics", "--delete", *argv], cwd=ROOT,
                          env={**os.environ, **env, **_unused_ports(**ports)}, input=answer, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL if answer is None else None)


def test_delete_asks_then_removes_the_prefixs_topics_and_its_own_groups(prefix_with_groups, edge_env):
    kafka, groups, other = prefix_with_groups
    declined = _delete_cli(edge_env, answer="n\n")
    assert declined.returncode == 1 and "not confirmed: nothing deleted" in declined.stderr, declined.stderr
    assert f"topic {kafka.dlq_topic}: to delete" in declined.stdout
    assert f"consumer group {groups['own']}: to delete" in declined.stdout
    assert f"consumer group {groups['shared']}: kept (also has offsets on {other})" in declined.stdout
    assert f"group {groups['other']}:" not in declined.stdout and "[y/N]" in declined.stdout
    assert set(topic_names(kafka)) <= _topics(kafka) and groups["own"] in _groups(kafka)
    assert _delete_cli(edge_env).returncode == 1  # no answer (end of input) is no

    done = _delete_cli(edge_env, answer="y\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "topics: deleted 3 topics and 1 consumer group of prefix" in done.stdout
    assert not set(topic_names(kafka)) & _topics(kafka) and other in _topics(kafka)
    assert groups["own"] not in _groups(kafka)
    assert _offsets(kafka, groups["shared"]) >= {other} and _offsets(kafka, groups["other"]) == {other}
    again = _delete_cli(edge_env, "--yes")
    assert again.returncode == 0 and f"nothing to delete for prefix {kafka.topic_prefix!r}" in again.stdout


def test_delete_is_refused_while_a_consumer_is_active_then_done_with_yes(prefix_with_groups, edge_env):
    kafka, _groups_, _other = prefix_with_groups
    group = f"{kafka.topic_prefix}.sink"
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False, **TEST_KAFKA_CLIENT})
    consumer.subscribe([kafka.parsed_topic])
    try:
        wait_for(lambda: consumer.poll(0.2) is None and consumer.assignment(), 60, what="the consumer's assignment")
        consumer.commit(offsets=[TopicPartition(kafka.parsed_topic, 0, 0)], asynchronous=False)
        refused = _delete_cli(edge_env, "--yes")
        assert refused.returncode == 6, refused.stdout + refused.stderr
        # tansu lists no members: a running group is STABLE with none, which it cannot tell from stopped static ones.
        assert f"cannot tell whether consumer group {group} (STABLE) is in use" in refused.stderr
        assert "nothing deleted" in refused.stderr
        assert set(topic_names(kafka)) <= _topics(kafka) and group in _groups(kafka)
    finally:
        consumer.close()
    done = _delete_cli(edge_env, "--yes")  # never asks
    assert done.returncode == 0 and "[y/N]" not in done.stdout, done.stdout + done.stderr
    assert f"consumer group {group}: deleted" in done.stdout and group not in _groups(kafka)
    assert not set(topic_names(kafka)) & _topics(kafka)


def _state(kafka: KafkaSettings, group: str) -> str:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    return admin.describe_consumer_groups([group])[group].result(10).state.name


def test_a_static_parser_group_is_refused_running_and_stopped_and_force_deletes_it(prefix_with_groups, edge_env,
                                                                                   tmp_path):
    """The real parser with static membership (the default group.instance.id): tansu
    keeps its group STABLE after it stopped cleanly, so only --force deletes it."""
    kafka, groups, _other = prefix_with_groups
    group, port = groups["own"], free_port()  # edge_env's parser group, with offsets on raw and parsed
    parser = EdgeProcess(["parse"], dict(edge_env, EDGE_PARSER__GROUP_ID=group, EDGE_METRICS__PORT=str(port),
                                         EDGE_KAFKA__GROUP_INSTANCE_ID="{host}-parser"), tmp_path / "parse.log")
    parser.start()
    try:
        wait_for(lambda: "partitions_assigned" in parser.log(), 60, what="the parser's assignment")
        wait_for(lambda: answers("parser", "127.0.0.1", port), 10, what="the parser's metrics")
        unseen = _delete_cli(edge_env, "--yes")  # its metrics port not among [metrics] ports: the broker alone
        assert unseen.returncode == 6, unseen.stdout + unseen.stderr
        assert f"cannot tell whether consumer group {group} (STABLE) is in use" in unseen.stderr
        seen = _delete_cli(edge_env, "--yes", "--force", parser=port)
        assert seen.returncode == 6, seen.stdout + seen.stderr
        assert (f"consumer group {group} (the parser answers on metrics port {port} here, consumer group {group})"
                " in use") in seen.stderr and "--force does not override this" in seen.stderr
    finally:
        assert parser.terminate() == 0, parser.log()
    assert _state(kafka, group) == "STABLE"  # stopped cleanly, and still so
    stopped = _delete_cli(edge_env, "--yes", parser=port)
    assert stopped.returncode == 6, stopped.stdout + stopped.stderr
    assert f"cannot tell whether consumer group {group} (STABLE) is in use" in stopped.stderr
    assert "static members (group.instance.id, from kafka.group_instance_id) long after they stopped" in stopped.stderr
    assert "`systemctl stop edge-bridge edge-parser edge-sink`" in stopped.stderr
    assert "then run again with --force; nothing deleted" in stopped.stderr
    assert set(topic_names(kafka)) <= _topics(kafka) and group in _groups(kafka)

    forced = _delete_cli(edge_env, "--yes", "--force", parser=port)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"consumer group {group}: the broker cannot tell whether it is in use (STABLE, no members listed);" \
           " deleting it as --force says" in forced.stdout
    assert f"consumer group {group}: deleted" in forced.stdout and group not in _groups(kafka)
    assert not set(topic_names(kafka)) & _topics(kafka)
