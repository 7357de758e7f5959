"""(c) the whole path RabbitMQ -> bridge -> parser -> sink -> InfluxDB draining a
queue kept deep, so the publisher is not what is measured; (d) publish-to-queryable
latency at a steady rate through the same path: a message counts as queryable when
all of its 17 points answer a query."""

from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime, timezone

from bench.harness import POINTS_PER_MESSAGE, Influx, p99, say
from bench.pipeline.hops import broker_floor, floor_line, hop_line, hop_split
from bench.pipeline.path import Path3, QueueFeeder
from edge.simulator.messages import MessageTemplate, schedule


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
            time.sleep(min(5.0, seconds))
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


def bench_latency(seconds: float, rate: float = 100.0, poll_s: float = 0.01) -> dict:
    """Publish at ``rate`` msgs/s; a message is queryable when its 17 points answer."""
    from edge.bridge import amqp as amqp_client
    from edge.config.settings import SimulatorSettings

    floor = broker_floor(rate, min(20.0, seconds))
    path = Path3("d")
    path.start()
    template = MessageTemplate.load()
    start = datetime(2024, 6, 1, tzinfo=timezone.utc)
    published: dict[int, float] = {}  # timestamp ns -> publish time
    published_wall: dict[int, float] = {}  # the same, wall clock (for Kafka's record timestamps)
    seen: dict[int, float] = {}
    done = threading.Event()
    amqp = SimulatorSettings.load().amqp.model_copy(update={"queue": path.env["EDGE_AMQP__QUEUE"]})
    connection = amqp_client.connect(amqp, "bench-latency")
    channel = connection.channel()
    amqp_client.declare_queue(channel, amqp)
    channel.confirm_delivery()
    ready_s = path.wait_ready()
    idle = path.cpu().start()
    time.sleep(min(10.0, seconds / 3))  # no traffic: what the services' waits cost when nothing flows
    idle.stop()
    queries: list[float] = []  # seconds each of the poller's queries took
    asked: dict[int, float] = {}  # when the query that found each one was sent
    poller = threading.Thread(target=_poll_queryable,
                              args=(path.influx, start, published, seen, done, poll_s, queries, asked),
                              daemon=True)
    poller.start()
    cpu = path.cpu().start()
    try:
        _publish_steadily(channel, amqp.queue, template, int(seconds * rate), rate, start, published, published_wall)
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
    tail = p99(latencies)
    say(f"  (d) latency at {rate:.0f} msgs/s over {seconds:.0f}s: p50 {p50 * 1000:,.0f} ms, p99 {tail * 1000:,.0f} ms "
        f"({len(latencies)} messages, {missing} not queryable within 30 s of the last publish; "
        f"measured by polling every {poll_s * 1000:.0f} ms, publishing once every service was ready)")
    first_s = min(seen.values()) - path.started_at if seen else float("nan")
    say(f"      start to ready: {ready_s:.1f} s (bridge connected, parser and sink assigned); "
        f"start to first point queryable: {first_s:.1f} s")
    say(f"      {cpu.line()}")
    say(f"      idle, before publishing: {idle.line()[5:]}")
    wall = time.time() - time.monotonic()
    say(f"      {hop_line(hop_split(path.prefix, published_wall, {ts: t + wall for ts, t in seen.items()}))}")
    if queries:  # a message is noted when the query that found it returned: part of the sink hop
        early = sorted(asked[ts] - published[ts] for ts in published if ts in asked)
        say(f"      the bench's own poll: {len(queries)} queries, p50 {statistics.median(queries) * 1000:,.0f} ms,"
            f" p99 {p99(queries) * 1000:,.0f} ms each; noted when the finding query was sent instead (a lower"
            f" bound): p50 {statistics.median(early) * 1000:,.0f} ms, p99 {p99(early) * 1000:,.0f} ms")
    say(f"      {floor_line(floor, rate)}")
    return {"p50": p50, "p99": tail, "missing": missing, "ready_s": ready_s, "first_s": first_s}


def _publish_steadily(
    channel, queue: str, template: MessageTemplate, count: int, rate: float, start: datetime,
    published: dict[int, float], published_wall: dict[int, float],
) -> None:
    """``count`` messages of one site at ``rate`` msgs/s, noting each one's publish
    time in ``published`` (monotonic) and ``published_wall`` under its timestamp (ns)."""
    import pika

    t0 = time.monotonic()
    for i, (site, ts) in enumerate(schedule(count, 1, start)):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent, sent_wall = time.monotonic(), time.time()
        channel.basic_publish("", queue, template.render(site, ts, 0.05),
                              pika.BasicProperties(delivery_mode=2), mandatory=True)
        published[int(ts.timestamp() * 1e9)] = sent
        published_wall[int(ts.timestamp() * 1e9)] = sent_wall


def _poll_queryable(influx: Influx, start: datetime, published: dict[int, float], seen: dict[int, float],
                    done: threading.Event, poll_s: float, queries: list[float], asked: dict[int, float]) -> None:
    """Every ``poll_s`` until ``done``: note in ``seen`` when each published timestamp first
    has all of its points in InfluxDB (querying from the oldest one still pending)."""
    lo = int(start.timestamp() * 1e9)
    while not done.is_set():
        counts: dict[int, int] = {}
        sent_at = time.monotonic()
        try:
            for series in influx.rows(f"SELECT * FROM /.*/ WHERE time >= {lo}"):
                for row in series["values"]:
                    counts[row[0]] = counts.get(row[0], 0) + 1
        except Exception:
            pass
        now = time.monotonic()
        queries.append(now - sent_at)
        for ts, n in counts.items():
            if n >= POINTS_PER_MESSAGE and ts not in seen:
                seen[ts] = now
                asked[ts] = sent_at
        sent = list(published)  # the publisher adds to it meanwhile
        pending = [ts for ts in sent if ts not in seen]
        lo = min(pending) if pending else (max(sent) + 1 if sent else lo)
        time.sleep(poll_s)
