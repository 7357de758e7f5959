"""InfluxDB with authentication on, over HTTPS (test-made CA), least privilege.

This module's own InfluxDB (``auth-enabled``, ``https-enabled``) holds four users:
an admin (only to set things up), ``sink`` with WRITE on the database, ``archiver``
with ALL (READ + WRITE: InfluxDB 1.x asks WRITE for DELETE, not admin) and
``reader`` with READ only.

- The sink with the write-only user stores everything; with a wrong password it
  says ``influxdb: 401 ...``, retries with a capped backoff, commits nothing, and
  once restarted with the right password the count is exact.
- The archiver with READ only archives but cannot delete (nothing is deleted, the
  failure names the privilege); with READ + WRITE the re-run deletes the window.
- A wrong CA, or plain HTTP to the HTTPS port, is a clear retryable failure,
  never a verdict on the lines (no DLQ).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from devtools import services as dev_services
from edge.archive.archiver import archive
from edge.influx.answers import Outcome
from edge.influx.client import InfluxClient
from edge.config.settings import ArchiveOptions, ArchiveSettings, InfluxSettings
from tests.support.certs import make_pki
from tests.support.processes import ROOT, EdgeProcess, wait_for
from tests.test_sink_service import BOOTSTRAP, create_topics, line, produce

PORT = 18786
METRICS_PORT = 18790
ADMIN = ("admin", "admin-Secret-51c2")
SINK_PASSWORD = "sink-Secret-9e4a"
ARCHIVER_PASSWORD = "archiver-Secret-3b7d"
READER_PASSWORD = "reader-Secret-66f0"
SECRETS = [ADMIN[1], SINK_PASSWORD, ARCHIVER_PASSWORD, READER_PASSWORD]


class SecureInflux:
    def __init__(self, url: str, ca: str, database: str):
        self.url, self.ca, self.database = url, ca, database

    def q(self, statement: str, auth=ADMIN, db: str | None = None) -> requests.Response:
        params = {"q": statement, **({"db": db} if db else {})}
        return requests.post(f"{self.url}/query", params=params, auth=auth, verify=self.ca, timeout=10)

    def count(self, measurement: str = "sinktest") -> int:
        resp = self.q(f'SELECT count(soc) FROM "{measurement}"', db=self.database)
        series = resp.json()["results"][0].get("series", [])
        return int(series[0]["values"][0][1]) if series else 0

    def settings(self, user: str, password: str, **over) -> InfluxSettings:
        base = dict(url=self.url, database=self.database, username=user, password=password, ca_file=self.ca)
        return InfluxSettings(**{**base, **over})


@pytest.fixture(scope="module")
def secure_influx(tmp_path_factory, local_services):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    # InfluxDB serves the chain (server certificate, then the CA).
    chain = pki.server_cert.parent / "server-chain.pem"
    chain.write_bytes(pki.server_cert.read_bytes() + pki.ca_cert.read_bytes())
    inst = dev_services.InfluxInstance(
        name="influxdb-auth-test", port=PORT, auth=True, tls_cert=str(chain), tls_key=str(pki.server_key)
    )
    dev_services.stop_process(inst.name)  # a leftover of an interrupted run has other users
    import shutil

    shutil.rmtree(inst.base_dir, ignore_errors=True)
    dev_services.influx_start(inst)
    influx = SecureInflux(inst.url, str(pki.ca_cert), "secure")
    try:
        # With no user yet, InfluxDB accepts exactly this one statement unauthenticated.
        assert influx.q(f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES", auth=None).ok
        for statement in [
            "CREATE DATABASE secure",
            f"CREATE USER sink WITH PASSWORD '{SINK_PASSWORD}'",
            "GRANT WRITE ON secure TO sink",
            f"CREATE USER archiver WITH PASSWORD '{ARCHIVER_PASSWORD}'",
            "GRANT ALL ON secure TO archiver",
            f"CREATE USER reader WITH PASSWORD '{READER_PASSWORD}'",
            "GRANT READ ON secure TO reader",
        ]:
            resp = influx.q(statement)
            assert resp.ok and "error" not in resp.text, resp.text
        yield influx, pki
    finally:
        dev_services.stop_process(inst.name)


def _committed(group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)]
    finally:
        consumer.close()


def _metric(text: str, name: str) -> float:
    for row in text.splitlines():
        if row.startswith(name + " "):
            return float(row.split()[1])
    return 0.0


def _cmdlines_of(pid: int) -> str:
    """The command line of ``pid`` and its children, as ``ps`` shows them."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if int(entry) == pid or ppid == pid:
                out.append(open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode())
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return "\n".join(out)


