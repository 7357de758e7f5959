"""Each service's Prometheus endpoint during a small real run (simulator -> bridge ->
parse -> sink -> InfluxDB): the counters move by exactly what went through."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime

from tests.support.bridge_io import BackgroundPublisher
from tests.support.pipeline import STAGES, free_port, pipeline, scrape, value  # noqa: F401 (fixture)
from tests.support.processes import EdgeProcess, wait_for

START = datetime(2024, 6, 1, 0, 0, 0)
MESSAGES = 60
POINTS = 17 * MESSAGES



def test_counters_move_by_exactly_what_went_through(pipeline):
    p = pipeline
    procs = {stage: p.start(stage) for stage in STAGES}
    before = {stage: wait_for(lambda s=stage: _try_scrape(p.ports[s]), 30, what=f"{stage} metrics endpoint")
              for stage in STAGES}
    wait_for(lambda: "partitions_assigned" in procs["parse"].log() and "partitions_assigned" in procs["sink"].log(),
             60, what="consumers assigned")
    assert value(before["bridge"], "edge_bridge_consumed_total") == 0
    assert value(before["parse"], "edge_parser_messages_total") == 0
    assert value(before["sink"], "edge_sink_lines_written_total") == 0

    publisher = BackgroundPublisher(p.amqp, count=MESSAGES, sites=2, start=START)
    publisher.start()
    assert publisher.result().confirmed == MESSAGES
    wait_for(lambda: value(scrape(p.ports["sink"]), "edge_sink_lines_written_total") >= POINTS, 60,
             what=f"{POINTS} lines written")
    time.sleep(1.5)  # one more commit interval: anything beyond would be double counting
    bridge, parse, sink = (scrape(p.ports[stage]) for stage in STAGES)

    assert value(bridge, "edge_bridge_consumed_total") == MESSAGES
    assert value(bridge, "edge_bridge_produced_total") == MESSAGES
    assert value(bridge, "edge_bridge_acked_total") == MESSAGES
    assert value(bridge, "edge_bridge_nacked_total") == 0
    assert value(bridge, "edge_bridge_in_flight") == 0
    assert time.time() - value(bridge, "edge_bridge_last_ack_timestamp") < 60

    assert value(parse, "edge_parser_messages_total") == MESSAGES
    assert value(parse, "edge_parser_points_total") == POINTS
    assert not [k for k, v in parse.items() if k[0] == "edge_parser_dlq_records_total" and v]
    assert time.time() - value(parse, "edge_parser_last_commit_timestamp") < 60
    # Lag per partition that has data (a partition never fetched has no position
    # yet); everything was consumed, so it settles at 0 within a refresh or two.
    for stage, gauge in (("parse", "edge_parser_consumer_lag"), ("sink", "edge_sink_consumer_lag")):
        lag = wait_for(lambda: _lag(scrape(p.ports[stage]), gauge), 15, what=f"{gauge} at 0")
        assert set(lag) <= {"0", "1", "2"}, lag

    assert value(sink, "edge_sink_lines_written_total") == POINTS
    assert value(sink, "edge_sink_batch_lines_sum") == POINTS  # histogram of batch sizes
    batches = value(sink, "edge_sink_batches_written_total")
    assert batches >= 1 and value(sink, "edge_sink_batch_lines_count") == batches
    assert value(sink, "edge_sink_write_seconds_count") >= batches  # one latency per write request
    assert value(sink, "edge_sink_write_seconds_sum") > 0
    assert value(sink, "edge_sink_write_retries_total") == 0
    assert value(sink, "edge_sink_buffered_lines") == 0
    assert time.time() - value(sink, "edge_sink_last_write_timestamp") < 60

    assert p.points() == POINTS  # what the counters say is what InfluxDB holds


def test_metrics_are_on_by_default_on_the_ports_table(pipeline, monkeypatch):
    """No metrics setting but the [metrics] ports table (moved off 9642 so parallel
    runs never meet): the parser serves its metrics there."""
    p = pipeline
    monkeypatch.delenv("EDGE_METRICS__PORT")
    port = free_port()
    p.env = {k: v for k, v in p.env.items() if not k.startswith("EDGE_METRICS__")}
    p.env["EDGE_METRICS__PORTS"] = json.dumps({"parser": port})
    proc = EdgeProcess(["parse"], p.env, p.tmp_path / "parse-default.log").start()
    p.procs.append(proc)
    samples = wait_for(lambda: _try_scrape(port), 30, what=f"parser metrics on the table's port {port}")
    assert ("edge_parser_messages_total", ()) in samples
    assert f'"port": {port}, "event": "metrics_endpoint"' in proc.log()


def test_metrics_off_when_disabled(pipeline):
    p = pipeline
    p.env["EDGE_METRICS__ENABLED"] = "false"
    proc = p.start("parse", "-quiet")
    wait_for(lambda: "started" in proc.log(), 30, what="parser started")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", p.ports["parse"])) != 0  # nothing listens
    assert "metrics_endpoint" not in proc.log()


def test_a_busy_metrics_port_stops_the_service_with_exit_3(pipeline):
    """Another process on the port: the service does not run blind (status would
    read the other one's numbers); it stops at once and names the port and the
    setting that chose it."""
    p = pipeline
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p.ports["sink"] = port
        proc = p.start("sink", "-busy")
        assert proc.proc.wait(60) == 3
    log = proc.log()
    event = next(json.loads(line) for line in log.splitlines() if '"metrics_port_in_use"' in line)
    assert event["port"] == port and event["setting"] == "metrics.port (EDGE_METRICS__PORT)"
    assert log.rstrip().splitlines()[-1] == (
        f"edge sink: metrics port {port} on 127.0.0.1 is in use (another edge sink, or another program): "
        "set metrics.port (EDGE_METRICS__PORT) to a free port (0: any), or metrics.enabled = false")


def _lag(samples: dict, gauge: str) -> dict | None:
    lag = {dict(k[1])["partition"]: v for k, v in samples.items() if k[0] == gauge}
    return lag if lag and all(v == 0 for v in lag.values()) else None


def _try_scrape(port: int):
    try:
        return scrape(port)
    except OSError:
        return None
