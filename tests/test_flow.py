"""Flow control: a stage says what it holds, the runner pauses, resumes and seeks.

The rule itself (``edge.core.flow``) is pure and tested as such. Then the two Kafka
stages as real processes against real services: the sink with InfluxDB away
(paused for ``influxdb_unavailable``, memory within its bound, every point there
once InfluxDB is back, read back), the parser with its broker stalled so that its
deliveries to the parsed topic fail (paused for ``delivery_failed``, rewound,
every point delivered later). The pause and its reason are read where an
operator reads them: the metrics endpoint, as ``edge status`` shows it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import datetime, timedelta

import pytest
import requests
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from devtools import services as dev_services
from edge.config.settings import KafkaSettings
from edge.core.flow import BUFFER_FULL, Holding, pause_reason
from edge.kafka.topics import ensure_topics
from edge.ops.status import Health, read_metrics
from edge.parser import to_lines
from edge.simulator.messages import MessageTemplate, site_id
from tests.conftest import TEST_KAFKA_CLIENT
from tests.support.kafka import read_all
from tests.support.pipeline import free_port
from tests.support.processes import EdgeProcess, wait_for
from tests.test_sink_service import Influx, create_topics, line, produce

# ------------------------------------------------------------------ the rule (pure)


def test_a_blocked_stage_is_paused_for_its_own_reason_however_little_it_holds():
    assert pause_reason(Holding(held=0, bound=100, blocked="influxdb_unavailable"), None) == "influxdb_unavailable"
    assert pause_reason(Holding(held=500, bound=100, blocked="delivery_failed"), BUFFER_FULL) == "delivery_failed"


def test_a_full_stage_pauses_at_its_bound_and_resumes_only_at_75_percent():
    def reason(held: int, paused_for: str | None) -> str | None:
        return pause_reason(Holding(held=held, bound=100), paused_for)

    assert reason(99, None) is None
    assert reason(100, None) == BUFFER_FULL
    # hysteresis: once paused, held between 75 % and the bound stays paused
    assert reason(99, BUFFER_FULL) == BUFFER_FULL
    assert reason(76, BUFFER_FULL) == BUFFER_FULL
    assert reason(75, BUFFER_FULL) is None
    # no longer blocked, but still too full: paused as full, not resumed yet
    assert reason(80, "influxdb_unavailable") == BUFFER_FULL
    assert reason(10, "influxdb_unavailable") is None


def test_bytes_bound_the_same_way_and_nothing_bounded_never_pauses():
    assert pause_reason(Holding(held=1, bound=100, nbytes=1000, max_bytes=1000), None) == BUFFER_FULL
    assert pause_reason(Holding(held=1, bound=100, nbytes=800, max_bytes=1000), BUFFER_FULL) == BUFFER_FULL
    assert pause_reason(Holding(held=1, bound=100, nbytes=700, max_bytes=1000), BUFFER_FULL) is None
    assert Holding(held=10**9).fill == 0.0 and pause_reason(Holding(held=10**9), None) is None


# ------------------------------------------------------------------ reading what an operator reads


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """Metric family -> {label values: value} from a live endpoint ({} if it does not answer)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return {}
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def paused_for(metrics: dict, service: str) -> list[str]:
    return [dict(labels)["reason"] for labels, v in metrics.get(f"edge_{service}_paused", {}).items() if v]


def status_detail(service: str, port: int) -> str:
    """DETAIL as ``edge status`` fills it from the service's metrics."""
    health = Health(service, "running")
    assert read_metrics(service, requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text, health)
    return health.detail


# ------------------------------------------------------------------ the sink

FLOW_INFLUX = dev_services.InfluxInstance(name="influxdb-flow-test", port=18286)


@pytest.fixture
def own_influx(local_services):
    dev_services.influx_start(FLOW_INFLUX)
    yield FLOW_INFLUX
    dev_services.stop_process(FLOW_INFLUX.name)


def test_sink_pauses_while_influxdb_is_away_within_its_bound_and_every_point_arrives(
        names, edge_env, own_influx, tmp_path):
    create_topics(names["prefix"])
    influx = Influx(own_influx.url, names["database"])
    bound, first, total = 3000, 1000, 21_000
    port = free_port()
    sink = EdgeProcess(["sink"], {
        **edge_env,
        "EDGE_INFLUXDB__URL": own_influx.url,
        "EDGE_SINK__BATCH_MAX_LINES": "500",
        "EDGE_SINK__RETRY_MAX_S": "1",
        "EDGE_SINK__MAX_BUFFERED_LINES": str(bound),
        "EDGE_METRICS__ENABLED": "true",
        "EDGE_METRICS__PORT": str(port),
    }, tmp_path / "sink.log").start()
    try:
        produce(names["prefix"], [line(i) for i in range(first)])
        wait_for(lambda: influx.count() == first, 90, what="the first points")
        dev_services.stop_process(own_influx.name)
        produce(names["prefix"], [line(i) for i in range(first, total)])

        def paused_and_holding():
            m = scrape(port)
            return m if paused_for(m, "sink") == ["influxdb_unavailable"] and m["edge_sink_buffered_lines"][()] else None

        wait_for(paused_and_holding, 60, what="the sink paused for influxdb_unavailable, holding records")
        assert status_detail("sink", port) == "paused: influxdb_unavailable"
        held = []
        for _ in range(8):  # paused: it holds no more than its bound, and takes no more
            held.append(scrape(port)["edge_sink_buffered_lines"][()])
            assert sink.alive(), sink.log()
            time.sleep(0.5)
        assert 0 < max(held) <= bound and held[0] == held[-1], held
        assert '"event": "influxdb_unavailable"' in sink.log()

        dev_services.influx_start(own_influx)
        wait_for(lambda: influx.count() >= total, 120, what=f"{total} points")
        time.sleep(1.0)
        assert influx.count() == total  # each line its own point: all there, none twice
        wait_for(lambda: not paused_for(scrape(port), "sink"), 30, what="fetching resumed")
        log = sink.log()
        assert '"event": "influxdb_available"' in log and '"event": "fetching_resumed"' in log, log
    finally:
        code = sink.terminate()
        influx.drop()
    assert code == 0, sink.log()


