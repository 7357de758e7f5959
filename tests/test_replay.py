"""``edge replay``: the offset planner, and a replay on the real broker and sink:
exactly the window's messages of the chosen site, parsed with today's settings,
keyed by series, refused ones to the DLQ, written by the sink, twice harmlessly,
without committing for any group."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer, TopicPartition

from edge.simulator.messages import MessageTemplate
from edge.ops.replay_plan import (
    OFFSET_END,
    PartitionPlan,
    Plan,
    Progress,
    Window,
    checked_end,
    checked_start,
    end_offset,
    start_offset,
)
from edge.parser import parse
from tests.support.kafka import read_all
from tests.support.pipeline import pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import ROOT, wait_for

# ------------------------------------------------------------------ planner


def test_bounds_start_at_the_offset_for_from_within_the_log_and_end_at_to_or_the_true_log_end():
    assert start_offset(5, low=0, log_end=40) == 5
    assert start_offset(OFFSET_END, low=0, log_end=12) == 12  # nothing at or after --from
    assert start_offset(0, low=7, log_end=9) == 7  # retention deleted up to 7
    assert end_offset(20, start=5, log_end=40) == 20
    assert end_offset(None, start=5, log_end=40) == 40  # no --to: the log end
    assert end_offset(OFFSET_END, start=5, log_end=40) == 40  # no record at --to
    assert end_offset(0, start=5, log_end=40) == 5  # never before the start


def test_an_imprecise_broker_answer_widens_the_range_and_never_loses_a_record():
    window = Window(from_ms=1000, to_ms=2000)
    assert window.wanted(1000) and window.wanted(1999) and not window.wanted(2000) and not window.wanted(999)
    assert checked_start(10, 0, [(9, 999), (10, 1000)], window) == 10  # the record before is before --from
    assert checked_start(10, 0, [(9, 1000), (10, 1001)], window) == 0  # it is in the window: from the log start
    assert checked_end(20, 50, [(20, 2000)], window) == 20  # the record at the end is at --to
    assert checked_end(0, 50, [(0, 500)], window) == 50  # tansu's offset 0 for --to: up to the log end


def test_plan_and_summary_in_words():
    window = Window(from_ms=1_717_243_200_000, to_ms=1_717_245_000_000)
    parts = [PartitionPlan(0, 3, 10, 1_717_243_200_000, 1_717_244_000_000), PartitionPlan(1, 4, 4)]
    plan = Plan("p.raw", "p.parsed", "p.dlq", window, parts, ("000021",), ["[parser]", 'default_timezone = "UTC"'])
    text = "\n".join(plan.lines())
    assert plan.total == 7 and "7 messages from p.raw into p.parsed (refused ones to p.dlq)" in text
    assert "partition 0: offsets 3..9 (7 messages), first 2024-06-01T12:00:00.000Z" in text
    assert "partition 1: nothing in range" in text and "000021 only" in text
    assert '  default_timezone = "UTC"' in text
    p = Progress(expected=7, points=34, outside_window=1, other_sites=2, seconds=2.0)
    p.outcomes.update({"parsed": 2, "parse_error": 1, "nonexistent_local_time": 1})
    assert p.read == 7 and p.messages == 4 and p.dead_lettered == 2 and p.rate == 3.5
    summary = "\n".join(p.summary("done"))
    assert "read 7 of 7 planned messages" in summary and "34 points produced" in summary
    assert "dead-lettered: nonexistent_local_time 1, parse_error 1" in summary
    assert "skipped: 1 outside the window, 2 of other sites" in summary
    p.known = 2  # refused again, but their failures were in the DLQ already: not written again
    assert "dead-lettered: nonexistent_local_time 1, parse_error 1; 2 already in the DLQ, not added again" in \
        "\n".join(p.summary("done"))
    assert p.counts()["dlq_known"] == 2


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
    assert f"parsed: {len(wanted)} messages; {17 * len(wanted)} points produced" in out, out
    assert "dead-lettered: parse_error 1" in out and "of other sites" in out
    read, planned = re.search(r"read (\d+) of (\d+) planned messages", out).groups()
    assert read == planned and f"total: {planned} messages to read" in out  # the summary matches the plan
    assert '"event": "replay_done"' in out and "replay:" not in out  # log lines, not a bar

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


def test_the_plan_shows_the_settings_used_as_toml_with_secrets_masked():
    from edge.config.settings import KafkaSettings, ParserOptions, ParserSettings
    from edge.ops.replay import settings_shown

    settings = ParserSettings(
        kafka=KafkaSettings(topic_prefix="campus", sasl_password="hunter2", client={"sasl.username": "edge"}),
        parser=ParserOptions(site_timezones={"000001": "Europe/Berlin"}),
    )
    text = "\n".join(settings_shown(settings, ("000001",)))
    assert "hunter2" not in text and 'sasl_password = "**********"' in text
    assert '[parser.site_timezones]\n000001 = "Europe/Berlin"' in text
    assert 'topic_prefix = "campus"' in text and 'sites = ["000001"]' in text and '"sasl.username" = "edge"' in text