def test_write_only_sink_wrong_password_holds_offsets_then_exact_count_and_no_secret_shows(
    secure_influx, names, edge_env, tmp_path
):
    influx, pki = secure_influx
    prefix = names["prefix"]
    create_topics(prefix, partitions=2)
    total = 3000
    produce(prefix, [line(i) for i in range(total)])
    group = f"sink-sec-{uuid.uuid4().hex[:8]}"
    password_file = tmp_path / "influx_password"
    password_file.write_text("not-the-password\n")
    password_file.chmod(0o600)
    env = {
        **edge_env,
        "EDGE_INFLUXDB__URL": influx.url,
        "EDGE_INFLUXDB__DATABASE": influx.database,
        "EDGE_INFLUXDB__USERNAME": "sink",
        "EDGE_INFLUXDB__PASSWORD_FILE": str(password_file),
        "EDGE_INFLUXDB__CA_FILE": influx.ca,
        "EDGE_SINK__RETRY_INITIAL_S": "0.5",
        "EDGE_SINK__RETRY_MAX_S": "2",
        "EDGE_METRICS__ENABLED": "true",
        "EDGE_METRICS__PORT": str(METRICS_PORT),
    }
    sink = EdgeProcess(["sink", "--group-id", group], env, tmp_path / "sink-wrong.log").start()
    try:
        wait_for(lambda: '"influxdb_unavailable"' in sink.log(), 60, what="the refusal in the log")
        first = _metric(_scrape(), "edge_sink_write_retries_total")
        time.sleep(5)
        retries = _metric(_scrape(), "edge_sink_write_retries_total") - first
        assert sink.alive(), sink.log()
        metrics_text = _scrape()
        ps_text = _cmdlines_of(sink.pid)
        assert sink.terminate() == 0, sink.log()
    finally:
        sink.kill()
    refusal = [json.loads(r) for r in sink.log().splitlines() if '"influxdb_unavailable"' in r][0]
    assert refusal["status"] == 401
    assert refusal["error"] == f"influxdb: 401 authorization failed (user sink at {influx.url})"
    # Capped backoff (0.5 s doubling to 2 s): a handful of tries in 5 s, not a loop.
    assert 1 <= retries <= 6, retries
    assert influx.count() == 0
    assert all(offset < 0 for offset in _committed(group, f"{prefix}.parsed", 2))  # nothing committed
    assert "dlq" not in sink.log().lower().replace(f"{prefix}.dlq", "")  # nothing dead-lettered

    # The operator fixes the password file; a restart picks it up and loses nothing.
    password_file.write_text(SINK_PASSWORD + "\n")
    fixed = EdgeProcess(["sink", "--group-id", group], env, tmp_path / "sink-fixed.log").start()
    try:
        wait_for(lambda: influx.count() >= total, 60, what=f"{total} points")
        time.sleep(1)
        assert fixed.terminate() == 0, fixed.log()
    finally:
        fixed.kill()
    assert influx.count() == total
    # The write-only user really is write-only.
    assert influx.q("SELECT count(soc) FROM sinktest", auth=("sink", SINK_PASSWORD), db=influx.database).status_code == 403

    # No secret in logs, process list, metrics, or `edge config check`.
    check = subprocess.run(
        [sys.executable, "-m", "edge.cli", "config", "check"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, **env, "EDGE_INFLUXDB__PASSWORD": SINK_PASSWORD, "EDGE_INFLUXDB__PASSWORD_FILE": "",
             "EDGE_AMQP__PASSWORD": ARCHIVER_PASSWORD},
    )
    assert check.returncode == 0, check.stderr
    assert "sink" in check.stdout
    seen = "\n".join([sink.log(), fixed.log(), ps_text, metrics_text, check.stdout, check.stderr])
    for secret in SECRETS + ["not-the-password"]:
        assert secret not in seen


