"""Shared fixtures: the real local services, and per-test names so tests never see
each other's topics, queues or databases."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from devtools import services as dev_services
from edge.config.settings import AmqpSettings, InfluxSettings, KafkaSettings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PATH = ROOT / "sample" / "sample.json"

# Services listen for metrics on fixed ports by default (9641-9644): tests, run in
# parallel and beside a demo, take any free port instead, here and in every child.
METRICS_ANY_PORT = {"EDGE_METRICS__PORT": "0"}
os.environ.update(METRICS_ANY_PORT)

# Consumer-group joins on tansu take the session timeout; keep it short in tests.
TEST_KAFKA_CLIENT = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


@pytest.fixture(scope="session")
def sample_bytes() -> bytes:
    return SAMPLE_PATH.read_bytes()


@pytest.fixture(scope="session")
def local_services():
    """RabbitMQ, InfluxDB and tansu up and ready (started if they are not)."""
    dev_services.up()
    return {
        "amqp": AmqpSettings(),
        "kafka": KafkaSettings(),
        "influxdb": InfluxSettings(),
    }


@pytest.fixture(scope="session")
def influx_nodes(local_services):
    """Three InfluxDB OSS nodes: the default one and two more on their own ports and
    data directories, started by the code behind ``devtools.services up
    --influx-nodes 3``; the settings that reach each. Nodes started here are
    stopped afterwards; running ones are reused and left running."""
    nodes = dev_services.influx_nodes(3)
    states = dev_services.influx_nodes_up(3)
    yield [InfluxSettings(url=n.url) for n in nodes]
    for node in nodes:
        if states[node.url] == "started":
            dev_services.stop_process(node.name)


@pytest.fixture
def names():
    """Unique names for this test's queue, topic prefix and InfluxDB database."""
    tag = uuid.uuid4().hex[:10]
    return {
        "queue": f"test.telemetry.{tag}",
        "prefix": f"t{tag}",
        "database": f"t{tag}",
        "tag": tag,
    }


@pytest.fixture
def edge_env(local_services, names, tmp_path) -> dict[str, str]:
    """Environment for ``edge`` child processes pointing at this test's names."""
    return {
        "EDGE_AMQP__QUEUE": names["queue"],
        "EDGE_KAFKA__TOPIC_PREFIX": names["prefix"],
        "EDGE_KAFKA__CLIENT": json.dumps(TEST_KAFKA_CLIENT),
        # The test's own consumer groups: never the demo's (edge-parser, edge-sink),
        # never another test's, so no member of theirs can delay a join here.
        "EDGE_PARSER__GROUP_ID": f"{names['prefix']}.parser",
        "EDGE_SINK__GROUP_ID": f"{names['prefix']}.sink",
        "EDGE_INFLUXDB__DATABASE": names["database"],
        "EDGE_ARCHIVE__DIRECTORY": str(tmp_path / "archive"),
        "EDGE_LOG__FORMAT": "json",
        "EDGE_CONFIG": "",
        **METRICS_ANY_PORT,
    }


@pytest.fixture
def moto_bucket(local_services, names, monkeypatch):
    """A bucket of this test's own on the shared moto_server (moto stands in for S3
    only): the ``S3Settings`` that reach it, prefix ``archive/``. Emptied and
    removed afterwards."""
    import boto3

    from edge.config.settings import S3Settings

    moto = dev_services.default_moto()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = S3Settings(bucket=f"edge-test-{names['tag']}", endpoint_url=moto.url, region="us-east-1")
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=settings.bucket)
    yield settings
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=settings.bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=settings.bucket)
