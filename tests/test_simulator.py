"""The simulator: message shapes (pure) and publishing to the real RabbitMQ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pika
import pytest

from edge.simulator.messages import MessageTemplate, parse_start, schedule, site_id
from edge.config.settings import AmqpSettings, SimulatorSettings
from edge.simulator.publish import publish
from tests.conftest import ROOT

START = datetime(2024, 1, 2, 3, 4, 5)


def test_default_message_is_the_sample_with_only_site_and_timestamp_substituted(sample_bytes):
    template = MessageTemplate.from_bytes(sample_bytes)
    body = template.render("000042", datetime(2024, 12, 31, 23, 59, 58))
    expected = sample_bytes.replace(b'"site_id": "000001"', b'"site_id": "000042"').replace(
        b'"timestamp": "2023-06-09 20:34:06"', b'"timestamp": "2024-12-31 23:59:58"'
    )
    assert body == expected
    assert b"\x08$Broker_IP" in body  # the raw control character is kept
    header = json.loads(body, strict=False)["header"]
    assert header["site_id"] == "000042" and header["timestamp"] == "2024-12-31 23:59:58"


def test_the_sample_as_shipped_renders_to_itself(sample_bytes):
    template = MessageTemplate.from_bytes(sample_bytes)
    assert template.render("000001", datetime(2023, 6, 9, 20, 34, 6)) == sample_bytes


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, path + (i,))
    else:
        yield path, value


def test_jitter_varies_measurements_only_and_is_reproducible(sample_bytes):
    template = MessageTemplate.from_bytes(sample_bytes)
    body = template.render("000003", START, jitter=0.1)
    assert body == template.render("000003", START, jitter=0.1)
    original = dict(_leaves(json.loads(sample_bytes, strict=False)))
    varied = dict(_leaves(json.loads(body)))  # strict JSON now: the control char is escaped
    assert varied.keys() == original.keys()
    changed = 0
    for path, value in original.items():
        new = varied[path]
        if path[0] == "header":
            continue
        if isinstance(value, float):
            assert type(new) in (float, int) and abs(new - value) <= abs(value) * 0.1 + 0.001
            changed += new != value
        else:  # ints (indexes, counts), booleans, strings untouched
            assert new == value and type(new) is type(value), path
    assert changed > 200  # 294 floats in the sample, a few are 0.0
    assert varied[("header", "site_id")] == "000003"
    assert varied[("header", "timestamp")] == "2024-01-02 03:04:05"


def test_schedule_gives_unique_site_timestamp_pairs_stepping_one_second_per_site():
    pairs = list(schedule(10, 3, START))
    assert len(set(pairs)) == 10
    assert [s for s, _ in pairs[:4]] == ["000001", "000002", "000003", "000001"]
    assert pairs[3][1] == datetime(2024, 1, 2, 3, 4, 6)
    assert site_id(12) == "000012"


def test_start_accepts_an_offset_and_converts_it_to_utc():
    assert parse_start("2024-01-02T05:04:05+02:00", datetime.now()) == START
    assert parse_start("2024-01-02 03:04:05", datetime.now()) == START


def _drain(amqp: AmqpSettings) -> tuple[int, list]:
    connection = pika.BlockingConnection(pika.ConnectionParameters(amqp.host, amqp.port))
    try:
        channel = connection.channel()
        ready = channel.queue_declare(amqp.queue, passive=True).method.message_count
        messages = []
        while True:
            method, properties, body = channel.basic_get(amqp.queue, auto_ack=True)
            if method is None:
                break
            messages.append((properties, body))
        channel.queue_delete(amqp.queue)
        return ready, messages
    finally:
        connection.close()


def test_published_messages_arrive_in_the_queue_persistent_and_unique(local_services, names, sample_bytes):
    amqp = AmqpSettings(queue=names["queue"])
    summary = publish(SimulatorSettings(amqp=amqp), count=60, sites=4, start=START)
    assert (summary.published, summary.confirmed, summary.sites) == (60, 60, 4)
    ready, messages = _drain(amqp)
    assert ready == 60  # counted by the broker (passive queue_declare)
    keys = []
    for properties, body in messages:
        assert properties.delivery_mode == 2 and properties.content_type == "application/json"
        header = json.loads(body, strict=False)["header"]
        keys.append((header["site_id"], header["timestamp"]))
        assert properties.message_id == f"{header['site_id']}/{header['timestamp']}"
        assert len(body) == len(sample_bytes)
    assert len(set(keys)) == 60
    assert {site for site, _ in keys} == {"000001", "000002", "000003", "000004"}


def test_cli_publishes_for_a_duration_at_a_rate_and_prints_a_summary(local_services, names, edge_env):
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "simulate", "--duration", "1", "--rate", "40", "--sites", "2", "--jitter", "0.02"],
        cwd=ROOT,
        env={**os.environ, **edge_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("simulate: published=") and "sites=2" in line and "msgs/s" in line
    confirmed = int(line.split("confirmed=")[1].split()[0])
    ready, messages = _drain(AmqpSettings(queue=names["queue"]))
    assert ready == confirmed == len(messages)
    assert 30 <= confirmed <= 41  # 40 msgs/s for one second, scheduled from t=0
    json.loads(messages[0][1])  # jittered messages are strict JSON


def test_by_default_the_newest_message_is_stamped_now_never_in_the_future():
    from edge.simulator.publish import newest_at_now

    now = datetime(2024, 1, 2, 3, 4, 5, 600_000)
    assert newest_at_now(300, 1, None, None, now) == datetime(2024, 1, 2, 2, 59, 6)  # 299 s back
    assert newest_at_now(300, 3, None, None, now) == datetime(2024, 1, 2, 3, 2, 26)  # 100 per site
    assert newest_at_now(None, 2, 40.0, 1.0, now) == datetime(2024, 1, 2, 3, 3, 46)  # 40 messages
    assert newest_at_now(None, 2, None, 1.0, now) == datetime(2024, 1, 2, 3, 4, 5)  # unknown count


def test_a_default_run_ends_at_the_publish_time(local_services, names):
    amqp = AmqpSettings(queue=names["queue"])
    before = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    summary = publish(SimulatorSettings(amqp=amqp), count=50, sites=2)
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    _drain(amqp)
    assert before <= summary.last_timestamp <= after
    assert summary.last_timestamp - summary.first_timestamp == timedelta(seconds=24)