# ------------------------------------------------------------------ the parser

FLOW_TANSU = dev_services.TansuInstance(name="tansu-flow-test", port=19292)
START = datetime(2024, 5, 1, 0, 0, 0)


@pytest.fixture
def own_tansu(local_services):
    dev_services.tansu_start(FLOW_TANSU)
    yield FLOW_TANSU
    pid = dev_services._read_pid(FLOW_TANSU.name)
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
    dev_services.stop_process(FLOW_TANSU.name)


def stall_until(pid: int, condition, stall_s: float = 5.0, tries: int = 3) -> bool:
    """Stall the broker (SIGSTOP, shorter than the session timeout) until
    ``condition`` holds while it is stalled, resuming it between tries (a delivery
    fails only if a record is in flight when the stall begins)."""
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + stall_s
            while time.monotonic() < deadline:
                if condition():
                    return True
                time.sleep(0.2)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(2.0)
    return False


def test_parser_pauses_when_its_deliveries_fail_and_delivers_every_point_later(names, edge_env, own_tansu, tmp_path):
    kafka = KafkaSettings(bootstrap_servers=own_tansu.bootstrap, topic_prefix=names["prefix"], partitions=2)
    ensure_topics(kafka)
    template = MessageTemplate.load()
    messages = [template.render(site_id(i % 3 + 1), START + timedelta(seconds=i // 3)) for i in range(6000)]
    port = free_port()
    parser = EdgeProcess(["parse"], {
        **edge_env,
        "EDGE_KAFKA__BOOTSTRAP_SERVERS": own_tansu.bootstrap,
        # Deliveries fail once the broker has not answered for 3 s; each output waits
        # 1 s in the producer before it is sent, so outputs are in flight whenever
        # the feed flows (else acknowledgements take milliseconds and a stall may
        # catch none).
        "EDGE_KAFKA__CLIENT": json.dumps({**TEST_KAFKA_CLIENT, "message.timeout.ms": 3000, "linger.ms": 1000}),
        "EDGE_KAFKA__GROUP_INSTANCE_ID": "",
        "EDGE_METRICS__ENABLED": "true",
        "EDGE_METRICS__PORT": str(port),
    }, tmp_path / "parser.log").start()
    feeder_errors: list = []

    def delivered(err, _msg) -> None:
        if err is not None:
            feeder_errors.append(err)

    def feed() -> None:  # a steady stream, so that records are in flight when the broker stalls
        producer = Producer({"bootstrap.servers": own_tansu.bootstrap, "acks": "all", "linger.ms": 5})
        for i, message in enumerate(messages):
            producer.produce(kafka.raw_topic, message, on_delivery=delivered)
            producer.poll(0)
            if i % 50 == 49:
                time.sleep(0.05)
        if producer.flush(120):
            feeder_errors.append("raw records not acknowledged within 120 s")

    pid = dev_services._read_pid(own_tansu.name)
    try:
        wait_for(lambda: "partitions_assigned" in parser.log(), 60, what="the parser assigned")
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        wait_for(lambda: scrape(port).get("edge_parser_points_total", {}).get((), 0) > 1000, 60,
                 what="points flowing")
        def paused_for_delivery() -> bool:  # as the metrics say it, and as edge status reads them
            return paused_for(scrape(port), "parser") == ["delivery_failed"] and \
                status_detail("parser", port) == "paused: delivery_failed"

        assert stall_until(pid, paused_for_delivery), \
            "the parser never paused for delivery_failed:\n" + parser.log()
        assert parser.alive(), parser.log()
        feeder.join(180)
        assert not feeder.is_alive() and not feeder_errors, feeder_errors

        expected = sorted(line for m in messages for line in to_lines(m))

        def all_delivered():
            assert parser.alive(), parser.log()
            got = set(r.value() for r in read_all(kafka, kafka.parsed_topic, idle=1.0))
            return got if len(got) >= len(set(expected)) else None

        got = wait_for(all_delivered, 180, interval=2, what="every point in the parsed topic")
        assert got == set(expected)  # every point, nothing else (a rewind may deliver some twice)
        log = parser.log()
        assert '"event": "partition_rewound"' in log and '"event": "fetching_resumed"' in log, log
        wait_for(lambda: not paused_for(scrape(port), "parser"), 30, what="fetching resumed")
    finally:
        code = parser.terminate()
    assert code == 0, parser.log()
