"""Delivery-path benchmark: InfluxDB's ceiling, the sink, the whole path, latency, Quix.

    .venv/bin/python bench/pipeline.py [--messages 12000] [--sites 10]
        [--whole-path-s 60] [--latency-s 30] [--skip a,b,c,d,e]

Every service is the local one (``make services-up``); each phase uses its own
topic prefix, queue and InfluxDB database, dropped at the end. The parsed lines are
``edge.parser.to_lines`` over sample.json with distinct sites and timestamps (values
jittered), 17 points per message.

(a) InfluxDB's own ingest rate for these lines written straight from memory with
    ``edge.influx.client`` in 5,000-line requests, 1, 2 and 4 at a time: the best is
    the ceiling on this machine.
(b) the sink stage alone: the lines pre-loaded in a 6-partition parsed topic,
    drained by ``edge.sink.stage.Sink`` (defaults: 5,000-line batches, 2 writers), from its
    first write to its last. Then (k): the same topic drained by a bare consumer, the
    rate the broker hands records out at (the sink's other ceiling).
(c) the whole path RabbitMQ -> bridge -> parser -> sink -> InfluxDB as child
    processes (``edge bridge``, ``edge parse``, ``edge sink``), the queue preloaded
    (``--preload`` messages) so the publisher is not what is measured; points landed
    over a 60 s window from the first point.
(d) publish-to-queryable latency at a steady 100 msgs/s through the same path: a
    message counts as queryable when all of its 17 points answer a query.
(e) the same points drained by Quix Streams' ``InfluxDB1Sink`` (JSON dicts, the form
    it takes), in its own venv (``bench/requirements-quix.txt``: its pins conflict
    with ours), same batch size.

Targets: (b) >= 0.8x (a) and >= 2x (e); (c) >= 0.5x (a); (d) p99 <= 2 s. Where the
time goes: CPU seconds of each process (influxd, tansu, the sink, the bridge, the
parser) during each phase, and for (b) how busy the sink's writers and its
consume loop were.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
import psutil
import requests
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import services as dev_services  # noqa: E402
from edge.sink import stage as sink_module  # noqa: E402
from edge.influx.client import InfluxClient  # noqa: E402
from edge.kafka.config import consumer_config  # noqa: E402
from edge.core.lifecycle import StopSignal  # noqa: E402
from edge.parser import to_lines  # noqa: E402
from edge.simulator.messages import MessageTemplate, schedule  # noqa: E402
from edge.config.settings import InfluxSettings, KafkaSettings, SinkSettings  # noqa: E402

POINTS_PER_MESSAGE = 17
PARTITIONS = 6
QUIX_VENV = ROOT / "var" / "bench-quix-venv"
QUIX_REQUIREMENTS = ROOT / "bench" / "requirements-quix.txt"


def say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------- data


def make_lines(messages: int, sites: int) -> list[bytes]:
    template = MessageTemplate.load()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    lines: list[bytes] = []
    for site, ts in schedule(messages, sites, start):
        lines.extend(to_lines(template.render(site, ts, jitter=0.05)))
    return lines


def series_key(line: bytes) -> bytes:
    """The series part (measurement and tags) of a line, as the parser keys records."""
    i = 0
    while True:
        i = line.index(b" ", i)
        if line[i - 1 : i] != b"\\":
            return line[:i]
        i += 1


# ---------------------------------------------------------------- measuring helpers


def named_processes() -> dict[str, psutil.Process]:
    procs = {}
    for name in ("influxdb", "tansu"):
        pid = dev_services._read_pid(name)
        if pid:
            procs[name] = psutil.Process(pid)
    return procs


class CpuMeter:
    """CPU seconds of a few processes between start() and stop()."""

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


class Influx:
    def __init__(self, database: str):
        self.settings = InfluxSettings(database=database)
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
    admin = AdminClient({"bootstrap.servers": KafkaSettings().bootstrap_servers})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def fill_topic(topic: str, records: list[tuple[bytes, bytes]]) -> None:
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


# ---------------------------------------------------------------- (a) ceiling


def bench_ceiling(lines: list[bytes], batch: int = 5000) -> dict:
    bodies = [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]
    results = {}
    for writers in (1, 2, 4):
        influx = Influx(f"bench_a_{uuid.uuid4().hex[:8]}")
        todo = list(reversed(bodies))
        lock = threading.Lock()
        errors = []

        def work():
            writer = InfluxClient(influx.settings)
            while True:
                with lock:
                    if not todo:
                        return
                    body = todo.pop()
                result = writer.write(body)
                if not result.ok:
                    errors.append(result)

        cpu = CpuMeter(named_processes()).start()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu.stop()
        assert not errors, errors[:3]
        results[writers] = len(lines) / elapsed
        say(f"  (a) {writers} writer(s): {results[writers]:,.0f} points/s   {cpu.line()}")
        influx.drop()
    best = max(results, key=results.get)
    return {"points_per_s": results[best], "writers": best, "by_writers": results}


# ---------------------------------------------------------------- (b) the sink alone


class TimedConsumer:
    """The sink's consumer, timing consume() (where the main thread waits for Kafka)."""

    def __init__(self, inner):
        self._inner = inner
        self.consume_s = 0.0

    def consume(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._inner.consume(*args, **kwargs)
        finally:
            self.consume_s += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._inner, name)


