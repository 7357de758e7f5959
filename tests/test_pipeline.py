"""The whole path with real processes: RabbitMQ -> bridge -> raw -> parser -> parsed
-> sink -> InfluxDB. Counts are exact: InfluxDB overwrites an identical series+time,
so redelivery after a crash is harmless and loss shows as a missing point."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from edge.core.dlq import header_map
from edge.parser import to_lines
from edge.simulator.messages import MessageTemplate, schedule
from edge.config.settings import AmqpSettings, KafkaSettings
from edge.kafka.topics import ensure_topics
from tests.support import influx
from tests.support.bridge_io import BackgroundPublisher, delete_queue
from tests.support.kafka import group_lag, read_all
from tests.support.lineproto import read_line
from tests.support.processes import EdgeProcess, wait_for
from tests.test_parser import BAD_INPUTS

START = datetime(2024, 5, 1, 12, 0, 0)
STAGES = ("bridge", "parse", "sink")


@pytest.fixture
def pipeline(local_services, names, edge_env, tmp_path):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=6)
    ensure_topics(kafka)
    amqp = AmqpSettings(queue=names["queue"])
    url = local_services["influxdb"].url
    procs: dict[str, EdgeProcess] = {}
    # Own consumer groups: members killed by another test never delay these joins.
    groups = {"parse": f"{names['prefix']}.parser", "sink": f"{names['prefix']}.sink"}
    env = dict(edge_env, EDGE_PARSER__GROUP_ID=groups["parse"], EDGE_SINK__GROUP_ID=groups["sink"])

    def start(stage: str, tag: str = "") -> EdgeProcess:
        procs[stage + tag] = EdgeProcess([stage], env, tmp_path / f"{stage}{tag}.log").start()
        return procs[stage + tag]

    yield {"kafka": kafka, "amqp": amqp, "url": url, "db": names["database"], "start": start, "groups": groups}
    for proc in procs.values():
        if proc.alive():
            proc.terminate()
    delete_queue(amqp)
    influx.execute(url, f'DROP DATABASE "{names["database"]}"')


def _expected_points(count: int, sites: int) -> int:
    return 17 * count


def _wait_all_points(p, expected: int, timeout: float = 120) -> None:
    wait_for(lambda: influx.count_points(p["url"], p["db"]) >= expected, timeout, interval=1.0,
             what=f"{expected} points in InfluxDB")
    time.sleep(1.0)  # anything beyond would be a duplicate point (impossible) or a bug
    assert influx.count_points(p["url"], p["db"]) == expected


def test_three_sites_300_messages_each_give_exactly_17_points_per_message(pipeline):
    p = pipeline
    for stage in STAGES:
        p["start"](stage)
    publisher = BackgroundPublisher(p["amqp"], count=900, sites=3, start=START)
    publisher.start()
    summary = publisher.result()
    assert summary.confirmed == 900
    _wait_all_points(p, 17 * 900)

    # A sample of values, exactly, float and boolean: what the parser made of the
    # very messages published (the simulator's, byte for byte) is what is stored.
    template = MessageTemplate.load()
    site, ts = next(iter(schedule(1, 3, START)))
    lines = [read_line(line) for line in to_lines(template.render(site, ts))]
    stored = {
        (r["device"], r["service_id"], r["site_id"], r["time"]): r
        for r in influx.rows(p["url"], p["db"], "field1")
    }
    assert len(stored) == 3 * 900
    for point in [pt for pt in lines if pt.measurement == "field1"]:
        row = stored[(point.tags["device"], point.tags["service_id"], point.tags["site_id"], point.time_ns)]
        for name, value in point.fields.items():
            if isinstance(value, bool):
                assert row[name] is value, name
            else:
                assert float(row[name]) == value and not isinstance(row[name], bool), name
    assert group_lag(p["kafka"], p["groups"]["parse"], p["kafka"].raw_topic) == 0
    assert group_lag(p["kafka"], p["groups"]["sink"], p["kafka"].parsed_topic) == 0


@pytest.mark.parametrize("victim", STAGES)
def test_kill_9_of_one_stage_mid_stream_then_restart_gives_exact_counts(pipeline, victim):
    p = pipeline
    running = {stage: p["start"](stage) for stage in STAGES}
    wait_for(lambda: "partitions_assigned" in running["parse"].log()
             and "assigned" in running["sink"].log(), 60, what="consumers assigned")
    publisher = BackgroundPublisher(p["amqp"], count=1500, sites=3, rate=300.0, start=START)
    publisher.start()
    time.sleep(2.0)
    assert publisher.is_alive(), "the kill must land mid-stream"
    running[victim].kill()
    time.sleep(1.0)
    p["start"](victim, "-restarted")
    summary = publisher.result(timeout=60)
    assert summary.confirmed == 1500
    _wait_all_points(p, 17 * 1500)


def test_poison_mix_through_the_whole_path(pipeline, sample_bytes):
    import pika

    p = pipeline
    for stage in STAGES:
        p["start"](stage)
    bad = [make(sample_bytes) for name, make in sorted(BAD_INPUTS.items())
           if isinstance(make(sample_bytes), bytes) and len(make(sample_bytes)) < 1_000_000]
    template = MessageTemplate.load()
    good = [template.render(site, ts) for site, ts in schedule(60, 3, START)]
    connection = pika.BlockingConnection(pika.ConnectionParameters(p["amqp"].host, p["amqp"].port))
    channel = connection.channel()
    channel.queue_declare(p["amqp"].queue, durable=True)
    channel.confirm_delivery()
    for i, body in enumerate(good):
        channel.basic_publish("", p["amqp"].queue, body, pika.BasicProperties(delivery_mode=2))
        if i < len(bad):
            channel.basic_publish("", p["amqp"].queue, bad[i], pika.BasicProperties(delivery_mode=2))
    for body in bad[len(good):]:
        channel.basic_publish("", p["amqp"].queue, body, pika.BasicProperties(delivery_mode=2))
    connection.close()

    _wait_all_points(p, 17 * len(good))
    wait_for(lambda: len(read_all(p["kafka"], p["kafka"].dlq_topic, idle=0.5)) >= len(bad), 60,
             what="every bad message in the DLQ")
    dlq = read_all(p["kafka"], p["kafka"].dlq_topic)
    assert sorted(r.value() for r in dlq) == sorted(bad)
    for record in dlq:
        h = header_map(record.headers())
        assert h["dlq.reason"] == b"parse_error" and h["dlq.error"]
        assert h["dlq.source.topic"] == p["kafka"].raw_topic.encode()
        assert int(h["dlq.source.offset"]) >= 0
    wait_for(lambda: group_lag(p["kafka"], p["groups"]["parse"], p["kafka"].raw_topic) == 0, 30, what="parser lag 0")
    wait_for(lambda: group_lag(p["kafka"], p["groups"]["sink"], p["kafka"].parsed_topic) == 0, 30, what="sink lag 0")
