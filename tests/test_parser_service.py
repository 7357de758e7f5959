"""``edge parse`` as a real process against the real broker: outputs, DLQ, offsets,
crash and group behaviour."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest

import edge.parser
from edge.core.dlq import header_map
from edge.parser import to_lines
from edge.simulator.messages import MessageTemplate, site_id
from edge.config.settings import KafkaSettings
from edge.kafka.topics import ensure_topics
from tests.support.kafka import group_lag, produce_all, read_all
from tests.support.processes import EdgeProcess, wait_for
from tests.test_parser import BAD_INPUTS

START = datetime(2024, 3, 1, 0, 0, 0)


def good_messages(count: int, sites: int = 3) -> list[bytes]:
    template = MessageTemplate.load()
    return [template.render(site_id(i % sites + 1), START + timedelta(seconds=i // sites)) for i in range(count)]


@pytest.fixture
def kafka(local_services, names) -> KafkaSettings:
    settings = KafkaSettings(topic_prefix=names["prefix"], partitions=6)
    ensure_topics(settings)
    return settings


def parser_process(edge_env, tmp_path, name="parser", instance="{host}-parser") -> EdgeProcess:
    # The test's own consumer group: members killed by another test never delay it.
    # ``instance``: the static member id (a restart keeps it, as under systemd); two
    # members of one group on one host need distinct ids; "" is a dynamic member.
    env = dict(edge_env, EDGE_PARSER__GROUP_ID=group_of(edge_env), EDGE_KAFKA__GROUP_INSTANCE_ID=instance)
    return EdgeProcess(["parse"], env, tmp_path / f"{name}.log")


def group_of(edge_env) -> str:
    return f"{edge_env['EDGE_KAFKA__TOPIC_PREFIX']}.parser"


def test_every_point_reaches_the_parsed_topic_keyed_by_series(kafka, edge_env, tmp_path):
    messages = good_messages(60)
    produce_all(kafka, kafka.raw_topic, messages)
    proc = parser_process(edge_env, tmp_path).start()
    try:
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 60, what="raw lag 0")
        records = read_all(kafka, kafka.parsed_topic)
        expected = sorted(line for m in messages for line in to_lines(m))
        assert sorted(r.value() for r in records) == expected
        for record in records:
            assert record.value().startswith(record.key() + b" ")
        # One series, one partition.
        by_key = {}
        for record in records:
            by_key.setdefault(record.key(), set()).add(record.partition())
        assert all(len(parts) == 1 for parts in by_key.values())
        assert read_all(kafka, kafka.dlq_topic) == []
        # Which parser runs is said once, at start: the compiled one where it is built.
        assert proc.log().count('"parser_path"') == 1, proc.log()
        assert f'"path": "{edge.parser.PATH}"' in proc.log(), proc.log()
    finally:
        assert proc.terminate() == 0, proc.log()


def test_a_message_with_a_utf8_byte_order_mark_lands_its_points(kafka, edge_env, tmp_path, sample_bytes):
    # Gateways on Windows stacks send one; RFC 8259 lets a reader ignore it.
    produce_all(kafka, kafka.raw_topic, [b"\xef\xbb\xbf" + sample_bytes])
    proc = parser_process(edge_env, tmp_path).start()
    try:
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 60, what="raw lag 0")
        assert sorted(r.value() for r in read_all(kafka, kafka.parsed_topic)) == sorted(to_lines(sample_bytes))
        assert read_all(kafka, kafka.dlq_topic) == []
    finally:
        assert proc.terminate() == 0, proc.log()


def test_poison_mix_lands_good_points_and_dead_letters_each_bad_message_once(kafka, edge_env, tmp_path, sample_bytes):
    good = good_messages(40)
    # Kafka's default record limit is 1 MB: the 10 MB inputs never reach the raw
    # topic (the bridge refuses them at the AMQP side); all others are mixed in.
    bad = {
        name: raw
        for name, raw in ((n, make(sample_bytes)) for n, make in BAD_INPUTS.items())
        if isinstance(raw, bytes) and len(raw) < 1_000_000
    }
    assert len(bad) >= 25
    mixed, bad_names = [], []
    bad_items = list(bad.items())
    for i, message in enumerate(good):
        mixed.append(message)
        if i < len(bad_items):
            mixed.append(bad_items[i][1])
            bad_names.append(bad_items[i][0])
    for name, message in bad_items[len(good):]:
        mixed.append(message)
        bad_names.append(name)
    produce_all(kafka, kafka.raw_topic, mixed, headers=[("amqp.routing_key", b"site.x")])
    proc = parser_process(edge_env, tmp_path).start()
    try:
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 90, what="raw lag 0")
        parsed = read_all(kafka, kafka.parsed_topic)
        assert sorted(r.value() for r in parsed) == sorted(line for m in good for line in to_lines(m))
        dlq = read_all(kafka, kafka.dlq_topic)
        assert len(dlq) == len(bad)
        raw_records = {(r.partition(), r.offset()): r.value() for r in read_all(kafka, kafka.raw_topic)}
        seen = set()
        for record in dlq:
            h = header_map(record.headers())
            assert h["dlq.stage"] == b"parser"
            assert h["dlq.reason"] == b"parse_error"
            assert h["dlq.error"]
            assert h["dlq.source.topic"] == kafka.raw_topic.encode()
            source = (int(h["dlq.source.partition"]), int(h["dlq.source.offset"]))
            assert source not in seen
            seen.add(source)
            assert raw_records[source] == (record.value() or b""), "the original bytes, unchanged"
            assert h["amqp.routing_key"] == b"site.x", "the original headers travel along"
        assert proc.alive(), "a bad message never stops the process"
    finally:
        assert proc.terminate() == 0, proc.log()


def test_partly_unusable_message_emits_its_points_and_is_dead_lettered_as_partial(kafka, edge_env, tmp_path, sample_bytes):
    raw = sample_bytes.replace(b'"service": [', b'"service": 7, "x": [', 1)
    assert raw != sample_bytes
    produce_all(kafka, kafka.raw_topic, [raw])
    proc = parser_process(edge_env, tmp_path).start()
    try:
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 60, what="raw lag 0")
        assert len(read_all(kafka, kafka.parsed_topic)) == 17 - 6  # field1's 3 services + 3 racks lost
        (dead,) = read_all(kafka, kafka.dlq_topic)
        h = header_map(dead.headers())
        assert h["dlq.reason"] == b"partial"
        assert b"field1.service" in h["dlq.error"]
        assert dead.value() == raw
    finally:
        assert proc.terminate() == 0, proc.log()


def test_kill_9_mid_stream_then_restart_loses_nothing(kafka, edge_env, tmp_path):
    messages = good_messages(2400)
    producer = threading.Thread(target=_produce_paced, args=(kafka, messages, 800))
    proc = parser_process(edge_env, tmp_path).start()
    wait_for(lambda: "partitions_assigned" in proc.log(), 60, what="parser assigned")
    producer.start()
    try:
        time.sleep(1.5)
        proc.kill()
        assert producer.is_alive(), "killed while the stream still flows"
        restarted = parser_process(edge_env, tmp_path, "parser2").start()
    finally:
        producer.join()
    try:
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 90, what="raw lag 0")
        values = [r.value() for r in read_all(kafka, kafka.parsed_topic)]
        assert set(values) == {line for m in messages for line in to_lines(m)}
        assert len(values) >= 17 * len(messages)  # redelivery allowed, loss is not
    finally:
        assert restarted.terminate() == 0, restarted.log()


def _produce_paced(kafka, messages, per_second):
    step = per_second // 10
    for i in range(0, len(messages), step):
        produce_all(kafka, kafka.raw_topic, messages[i : i + step])
        time.sleep(0.1)


def test_two_instances_share_partitions_and_one_takes_over_when_the_other_dies(kafka, edge_env, tmp_path):
    # Dynamic members: a static member that dies and never comes back keeps its
    # partitions until its session times out on Apache Kafka, but tansu (the
    # development broker) never expires a static member (measured: 90 s, nothing),
    # so the takeover of a dead member's partitions is exercised with dynamic ones.
    first = parser_process(edge_env, tmp_path, "p1", instance="").start()
    second = parser_process(edge_env, tmp_path, "p2", instance="").start()
    try:
        wait_for(lambda: "partitions_assigned" in first.log() and "partitions_assigned" in second.log(), 60,
                 what="both members assigned")
        messages = good_messages(600, sites=6)
        produce_all(kafka, kafka.raw_topic, messages[:300])
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 60, what="first half parsed")
        parsed = read_all(kafka, kafka.parsed_topic)
        assert len({r.partition() for r in parsed}) > 1
        second.kill()
        produce_all(kafka, kafka.raw_topic, messages[300:])
        wait_for(lambda: group_lag(kafka, group_of(edge_env), kafka.raw_topic) == 0, 90, what="survivor drains all")
        values = {r.value() for r in read_all(kafka, kafka.parsed_topic)}
        assert values == {line for m in messages for line in to_lines(m)}
    finally:
        second.kill()
        assert first.terminate() == 0, first.log()
