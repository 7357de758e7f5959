"""AMQPS: the bridge and the simulator against a RabbitMQ node with a TLS listener.

The node is this module's own (``devtools.services.RabbitInstance``: its own node
name, ports, data and cookie under var/), with a test-made CA and server
certificate, TLS 1.2/1.3 only, and one user (``edge``) -- no guest. The shared
node on 5672 is never touched.

What must hold when something is wrong (wrong CA, wrong password, a plain-text
port where TLS is expected, a certificate for another host name): the bridge
refuses, says which hop and why in one log line, retries with a growing delay
(no tight loop), and acks nothing -- every message is still in the queue.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime

import pytest

from devtools import services as dev_services
from edge.bridge import amqp as amqp_client
from edge.config.settings import AmqpSettings, KafkaSettings, SimulatorSettings
from edge.simulator.publish import publish
from edge.kafka.topics import ensure_topics, topic_names
from tests.support.bridge_io import RawTopicReader
from tests.support.certs import make_pki
from tests.support.processes import ROOT, EdgeProcess, wait_for

PLAIN_PORT = 18672
TLS_PORT = 18671
DIST_PORT = 18673
USER = "edge"
PASSWORD = "amqp-Secret-7d1f"  # scanned for in logs and process lists
START = datetime(2024, 5, 1, 0, 0, 0)


@pytest.fixture(scope="module")
def tls_rabbit(tmp_path_factory, local_services):
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    node = dev_services.RabbitInstance(
        name="rabbitmq-tls-test",
        port=PLAIN_PORT,
        dist_port=DIST_PORT,
        user=USER,
        password=PASSWORD,
        tls_port=TLS_PORT,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_ca=str(pki.ca_cert),
    )
    try:
        dev_services.rabbit_start(node)
        yield node, pki
    finally:
        dev_services.stop_process(node.name)


def _amqp(pki, queue: str, **over) -> AmqpSettings:
    base = dict(
        host="127.0.0.1", port=TLS_PORT, username=USER, password=PASSWORD, queue=queue,
        tls=True, ca_file=str(pki.ca_cert),
    )
    return AmqpSettings(**{**base, **over})


def _ready(amqp: AmqpSettings) -> int:
    connection = amqp_client.connect(amqp, "test")
    try:
        return connection.channel().queue_declare(amqp.queue, passive=True).method.message_count
    finally:
        connection.close()


def _bridge_env(edge_env: dict, amqp: AmqpSettings, password_file) -> dict:
    password_file.write_text(amqp.password.get_secret_value() + "\n")
    password_file.chmod(0o600)
    env = {
        **edge_env,
        "EDGE_AMQP__HOST": amqp.host,
        "EDGE_AMQP__PORT": str(amqp.port),
        "EDGE_AMQP__USERNAME": amqp.username,
        "EDGE_AMQP__PASSWORD_FILE": str(password_file),
        "EDGE_AMQP__TLS": "true" if amqp.tls else "false",
        "EDGE_AMQP__QUEUE": amqp.queue,
        "EDGE_BRIDGE__RECONNECT_INITIAL_BACKOFF_S": "0.5",
        "EDGE_BRIDGE__RECONNECT_MAX_BACKOFF_S": "2",
    }
    for key in ("ca_file", "server_hostname"):
        value = getattr(amqp, key)
        if value:
            env[f"EDGE_AMQP__{key.upper()}"] = value
    return env


def _events(log_text: str, event: str) -> list[dict]:
    out = []
    for line in log_text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == event:
            out.append(doc)
    return out


@pytest.fixture
def kafka_topics(local_services, names):
    kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=1)
    ensure_topics(kafka)
    yield kafka
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.delete_topics(topic_names(kafka)).values():
        future.result(10)


def test_bridge_over_tls_with_the_right_ca_moves_every_message(tls_rabbit, kafka_topics, names, edge_env, tmp_path):
    _node, pki = tls_rabbit
    amqp = _amqp(pki, names["queue"])
    summary = publish(SimulatorSettings(amqp=amqp), count=40, sites=2, start=START)  # the simulator over TLS too
    assert summary.confirmed == 40
    reader = RawTopicReader(kafka_topics.bootstrap_servers, kafka_topics.raw_topic, 1)
    bridge = EdgeProcess(["bridge"], _bridge_env(edge_env, amqp, tmp_path / "amqp_password"), tmp_path / "bridge.log").start()
    try:
        reader.wait_count(40, timeout=30)
        cmdline = open(f"/proc/{bridge.pid}/cmdline", "rb").read().decode(errors="replace")
        assert bridge.terminate() == 0
    finally:
        bridge.kill()
        reader.close()
    assert len(reader.keys()) == 40
    assert _ready(amqp) == 0
    connected = _events(bridge.log(), "amqp_connected")
    assert connected and connected[0]["port"] == TLS_PORT
    assert PASSWORD not in bridge.log() + cmdline


# Each case: what is wrong, and what the log must say about it.
FAILURES = {
    "wrong-ca": (dict(ca_file="OTHER_CA"), r"amqp: TLS certificate rejected at 127\.0\.0\.1:18671: .*(unable to get local issuer|self.signed|certificate verify failed)"),
    "wrong-password": (dict(password="not-the-password"), r"amqp: authentication failed for user edge at 127\.0\.0\.1:18671"),
    "plain-text-port": (dict(port=PLAIN_PORT), r"amqp: TLS handshake failed at 127\.0\.0\.1:18672: .*plain-text"),
    "wrong-host-name": (dict(server_hostname="elsewhere.example"), r"amqp: TLS certificate rejected at 127\.0\.0\.1:18671: .*[Hh]ostname mismatch"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_bridge_refuses_names_the_hop_backs_off_and_acks_nothing(tls_rabbit, kafka_topics, names, edge_env, tmp_path, case):
    _node, pki = tls_rabbit
    good = _amqp(pki, names["queue"])
    publish(SimulatorSettings(amqp=good), count=20, sites=1, start=START)
    over, expected = FAILURES[case]
    over = {k: (str(pki.other_ca_cert) if v == "OTHER_CA" else v) for k, v in over.items()}
    bad = _amqp(pki, names["queue"], **over)
    reader = RawTopicReader(kafka_topics.bootstrap_servers, kafka_topics.raw_topic, 1)
    bridge = EdgeProcess(["bridge"], _bridge_env(edge_env, bad, tmp_path / "amqp_password"), tmp_path / "bridge.log").start()
    try:
        # 0.5, 1, 2, 2 s of backoff: about five attempts in 6 s, not hundreds.
        wait_for(lambda: len(_events(bridge.log(), "amqp_disconnected")) >= 3, timeout=20, what="three refusals")
        time.sleep(4)
        assert bridge.alive(), bridge.log()
        attempts = _events(bridge.log(), "amqp_disconnected")
        assert bridge.terminate() == 0
        forwarded = reader.poll(1.0)
    finally:
        bridge.kill()
        reader.close()
    assert all(re.search(expected, a["error"]) for a in attempts), attempts[0]["error"]
    assert 3 <= len(attempts) <= 8, f"{len(attempts)} connection attempts: {[a['retry_in_s'] for a in attempts]}"
    delays = [a["retry_in_s"] for a in attempts]
    assert delays[2] > delays[0] and max(delays) <= 2, delays
    # Nothing acked, nothing forwarded.
    assert forwarded == 0
    assert _ready(good) == 20
    assert not _events(bridge.log(), "amqp_connected")


def test_simulator_with_a_wrong_password_fails_with_one_clear_line(tls_rabbit, names, tmp_path):
    _node, pki = tls_rabbit
    env = {
        "EDGE_CONFIG": "",
        "EDGE_AMQP__HOST": "127.0.0.1",
        "EDGE_AMQP__PORT": str(TLS_PORT),
        "EDGE_AMQP__TLS": "true",
        "EDGE_AMQP__CA_FILE": str(pki.ca_cert),
        "EDGE_AMQP__USERNAME": USER,
        "EDGE_AMQP__PASSWORD": "wrong-Secret-0a9b",
        "EDGE_AMQP__QUEUE": names["queue"],
    }
    import os

    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "simulate", "--count", "3"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 4  # an unreachable or refusing hop (README, "Exit codes")
    assert done.stderr.strip().splitlines()[-1] == (
        f"edge simulate: amqp: authentication failed for user edge at 127.0.0.1:{TLS_PORT}")
    assert "wrong-Secret-0a9b" not in done.stderr + done.stdout


def test_tls_context_is_tls12_or_newer_and_verifies_names(tls_rabbit):
    _node, pki = tls_rabbit
    import ssl

    ctx = amqp_client.tls_context(_amqp(pki, "q"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert not amqp_client.tls_context(_amqp(pki, "q", verify_hostname=False)).check_hostname
