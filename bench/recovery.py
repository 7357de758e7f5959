"""Recovery after a crash: kill -9 of each stage mid-stream, restarted at once.

What ``Restart=on-failure`` does to a crashed service, measured on the real path
(bridge, parser and sink as child processes on their own queue, topics, database
and consumer groups, default settings: static group membership, 6 s session):

1. first start: seconds from starting the three services until each is ready
   (bridge connected, parser and sink assigned) and until the first point is
   queryable in InfluxDB;
2. for the sink, the parser and the bridge in turn, while a publisher keeps
   ``--rate`` msgs/s flowing: ``kill -9``, restart at once, and print the seconds
   until the restarted service delivers again (its own counter on its metrics
   endpoint) and until InfluxDB's count grows again with what it delivered;
3. at the end, the count in InfluxDB must be exactly 17 points per published
   message (nothing lost, nothing doubled);
4. steps 1-3 run twice: with ``[kafka] assignment = "group"`` (the default: a
   consumer group, static members) and with ``"all"`` (each stage reads every
   partition directly, no group join: ``edge.kafka.assignment``);
5. the floor under 2 in group mode: a bare consumer (``bench.bare_member``: the services'
   consumer settings, no stage code) killed and restarted the same way, as a
   static member (what the services are) and as a dynamic one, printing the
   seconds from the restart until the broker hands the partitions back. On
   tansu a static member's join takes about 6 s whatever the session timeout (it
   holds JoinGroup and SyncGroup about 3 s each); Apache Kafka answers a known
   static member's rejoin at once with its old assignment (KIP-345), no rebalance.

Usage: ``.venv/bin/python -m bench.recovery [--rate 50] [--steady-s 5] [--assignment both]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from bench.harness import POINTS_PER_MESSAGE, ROOT, say
from bench.pipeline.path import Path3
from devtools import services as dev_services

# The restarted service's own "I delivered" counter.
OUTPUT_COUNTER = {"bridge": "edge_bridge_acked_total", "parse": "edge_parser_points_total",
                  "sink": "edge_sink_lines_written_total"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counter(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


class Publisher(threading.Thread):
    """``rate`` msgs/s of the sample with unique (site, timestamp), confirmed."""

    def __init__(self, path: Path3, rate: float):
        super().__init__(daemon=True)
        self.path, self.rate = path, rate
        self.published = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        from edge.simulator.publish import publish
        from edge.config.settings import SimulatorSettings

        settings = SimulatorSettings.load()
        settings.amqp.queue = self.path.env["EDGE_AMQP__QUEUE"]
        count = max(3, int(self.rate))
        start = datetime(2024, 9, 1, tzinfo=timezone.utc)
        while not self.stop_event.is_set():  # one second at a time, so it can stop between
            summary = publish(settings, count=count, sites=3, rate=self.rate, start=start)
            self.published += summary.published
            start += timedelta(seconds=-(-count // 3))  # the next second no site has used


def wait(predicate, timeout_s: float, what: str, step_s: float = 0.05) -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"recovery bench: timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(step_s)
    return time.monotonic() - t0


def crash_and_restart(path: Path3, name: str) -> tuple[float, float]:
    """kill -9, restart at once; seconds until it delivers, and until InfluxDB grows with it."""
    proc = path.procs[name]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    port = free_port()
    path.env["EDGE_METRICS__PORT"] = str(port)
    restarted_at = time.monotonic()
    path.procs[name] = path.edge(name, log=f"{name}-restarted")
    delivers = wait(lambda: counter(port, OUTPUT_COUNTER[name]) > 0, 120, f"restarted {name} to deliver")
    before = path.influx.points_fast()
    wait(lambda: path.influx.points_fast() > before, 60, "InfluxDB to grow")
    return delivers, time.monotonic() - restarted_at


def bare_member_rejoins(instance: str, session_ms: int | None, restarts: int = 2) -> tuple[float, list[float]]:
    """Seconds to the first assignment, and after each kill -9 + restart, of a bare
    consumer alone in a fresh group on a fresh 6-partition topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from edge.config.settings import KafkaSettings

    tag = os.urandom(4).hex()
    topic = f"bench_bare_{tag}"
    admin = AdminClient({"bootstrap.servers": KafkaSettings().bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        future.result(30)
    argv = [sys.executable, "-m", "bench.bare_member", topic, f"bench-bare-{tag}", "--instance", instance]
    if session_ms:
        argv += ["--session-ms", str(session_ms)]

    def start() -> tuple[subprocess.Popen, float]:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()  # "assigned <s> <n>"
        if not line.startswith("assigned"):
            proc.kill()
            raise SystemExit(f"recovery bench: the bare member never got its partitions ({line!r})")
        return proc, time.monotonic() - t0

    proc, first = start()
    rejoins = []
    try:
        for _ in range(restarts):
            time.sleep(1.0)
            proc.kill()
            proc.wait(10)
            proc, seconds = start()
            rejoins.append(seconds)
    finally:
        proc.kill()
        proc.wait(10)
        admin.delete_topics([topic])
    return first, rejoins


BARE_MEMBERS = {"static, 6 s session (the services)": ("bare-member", None),
                "static, 1 s session": ("bare-member", 1000),
                "dynamic, 6 s session": ("", None)}


def say_bare_floor() -> None:
    """The three kinds of member side by side (each alone in its own group)."""
    with ThreadPoolExecutor(len(BARE_MEMBERS)) as pool:
        futures = {label: pool.submit(bare_member_rejoins, *args) for label, args in BARE_MEMBERS.items()}
    for label, future in futures.items():
        first, rejoins = future.result()
        say(f"  bare consumer, {label}: first join {first:.1f} s; kill -9 + restart to partitions back: "
            f"{', '.join(f'{s:.1f}' for s in rejoins)} s (median {statistics.median(rejoins):.1f})")


def recover(args, assignment: str) -> bool:
    """One run of 1-3 with ``[kafka] assignment`` set; whether the counts were exact."""
    path = Path3(f"recovery-{assignment}")
    path.env["EDGE_METRICS__ENABLED"] = "true"
    path.env["EDGE_KAFKA__ASSIGNMENT"] = assignment
    path.start()
    try:
        ready_s = path.wait_ready()
        publisher = Publisher(path, args.rate)
        publisher.start()
        wait(lambda: path.influx.points_fast() > 0, 120, "first point")
        first_s = time.monotonic() - path.started_at
        say(f"recovery bench at {args.rate:.0f} msgs/s, [kafka] assignment = {assignment!r}: first start ready "
            f"in {ready_s:.1f} s, first point queryable {first_s:.1f} s after start")
        for name in ("sink", "parse", "bridge"):
            time.sleep(args.steady_s)
            delivers, grows = crash_and_restart(path, name)
            say(f"  kill -9 {name:6s} + restart: delivers again after {delivers:5.1f} s, "
                f"InfluxDB count grows again after {grows:5.1f} s")
        time.sleep(args.steady_s)
        publisher.stop_event.set()
        publisher.join(30)
        expected = publisher.published * POINTS_PER_MESSAGE
        wait(lambda: path.influx.points() >= expected, 120, f"{expected} points", step_s=1.0)
        time.sleep(2.0)  # anything more than expected would show now
        stored = path.influx.points()
        exact = "exact" if stored == expected else "NOT EXACT"
        say(f"  end: {publisher.published:,} messages published, {stored:,} points stored, "
            f"{expected:,} expected: {exact}")
        return stored == expected
    finally:
        path.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second while crashing")
    parser.add_argument("--steady-s", type=float, default=5.0, help="seconds of flow between crashes")
    parser.add_argument("--skip-bare", action="store_true", help="skip the bare consumer's floor (5)")
    parser.add_argument("--assignment", choices=("group", "all", "both"), default="both",
                        help="[kafka] assignment of the parser and the sink: consumer group (the default "
                             "setting), every partition directly, or one run of each (default)")
    args = parser.parse_args(argv)
    dev_services.up()
    if not args.skip_bare:
        say("the broker's floor: a bare consumer (bench.bare_member) killed and restarted")
        say_bare_floor()
    modes = ("group", "all") if args.assignment == "both" else (args.assignment,)
    exact = [recover(args, mode) for mode in modes]
    return 0 if all(exact) else 1


if __name__ == "__main__":
    sys.exit(main())
