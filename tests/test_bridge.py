"""``edge bridge`` against the real RabbitMQ and tansu: bytes, headers, kill -9,
SIGTERM. The pure ack bookkeeping is tested first."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from datetime import datetime
from types import SimpleNamespace

import pika
import pytest
from confluent_kafka.admin import AdminClient

from edge.bridge.acks import AckTracker
from edge.bridge.headers import kafka_headers
from edge.simulator.messages import MessageTemplate, schedule
from edge.config.settings import AmqpSettings, KafkaSettings, SimulatorSettings
from edge.simulator.publish import publish
from edge.kafka.topics import ensure_topics, topic_names
from tests.support.bridge_io import (
    BackgroundPublisher,
    RawTopicReader,
    delete_queue,
    drain_queue,
    queue_ready,
    site_and_time,
)
from tests.support.processes import EdgeProcess, wait_for

PARTITIONS = 3
START = datetime(2024, 3, 1, 0, 0, 0)


# ---------------------------------------------------------------- pure parts


def test_tracker_acks_the_contiguous_prefix_and_nacks_failures_first():
    t = AckTracker()
    for tag in range(1, 7):
        t.delivered(tag)
    t.succeeded(2)
    assert not t.settle()  # 1 still pending: nothing may be acked yet
    t.succeeded(1)
    t.failed(3)
    t.succeeded(5)
    s = t.settle()
    assert (s.ack_upto, s.acked, s.nack, s.reject) == (2, 2, [3], [])
    t.refused(4)
    s = t.settle()
    # 3 was nacked already, 4 is rejected before the multiple ack up to 5 is sent.
    assert (s.ack_upto, s.acked, s.nack, s.reject) == (5, 1, [], [4])
    assert len(t) == 1  # 6 pending
    t.close()
    t.succeeded(6)  # a late report for a channel that is gone: ignored
    assert not t.settle() and len(t) == 0


def test_tracker_nacks_a_failure_behind_a_pending_delivery_without_acking_past_it():
    t = AckTracker()
    for tag in (1, 2, 3):
        t.delivered(tag)
    t.failed(3)
    t.succeeded(2)
    s = t.settle()
    assert (s.ack_upto, s.nack) == (None, [3])
    t.succeeded(1)
    s = t.settle()
    assert (s.ack_upto, s.acked) == (2, 2)


def test_headers_carry_amqp_metadata_only_when_present():
    method = SimpleNamespace(exchange="", routing_key="q", redelivered=True, delivery_tag=1)
    props = pika.BasicProperties(message_id="m1", timestamp=1700000000, correlation_id="c9", headers={"gw": "a", "n": 3, "b": b"\x00"})
    assert kafka_headers(method, props) == [
        ("amqp.exchange", b""),
        ("amqp.routing_key", b"q"),
        ("amqp.redelivered", b"true"),
        ("amqp.message_id", b"m1"),
        ("amqp.timestamp", b"1700000000"),
        ("amqp.correlation_id", b"c9"),
        ("amqp.header.gw", b"a"),
        ("amqp.header.n", b"3"),
        ("amqp.header.b", b"\x00"),
    ]
    method.redelivered = False
    assert kafka_headers(method, pika.BasicProperties()) == [("amqp.exchange", b""), ("amqp.routing_key", b"q")]


# ---------------------------------------------------------------- real services


@pytest.fixture
def bridge_setup(local_services, names, edge_env, tmp_path):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=PARTITIONS)
    ensure_topics(kafka)
    amqp = AmqpSettings(queue=names["queue"])
    reader = RawTopicReader(kafka.bootstrap_servers, kafka.raw_topic, PARTITIONS)
    started: list[EdgeProcess] = []

    def start_bridge(**env) -> EdgeProcess:
        proc = EdgeProcess(["bridge"], {**edge_env, **env}, tmp_path / f"bridge{len(started)}.log").start()
        started.append(proc)
        return proc

    yield SimpleNamespace(kafka=kafka, amqp=amqp, reader=reader, start_bridge=start_bridge)
    for proc in started:
        proc.kill()
    reader.close()
    delete_queue(amqp)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.delete_topics(topic_names(kafka)).values():
        future.result(10)


def _expected_bodies(count: int, sites: int) -> dict[tuple[str, str], bytes]:
    template = MessageTemplate.load()
    return {
        (site, ts.strftime("%Y-%m-%d %H:%M:%S")): template.render(site, ts)
        for site, ts in schedule(count, sites, START)
    }


def test_every_message_crosses_byte_for_byte_with_its_amqp_metadata(bridge_setup):
    s = bridge_setup
    before = int(time.time())
    publish(SimulatorSettings(amqp=s.amqp), count=300, sites=3, start=START)
    # A body the bridge must not try to understand, with properties of its own.
    garbage = b"\xff\x00not json at all\x08"
    connection = pika.BlockingConnection(pika.ConnectionParameters(s.amqp.host, s.amqp.port))
    connection.channel().basic_publish(
        "", s.amqp.queue, garbage,
        pika.BasicProperties(correlation_id="corr-1", content_type="application/octet-stream", headers={"gateway": "gw-7"}),
    )
    connection.close()

    bridge = s.start_bridge()
    s.reader.wait_count(301, timeout=30)
    assert bridge.terminate() == 0
    s.reader.poll(0.5)

    expected = _expected_bodies(300, 3)
    records = s.reader.records
    assert len(records) == 301  # nothing twice on a clean run
    by_value = {value: headers for value, headers in records}
    assert set(by_value) == set(expected.values()) | {garbage}
    for key, body in expected.items():
        headers = by_value[body]
        assert headers["amqp.message_id"] == f"{key[0]}/{key[1]}".encode()
        assert headers["amqp.routing_key"] == s.amqp.queue.encode()
        assert headers["amqp.exchange"] == b""
        assert headers["amqp.content_type"] == b"application/json"
        assert headers["amqp.app_id"] == b"edge-simulator"
        assert before <= int(headers["amqp.timestamp"]) <= time.time() + 1
        assert "amqp.redelivered" not in headers
    odd = by_value[garbage]
    assert (odd["amqp.correlation_id"], odd["amqp.content_type"], odd["amqp.header.gateway"]) == (
        b"corr-1", b"application/octet-stream", b"gw-7")
    assert "amqp.message_id" not in odd and "amqp.timestamp" not in odd
    assert queue_ready(s.amqp) == 0  # everything acked (unacked would be back after the stop)


def test_kill_minus_9_mid_stream_then_restart_delivers_everything_at_least_once(bridge_setup):
    s = bridge_setup
    total = 1500
    publisher = BackgroundPublisher(s.amqp, count=total, sites=3, rate=400, start=START)
    publisher.start()
    first = s.start_bridge()
    s.reader.wait_count(300, timeout=30)
    first.kill()  # no flush, no ack: its unacked deliveries go back to the queue
    killed_at = len(s.reader.records)
    assert publisher.is_alive(), "the bridge should have been killed mid-stream"
    publisher.result()

    second = s.start_bridge()
    keys = s.reader.wait_distinct(total, timeout=40)
    assert second.terminate() == 0
    assert set(keys) == set(_expected_bodies(total, 3))
    duplicates = sum(keys.values()) - total
    print(f"kill -9 after {killed_at} records: {duplicates} duplicates of {total}")
    assert duplicates <= 1000  # at most one prefetch window is redelivered
    assert queue_ready(s.amqp) == 0


def test_sigterm_mid_stream_exits_0_within_10s_and_loses_nothing(bridge_setup):
    s = bridge_setup
    total = 1200
    publisher = BackgroundPublisher(s.amqp, count=total, sites=2, rate=400, start=START)
    publisher.start()
    bridge = s.start_bridge()
    s.reader.wait_count(200, timeout=30)
    t0 = time.monotonic()
    code = bridge.terminate(timeout=10)
    stopped_in = time.monotonic() - t0
    assert code == 0 and stopped_in < 10
    assert publisher.is_alive(), "the bridge should have been stopped mid-stream"
    publisher.result()

    s.reader.poll(1.0)
    on_topic = set(s.reader.keys())
    in_queue = {site_and_time(body) for body in drain_queue(s.amqp)}
    # Every message is on the topic or still in RabbitMQ (or, flushed but not yet
    # acked, in both): none is lost.
    assert on_topic | in_queue == set(_expected_bodies(total, 2))
    assert len(on_topic) >= 200
    assert '"stopped"' in bridge.log()


def _close_amqp_connections_of(pid: int) -> int:
    """Close, on the broker side, the bridge's RabbitMQ connections (as a network
    cut or a broker failover would); returns how many were closed."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    closed = 0
    for line in listing.stdout.splitlines():
        connection_pid, _, properties = line.partition("\t")
        if f'"edge-bridge@{socket.gethostname()}:{pid}"' in properties:
            subprocess.run(["rabbitmqctl", "close_connection", connection_pid, "test: connection cut"],
                           capture_output=True, timeout=30, check=True)
            closed += 1
    return closed


