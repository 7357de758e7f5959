"""``edge sink`` as a real child process between the real tansu and the real InfluxDB.

Line-protocol records are produced straight to the parsed topic; what counts is
what InfluxDB holds afterwards (each test line is its own series+time, so the
count of points must equal the count of lines exactly, redelivery or not).
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devtools import services as dev_services
from edge.core.dlq import header_map
from edge.influx.client import InfluxClient
from edge.config.settings import InfluxSettings
from tests.support.processes import EdgeProcess, wait_for

BOOTSTRAP = "127.0.0.1:19092"
MEASUREMENT = "sinktest"
BASE_NS = 1_700_000_000_000_000_000


def line(i: int) -> bytes:
    """A line shaped like the parser's (escaped tag, float and boolean fields)."""
    return (
        f"{MEASUREMENT},device=EVCharger\\ Equipment,service_id={i % 5},site_id={i % 3:06d} "
        f"soc={i}.25,run={'true' if i % 2 else 'false'} {BASE_NS + i * 1000}"
    ).encode()


def create_topics(prefix: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    futures = admin.create_topics([NewTopic(f"{prefix}.parsed", partitions, 1), NewTopic(f"{prefix}.dlq", 1, 1)])
    for future in futures.values():
        future.result(15)


def produce(prefix: str, values, *, pace_s: float = 0.0, chunk: int = 1000) -> dict[int, tuple[int, int]]:
    """Produce ``values`` (acks=all); returns index -> (partition, offset) of each."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 10, "acks": "all"})
    where: dict[int, tuple[int, int]] = {}

    def report(i):
        def cb(err, msg):
            assert err is None, err
            where[i] = (msg.partition(), msg.offset())

        return cb

    for i, value in enumerate(values):
        producer.produce(f"{prefix}.parsed", value=value, key=f"series-{i % 11}".encode(), on_delivery=report(i))
        if i % chunk == chunk - 1:
            producer.poll(0)
            if pace_s:
                time.sleep(pace_s)
    assert producer.flush(30) == 0
    return where


def produce_in_background(prefix: str, values, pace_s: float) -> threading.Thread:
    thread = threading.Thread(target=produce, args=(prefix, values), kwargs={"pace_s": pace_s}, daemon=True)
    thread.start()
    return thread


class Influx:
    def __init__(self, url: str, database: str):
        self.writer = InfluxClient(InfluxSettings(url=url, database=database))

    def rows(self, q: str) -> list[list]:
        try:
            resp = self.writer.session.get(
                f"{self.writer.base_url}/query", params={"db": self.writer.settings.database, "q": q}, timeout=5
            )
            series = resp.json()["results"][0].get("series", [])
        except Exception:  # InfluxDB stopped, or the database not created yet
            return []
        return series[0]["values"] if series else []

    def count(self, field: str = "soc") -> int:
        rows = self.rows(f'SELECT count("{field}") FROM "{MEASUREMENT}"')
        return rows[0][1] if rows else 0

    def drop(self) -> None:
        self.writer.query(f'DROP DATABASE "{self.writer.settings.database}"')
        self.writer.close()


@pytest.fixture
def influx(edge_env):
    db = Influx("http://127.0.0.1:18086", edge_env["EDGE_INFLUXDB__DATABASE"])
    yield db
    db.drop()


def start_sink(edge_env, tmp_path, name: str = "sink", **env) -> EdgeProcess:
    return EdgeProcess(["sink"], {**edge_env, **env}, tmp_path / f"{name}.log").start()


def wait_count(influx: Influx, expected: int, timeout: float, sink: EdgeProcess | None = None) -> None:
    def reached():
        if sink is not None:
            assert sink.alive(), sink.log()
        return influx.count() >= expected

    wait_for(reached, timeout, interval=0.5, what=f"{expected} points")
    time.sleep(1.0)  # anything more than expected would now show
    assert influx.count() == expected


def committed_offsets(prefix: str, group: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(f"{prefix}.parsed", p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def read_dlq(prefix: str, expected: int, timeout: float = 20.0) -> list:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"{prefix}-dlq-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(f"{prefix}.dlq", 0, 0)])
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                records.append(msg)
        # nothing beyond what was expected
        extra = consumer.poll(1.0)
        if extra is not None and extra.error() is None:
            records.append(extra)
    finally:
        consumer.close()
    return records


def test_every_line_becomes_exactly_one_point(names, edge_env, influx, tmp_path):
    create_topics(names["prefix"])
    total = 20_000
    produce(names["prefix"], [line(i) for i in range(total)])
    sink = start_sink(edge_env, tmp_path)
    try:
        wait_count(influx, total, 60, sink)
        # values come back exactly: float, boolean, escaped tag
        rows = influx.rows(
            f'SELECT "soc", "run", "device" FROM "{MEASUREMENT}" WHERE time = {BASE_NS + 4321 * 1000}'
        )
        assert [r[1:] for r in rows] == [[4321.25, True, "EVCharger Equipment"]]
        # offsets committed after the write: the whole topic, every partition
        assert sum(committed_offsets(names["prefix"], f"{names['prefix']}.sink", 3)) == total
    finally:
        assert sink.terminate() == 0, sink.log()
    assert '"event": "stopping"' in sink.log()


def test_refused_line_goes_to_dlq_and_the_rest_of_its_batch_is_written(names, edge_env, influx, tmp_path):
    prefix = names["prefix"]
    create_topics(prefix, partitions=1)
    # InfluxDB already holds "soc" as a float: a boolean "soc" is a field type conflict.
    assert influx.writer.ensure_database().ok
    assert influx.writer.write(line(0)).ok
    values = [line(i) for i in range(1, 301)]
    values[99] = f"{MEASUREMENT},device=x,service_id=1,site_id=000009 soc=true {BASE_NS}".encode()
    values[150] = b"\xff\xfe not utf-8"
    values[200] = b""
    where = produce(prefix, values)
    sink = start_sink(edge_env, tmp_path)
    try:
        dead = read_dlq(prefix, 3)
        assert sink.alive(), sink.log()
        wait_count(influx, 1 + 297, 30, sink)
        # the partition moved on: everything committed, the three dead ones included
        wait_for(lambda: committed_offsets(prefix, f"{prefix}.sink", 1) == [len(values)], 15, what="commit")
    finally:
        assert sink.terminate() == 0, sink.log()

    assert len(dead) == 3, [header_map(m.headers()) for m in dead]
    by_offset = {int(header_map(m.headers())["dlq.source.offset"]): m for m in dead}
    assert set(by_offset) == {where[99][1], where[150][1], where[200][1]}

    conflict = header_map(by_offset[where[99][1]].headers())
    assert by_offset[where[99][1]].value() == values[99]
    assert conflict["dlq.stage"] == b"sink"
    assert conflict["dlq.reason"] == b"influx_rejected"
    assert b"field type conflict" in conflict["dlq.error"]
    assert b'input field "soc"' in conflict["dlq.error"]
    assert conflict["dlq.source.topic"] == f"{prefix}.parsed".encode()
    assert conflict["dlq.source.partition"] == b"0"

    for i in (150, 200):
        bad = by_offset[where[i][1]]
        assert bad.value() == values[i]
        assert header_map(bad.headers())["dlq.reason"] == b"bad_record"


# Batches written on age only, every 2 s: at any moment the sink holds records it
# consumed but has not written, which a kill must not lose.
HOLDING = {"EDGE_SINK__BATCH_MAX_LINES": "100000", "EDGE_SINK__BATCH_MAX_AGE_S": "2"}


def test_kill9_mid_stream_then_restart_loses_nothing(names, edge_env, influx, tmp_path):
    create_topics(names["prefix"])
    total = 60_000
    sink = start_sink(edge_env, tmp_path, **HOLDING)
    wait_for(lambda: "partitions_assigned" in sink.log(), 60, what="sink assigned")
    producer = produce_in_background(names["prefix"], [line(i) for i in range(total)], pace_s=0.15)
    wait_for(lambda: influx.count() > 0, 60, what="first points")
    time.sleep(1.0)  # halfway to the next write: records consumed, not yet written
    sink.kill()
    assert producer.is_alive(), "the kill came after the stream ended"
    assert influx.count() < total
    producer.join(60)
    restarted = start_sink(edge_env, tmp_path, "sink-restarted")
    try:
        wait_count(influx, total, 90, restarted)
    finally:
        assert restarted.terminate() == 0, restarted.log()


def test_sigterm_mid_stream_exits_0_quickly_then_restart_loses_nothing(names, edge_env, influx, tmp_path):
    create_topics(names["prefix"])
    total = 60_000
    sink = start_sink(edge_env, tmp_path, **HOLDING)
    wait_for(lambda: "partitions_assigned" in sink.log(), 60, what="sink assigned")
    producer = produce_in_background(names["prefix"], [line(i) for i in range(total)], pace_s=0.15)
    wait_for(lambda: influx.count() > 0, 60, what="first points")
    time.sleep(1.0)
    started = time.monotonic()
    code = sink.terminate(timeout=12)
    elapsed = time.monotonic() - started
    assert code == 0, sink.log()
    assert elapsed < 10, f"stopped after {elapsed:.1f}s"
    assert producer.is_alive(), "the stop came after the stream ended"
    # what it held was written before it left
    assert '"unwritten_lines_left_uncommitted": 0' in sink.log(), sink.log()
    producer.join(60)
    restarted = start_sink(edge_env, tmp_path, "sink-restarted")
    try:
        wait_count(influx, total, 90, restarted)
    finally:
        assert restarted.terminate() == 0, restarted.log()


SINK_TEST_INFLUX = dev_services.InfluxInstance(name="influxdb-sink-test", port=18186)


@pytest.fixture
def own_influx(local_services):
    dev_services.influx_start(SINK_TEST_INFLUX)
    yield SINK_TEST_INFLUX
    dev_services.stop_process(SINK_TEST_INFLUX.name)


def test_influxdb_down_for_30s_no_crash_no_loss(names, edge_env, own_influx, tmp_path):
    create_topics(names["prefix"])
    influx = Influx(own_influx.url, names["database"])
    total = 40_000
    producer = produce_in_background(names["prefix"], [line(i) for i in range(total)], pace_s=0.1)
    sink = start_sink(
        edge_env, tmp_path,
        EDGE_INFLUXDB__URL=own_influx.url,
        EDGE_SINK__BATCH_MAX_LINES="1000",
        EDGE_SINK__RETRY_MAX_S="2",
        # a bound well below the topic's size: memory must stay bounded by pausing
        EDGE_SINK__MAX_BUFFERED_LINES="5000",
    )
    try:
        wait_for(lambda: influx.count() > 2_000, 60, what="first points")
        dev_services.stop_process(own_influx.name)
        down_at = time.monotonic()
        while time.monotonic() - down_at < 30:
            assert sink.alive(), sink.log()
            time.sleep(1)
        # A write in flight when influxd went away may end only at its timeout
        # ([influxdb] timeout_s, 30 s) before it counts as a failure.
        wait_for(lambda: '"event": "influxdb_unavailable"' in sink.log(), 35, what="influxdb_unavailable")
        wait_for(lambda: '"event": "fetching_paused"' in sink.log(), 35, what="fetching_paused")
        producer.join(60)
        dev_services.influx_start(own_influx)
        wait_count(influx, total, 90, sink)
        assert '"event": "influxdb_available"' in sink.log()
    finally:
        code = sink.terminate()
        influx.drop()
    assert code == 0, sink.log()
