"""What the benches share: the local services' settings, timing, CPU meters and the
way figures are printed. Services are the local ones (``make services-up``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import requests

from devtools import services as dev_services
from edge.config.settings import InfluxSettings, KafkaSettings
from edge.influx.client import InfluxClient
from edge.parser import to_lines
from edge.simulator.messages import MessageTemplate, schedule

ROOT = Path(__file__).resolve().parent.parent
POINTS_PER_MESSAGE = 17  # points of one sample message
PARTITIONS = 6


def say(text: str) -> None:
    """Print one line of figures at once (benches run under pipes and make)."""
    print(text, flush=True)


def p99(values) -> float:
    """The 99th percentile of ``values`` (any order), by nearest rank: the one way
    every bench states a tail latency."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def quiet_log(level: int = 30):
    """structlog at ``level`` and up (default warnings): figures, not service logs."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
    return structlog.get_logger()


def timed(module, name: str, spent: dict[str, float]) -> None:
    """Wrap ``module.name`` so the seconds spent in it add up in ``spent[name]``."""
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

    setattr(module, name, wrapper)


# ---------------------------------------------------------------- data


def make_lines(messages: int, sites: int) -> list[bytes]:
    """``edge.parser.to_lines`` over the sample with distinct sites and timestamps
    (values jittered): 17 lines per message."""
    template = MessageTemplate.load()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    lines: list[bytes] = []
    for site, ts in schedule(messages, sites, start):
        lines.extend(to_lines(template.render(site, ts, jitter=0.05)))
    return lines


# ---------------------------------------------------------------- timing


def named_processes() -> dict[str, psutil.Process]:
    """The local InfluxDB and tansu, by name (those this machine runs)."""
    procs = {}
    for name in ("influxdb", "tansu"):
        pid = dev_services._read_pid(name)
        if pid:
            procs[name] = psutil.Process(pid)
    return procs


class CpuMeter:
    """CPU seconds of a few processes (children included) between start() and stop()."""

    def __init__(self, procs: dict[str, psutil.Process]):
        self.procs = procs
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        try:
            t = proc.cpu_times()
            total = t.user + t.system
            for child in proc.children(recursive=True):
                ct = child.cpu_times()
                total += ct.user + ct.system
            return total
        except psutil.Error:
            return 0.0

    def start(self) -> "CpuMeter":
        self.t0 = time.monotonic()
        self.before = {name: self._cpu(p) for name, p in self.procs.items()}
        return self

    def stop(self) -> "CpuMeter":
        self.wall = time.monotonic() - self.t0
        self.used = {name: self._cpu(p) - self.before.get(name, 0.0) for name, p in self.procs.items()}
        return self

    def line(self) -> str:
        parts = [f"{name} {sec / self.wall:.2f} cores" for name, sec in sorted(self.used.items(), key=lambda kv: -kv[1])]
        return "cpu: " + ", ".join(parts) + f" (of {psutil.cpu_count()}; over {self.wall:.1f}s)"


# ---------------------------------------------------------------- services


class Influx:
    """A bench's own InfluxDB database: created here, dropped by ``drop``."""

    def __init__(self, database: str, url: str | None = None):
        self.settings = InfluxSettings(database=database, **({"url": url} if url else {}))
        self.writer = InfluxClient(self.settings)
        assert self.writer.ensure_database().ok

    def rows(self, q: str) -> list[dict]:
        resp = requests.get(f"{self.settings.url}/query", params={"db": self.settings.database, "q": q, "epoch": "ns"},
                            timeout=30)
        return resp.json()["results"][0].get("series", [])

    def points(self) -> int:
        """Points in the database: per series (all its points carry the same fields),
        the largest per-field count."""
        total = 0
        for series in self.rows("SELECT count(*) FROM /.*/ GROUP BY *"):
            counts = [v for v in series["values"][0][1:] if v is not None]
            total += max(counts) if counts else 0
        return total

    def points_fast(self) -> int:
        """Points, from one field of one measurement: every message gives 3
        ``field1_racks`` points and 17 in all (cheap enough to poll under load)."""
        series = self.rows('SELECT count("dc_voltage") FROM "field1_racks"')
        racks = series[0]["values"][0][1] if series else 0
        return racks * POINTS_PER_MESSAGE // 3

    def drop(self) -> None:
        self.writer.query(f'DROP DATABASE "{self.settings.database}"')
        self.writer.close()


def create_topic(name: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": KafkaSettings().bootstrap_servers})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def fill_topic(topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Produce ``records`` (key, value), every one acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": KafkaSettings().bootstrap_servers, "linger.ms": 50,
                         "batch.size": 1_000_000, "compression.type": "lz4", "acks": "all",
                         "enable.idempotence": True})
    for i, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 20000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