def test_rabbitmq_connection_loss_mid_stream_reconnects_and_delivers_everything(bridge_setup):
    # rabbitmqctl comes with rabbitmq-server, which devtools/bootstrap.sh installs.
    assert shutil.which("rabbitmqctl"), "rabbitmqctl missing: run make venv (devtools/bootstrap.sh)"
    s = bridge_setup
    total = 1500
    publisher = BackgroundPublisher(s.amqp, count=total, sites=3, rate=300, start=START)
    publisher.start()
    bridge = s.start_bridge(EDGE_BRIDGE__RECONNECT_INITIAL_BACKOFF_S="0.2")
    s.reader.wait_count(200, timeout=30)
    assert _close_amqp_connections_of(bridge.pid) == 1
    assert publisher.is_alive(), "the connection should have been cut mid-stream"
    publisher.result()
    keys = s.reader.wait_distinct(total, timeout=40)
    assert bridge.alive(), "the bridge reconnects instead of exiting"
    assert bridge.terminate() == 0
    assert set(keys) == set(_expected_bodies(total, 3))
    log = bridge.log()
    assert log.count('"amqp_connected"') >= 2 and '"amqp_disconnected"' in log, log
    assert queue_ready(s.amqp) == 0


def test_a_record_kafka_refuses_for_good_goes_to_the_amqp_dead_letter_queue_and_the_queue_flows_on(bridge_setup):
    s = bridge_setup
    publish(SimulatorSettings(amqp=s.amqp), count=20, sites=2, start=START)
    connection = pika.BlockingConnection(pika.ConnectionParameters(s.amqp.host, s.amqp.port))
    connection.channel().basic_publish(
        "", s.amqp.queue, b"x" * 200_000,
        pika.BasicProperties(message_id="too-big", headers={"gateway": "g1"}, delivery_mode=2),
    )
    connection.close()
    publish(SimulatorSettings(amqp=s.amqp), count=20, sites=2, start=START.replace(hour=1))
    bridge = s.start_bridge(EDGE_BRIDGE__MAX_MESSAGE_BYTES="100000")
    s.reader.wait_count(40, timeout=30)
    wait_for(lambda: queue_ready(s.amqp) == 0, timeout=10, what="queue empty")
    assert bridge.alive()
    assert bridge.terminate() == 0
    s.reader.poll(0.5)
    assert len(s.reader.records) == 40  # every good message, not the oversized one
    assert queue_ready(s.amqp) == 0  # not requeued: no redelivery loop
    # Not dropped either: it waits in <queue>.dlq, byte for byte, with the reason.
    connection = pika.BlockingConnection(pika.ConnectionParameters(s.amqp.host, s.amqp.port))
    try:
        channel = connection.channel()
        method, properties, body = channel.basic_get(f"{s.amqp.queue}.dlq", auto_ack=True)
        assert method is not None, "the refused message must be in the dead-letter queue"
        assert body == b"x" * 200_000
        assert properties.message_id == "too-big"
        assert properties.headers["gateway"] == "g1"
        assert properties.headers["x-edge-dlq-reason"] == "kafka_refused"
        assert properties.headers["x-edge-dlq-source-queue"] == s.amqp.queue
        assert "size" in properties.headers["x-edge-dlq-error"].lower()
        assert channel.basic_get(f"{s.amqp.queue}.dlq", auto_ack=True)[0] is None
        channel.queue_delete(f"{s.amqp.queue}.dlq")
    finally:
        connection.close()
    assert '"message_dead_lettered"' in bridge.log()
