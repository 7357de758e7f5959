"""``edge replay`` answers as the live parser does, on the real broker.

The same raw records (as the bridge writes them: ``amqp.timestamp`` headers, Kafka
timestamps, fixed partitions) go into two raw topics: one read by a running
``edge parse``, one by ``edge replay``. Among them, Europe/Berlin's fall-back hour
twice with AMQP timestamps an hour apart, the same local time with none, the
spring-forward gap, a refused message and a partly usable one. Both must give
byte-identical parsed records (key, line, partition), the same dead letters with
the same reasons and errors, and the same ``edge_parser_*`` counters (the
replay's from its ``--metrics-textfile``).

And a dry run's plan is what the real run then does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from edge.config.settings import KafkaSettings
from edge.core.dlq import header_map
from edge.kafka.topics import ensure_topics, topic_names
from edge.parser.metrics import FAMILIES
from edge.simulator.messages import MessageTemplate
from tests.support.kafka import read_all
from tests.support.pipeline import pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import ROOT, wait_for

BERLIN = json.dumps({"000001": "Europe/Berlin", "000002": "Europe/Berlin"})
FALL_BACK_LOCAL = datetime(2023, 10, 29, 2, 30, 0)
GAP_LOCAL = datetime(2023, 3, 26, 2, 30, 0)
FIRST_UTC = datetime(2023, 10, 29, 0, 30, 0, tzinfo=UTC)
SECOND_UTC = datetime(2023, 10, 29, 1, 30, 0, tzinfo=UTC)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _seconds(moment: datetime) -> bytes:
    return str(int(moment.timestamp())).encode()


def raw_records() -> list[tuple[int, bytes, list, int]]:
    """(partition, body, headers, Kafka timestamp ms) as the bridge would write them."""
    template = MessageTemplate.load()
    repeated = template.render("000001", FALL_BACK_LOCAL)
    partial = template.render("000003", datetime(2024, 5, 1, 8, 0)).replace(b'"total_racks": 1,',
                                                                            b'"total_racks": 1e999,', 1)
    assert partial != template.render("000003", datetime(2024, 5, 1, 8, 0))
    bodies = [
        (repeated, [("amqp.timestamp", _seconds(FIRST_UTC + timedelta(seconds=2)))]),  # the first 02:30
        (repeated, [("amqp.timestamp", _seconds(SECOND_UTC + timedelta(seconds=3)))]),  # the second
        (template.render("000002", FALL_BACK_LOCAL), []),  # no AMQP timestamp, a Kafka one years later
        (template.render("000001", GAP_LOCAL), [("amqp.timestamp", b"1679790603")]),  # never happened
        (b'{"header": {"site_id": "000004"}, "FieldDeviceLayer": {}}', []),  # no timestamp: parse_error
        (partial, []),
    ]
    bodies += [(template.render(f"00001{n % 3}", datetime(2024, 5, 1, 9, n)), []) for n in range(9)]
    base = int(T0.timestamp() * 1000)
    return [(n % 3, body, headers + [("amqp.message_id", b"m%d" % n)], base + n * 1000)
            for n, (body, headers) in enumerate(bodies)]


def produce(kafka: KafkaSettings, records) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "linger.ms": 5})
    errors = []
    for partition, body, headers, ts in records:
        producer.produce(kafka.raw_topic, value=body, partition=partition, headers=headers, timestamp=ts,
                         on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert producer.flush(30) == 0 and not errors, errors


def outputs(kafka: KafkaSettings):
    """Parsed records, and dead letters without what names the topic or the moment
    (dlq.source.topic, dlq.time, the key): the two raw topics differ by name."""
    parsed = sorted((m.partition(), m.key(), m.value()) for m in read_all(kafka, kafka.parsed_topic, idle=0.7))
    dead = []
    for m in read_all(kafka, kafka.dlq_topic, idle=0.5):
        h = header_map(m.headers())
        dead.append((m.value(), h["dlq.reason"], h["dlq.error"], h["dlq.stage"], h["dlq.source.partition"],
                     h["dlq.source.offset"], h.get("amqp.timestamp"), h.get("amqp.message_id")))
    return parsed, sorted(dead)


def parser_counters(samples) -> dict:
    """The edge_parser_* counters the handler counts, by (name, labels); _created left out."""
    return {key: v for key, v in samples.items()
            if key[0].endswith("_total") and key[0][: -len("_total")] in FAMILIES}


def textfile_samples(path) -> dict:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def run_replay(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "edge.cli", "replay", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_replay_gives_the_live_parsers_lines_dead_letters_and_counters(pipeline, tmp_path):
    p = pipeline
    p.env["EDGE_PARSER__SITE_TIMEZONES"] = BERLIN
    records = raw_records()
    produce(p.kafka, records)
    p.start("parse")
    wait_for(lambda: _messages(p.ports["parse"]) == len(records), 90, what="the live parser handled every raw record")
    live_counters = parser_counters(scrape(p.ports["parse"]))
    live = wait_for(lambda: _settled(p.kafka, expected_dead=3), 60, what="the live parser's outputs")

    replayed_kafka = KafkaSettings(topic_prefix=p.kafka.topic_prefix + "-replay", partitions=3)
    ensure_topics(replayed_kafka)
    try:
        produce(replayed_kafka, records)
        textfile = tmp_path / "replay.prom"
        out = run_replay({**p.env, "EDGE_KAFKA__TOPIC_PREFIX": replayed_kafka.topic_prefix},
                         "--from", (T0 - timedelta(minutes=1)).isoformat(), "--metrics-textfile", str(textfile))
        replayed = outputs(replayed_kafka)
    finally:
        AdminClient({"bootstrap.servers": replayed_kafka.bootstrap_servers}).delete_topics(topic_names(replayed_kafka))

    assert replayed[0] == live[0]  # byte-identical records on the same partitions
    assert replayed[1] == live[1]  # the same dead letters, reasons and errors
    reasons = sorted(d[1] for d in live[1])
    assert reasons == [b"nonexistent_local_time", b"parse_error", b"partial"]
    # The fall-back hour: two instants an hour apart, told apart by the AMQP timestamp.
    times = {line.rsplit(b" ", 1)[1] for _, key, line in live[0] if b"site_id=000001" in key}
    assert times == {str(int(FIRST_UTC.timestamp()) * 10**9).encode(), str(int(SECOND_UTC.timestamp()) * 10**9).encode()}

    replay_counters = parser_counters(textfile_samples(textfile))
    assert replay_counters == live_counters
    assert live_counters[("edge_parser_messages_total", ())] == len(records)
    assert live_counters[("edge_parser_ambiguous_local_times_total", (("resolution", "received_at"),))] == 2
    assert live_counters[("edge_parser_ambiguous_local_times_total", (("resolution", "earlier_occurrence"),))] == 1
    assert live_counters[("edge_parser_nonexistent_local_times_total", ())] == 1
    assert not any("site" in name for name, _ in replay_counters)  # not the live parser's site activity
    assert "dead-lettered: nonexistent_local_time 1, parse_error 1" in out and "partial: 1" in out


def _messages(port: int) -> float | None:
    try:
        return value(scrape(port), "edge_parser_messages_total")
    except OSError:  # the endpoint is not up yet
        return None


def _settled(kafka: KafkaSettings, expected_dead: int):
    parsed, dead = outputs(kafka)
    return (parsed, dead) if len(dead) == expected_dead else None


def test_a_dry_run_plans_what_the_run_then_does(pipeline):
    p = pipeline
    p.env["EDGE_PARSER__SITE_TIMEZONES"] = BERLIN
    records = raw_records()
    before = [(part, body, headers, ts - 3_600_000) for part, body, headers, ts in records[:3]]  # an hour early
    produce(p.kafka, before + records)
    args = ("--from", T0.isoformat(), "--to", (T0 + timedelta(minutes=5)).isoformat(), "--site", "000001",
            "--site", "000010", "--group-id", "replay-" + p.groups["parse"])

    plan = run_replay(p.env, *args, "--dry-run")
    assert "dry run: nothing was replayed" in plan
    assert read_all(p.kafka, p.kafka.parsed_topic, idle=0.5) == []  # nothing produced
    planned = {int(part): int(n) for part, n in re.findall(r"partition (\d+): offsets \d+\.\.\d+ \((\d+) messages\)", plan)}
    total = int(re.search(r"total: (\d+) messages to read", plan).group(1))
    assert sum(planned.values()) == total and total >= len(records)  # at least the window's records
    assert f"from {p.kafka.raw_topic} into {p.kafka.parsed_topic}" in plan
    assert '"000001" = "Europe/Berlin"' in plan or '000001 = "Europe/Berlin"' in plan
    assert 'sites = ["000001", "000010"]' in plan

    started = time.monotonic()
    done = run_replay(p.env, *args)
    assert time.monotonic() - started < 120
    assert f"read {total} of {total} planned messages" in done
    assert done.split("replay done:")[0] == plan.split("dry run:")[0]  # the same plan, printed again
    # Every planned message accounted for: those before the window skipped, the two sites' handled.
    site_1 = 3  # the fall-back hour twice and the gap
    site_10 = 3  # n = 0, 3, 6 of the nine plain messages
    assert f"skipped: {total - len(records)} outside the window, {len(records) - site_1 - site_10} of other sites" in done
    assert "dead-lettered: nonexistent_local_time 1" in done
    assert f"parsed: {site_1 - 1 + site_10} messages" in done
    assert len(read_all(p.kafka, p.kafka.parsed_topic, idle=0.7)) == 17 * (site_1 - 1 + site_10)