def _scrape() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as resp:
        return resp.read().decode()


DAY = datetime(2023, 7, 1, tzinfo=UTC)


def test_archiver_needs_read_and_write_reader_alone_deletes_nothing(secure_influx, tmp_path):
    influx, _pki = secure_influx
    base_ns = int(DAY.timestamp() * 1e9)
    body = "\n".join(f"arch,site_id=000001 soc={i}.5 {base_ns + i * 10**9}" for i in range(500))
    resp = requests.post(f"{influx.url}/write", params={"db": influx.database}, data=body, auth=ADMIN,
                         verify=influx.ca, timeout=10)
    assert resp.status_code == 204, resp.text

    def settings(user: str, password: str) -> ArchiveSettings:
        return ArchiveSettings(
            influxdb=influx.settings(user, password),
            archive=ArchiveOptions(directory=str(tmp_path / "archive")),
        )

    window = dict(start=DAY, end=datetime(2023, 7, 2, tzinfo=UTC), delete=True, progress=False,
                  measurements=["arch"])
    as_reader = archive(settings("reader", READER_PASSWORD), **window)
    assert as_reader.exported == 1 and as_reader.deleted == 0 and as_reader.failed == 1
    assert "requires WRITE on secure" in as_reader.failures[0]
    assert influx.count("arch") == 500  # nothing deleted

    as_archiver = archive(settings("archiver", ARCHIVER_PASSWORD), **window)
    assert as_archiver.failed == 0 and as_archiver.deleted == 1, as_archiver.failures
    assert influx.count("arch") == 0
    rows = sum(1 for _ in (tmp_path / "archive").rglob("*.parquet"))
    assert rows >= 1


def test_archive_with_a_wrong_password_exits_with_one_clear_line(secure_influx, tmp_path):
    influx, _pki = secure_influx
    env = {
        **os.environ,
        "EDGE_CONFIG": "",
        "EDGE_INFLUXDB__URL": influx.url,
        "EDGE_INFLUXDB__DATABASE": influx.database,
        "EDGE_INFLUXDB__USERNAME": "archiver",
        "EDGE_INFLUXDB__PASSWORD": "wrong-Secret-77aa",
        "EDGE_INFLUXDB__CA_FILE": influx.ca,
        "EDGE_ARCHIVE__DIRECTORY": str(tmp_path / "archive"),
    }
    done = subprocess.run([sys.executable, "-m", "edge.cli", "archive", "--older-than", "1", "--delete"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4  # a hop that refuses us (README, "Exit codes")
    assert f"edge archive: influxdb: 401 authorization failed (user archiver at {influx.url})" in done.stderr
    assert "Traceback" not in done.stderr
    assert "wrong-Secret-77aa" not in done.stdout + done.stderr


def test_wrong_ca_and_plain_http_are_retryable_failures_that_say_why(secure_influx):
    influx, pki = secure_influx
    wrong_ca = InfluxClient(influx.settings("sink", SINK_PASSWORD, ca_file=str(pki.other_ca_cert)))
    result = wrong_ca.write(line(1))
    assert result.outcome is Outcome.RETRY
    assert result.error.startswith(f"influxdb: TLS failure at {influx.url}: ")
    assert "certificate" in result.error

    plain = InfluxClient(influx.settings("sink", SINK_PASSWORD, url=influx.url.replace("https://", "http://")))
    result = plain.write(line(1))
    assert result.outcome is Outcome.RETRY  # not REJECTED: the lines are fine, the URL is not
    assert "plain HTTP sent to the HTTPS port" in result.error

    good = InfluxClient(influx.settings("sink", SINK_PASSWORD))
    assert good.write(line(1)).ok


def test_credentials_in_the_url_move_to_their_fields():
    s = InfluxSettings(url="https://sink:p%40ss@influx.example:8086")
    assert s.url == "https://influx.example:8086"
    assert (s.username, s.password.get_secret_value()) == ("sink", "p@ss")
    assert "p@ss" not in repr(s)
