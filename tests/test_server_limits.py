"""Lines InfluxDB drops for its server limits: counted by reason, InfluxDB's reason in
the DLQ record.

This module starts its own InfluxDB (free port, its own data directory) with
``max-series-per-database = 6`` and ``max-values-per-tag = 2``, and runs the real
``edge sink`` against it with a retention policy of one hour. Each limit is hit in
a phase of its own, after the previous phase is visible in InfluxDB, so which line
is dropped for which limit does not depend on how the sink cuts its batches.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.request

import pytest

from devtools import services as dev_services
from edge.core.dlq import header_map
from edge.influx.answers import SERVER_LIMITS, server_limit
from edge.kafka.topics import ensure_topics
from edge.config.settings import KafkaSettings
from tests.support.influx import query
from tests.support.kafka import produce_all, read_all
from tests.support.processes import EdgeProcess, wait_for

MAX_SERIES = 6
MAX_VALUES_PER_TAG = 2


def test_server_limit_is_named_from_influxdbs_own_messages():
    # The texts InfluxDB 1.6 answers (the sink test below gets them from the server).
    assert server_limit("partial write: max-series-per-database limit exceeded: (3) dropped=5") == "max_series_per_database"
    assert server_limit(
        'partial write: max-values-per-tag limit exceeded (2/2): measurement="m" tag="t" value="2" dropped=1'
    ) == "max_values_per_tag"
    assert server_limit("partial write: points beyond retention policy dropped=2") == "beyond_retention_policy"
    assert server_limit('partial write: field type conflict: input field "soc" on measurement "m" is type'
                        " boolean, already exists as type float dropped=1") is None
    assert server_limit("unable to parse 'm v=': missing field value") is None
    assert set(SERVER_LIMITS) == {"max_series_per_database", "max_values_per_tag", "beyond_retention_policy"}


def _free_port_pair() -> int:
    """A port p with p and p + 2 free (InfluxDB binds its RPC port at p + 2)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 2 < 65536 and not dev_services.port_open("127.0.0.1", port + 2):
            return port
    raise AssertionError("no free port pair")


@pytest.fixture
def limited_influx(local_services, monkeypatch):
    # influxd reads INFLUXDB_<SECTION>_<KEY> overrides of its config file.
    monkeypatch.setenv("INFLUXDB_DATA_MAX_SERIES_PER_DATABASE", str(MAX_SERIES))
    monkeypatch.setenv("INFLUXDB_DATA_MAX_VALUES_PER_TAG", str(MAX_VALUES_PER_TAG))
    inst = dev_services.InfluxInstance(name="influxdb-limits-test", port=_free_port_pair())
    dev_services.stop_process(inst.name)  # a leftover of an interrupted run
    shutil.rmtree(inst.base_dir, ignore_errors=True)
    dev_services.influx_start(inst)
    try:
        yield inst
    finally:
        dev_services.stop_process(inst.name)
        shutil.rmtree(inst.base_dir, ignore_errors=True)


def _points(url: str, db: str) -> int:
    try:
        series = query(url, db, 'SELECT * FROM "short"./.*/')
    except AssertionError as exc:  # not created yet
        if "not found" in str(exc):
            return 0
        raise
    return sum(len(s["values"]) for s in series)


def _metric(port: int, reason: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    name = f'edge_sink_server_limit_drops_total{{reason="{reason}"}}'
    for row in text.splitlines():
        if row.startswith(name + " "):
            return float(row.split()[1])
    return 0.0


def test_sink_counts_server_limit_drops_by_reason_and_dead_letters_them(limited_influx, names, edge_env, tmp_path):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=1)
    ensure_topics(kafka)
    metrics_port = _free_port_pair()
    db = names["database"]
    sink = EdgeProcess(["sink"], {
        **edge_env,
        "EDGE_INFLUXDB__URL": limited_influx.url,
        "EDGE_INFLUXDB__RETENTION_POLICY": "short",
        "EDGE_SINK__RETENTION_DURATION": "1h",
        "EDGE_METRICS__ENABLED": "true",
        "EDGE_METRICS__PORT": str(metrics_port),
    }, tmp_path / "sink.log").start()
    now = time.time_ns() // 10**9 * 10**9

    def dead_letters(expected: int) -> list:
        # A read can stop early while the broker is slow to answer: read again.
        def read() -> list | None:
            records = read_all(kafka, kafka.dlq_topic, idle=0.5)
            return records if len(records) == expected else None

        return wait_for(read, 60, what=f"{expected} DLQ records") if expected else []

    def phase(lines: list[str], stored: int, dead: int) -> None:
        produce_all(kafka, kafka.parsed_topic, [line.encode() for line in lines])
        wait_for(lambda: sink.alive() and _points(limited_influx.url, db) == stored, 60, what=f"{stored} points")
        dead_letters(dead)

    try:
        # Two values of the tag "device": the most max-values-per-tag allows.
        phase([f"lim,device=d{i},site_id=000001 v={i}.5 {now}" for i in range(2)], stored=2, dead=0)
        # A third value of that tag: dropped.
        phase([f"lim,device=d2,site_id=000001 v=2.5 {now}"], stored=2, dead=1)
        # Four more series fill the database up to max-series-per-database ...
        phase([f"fill,{key}=1 v=1 {now}" for key in "abcd"], stored=MAX_SERIES, dead=1)
        # ... so any new series is dropped, however the sink batches them.
        phase([f"over,{key}=1 v=1 {now}" for key in "abc"], stored=MAX_SERIES, dead=4)
        # Points older than the policy's one hour, on a series that exists: dropped.
        old = now - 3 * 3_600 * 10**9
        phase([f"lim,device=d0,site_id=000001 v={i}.0 {old + i}" for i in range(2)], stored=MAX_SERIES, dead=6)

        # Counted right after the DLQ acknowledged the records.
        expected = {"max_values_per_tag": 1, "max_series_per_database": 3, "beyond_retention_policy": 2}
        wait_for(lambda: {r: _metric(metrics_port, r) for r in expected} == expected, 30, what=f"metrics {expected}")
    finally:
        assert sink.terminate() == 0, sink.log()

    records = dead_letters(6)
    by_value = {m.value().decode(): header_map(m.headers()) for m in records}
    assert len(by_value) == 6
    for value, headers in by_value.items():
        assert headers["dlq.reason"] == b"influx_rejected", value
    # InfluxDB's reason, verbatim, in each record.
    assert b"max-values-per-tag limit exceeded (2/2)" in by_value[f"lim,device=d2,site_id=000001 v=2.5 {now}"]["dlq.error"]
    for key in "abc":
        error = by_value[f"over,{key}=1 v=1 {now}"]["dlq.error"]
        assert error.startswith(b"partial write: max-series-per-database limit exceeded: (6)"), error
    old_errors = [h["dlq.error"] for v, h in by_value.items() if v.startswith("lim,device=d0")]
    assert len(old_errors) == 2
    assert all(e.startswith(b"partial write: points beyond retention policy dropped=") for e in old_errors), old_errors
