"""Every mistake an operator can make ends in one line and an exit code, never a
traceback (README, "Exit codes").

Each case runs the real ``edge`` command (``python -m edge``) against the real
local services (RabbitMQ, tansu, InfluxDB) or a port where nothing listens, and
checks the exit code, the line on stderr and that no ``Traceback`` appears in
stdout or stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import influx

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def edge(*args: str, env: dict[str, str], timeout: float = 90, **kwargs) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "CREDENTIALS_DIRECTORY"))}
    clean["EDGE_METRICS__PORT"] = "0"  # a service that gets as far as its metrics takes any free port
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@dataclass
class Mistake:
    what: str
    args: list[str]
    code: int
    line: str  # the last line on stderr, exactly ({tmp}, {port} filled in)
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # name under tmp -> content


PORT = closed_port()
MISTAKES = [
    Mistake("missing --config file", ["--config", "{tmp}/missing.toml", "simulate"], 3,
            "edge simulate: {tmp}/missing.toml: config file does not exist"),
    Mistake("$EDGE_CONFIG naming a missing file", ["parse"], 3,
            "edge parse: {tmp}/gone.toml: config file does not exist (from $EDGE_CONFIG)",
            env={"EDGE_CONFIG": "{tmp}/gone.toml"}),
    Mistake("TOML syntax error", ["bridge", "--config", "{tmp}/syntax.toml"], 3,
            "edge bridge: {tmp}/syntax.toml:2: not valid TOML: Expected '=' after a key in a key/value pair (column 6)",
            files={"syntax.toml": '[amqp]\nhost "rabbit"\n'}),
    Mistake("key typo in the TOML", ["sink", "--config", "{tmp}/typo.toml"], 3,
            "edge sink: {tmp}/typo.toml:3: influxdb.databse: unknown key; did you mean 'database'?",
            files={"typo.toml": '[influxdb]\nurl = "http://127.0.0.1:18086"\ndatabse = "microgrid"\n'}),
    Mistake("section typo in the TOML", ["archive", "--dry-run", "--config", "{tmp}/section.toml"], 3,
            "edge archive: {tmp}/section.toml:1: [influx]: read by no service; did you mean [influxdb]?",
            files={"section.toml": '[influx]\nurl = "http://influx.example:8086"\n'}),
    Mistake("wrong type in the TOML", ["parse", "--config", "{tmp}/type.toml"], 3,
            "edge parse: {tmp}/type.toml:2: kafka.partitions: Input should be a valid integer, unable to parse "
            "string as an integer (got 'six')",
            files={"type.toml": '[kafka]\npartitions = "six"\n'}),
    Mistake("non-numeric EDGE_AMQP__PORT", ["bridge"], 3,
            "edge bridge: environment EDGE_AMQP__PORT: amqp.port: Input should be a valid integer, unable to parse "
            "string as an integer (got amqp)", env={"EDGE_AMQP__PORT": "amqp"}),
    Mistake("misspelled environment variable", ["sink"], 3,
            "edge sink: environment EDGE_INFLUXDB__DATABSE: influxdb.databse: unknown key; "
            "did you mean 'EDGE_INFLUXDB__DATABASE'?", env={"EDGE_INFLUXDB__DATABSE": "x"}),
    Mistake("log level that does not exist", ["parse"], 3,
            "edge parse: environment EDGE_LOG__LEVEL: log.level: Input should be 'DEBUG', 'INFO', 'WARNING', "
            "'ERROR' or 'CRITICAL' (got LOUD)", env={"EDGE_LOG__LEVEL": "loud"}),
    Mistake("negative batch size", ["sink"], 3,
            "edge sink: environment EDGE_SINK__BATCH_MAX_LINES: sink.batch_max_lines: Input should be greater "
            "than 0 (got -5)", env={"EDGE_SINK__BATCH_MAX_LINES": "-5"}),
    Mistake("InfluxDB URL without a scheme", ["archive", "--dry-run"], 3,
            "edge archive: environment EDGE_INFLUXDB__URL: influxdb.url: must be an http:// or https:// URL with a "
            "host, e.g. http://influx.example:8086 (got '127.0.0.1:18086')", env={"EDGE_INFLUXDB__URL": "127.0.0.1:18086"}),
    Mistake("empty password file", ["bridge"], 3,
            "edge bridge: environment EDGE_AMQP__PASSWORD_FILE: amqp.password_file: secret file {tmp}/amqp_password "
            "is empty: write the secret into it, or remove the setting",
            env={"EDGE_AMQP__PASSWORD_FILE": "{tmp}/amqp_password"}, files={"amqp_password": ""}),
    Mistake("misspelled librdkafka property", ["topics"], 3,
            'edge topics: kafka: No such configuration property: "sasl.mechansim" (check [kafka.client] with '
            "`edge config check`)", env={"EDGE_KAFKA__CLIENT": '{"sasl.mechansim": "PLAIN"}'}),
    Mistake("simulate --start with month 13", ["simulate", "--start", "2023-13-01"], 2,
            "edge simulate: argument --start: '2023-13-01' is not a time: month must be in 1..12 (expected "
            "'YYYY-MM-DD HH:MM:SS' in UTC, or ISO 8601 with an offset) (see edge simulate --help)"),
    Mistake("simulate --count -1", ["simulate", "--count", "-1"], 2,
            "edge simulate: argument --count: must be a whole number >= 1 (got -1) (see edge simulate --help)"),
    Mistake("simulate --count 0", ["simulate", "--count", "0"], 2,
            "edge simulate: argument --count: must be a whole number >= 1 (got 0) (see edge simulate --help)"),
    Mistake("simulate --rate -5", ["simulate", "--rate", "-5"], 2,
            "edge simulate: argument --rate: must be a number >= 0 (got -5) (see edge simulate --help)"),
    Mistake("simulate --sites 0", ["simulate", "--sites", "0"], 2,
            "edge simulate: argument --sites: must be a whole number >= 1 (got 0) (see edge simulate --help)"),
    Mistake("simulate --duration 0", ["simulate", "--duration", "0"], 2,
            "edge simulate: argument --duration: must be a number > 0 (got 0) (see edge simulate --help)"),
    Mistake("simulate --jitter 2", ["simulate", "--jitter", "2"], 2,
            "edge simulate: argument --jitter: must be a fraction in [0, 1), e.g. 0.05 (got 2) "
            "(see edge simulate --help)"),
    Mistake("simulate --count with --duration", ["simulate", "--count", "5", "--duration", "1"], 2,
            "edge simulate: argument --duration: not allowed with argument --count (see edge simulate --help)"),
    Mistake("simulate --sample that does not exist", ["simulate", "--sample", "{tmp}/nope.json"], 2,
            "edge simulate: argument --sample: {tmp}/nope.json: no such file (see edge simulate --help)"),
    Mistake("unknown command", ["simulat"], 2,
            "edge: argument COMMAND: invalid choice: 'simulat' (choose from 'bridge', 'parse', 'sink', "
            "'archive', 'query', 'simulate', 'topics', 'config', 'install', 'replay', 'dlq', 'restore', 'status') "
            "(see edge --help)"),
    Mistake("unknown AMQP host", ["simulate", "--count", "1"], 4,
            "edge simulate: amqp: cannot connect to nosuch.invalid:5672: host name not resolved",
            env={"EDGE_AMQP__HOST": "nosuch.invalid"}),
    Mistake("AMQP port closed", ["simulate", "--count", "1"], 4,
            "edge simulate: amqp: cannot connect to 127.0.0.1:{port}: connection refused",
            env={"EDGE_AMQP__PORT": "{port}"}),
    Mistake("wrong AMQP password", ["simulate", "--count", "1"], 4,
            "edge simulate: amqp: authentication failed for user guest at 127.0.0.1:5672",
            env={"EDGE_AMQP__PASSWORD": "not-the-password"}),
    Mistake("InfluxDB port closed during archive --dry-run", ["archive", "--dry-run"], 4,
            "edge archive: influxdb: cannot reach http://127.0.0.1:{port}: connection refused",
            env={"EDGE_INFLUXDB__URL": "http://127.0.0.1:{port}"}),
    Mistake("query --local --out into a missing directory", ["query", "--local", "--out", "{tmp}/no/dir/r.csv",
                                                            "SELECT 1"], 2,
            "edge query: --out {tmp}/no/dir/r.csv: directory {tmp}/no/dir does not exist"),
    Mistake("query --local on an empty archive", ["query", "--local", "--archive-dir", "{tmp}",
                                                  "SELECT count(*) FROM field1"], 5,
            "edge query: no table field1 in the archive at {tmp} (it holds no Parquet files)"),
    Mistake("query --local on a missing archive directory", ["query", "--local", "--archive-dir", "{tmp}/none",
                                                             "SELECT 1"], 5,
            "edge query: archive directory {tmp}/none does not exist ([archive] directory, or --archive-dir)"),
    Mistake("config check of an unknown service", ["config", "check", "--service", "sinc"], 2,
            "edge config: unknown service sinc (one of bridge, parser, sink, archive, query, simulate, topics)"),
    Mistake("install --edge-exec relative", ["install", "--dry-run", "--prefix", "{tmp}", "--edge-exec", "edge"], 2,
            "edge install: --edge-exec must be an absolute path, got edge"),
    Mistake("status --port without a number", ["status", "--port", "sink"], 2,
            "edge status: argument --port: 'sink': expected NAME=PORT, NAME one of bridge, parser, sink, archive "
            "(see edge status --help)"),
]


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{port}", str(PORT))


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.what for m in MISTAKES])
def test_each_mistake_is_one_line_and_an_exit_code(mistake, edge_env, tmp_path):
    for name, content in mistake.files.items():
        (tmp_path / name).write_text(content)
    env = {**edge_env, **{k: _fill(v, tmp_path) for k, v in mistake.env.items()}}
    result = edge(*[_fill(a, tmp_path) for a in mistake.args], env=env)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == mistake.code, output
    assert result.stderr.splitlines()[-1] == _fill(mistake.line, tmp_path), output


def test_an_unreachable_kafka_fails_fast_with_one_librdkafka_line_per_state(edge_env):
    """A wrong bootstrap server: the answer within the bounded wait, librdkafka's
    own reason once (as a JSON log line, not ~20 raw lines a second), then the line."""
    port = closed_port()
    result = edge("topics", env={**edge_env, "EDGE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"})
    assert result.returncode == 4 and "Traceback" not in result.stderr
    *logs, last = result.stderr.splitlines()
    assert last == (f"edge topics: kafka: no broker answered at 127.0.0.1:{port} within 10 s: "
                    "Failed to get metadata: Local: Broker transport failure")
    events = [json.loads(line) for line in logs]  # every log line is JSON (the journal's format)
    librdkafka = [e for e in events if e["event"] == "librdkafka"]
    assert 1 <= len(librdkafka) <= 2, logs
    assert "Connection refused" in librdkafka[0]["message"] and librdkafka[0]["service"] == "topics"


def test_a_closed_pipe_ends_quietly(edge_env):
    """``edge config check | head -1``: the reader is gone before the output."""
    proc = subprocess.Popen([sys.executable, "-m", "edge", "config", "check"], cwd=ROOT,
                            env={**os.environ, **edge_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `head -1` having exited
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_ctrl_c_is_exit_130_without_a_traceback(edge_env, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "query", "--local", "--archive-dir", str(tmp_path),
         "SELECT count(*) FROM range(100000000000)"],
        cwd=ROOT, env={**os.environ, **edge_env}, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    assert proc.stderr.readline().startswith("edge query: archive ")  # running the query now
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert "Traceback" not in proc.stderr.read()


def test_version_and_python_dash_m(edge_env):
    from importlib.metadata import version

    for command in ([sys.executable, "-m", "edge", "--version"], [sys.executable, "-m", "edge.cli", "--version"]):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout == f"edge {version('microgrid-edge')}\n"


@pytest.fixture
def one_point(local_services, names):
    """One point of field6 on 2023-07-22 in this test's own database."""
    url = local_services["influxdb"].url
    influx.execute(url, f'CREATE DATABASE "{names["database"]}"')
    body = b"field6,device=x,service_id=1,site_id=000001 v=1 1690000000000000000"
    request = urllib.request.Request(f"{url}/write?db={names['database']}", data=body)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 204
    yield
    influx.execute(url, f'DROP DATABASE "{names["database"]}"')


@pytest.mark.parametrize(("what", "aws_env", "said"), [
    ("missing bucket", {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
     "The specified bucket does not exist"),
    ("no AWS credentials", {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
                            "AWS_EC2_METADATA_DISABLED": "true"}, "Unable to locate credentials"),
])
def test_archive_to_a_missing_bucket_or_without_credentials_says_so(one_point, edge_env, names, what, aws_env, said):
    """The archive reports the window it could not store and deletes nothing. Its
    own exit code (1, a failed window) is the archive command's; what matters
    here is the line instead of a chained traceback."""
    env = dict(edge_env)
    env.update(aws_env, EDGE_S3__BUCKET=f"nosuch-{names['tag']}", EDGE_S3__ENDPOINT_URL="http://127.0.0.1:15000")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([sys.executable, "-m", "edge", "archive", "--start", "2023-07-22", "--end", "2023-07-23",
                             "--keep"], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("archive: failed field6 site_id=000001 2023-07-22 rp=autogen: ") and said in last, last
