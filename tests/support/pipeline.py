"""The three services as real processes on this test's queue, topics, database and
consumer groups, with their metrics endpoints on free ports."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from prometheus_client.parser import text_string_to_metric_families

from edge.config.settings import AmqpSettings, KafkaSettings
from edge.kafka.topics import ensure_topics
from tests.support import influx
from tests.support.bridge_io import delete_queue
from tests.support.processes import EdgeProcess

STAGES = ("bridge", "parse", "sink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """One scrape: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Pipeline:
    def __init__(self, local_services, names, edge_env, tmp_path, partitions: int = 3):
        self.kafka = KafkaSettings(topic_prefix=names["prefix"], partitions=partitions)
        ensure_topics(self.kafka)
        self.amqp = AmqpSettings(queue=names["queue"])
        self.url = local_services["influxdb"].url
        self.db = names["database"]
        self.tmp_path = tmp_path
        self.groups = {"parse": f"{names['prefix']}.parser", "sink": f"{names['prefix']}.sink"}
        self.ports = {stage: free_port() for stage in STAGES}
        self.env = dict(edge_env, EDGE_PARSER__GROUP_ID=self.groups["parse"],
                        EDGE_SINK__GROUP_ID=self.groups["sink"], EDGE_METRICS__ENABLED="true")
        self.procs: list[EdgeProcess] = []

    def start(self, stage: str, tag: str = "") -> EdgeProcess:
        env = dict(self.env, EDGE_METRICS__PORT=str(self.ports[stage]))
        proc = EdgeProcess([stage], env, self.tmp_path / f"{stage}{tag}.log").start()
        self.procs.append(proc)
        return proc

    def points(self) -> int:
        return influx.count_points(self.url, self.db)

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.terminate()
        delete_queue(self.amqp)
        influx.execute(self.url, f'DROP DATABASE "{self.db}"')


@pytest.fixture
def pipeline(local_services, names, edge_env, tmp_path):
    """A :class:`Pipeline` on this test's own queue, topics, database and groups."""
    p = Pipeline(local_services, names, edge_env, tmp_path)
    yield p
    p.close()
