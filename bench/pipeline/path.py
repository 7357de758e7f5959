"""The whole path as child processes: bridge, parser and sink (``edge bridge``,
``edge parse``, ``edge sink``) on their own queue, topics, database and consumer
groups; and a feeder keeping its queue deep. Used by (c), (d) and bench.recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import psutil

from bench.harness import PARTITIONS, ROOT, CpuMeter, Influx, named_processes
from edge.config.settings import KafkaSettings
from edge.simulator.messages import MessageTemplate, schedule


class Path3:
    """bridge + parser + sink as child processes on their own queue, topics and database."""

    SERVICES = ("bridge", "parse", "sink")

    def __init__(self, label: str):
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"bench_{label}_{tag}"
        self.env = {
            **os.environ,
            "EDGE_CONFIG": "",
            "EDGE_AMQP__QUEUE": f"bench.{label}.{tag}",
            "EDGE_KAFKA__TOPIC_PREFIX": self.prefix,
            "EDGE_INFLUXDB__DATABASE": self.prefix,
            # Its own consumer groups: never the demo's, never a killed member's.
            "EDGE_PARSER__GROUP_ID": f"{self.prefix}.parser",
            "EDGE_SINK__GROUP_ID": f"{self.prefix}.sink",
            "EDGE_LOG__FORMAT": "json",
            # Metrics on any free port, never the fixed 9641-9644 a demo or another run holds.
            "EDGE_METRICS__PORT": "0",
        }
        self.log_dir = ROOT / "var" / "bench" / self.prefix
        self.procs: dict[str, subprocess.Popen] = {}
        self.influx = Influx(self.prefix)

    def edge(self, *args: str, log: str | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{log or args[0]}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        assert self.edge("topics").wait(60) == 0, "edge topics failed"
        self.started_at = time.monotonic()
        for name in self.SERVICES:
            self.procs[name] = self.edge(name)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Seconds from start until every service is ready to flow: the bridge
        connected to RabbitMQ, parser and sink assigned their partitions."""
        marks = {"bridge": '"amqp_connected"', "parse": '"partitions_assigned"', "sink": '"partitions_assigned"'}
        deadline = time.monotonic() + timeout_s
        while not all(mark in self.log(name) for name, mark in marks.items()):
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"edge {name} exited: see {self.log_dir}"
            assert time.monotonic() < deadline, f"services not ready in {timeout_s:.0f}s: see {self.log_dir}"
            time.sleep(0.05)
        return time.monotonic() - self.started_at

    def backlog(self) -> str:
        """Per group, per partition: high watermark - committed offset (what waits)."""
        from confluent_kafka import Consumer, TopicPartition

        out = []
        for topic, group in ((f"{self.prefix}.raw", self.env["EDGE_PARSER__GROUP_ID"]),
                             (f"{self.prefix}.parsed", self.env["EDGE_SINK__GROUP_ID"])):
            consumer = Consumer({"bootstrap.servers": KafkaSettings().bootstrap_servers, "group.id": group})
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            committed = consumer.committed(tps, timeout=10)
            lags = []
            for tp in committed:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
                lags.append(f"{tp.partition}:{high}-{tp.offset}")
            consumer.close()
            out.append(f"{group} [{' '.join(lags)}]")
        return "; ".join(out)

    def cpu(self) -> CpuMeter:
        procs = named_processes()
        for name, proc in self.procs.items():
            procs[name] = psutil.Process(proc.pid)
        return CpuMeter(procs)

    def stop(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.terminate()
        for name, proc in self.procs.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.influx.drop()
        from edge.bridge import amqp as amqp_client
        from edge.config.settings import SimulatorSettings

        amqp = SimulatorSettings.load().amqp
        connection = amqp_client.connect(amqp, "bench-cleanup")
        connection.channel().queue_delete(self.env["EDGE_AMQP__QUEUE"])
        connection.close()


class QueueFeeder(threading.Thread):
    """Keeps the path's queue between ``low`` and ``high`` messages deep for as long
    as (c) runs, so the whole path is measured sustained, not until a preload runs
    dry. Messages are the sample as shipped with unique (site, timestamp); no
    publisher confirms (it is load, not data). Its CPU is spent on this machine too,
    so the figure is conservative."""

    def __init__(self, path: "Path3", sites: int, low: int = 10_000, high: int = 20_000):
        super().__init__(daemon=True)
        self.path, self.sites, self.low, self.high = path, sites, low, high
        self.published = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        from edge.bridge import amqp as amqp_client
        from edge.config.settings import SimulatorSettings
        import pika

        amqp = SimulatorSettings.load().amqp.model_copy(update={"queue": self.path.env["EDGE_AMQP__QUEUE"]})
        template = MessageTemplate.load()
        connection = amqp_client.connect(amqp, "bench-feeder")
        channel = connection.channel()
        amqp_client.declare_queue(channel, amqp)
        props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        start = datetime(2024, 4, 1, tzinfo=timezone.utc)
        schedule_it = schedule(None, self.sites, start)
        try:
            while not self.stop_event.is_set():
                depth = amqp_client.declare_queue(channel, amqp)
                if depth >= self.low:
                    connection.sleep(0.1)
                    continue
                for _ in range(self.high - depth):
                    site, ts = next(schedule_it)
                    channel.basic_publish("", amqp.queue, template.render(site, ts), props)
                    self.published += 1
        finally:
            connection.close()
