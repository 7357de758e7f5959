"""``edge status``: one table (or JSON) with each service's state, lag and last
success, read from the services' real metrics endpoints on the ports both sides
take from the same settings; the DLQ counted from the topic; exit 1 and the
reason when a long-running service is down or cannot be told."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from edge.ops.status import Dlq, Health, age, dlq_line, failing, read_metrics, table
from tests.support.kafka import produce_all
from tests.support.pipeline import free_port, pipeline  # noqa: F401 (fixture)
from tests.support.processes import EdgeProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"bridge": "bridge", "parser": "parse", "sink": "sink"}


def status(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run([sys.executable, "-m", "edge", "status", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def _closed_ports() -> str:
    """A [metrics] ports table on which nothing listens."""
    return json.dumps({name: free_port() for name in ("bridge", "parser", "sink", "archive")})


def test_nothing_running_is_said_with_the_reason_and_exit_1(edge_env, tmp_path):
    ports = _closed_ports()
    result = status(env=dict(edge_env, EDGE_METRICS__PORTS=ports))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "LAG", "LAST", "SUCCESS", "LAST", "ARCHIVE", "RUN", "DETAIL"]
    assert [line.split()[:2] for line in lines[1:5]] == [
        ["bridge", "unknown"], ["parser", "unknown"], ["sink", "unknown"], ["archive", "idle"]]
    port = json.loads(ports)["parser"]
    assert f"metrics port {port} refused connection; not running, or its metrics are off" in lines[2]
    # The topics do not exist: the DLQ line says so instead of a count.
    assert lines[5] == f"DLQ {edge_env['EDGE_KAFKA__TOPIC_PREFIX']}.dlq: unknown: kafka: topic " \
                       f"{edge_env['EDGE_KAFKA__TOPIC_PREFIX']}.dlq does not exist (edge topics creates it)"

    # An archive that ran before: its newest manifest says when.
    manifest = tmp_path / "archive" / "field6" / "site_id=000001" / "date=2024-05-01" / "_manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    os.utime(manifest, (1_700_000_000, 1_700_000_000))
    result = status("--json", env=dict(edge_env, EDGE_METRICS__PORTS=ports))
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    rows = {row["service"]: row for row in answer["services"]}
    assert rows["archive"]["state"] == "idle" and rows["archive"]["detail"] == ""
    assert rows["archive"]["last_archive_run"] == "2023-11-14 22:13:20Z"
    assert rows["sink"]["state"] == "unknown" and rows["sink"]["port"] == json.loads(ports)["sink"]
    assert answer["dlq"]["records"] is None and "does not exist" in answer["dlq"]["detail"]

    # Metrics switched off in the settings status reads: it says that is why.
    result = status("--service", "sink", env=dict(edge_env, EDGE_METRICS__PORTS=ports, EDGE_METRICS__ENABLED="false"))
    assert "metrics are off here (metrics.enabled = false)" in result.stdout.splitlines()[1]


def test_services_started_without_a_config_file_show_running_until_one_is_killed(pipeline, monkeypatch):
    """bridge, parse and sink on the built-in defaults (no config file, metrics on
    as shipped), each on the port of the [metrics] ports table that status reads
    too; the parser killed: exit 1, and the row says why."""
    p = pipeline
    monkeypatch.delenv("EDGE_METRICS__PORT")  # the tests' "any free port": not the defaults' way
    ports = {name: free_port() for name in ("bridge", "parser", "sink", "archive")}
    env = {k: v for k, v in p.env.items() if k not in ("EDGE_METRICS__ENABLED", "EDGE_METRICS__PORT")}
    env.update(EDGE_METRICS__PORTS=json.dumps(ports), EDGE_CONFIG="")
    procs = {}
    for name, command in STAGES.items():
        procs[name] = EdgeProcess([command], env, p.tmp_path / f"{command}.log").start()
        p.procs.append(procs[name])

    def all_running():
        result = status("--json", env=env)
        answer = json.loads(result.stdout)
        states = {row["service"]: row["state"] for row in answer["services"]}
        return answer if result.returncode == 0 and set(states.values()) <= {"running", "idle"} else None


    answer = wait_for(all_running, 90, what="status: bridge, parser and sink running")
    assert {row["service"]: row["port"] for row in answer["services"]} == ports
    assert answer["dlq"] == {"topic": p.kafka.dlq_topic, "records": 0, "partitions": 3, "detail": ""}

    procs["parser"].kill()
    result = status(env=env)
    assert result.returncode == 1, result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("parser"))
    assert re.match(rf"parser\s+unknown\s+-\s+-\s+-\s+metrics port {ports['parser']} refused connection; "
                    r"not running, or its metrics are off or on another port \(metrics.ports.parser\)$", row), row
    assert re.match(r"bridge\s+running\s", result.stdout.splitlines()[1])


def test_a_running_sink_shows_its_lag_last_write_and_the_dlq_from_the_topic(pipeline):
    p = pipeline
    sink = p.start("sink")
    lines = [f"field6,site_id=000001 v={i} {1_700_000_000_000_000_000 + i}".encode() for i in range(5)]
    produce_all(p.kafka, p.kafka.parsed_topic, lines + [b"field6 this is not line protocol"])
    port = ["--port", f"sink={p.ports['sink']}", "--service", "sink"]

    def sink_answer():
        result = status("--json", *port, env=p.env)
        answer = json.loads(result.stdout)
        row = answer["services"][0]
        done = result.returncode == 0 and answer["dlq"]["records"] == 1 and row["last_success"] and row["lag"] == 0
        return answer if done else None

    answer = wait_for(sink_answer, 90, what="status: the sink wrote, sent one line to the DLQ, caught up")
    assert answer["services"][0]["state"] == "running"
    assert p.points() == 5  # what status reports happened in InfluxDB
    out = status(*port, env=p.env).stdout.splitlines()
    assert re.match(r"sink\s+running\s+0\s+\S+ \S+ ago\s+-$", out[1]), out  # lag 0, last write
    assert out[2] == f"DLQ {p.kafka.dlq_topic}: 1 record in 3 partitions, counted from the topic " \
                     "(copies, repeat and redrive markers included: edge dlq list shows each failure and its state)"

    # The sink stops (its own DLQ counter goes with it): the topic still holds the record.
    sink.terminate()
    result = status("--json", *port, env=p.env)
    assert result.returncode == 1 and json.loads(result.stdout)["dlq"]["records"] == 1


def test_metrics_text_and_table_are_read_by_the_projects_naming():
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    registry = CollectorRegistry()
    lag = Gauge("edge_parser_consumer_lag", "lag", ["partition"], registry=registry)
    lag.labels("0").set(3)
    lag.labels("1").set(4)
    Gauge("edge_parser_last_commit_timestamp", "last", registry=registry).set(1000)
    Counter("edge_parser_dlq_records", "dlq", ["reason"], registry=registry).labels("parse_error").inc(2)
    Gauge("edge_sink_consumer_lag", "another service's", registry=registry).set(99)

    health = Health("parser", "running")
    assert read_metrics("parser", generate_latest(registry).decode(), health)
    assert (health.lag, health.last_success) == (7.0, 1000.0)
    assert not read_metrics("bridge", generate_latest(registry).decode(), Health("bridge"))  # not its metrics
    assert age(1000.0, 1090.0) == "1.5 min ago" and age(None, 0) == "-"
    rendered = table([health], now=1005.0).splitlines()
    assert re.match(r"parser\s+running\s+7\s+5 s ago\s+-$", rendered[1]), rendered
    assert dlq_line(Dlq("m.dlq", detail="kafka: down")) == "DLQ m.dlq: unknown: kafka: down"

    # Exit 1: a long-running service not running, or a failed unit; an idle archive is fine.
    assert failing([health, Health("archive", "idle")]) == []
    down = [Health("sink", "unknown"), Health("bridge", "inactive"), Health("archive", "failed")]
    assert failing(down + [health]) == down


def test_each_influxdb_node_has_a_row_and_one_down_makes_exit_1(influx_nodes, edge_env, tmp_path):
    """Two real nodes of the map up, then a third on a port nothing listens on:
    a row per node, up with its version, down with the reason; exit 1."""
    first, second, _third = influx_nodes
    config = tmp_path / "edge.toml"
    closed = free_port()

    def write(extra: str = "") -> None:
        config.write_text(f'[influxdb]\nurl = "{first.url}"\nsite_map_version = 1\n'
                          f'[influxdb.nodes.node2]\nurl = "{second.url}"\nsites = ["north-*", "000007"]\n{extra}')

    write()
    env = dict(edge_env, EDGE_CONFIG=str(config))
    result = status("--service", "archive", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("INFLUXDB NODE")))
    assert re.match(rf"default\s+up\s+{re.escape(first.url)}\s+1\.\S+\s+every site no other node names$",
                    lines[at + 1]), lines
    assert re.match(rf"node2\s+up\s+{re.escape(second.url)}\s+1\.\S+\s+north-\*, 000007$", lines[at + 2]), lines

    write(f'[influxdb.nodes.gone]\nurl = "http://127.0.0.1:{closed}"\nsites = ["south-1"]\n')
    result = status("--json", "--service", "archive", env=env)
    assert result.returncode == 1, result.stdout
    nodes = {row["node"]: row for row in json.loads(result.stdout)["influxdb"]}
    assert [nodes[n]["state"] for n in ("default", "node2", "gone")] == ["up", "up", "down"]
    assert nodes["gone"]["detail"] == "connection refused" and nodes["gone"]["url"] == f"http://127.0.0.1:{closed}"

    # A map the settings refuse: one row says why, exit 1.
    write('[influxdb.nodes.node3]\nurl = "http://127.0.0.1:1"\nsites = ["north-1*"]\n')
    result = status("--service", "archive", env=env)
    assert result.returncode == 1
    row = result.stdout.splitlines()[-1]
    assert row.startswith("?") and "the [influxdb] settings cannot be read" in row and "north-1*" in row, row