def bench_sink(lines: list[bytes]) -> dict:
    import structlog

    tag = uuid.uuid4().hex[:8]
    prefix = f"bench_b_{tag}"
    influx = Influx(prefix)
    create_topic(f"{prefix}.parsed")
    create_topic(f"{prefix}.dlq", 1)
    fill_topic(f"{prefix}.parsed", [(series_key(line), line) for line in lines])

    stop = StopSignal()
    runner, sink = sink_module.build(_sink_settings(prefix, tag), stop, structlog.get_logger().bind(service="sink"))
    timed = TimedConsumer(runner.consumer)
    runner.consumer = timed
    busy = _time_writes(sink.pool)
    written = sink_module.LINES_WRITTEN
    base = written._value.get()
    cpu = CpuMeter({**named_processes(), "sink (this process)": psutil.Process()})
    marks = _watch_sink(stop, lambda: written._value.get() - base, len(lines), cpu, timed, busy)
    deadline = threading.Timer(300, stop.set)
    deadline.start()
    runner.run(sink, "bench sink")
    deadline.cancel()
    influx_points = influx.points()
    influx.drop()
    if "last" not in marks:
        raise RuntimeError(f"sink wrote {written._value.get() - base} of {len(lines)} lines in 300 s")
    figures = _sink_figures(marks, busy["write_s"], timed.consume_s, sink.pool.size)
    say(f"  (b) sink: {figures['points_per_s']:,.0f} points/s ({figures['points']:,} points in {figures['wall']:.2f}s "
        f"after the first batch); InfluxDB holds {influx_points:,} of {len(lines):,}")
    say(f"      writers busy {figures['writers_busy']:.0%} of the time ({sink.pool.size} writers), "
        f"main thread waiting in consume() {figures['consume_share']:.0%}")
    say(f"      {cpu.line()}")
    assert influx_points == len(lines), "the sink lost or doubled points"
    fetch = bench_fetch_ceiling(f"{prefix}.parsed", len(lines))
    return {"points_per_s": figures["points_per_s"], "writers_busy": figures["writers_busy"],
            "consume_share": figures["consume_share"], "cpu": cpu, "fetch_per_s": fetch}


def _sink_settings(prefix: str, tag: str) -> SinkSettings:
    """The sink's defaults on the phase's topics and database; BENCH_SINK_OPTIONS (a
    JSON object) overrides [sink] settings, for trying others."""
    settings = SinkSettings(
        kafka=KafkaSettings(topic_prefix=prefix),
        influxdb=InfluxSettings(database=prefix),
    )
    settings.sink.group_id = f"bench-sink-{tag}"
    for key, value in json.loads(os.environ.get("BENCH_SINK_OPTIONS", "{}")).items():
        setattr(settings.sink, key, value)
    return settings


