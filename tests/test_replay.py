"""``edge replay``: the offset planner, and a replay on the real broker and sink:
exactly the window's messages of the chosen site, parsed with today's settings,
keyed by series, refused ones to the DLQ, written by the sink, twice harmlessly,
without committing for any group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer, TopicPartition

from edge.simulator.messages import MessageTemplate
from edge.ops.replay_plan import OFFSET_END, PartitionRange, Progress, Window, plan
from edge.parser import parse
from tests.support.kafka import read_all
from tests.support.pipeline import pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import ROOT, wait_for

# ------------------------------------------------------------------ planner


def test_plan_starts_at_the_offset_for_from_never_below_the_log_start_and_ends_at_the_captured_end():
    ranges = plan({0: 5, 1: OFFSET_END, 2: 0}, {0: (0, 40), 1: (0, 12), 2: (7, 9)})
    assert ranges[0] == PartitionRange(0, 5, 40) and ranges[0].estimate == 35
    assert ranges[1].empty and ranges[1].estimate == 0  # nothing at or after --from
    assert ranges[2] == PartitionRange(2, 7, 9)  # retention deleted up to 7
    with_to = plan({0: 5, 1: 3}, {0: (0, 40), 1: (0, 12)}, ends_at_to={0: 20, 1: OFFSET_END})
    assert with_to[0].end == 20 and with_to[1].end == 12  # no record at --to: up to the end


def test_a_partition_finishes_past_its_end_only_with_a_record_past_the_window():
    window = Window(from_ms=1000, to_ms=2000)
    r = PartitionRange(0, 0, 10)
    assert window.wanted(1000) and window.wanted(1999) and not window.wanted(2000) and not window.wanted(999)
    assert not r.finished_at(9, 5000, window)  # before the end: read on (timestamps may be out of order)
    assert not r.finished_at(10, 1500, window)  # end under-reported (tansu): still in the window
    assert r.finished_at(10, 2000, window)


def test_progress_line_and_eta():
    p = Progress(expected=100, messages=40, points=680, skipped=10, seconds=2.0)
    assert p.rate == 20 and p.eta_s == 2.5
    assert "messages=40 points=680" in p.line() and "20 msgs/s (340 points/s)" in p.line()
    assert Progress(expected=5).eta_s is None


# ------------------------------------------------------------------ on the real broker

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
A, B = "000021", "000022"


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _produce_at(kafka, records: list[tuple[bytes, int]]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "linger.ms": 5})
    errors = []
    for body, ts in records:
        producer.produce(kafka.raw_topic, value=body, timestamp=ts, headers=[("amqp.message_id", b"m")],
                         on_delivery=lambda err, _m: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(30) == 0 and not errors, errors


def _replay(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "edge.cli", "replay", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_replay_of_a_window_and_a_site_into_the_parsed_topic_and_influxdb(pipeline):
    p = pipeline
    template = MessageTemplate.load()
    records, wanted = [], []
    # Kafka timestamps: an hour before the window, in it, and an hour after it.
    for minute, when in enumerate([T0 - timedelta(hours=1)] * 3 + [T0] * 6 + [T0 + timedelta(hours=1)] * 3):
        for site in (A, B):
            body = template.render(site, datetime(2024, 5, 1) + timedelta(minutes=minute))
            ts = _ms(when) + minute * 1000
            records.append((body, ts))
            if site == A and T0 <= when < T0 + timedelta(minutes=30):
                wanted.append(body)
    # Among the window's records (Kafka's time index assumes roughly ordered timestamps).
    refused = template.render(A, datetime(2024, 5, 1)).replace(b"2024-05-01 00:00:00", b"1970-01-01 00:00:00")
    records.insert(len(records) // 2, (refused, _ms(T0) + 500))
    _produce_at(p.kafka, records)
    p.start("sink")

    window = ["--from", T0.isoformat(), "--to", (T0 + timedelta(minutes=30)).isoformat(), "--site", A]
    out = _replay(p.env, *window, "--group-id", "replay-" + p.groups["parse"])
    assert f"messages={len(wanted) + 1} points={17 * len(wanted)} dead_lettered=1" in out, out
    assert '"event": "replay_progress"' in out or '"event": "replay_planned"' in out  # log lines, not a bar

    parsed = read_all(p.kafka, p.kafka.parsed_topic, idle=0.7)
    expected = [pt for body in wanted for pt in parse(body).points]
    assert sorted((m.key(), m.value()) for m in parsed) == sorted(expected)
    (dead,) = read_all(p.kafka, p.kafka.dlq_topic, idle=0.5)
    headers = dict(dead.headers())
    assert dead.value() == refused and headers["dlq.reason"] == b"parse_error"
    assert headers["dlq.source.topic"] == p.kafka.raw_topic.encode() and headers["amqp.message_id"] == b"m"

    wait_for(lambda: p.points() == len(expected), 60, what="replayed points in InfluxDB")
    written = value(scrape(p.ports["sink"]), "edge_sink_lines_written_total")
    # Again, with today's settings changed: parsed again, same series and times overwritten.
    p.env["EDGE_PARSER__SITE_TIMEZONES"] = json.dumps({B: "Asia/Seoul"})
    again = _replay(p.env, *window, "--group-id", "replay-" + p.groups["parse"], "--progress", "bar")
    assert "replay:" in again and "msg/s" in again and "points=" in again  # the bar: rate, and points so far
    wait_for(lambda: value(scrape(p.ports["sink"]), "edge_sink_lines_written_total") >= written + len(expected),
             60, what="second replay written")
    assert p.points() == len(expected)

    consumer = Consumer({"bootstrap.servers": p.kafka.bootstrap_servers, "group.id": "replay-" + p.groups["parse"]})
    try:
        committed = consumer.committed([TopicPartition(p.kafka.raw_topic, n) for n in range(3)], timeout=10)
    finally:
        consumer.close()
    assert all(tp.offset < 0 for tp in committed)  # the replay never commits


def test_replay_refuses_the_live_parsers_group(pipeline):
    p = pipeline
    done = subprocess.run([sys.executable, "-m", "edge.cli", "replay", "--from", "2024-06-01",
                           "--group-id", p.groups["parse"]], cwd=ROOT, env={**os.environ, **p.env,
                           "EDGE_PARSER__GROUP_ID": p.groups["parse"]}, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "live parser's group" in done.stderr
