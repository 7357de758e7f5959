"""``edge status``: one table (or JSON) with each service's state, lag, last
success, DLQ count and the last archive run, read from the services' real
metrics endpoints; "not running" when nothing answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from edge.ops.status import Health, age, read_metrics, table
from tests.support.kafka import produce_all
from tests.support.pipeline import free_port, pipeline  # noqa: F401 (fixture)
from tests.support.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent


def status(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run([sys.executable, "-m", "edge", "status", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def _closed_ports() -> list[str]:
    return [arg for name in ("bridge", "parser", "sink", "archive") for arg in ("--port", f"{name}={free_port()}")]


def test_nothing_running_is_said_plainly(edge_env, tmp_path):
    result = status(*_closed_ports(), env=edge_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "LAG", "LAST", "SUCCESS", "DLQ", "LAST", "ARCHIVE", "RUN", "DETAIL"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["bridge", "not", "running"], ["parser", "not", "running"], ["sink", "not", "running"],
        ["archive", "not", "running"]]

    # An archive that ran before: its newest manifest says when.
    manifest = tmp_path / "archive" / "field6" / "site_id=000001" / "date=2024-05-01" / "_manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    os.utime(manifest, (1_700_000_000, 1_700_000_000))
    result = status("--json", *_closed_ports(), env=edge_env)
    rows = {row["service"]: row for row in json.loads(result.stdout)}
    assert rows["archive"]["state"] == "idle"
    assert rows["archive"]["last_archive_run"] == "2023-11-14 22:13:20Z"
    assert rows["sink"] == {"service": "sink", "state": "not running", "detail": "", "lag": None,
                            "last_success": None, "dlq": None, "last_archive_run": None}


def test_a_running_sink_shows_its_lag_last_write_and_dlq(pipeline):
    p = pipeline
    p.start("sink")
    lines = [f"field6,site_id=000001 v={i} {1_700_000_000_000_000_000 + i}".encode() for i in range(5)]
    produce_all(p.kafka, p.kafka.parsed_topic, lines + [b"field6 this is not line protocol"])
    port = ["--port", f"sink={p.ports['sink']}", "--service", "sink"]

    def sink_row():
        result = status("--json", *port, env=p.env)
        assert result.returncode == 0, result.stderr
        row = json.loads(result.stdout)[0]
        return row if row["dlq"] == 1 and row["last_success"] and row["lag"] == 0 else None

    row = wait_for(sink_row, 90, what="status: the sink wrote, sent one line to the DLQ, caught up")
    assert row["state"] == "running"
    assert p.points() == 5  # what status reports happened in InfluxDB
    line = status(*port, env=p.env).stdout.splitlines()[1]
    assert re.match(r"sink\s+running\s+0\s+\S+ \S+ ago\s+1\s", line), line  # lag 0, last write, DLQ 1


def test_metrics_text_and_table_are_read_by_the_projects_naming():
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    registry = CollectorRegistry()
    lag = Gauge("edge_parser_consumer_lag", "lag", ["partition"], registry=registry)
    lag.labels("0").set(3)
    lag.labels("1").set(4)
    Gauge("edge_parser_last_commit_timestamp", "last", registry=registry).set(1000)
    Counter("edge_parser_dlq_records", "dlq", ["reason"], registry=registry).labels("parse_error").inc(2)
    Gauge("edge_sink_consumer_lag", "another service's", registry=registry).set(99)

    health = read_metrics("parser", generate_latest(registry).decode(), Health("parser", "running"))
    assert (health.lag, health.last_success, health.dlq) == (7.0, 1000.0, 2.0)
    assert age(1000.0, 1090.0) == "1.5 min ago" and age(None, 0) == "-"
    rendered = table([health], now=1005.0).splitlines()
    assert re.match(r"parser\s+running\s+7\s+5 s ago\s+2\s+-$", rendered[1]), rendered