def _time_writes(pool) -> dict[str, float]:
    """Wrap the writer pool's request so the seconds its writers spend writing add up
    in the returned dict's ``write_s``."""
    busy = {"write_s": 0.0}
    perform = pool._perform

    def timed_perform(request, writer):
        t0 = time.perf_counter()
        try:
            perform(request, writer)
        finally:
            busy["write_s"] += time.perf_counter() - t0  # float += under the GIL: fine here

    pool._perform = timed_perform
    return busy


def _watch_sink(stop: StopSignal, written, total: int, cpu: CpuMeter, timed: TimedConsumer, busy: dict) -> dict:
    """A daemon thread marking the first write (starting the CPU meter, noting the
    consume and write seconds so far) and the last (stopping the meter and the sink)."""
    marks: dict = {}

    def watch():
        while not stop.is_set():
            n = written()
            if n and "first" not in marks:
                marks["first"] = (time.perf_counter(), n)
                cpu.start()
                marks["consume0"] = timed.consume_s
                marks["write0"] = busy["write_s"]
            if n >= total:
                marks["last"] = (time.perf_counter(), n)
                cpu.stop()
                stop.set()
            time.sleep(0.002)

    threading.Thread(target=watch, daemon=True).start()
    return marks


def _sink_figures(marks: dict, write_s: float, consume_s: float, writers: int) -> dict:
    """Rate, writers' busy share and consume() share between the first and the last write."""
    (t_first, n_first), (t_last, n_last) = marks["first"], marks["last"]
    wall = t_last - t_first
    return {
        "wall": wall,
        "points": n_last - n_first,
        "points_per_s": (n_last - n_first) / wall,
        "writers_busy": (write_s - marks["write0"]) / (wall * writers),
        "consume_share": (consume_s - marks["consume0"]) / wall,
    }


def bench_fetch_ceiling(topic: str, expected: int) -> float:
    """The same topic drained by a bare consumer (the sink's consumer settings, no
    InfluxDB): how fast the broker hands the records out, the sink's other ceiling."""
    kafka = KafkaSettings()
    consumer = Consumer(consumer_config(kafka, f"bench-fetch-{uuid.uuid4().hex[:8]}", "bench-fetch"))
    consumer.subscribe([topic])
    cpu = CpuMeter({**named_processes(), "consumer (this process)": psutil.Process()})
    n = 0
    t_first = None
    deadline = time.monotonic() + 300
    while n < expected and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=5000, timeout=1.0)
        if batch and t_first is None:
            t_first, n_first = time.perf_counter(), len(batch)
            cpu.start()
        n += len(batch)
    wall = time.perf_counter() - t_first
    cpu.stop()
    consumer.close()
    rate = (n - n_first) / wall
    say(f"  (k) Kafka fetch ceiling (bare consumer, same topic): {rate:,.0f} records/s   {cpu.line()}")
    return rate


# ---------------------------------------------------------------- (e) Quix Streams


def quix_python() -> Path:
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        say(f"  (e) creating {QUIX_VENV.relative_to(ROOT)} from {QUIX_REQUIREMENTS.relative_to(ROOT)} ...")
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(QUIX_REQUIREMENTS)], check=True)
    return python


