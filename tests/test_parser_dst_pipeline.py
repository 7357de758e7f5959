"""Daylight saving end to end: RabbitMQ -> bridge -> parse -> sink -> InfluxDB, with a
real zone's fall-back and spring-forward (Europe/Berlin, 2023).

- 2023-10-29 02:30 local happens twice (00:30 and 01:30 UTC): two messages with that
  header.timestamp and AMQP timestamps an hour apart become two points, an hour
  apart, read back from InfluxDB;
- the same local time with no AMQP timestamp is told apart by the Kafka record's
  timestamp, which (being now, years later) tells nothing: the earlier occurrence;
- 2023-03-26 02:30 local never happened: the message goes to the DLQ with reason
  nonexistent_local_time, and no point is written.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pika

from edge.core.dlq import header_map
from edge.simulator.messages import MessageTemplate
from tests.support import influx
from tests.support.kafka import read_all
from tests.support.pipeline import STAGES, pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import wait_for

POINTS_PER_MESSAGE = 17
FALL_BACK_LOCAL = datetime(2023, 10, 29, 2, 30, 0)
GAP_LOCAL = datetime(2023, 3, 26, 2, 30, 0)
FIRST_UTC = datetime(2023, 10, 29, 0, 30, 0, tzinfo=timezone.utc)
SECOND_UTC = datetime(2023, 10, 29, 1, 30, 0, tzinfo=timezone.utc)
GAP_AMQP_TIMESTAMP = int(datetime(2023, 3, 26, 0, 30, 3, tzinfo=timezone.utc).timestamp())


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


def publish(amqp, messages: list[tuple[bytes, int | None]]) -> None:
    """Publish (body, AMQP timestamp or None) pairs, persistent and confirmed."""
    connection = pika.BlockingConnection(pika.ConnectionParameters(amqp.host, amqp.port))
    try:
        channel = connection.channel()
        channel.queue_declare(amqp.queue, durable=True)
        channel.confirm_delivery()
        for body, amqp_timestamp in messages:
            channel.basic_publish("", amqp.queue, body,
                                  pika.BasicProperties(delivery_mode=2, timestamp=amqp_timestamp))
    finally:
        connection.close()


def metric(port: int, name: str) -> float | None:
    """One counter, or None while the service's metrics endpoint is not up yet."""
    try:
        return value(scrape(port), name)
    except OSError:
        return None


def test_fall_back_hour_gives_two_points_and_the_gap_goes_to_the_dlq(pipeline):
    p = pipeline
    p.env["EDGE_PARSER__SITE_TIMEZONES"] = json.dumps({"000001": "Europe/Berlin", "000002": "Europe/Berlin"})
    for stage in STAGES:
        p.start(stage)
    template = MessageTemplate.load()
    repeated = template.render("000001", FALL_BACK_LOCAL)
    unhinted = template.render("000002", FALL_BACK_LOCAL)
    skipped = template.render("000001", GAP_LOCAL)
    publish(p.amqp, [
        (repeated, int(FIRST_UTC.timestamp()) + 3),  # published 3 s after the first 02:30
        (repeated, int(SECOND_UTC.timestamp()) + 3),  # ... and after the second
        (unhinted, None),
        (skipped, GAP_AMQP_TIMESTAMP),
    ])

    # Wait until the parser has seen all four messages and the sink has written
    # every point the parser produced; then compare.
    wait_for(lambda: metric(p.ports["parse"], "edge_parser_messages_total") == 4, 120,
             what="the parser saw all four messages")
    dlq = wait_for(lambda: read_all(p.kafka, p.kafka.dlq_topic, idle=0.5), 60, what="the gap message in the DLQ")
    produced = value(scrape(p.ports["parse"]), "edge_parser_points_total")
    wait_for(lambda: value(scrape(p.ports["sink"]), "edge_sink_lines_written_total") >= produced, 60,
             what=f"the sink wrote the {produced} points the parser produced")
    expected_points = 3 * POINTS_PER_MESSAGE

    # Both occurrences of 02:30 are in InfluxDB, an hour apart, each with every reading.
    rows = influx.query(p.url, p.db, "SELECT * FROM /.*/ GROUP BY site_id")
    times = {series["tags"]["site_id"]: sorted({row[0] for row in series["values"]}) for series in rows}
    assert times == {"000001": [_ns(FIRST_UTC), _ns(SECOND_UTC)], "000002": [_ns(FIRST_UTC)]}
    assert p.points() == expected_points  # nothing at the skipped time

    [record] = dlq
    headers = header_map(record.headers())
    assert record.value() == skipped
    assert headers["dlq.reason"] == b"nonexistent_local_time"
    assert b"does not exist in Europe/Berlin" in headers["dlq.error"]
    assert headers["amqp.timestamp"] == str(GAP_AMQP_TIMESTAMP).encode()

    metrics = scrape(p.ports["parse"])
    assert value(metrics, "edge_parser_ambiguous_local_times_total", resolution="received_at") == 2
    assert value(metrics, "edge_parser_ambiguous_local_times_total", resolution="earlier_occurrence") == 1
    assert value(metrics, "edge_parser_nonexistent_local_times_total") == 1
    assert value(metrics, "edge_parser_dlq_records_total", reason="nonexistent_local_time") == 1
