"""Delivery-path benchmark: InfluxDB's ceiling, the sink, the whole path, latency, Quix.

    .venv/bin/python -m bench.pipeline [--messages 12000] [--sites 10]
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

Targets: (b) >= 0.8x (a) and >= 2x (e); (c) >= 0.5x (a); (d) p99 <= 250 ms. Where the
time goes: CPU seconds of each process (influxd, tansu, the sink, the bridge, the
parser) during each phase, and for (b) how busy the sink's writers and its
consume loop were.
"""

from __future__ import annotations

import argparse
import sys
import time

import psutil

from bench.harness import CpuMeter, make_lines, quiet_log, say
from bench.pipeline.ceiling import bench_ceiling
from bench.pipeline.flow import bench_latency, bench_whole_path
from bench.pipeline.quix import bench_quix
from bench.pipeline.sink import bench_sink
from devtools import services as dev_services


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    quiet_log()
    dev_services.up()
    t = time.perf_counter()
    lines = make_lines(args.messages, args.sites)
    say(f"pipeline bench: {args.messages:,} messages -> {len(lines):,} lines "
        f"({sum(map(len, lines)) / len(lines):.0f} bytes each), parsed in {time.perf_counter() - t:.1f}s")

    res: dict[str, dict] = {}
    failed = []
    phases = [("a", lambda: bench_ceiling(lines)), ("b", lambda: bench_sink(lines, args.sink_nodes, args.sites)),
              ("e", lambda: bench_quix(lines)), ("c", lambda: bench_whole_path(args.whole_path_s, args.sites, args.preload)),
              ("d", lambda: bench_latency(args.latency_s, args.latency_rate))]
    for key, phase in phases:
        if key in skip:
            say(f"  ({key}) skipped")
            continue
        try:
            res[key] = phase()
        except Exception as exc:
            say(f"  ({key}) FAILED: {type(exc).__name__}: {exc}")
            failed.append(key)

    ceiling = res.get("a", {}).get("points_per_s")
    _say_summary(res, ceiling)
    _say_where_the_time_goes(res, ceiling)
    if failed:
        say(f"phases failed: {', '.join(failed)}")
    return 1 if failed else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=12000, help="sample messages for (a), (b), (e)")
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--whole-path-s", type=float, default=60.0)
    parser.add_argument("--latency-s", type=float, default=30.0)
    parser.add_argument("--preload", type=int, default=20000, help="queue depth the feeder keeps during (c) (between half and this)")
    parser.add_argument("--latency-rate", type=float, default=100.0, help="msgs/s published during (d)")
    parser.add_argument("--skip", default="", help="phases to skip, e.g. c,d,e")
    parser.add_argument("--sink-nodes", type=int, default=1, choices=(1, 2, 3),
                        help="InfluxDB nodes (b) writes to, the sites split between them (devtools nodes)")
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
        ok = res["d"]["p99"] <= 0.25 and not res["d"]["missing"]
        say(f"  (d) latency p50 / p99       {res['d']['p50'] * 1000:>7,.0f} / {res['d']['p99'] * 1000:,.0f} ms  "
            f"target p99 <= 250 ms: {'ok' if ok else 'MISSED'}")


def _say_where_the_time_goes(res: dict[str, dict], ceiling: float | None) -> None:
    """The busiest process of (b) and (c), and what bounds the sink stage."""
    say("where the time goes:")
    for key in ("b", "c"):
        if key in res:
            cpu: CpuMeter = res[key]["cpu"]
            top = max(cpu.used, key=cpu.used.get)
            say(f"  ({key}) busiest process: {top} at {cpu.used[top] / cpu.wall:.2f} cores of {psutil.cpu_count()}; "
                f"all: {cpu.line()[5:]}")
    if "b" not in res:
        return
    b = res["b"]
    if b["fetch_per_s"]:
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