def as_quix_dict(line: bytes) -> bytes:
    from tests.support.lineproto import read_line

    point = read_line(line)
    doc = {"_m": point.measurement, "_t": point.time_ns // 1_000_000, **point.tags, **point.fields}
    return orjson.dumps(doc)


def bench_quix(lines: list[bytes]) -> dict:
    python = quix_python()
    tag = uuid.uuid4().hex[:8]
    topic = f"bench_e_{tag}.points"
    influx = Influx(f"bench_e_{tag}")
    create_topic(topic)
    fill_topic(topic, [(series_key(line), as_quix_dict(line)) for line in lines])
    cpu = CpuMeter(named_processes())
    proc = subprocess.Popen(
        [str(python), str(ROOT / "bench" / "quix_influx1_sink.py"), "--broker", KafkaSettings().bootstrap_servers,
         "--topic", topic, "--database", influx.settings.database, "--influx-port",
         str(dev_services.default_influx().port), "--expect", str(len(lines))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    cpu.procs["quix sink"] = psutil.Process(proc.pid)
    cpu.start()
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    cpu.stop()
    points = influx.points()
    influx.drop()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"quix sink failed ({proc.returncode}): {err[-2000:]}")
    progress = json.loads(out.strip().splitlines()[-1])
    rate = (progress["written"] - progress["first_count"]) / (progress["last"] - progress["first"])
    say(f"  (e) Quix Streams InfluxDB1Sink: {rate:,.0f} points/s; InfluxDB holds {points:,} of {len(lines):,}")
    say(f"      {cpu.line()} (whole run, group join included)")
    return {"points_per_s": rate}


# ---------------------------------------------------------------- (c) and (d): the whole path


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


def bench_whole_path(seconds: float, sites: int, preload: int) -> dict:
    """(c): the path drains a queue that a feeder keeps 10-20k deep for ``seconds``."""
    path = Path3("c")
    feeder = QueueFeeder(path, sites, low=preload // 2, high=preload)
    feeder.start()
    wait_fill = time.monotonic() + 60
    while feeder.published < preload and time.monotonic() < wait_fill:
        time.sleep(0.2)
    path.start()
    try:
        wait_first = time.monotonic() + 60
        while path.influx.points_fast() == 0 and time.monotonic() < wait_first:
            time.sleep(0.5)
        for name, proc in path.procs.items():
            assert proc.poll() is None, f"edge {name} exited: see {path.log_dir}"
        cpu = path.cpu().start()
        n0, t0 = path.influx.points_fast(), time.monotonic()
        n1, t1 = n0, t0
        samples = []
        while t1 - t0 < seconds:
            time.sleep(5.0)
            n1, t1 = path.influx.points_fast(), time.monotonic()
            samples.append((t1 - t0, n1 - n0))
            for name, proc in path.procs.items():
                assert proc.poll() is None, f"edge {name} exited: see {path.log_dir}"
        cpu.stop()
        feeder.stop_event.set()
        feeder.join(30)
    finally:
        feeder.stop_event.set()
        path.stop()
    points_per_s = (n1 - n0) / (t1 - t0)
    steady = ", ".join(f"{n / t / 1000:.0f}k" for t, n in samples[::3])
    say(f"  (c) whole path: {points_per_s / POINTS_PER_MESSAGE:,.0f} msgs/s, {points_per_s:,.0f} points/s "
        f"sustained over {t1 - t0:.0f}s (cumulative points/s at 5 s steps: {steady}); "
        f"the queue was kept {preload // 2:,}-{preload:,} deep ({feeder.published:,} published)")
    say(f"      {cpu.line()}")
    return {"points_per_s": points_per_s, "cpu": cpu}


def bench_latency(seconds: float, rate: float = 100.0) -> dict:
    """Publish at ``rate`` msgs/s; a message is queryable when its 17 points answer."""
    from edge.bridge import amqp as amqp_client
    from edge.config.settings import SimulatorSettings

    path = Path3("d")
    path.start()
    template = MessageTemplate.load()
    start = datetime(2024, 6, 1, tzinfo=timezone.utc)
    published: dict[int, float] = {}  # timestamp ns -> publish time
    seen: dict[int, float] = {}
    done = threading.Event()
    amqp = SimulatorSettings.load().amqp.model_copy(update={"queue": path.env["EDGE_AMQP__QUEUE"]})
    connection = amqp_client.connect(amqp, "bench-latency")
    channel = connection.channel()
    amqp_client.declare_queue(channel, amqp)
    channel.confirm_delivery()
    ready_s = path.wait_ready()
    poller = threading.Thread(target=_poll_queryable, args=(path.influx, start, published, seen, done), daemon=True)
    poller.start()
    cpu = path.cpu().start()
    try:
        _publish_steadily(channel, amqp.queue, template, int(seconds * rate), rate, start, published)
        connection.close()
        deadline = time.monotonic() + 30
        while len(seen) < len(published) and time.monotonic() < deadline:
            time.sleep(0.1)
        cpu.stop()
        if len(seen) < len(published):
            say(f"      not all queryable: where the records are now: {path.backlog()}")
    finally:
        done.set()
        path.stop()
    latencies = sorted(seen[ts] - published[ts] for ts in published if ts in seen)
    missing = len(published) - len(latencies)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    say(f"  (d) latency at {rate:.0f} msgs/s over {seconds:.0f}s: p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms "
        f"({len(latencies)} messages, {missing} not queryable within 30 s of the last publish; "
        f"measured by polling every 50 ms, publishing once every service was ready)")
    first_s = min(seen.values()) - path.started_at if seen else float("nan")
    say(f"      start to ready: {ready_s:.1f} s (bridge connected, parser and sink assigned); "
        f"start to first point queryable: {first_s:.1f} s")
    say(f"      {cpu.line()}")
    return {"p50": p50, "p99": p99, "missing": missing, "ready_s": ready_s, "first_s": first_s}


def _publish_steadily(
    channel, queue: str, template: MessageTemplate, count: int, rate: float, start: datetime, published: dict[int, float]
) -> None:
    """``count`` messages of one site at ``rate`` msgs/s, noting each one's publish
    time in ``published`` under its timestamp (ns)."""
    import pika

    t0 = time.monotonic()
    for i, (site, ts) in enumerate(schedule(count, 1, start)):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        channel.basic_publish("", queue, template.render(site, ts, 0.05),
                              pika.BasicProperties(delivery_mode=2), mandatory=True)
        published[int(ts.timestamp() * 1e9)] = sent


def _poll_queryable(influx: Influx, start: datetime, published: dict[int, float], seen: dict[int, float],
                    done: threading.Event) -> None:
    """Every 50 ms until ``done``: note in ``seen`` when each published timestamp first
    has all of its points in InfluxDB (querying from the oldest one still pending)."""
    lo = int(start.timestamp() * 1e9)
    while not done.is_set():
        counts: dict[int, int] = {}
        try:
            for series in influx.rows(f"SELECT * FROM /.*/ WHERE time >= {lo}"):
                for row in series["values"]:
                    counts[row[0]] = counts.get(row[0], 0) + 1
        except Exception:
            pass
        now = time.monotonic()
        for ts, n in counts.items():
            if n >= POINTS_PER_MESSAGE and ts not in seen:
                seen[ts] = now
        pending = [ts for ts in published if ts not in seen]
        lo = min(pending) if pending else (max(published) + 1 if published else lo)
        time.sleep(0.05)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and up
    dev_services.up()
    t = time.perf_counter()
    lines = make_lines(args.messages, args.sites)
    say(f"pipeline bench: {args.messages:,} messages -> {len(lines):,} lines "
        f"({sum(map(len, lines)) / len(lines):.0f} bytes each), parsed in {time.perf_counter() - t:.1f}s")

    res: dict[str, dict] = {}
    phases = [("a", lambda: bench_ceiling(lines)), ("b", lambda: bench_sink(lines)),
              ("e", lambda: bench_quix(lines)), ("c", lambda: bench_whole_path(args.whole_path_s, args.sites, args.preload)),
              ("d", lambda: bench_latency(args.latency_s))]
    for key, phase in phases:
        if key in skip:
            say(f"  ({key}) skipped")
            continue
        try:
            res[key] = phase()
        except Exception as exc:
            say(f"  ({key}) FAILED: {type(exc).__name__}: {exc}")

    ceiling = res.get("a", {}).get("points_per_s")
    _say_summary(res, ceiling)
    _say_where_the_time_goes(res, ceiling)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=12000, help="sample messages for (a), (b), (e)")
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--whole-path-s", type=float, default=60.0)
    parser.add_argument("--latency-s", type=float, default=30.0)
    parser.add_argument("--preload", type=int, default=20000, help="queue depth the feeder keeps during (c) (between half and this)")
    parser.add_argument("--skip", default="", help="phases to skip, e.g. c,d,e")
    return parser.parse_args(argv)


def _say_summary(res: dict[str, dict], ceiling: float | None) -> None:
    """Each phase's figure against its target."""
    say("summary:")
    if ceiling:
        say(f"  (a) InfluxDB ceiling        {ceiling:>10,.0f} points/s ({res['a']['writers']} concurrent writers)")
    if "b" in res and ceiling:
        ratio = res["b"]["points_per_s"] / ceiling
        say(f"  (b) sink stage              {res['b']['points_per_s']:>10,.0f} points/s = {ratio:.2f}x (a)  "
            f"target >= 0.80x: {'ok' if ratio >= 0.8 else 'MISSED'}")
    if "e" in res:
        say(f"  (e) Quix InfluxDB1Sink      {res['e']['points_per_s']:>10,.0f} points/s")
        if "b" in res:
            ratio = res["b"]["points_per_s"] / res["e"]["points_per_s"]
            say(f"      (b)/(e) = {ratio:.1f}x  target >= 2x: {'ok' if ratio >= 2 else 'MISSED'}")
    if "c" in res and ceiling:
        ratio = res["c"]["points_per_s"] / ceiling
        say(f"  (c) whole path              {res['c']['points_per_s']:>10,.0f} points/s = {ratio:.2f}x (a)  "
            f"target >= 0.50x: {'ok' if ratio >= 0.5 else 'MISSED'}")
    if "d" in res:
        ok = res["d"]["p99"] <= 2.0 and not res["d"]["missing"]
        say(f"  (d) latency p50 / p99       {res['d']['p50'] * 1000:>7,.0f} / {res['d']['p99'] * 1000:,.0f} ms  "
            f"target p99 <= 2 s: {'ok' if ok else 'MISSED'}")


def _say_where_the_time_goes(res: dict[str, dict], ceiling: float | None) -> None:
    """The busiest process of (b) and (c), and what bounds the sink stage."""
    say("where the time goes:")
    for key in ("b", "c"):
        if key in res:
            cpu: CpuMeter = res[key]["cpu"]
            top = max(cpu.used, key=cpu.used.get)
            say(f"  ({key}) busiest process: {top} at {cpu.used[top] / cpu.wall:.2f} cores of {psutil.cpu_count()}; "
                f"all: {cpu.line()[5:]}")
    if "b" in res:
        b = res["b"]
        say(f"  (b) the sink reached {b['points_per_s'] / b['fetch_per_s']:.2f}x of what a bare consumer fetches "
            f"from this broker ({b['fetch_per_s']:,.0f} records/s, (k))")
        if ceiling and b["fetch_per_s"] < 0.8 * ceiling:
            say("  (b) the broker's fetch rate is itself below 0.8x InfluxDB's ceiling: on this machine Kafka "
                "(tansu) bounds the sink stage, not InfluxDB")
        if b["writers_busy"] > 0.85:
            say("  (b) the sink's writers wait on InfluxDB nearly all the time: InfluxDB is the bottleneck")
        else:
            say(f"  (b) the sink's writers are idle {1 - b['writers_busy']:.0%} of the time: the consume side "
                f"(Kafka fetch + Python) limits the sink")

if __name__ == "__main__":
    sys.exit(main())
