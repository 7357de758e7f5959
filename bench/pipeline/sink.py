"""(b) the sink stage alone: the lines pre-loaded in a 6-partition parsed topic,
drained by ``edge.sink.stage`` (defaults: 5,000-line batches, 2 writers per node),
from its first write to its last; then (k): the same topic drained by a bare
consumer, the rate the broker hands records out at (the sink's other ceiling).

``--sink-nodes 2``: the same against two InfluxDB nodes (the default one and
``influxdb-node2`` of ``devtools.services``, started if needed), every second site
on the second node through ``[influxdb.nodes]``; the points are counted on both."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import psutil
from confluent_kafka import Consumer

from bench.harness import CpuMeter, Influx, create_topic, fill_topic, named_processes, say
from devtools import services as dev_services
from edge.config.settings import InfluxSettings, KafkaSettings, SinkSettings
from edge.core.lifecycle import StopSignal
from edge.core.lineproto import series_key
from edge.kafka.config import consumer_config
from edge.simulator.messages import site_id
from edge.sink import stage as sink_module


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


def bench_sink(lines: list[bytes], nodes: int = 1, sites: int = 10) -> dict:
    import structlog

    tag = uuid.uuid4().hex[:8]
    prefix = f"bench_b_{tag}"
    urls = [node.url for node in dev_services.influx_nodes(nodes)]
    started = [url for url, state in dev_services.influx_nodes_up(nodes).items() if state == "started"]
    influxes = [Influx(prefix, url) for url in urls]
    create_topic(f"{prefix}.parsed")
    create_topic(f"{prefix}.dlq", 1)
    fill_topic(f"{prefix}.parsed", [(series_key(line), line) for line in lines])

    stop = StopSignal()
    runner, sink = sink_module.build(_sink_settings(prefix, tag, urls, sites), stop, structlog.get_logger().bind(service="sink"))
    timed = TimedConsumer(runner.consumer)
    runner.consumer = timed
    busy = _time_writes(sink.pool)
    written = sink_module.LINES_WRITTEN
    base = written._value.get()
    cpu = CpuMeter({**named_processes(), **_extra_nodes(nodes), "sink (this process)": psutil.Process()})
    marks = _watch_sink(stop, lambda: written._value.get() - base, len(lines), cpu, timed, busy)
    deadline = threading.Timer(300, stop.set)
    deadline.start()
    runner.run(sink, "bench sink")
    deadline.cancel()
    per_node = [influx.points() for influx in influxes]
    influx_points = sum(per_node)
    for influx in influxes:
        influx.drop()
    for node in dev_services.influx_nodes(nodes):
        if node.url in started:  # left as found
            dev_services.stop_process(node.name)
    if "last" not in marks:
        raise RuntimeError(f"sink wrote {written._value.get() - base} of {len(lines)} lines in 300 s")
    figures = _sink_figures(marks, busy["write_s"], timed.consume_s, sink.pool.threads)
    say(f"  (b) sink: {figures['points_per_s']:,.0f} points/s ({figures['points']:,} points in {figures['wall']:.2f}s "
        f"after the first batch); InfluxDB holds {influx_points:,} of {len(lines):,}"
        + (f" ({' + '.join(f'{n:,}' for n in per_node)} on {nodes} nodes)" if nodes > 1 else ""))
    say(f"      writers busy {figures['writers_busy']:.0%} of the time ({sink.pool.threads} writers), "
        f"main thread waiting in consume() {figures['consume_share']:.0%}")
    say(f"      {cpu.line()}")
    assert influx_points == len(lines), "the sink lost or doubled points"
    fetch = bench_fetch_ceiling(f"{prefix}.parsed", len(lines))
    return {"points_per_s": figures["points_per_s"], "writers_busy": figures["writers_busy"],
            "consume_share": figures["consume_share"], "cpu": cpu, "fetch_per_s": fetch}


def _extra_nodes(nodes: int) -> dict[str, psutil.Process]:
    """The extra InfluxDB nodes' processes, by name, for the CPU meter."""
    procs = {}
    for node in dev_services.influx_nodes(nodes)[1:]:
        pid = dev_services._read_pid(node.name)
        if pid:
            procs[node.name] = psutil.Process(pid)
    return procs


def _sink_settings(prefix: str, tag: str, urls: list[str], sites: int) -> SinkSettings:
    """The sink's defaults on the phase's topics and database; BENCH_SINK_OPTIONS (a
    JSON object) overrides [sink] settings, for trying others. With several node
    URLs, site k goes to node k mod n (the first URL is the default node)."""
    extra = {f"node{n + 1}": {"url": url, "sites": [site_id(k) for k in range(1, sites + 1) if k % len(urls) == n]}
             for n, url in enumerate(urls) if n}
    settings = SinkSettings(
        kafka=KafkaSettings(topic_prefix=prefix),
        influxdb=InfluxSettings(database=prefix, url=urls[0], nodes=extra, site_map_version=1 if extra else 0),
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


def bench_fetch_ceiling(topic: str, expected: int) -> float | None:
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
    consumer.close()
    if t_first is None:
        raise RuntimeError(f"(k) the bare consumer read nothing of {expected} records in 300 s")
    wall = time.perf_counter() - t_first
    cpu.stop()
    if n == n_first:
        say(f"  (k) Kafka fetch ceiling: not timed, all {n} records came in the first batch (too few to time)")
        return None
    rate = (n - n_first) / wall
    say(f"  (k) Kafka fetch ceiling (bare consumer, same topic): {rate:,.0f} records/s   {cpu.line()}")
    return rate
