"""``make demo``: the whole pipeline end to end on the embedded defaults.

Local services up (done by make) -> topics -> bridge, parser and sink started in the
background as real processes -> the simulator publishes N messages over several
sites -> wait until every point is in InfluxDB (counted there, with a deadline) ->
per-measurement summary and a few latest device values -> archive what was
ingested (age 0, today included) to the local moto S3 -> one SQL result over the local archive ->
services stopped with SIGTERM. The last line is

    demo ok: messages=<published> points=<points in InfluxDB> archived_rows=<n> objects=<n>
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3

from devtools import services
from edge.archive.archiver import archive
from edge.archive.summary import ArchiveSummary
from edge.config.settings import ArchiveSettings, InfluxSettings, SimulatorSettings, SinkSettings, TopicsSettings
from edge.simulator.publish import SimulationSummary, publish
from edge.query.local import run_local_sql
from edge.kafka.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
DEMO_BUCKET = "microgrid-archive-demo"


def _say(text: str) -> None:
    print(text, flush=True)


def _influx_query(url: str, db: str, q: str) -> list[dict]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "s"})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as resp:
        result = json.loads(resp.read())["results"][0]
    if "error" in result:
        raise RuntimeError(result["error"])
    return result.get("series", [])


def _count_points(url: str, db: str, start: datetime, end: datetime) -> dict[str, int]:
    """Points per measurement in [start, end], counted by InfluxDB (rows of SELECT *)."""
    window = f"time >= '{start:%Y-%m-%dT%H:%M:%SZ}' AND time <= '{end:%Y-%m-%dT%H:%M:%SZ}'"
    counts: dict[str, int] = {}
    for series in _influx_query(url, db, f"SELECT * FROM /.*/ WHERE {window}"):
        counts[series["name"]] = counts.get(series["name"], 0) + len(series["values"])
    return counts


def _start_service(name: str, log_dir: Path) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{name}.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", name],
        cwd=ROOT,
        # Metrics on any free port: the demo runs beside tests, benches or a real
        # installation, which hold the fixed ports (9641-9644).
        env={**os.environ, "EDGE_METRICS__PORT": "0"},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _latest_values(url: str, db: str) -> list[str]:
    wanted = [
        ("field1", "soc", "battery SoC %"),
        ("field1", "dc_voltage", "battery DC V"),
        ("field5", "AC_Power", "PV AC power kW"),
        ("field6", "TotalActivePower", "EV charger power"),
    ]
    lines = []
    for measurement, field, label in wanted:
        series = _influx_query(
            url, db, f'SELECT last("{field}") FROM "{measurement}" GROUP BY "site_id", "service_id"'
        )
        for s in series[:3]:
            value = s["values"][0][1]
            lines.append(
                f"  {label:<18} site {s['tags']['site_id']} service {s['tags']['service_id']}: {value}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    log_dir = services.var_dir() / "demo"
    topics = TopicsSettings.load()
    for status in ensure_topics(topics.kafka):
        _say(status.line())
    summary, points = _ingest(args, log_dir)
    settings, archived = _archive_to_moto()
    _show_local_query(settings.archive.directory)
    _say(
        f"demo ok: messages={summary.confirmed} points={points} "
        f"archived_rows={archived.rows} objects={archived.objects}"
    )
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="end-to-end demo on the local services")
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--rate", type=float, default=200.0, help="msgs/s published")
    ap.add_argument("--jitter", type=float, default=0.05, help="relative variation of the readings")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every point")
    return ap.parse_args(argv)


def _ingest(args: argparse.Namespace, log_dir: Path) -> tuple[SimulationSummary, int]:
    """Bridge, parser and sink as processes; publish; wait for every point in
    InfluxDB; stop the three with SIGTERM. Returns the publish summary and the points."""
    procs = {name: _start_service(name, log_dir) for name in ("bridge", "parse", "sink")}
    try:
        summary = _publish(args)
        _say(summary.line())
        influx = SinkSettings.load().influxdb
        expected = 17 * summary.confirmed
        counts = _wait_for_points(procs, influx, summary, expected, args.timeout, log_dir)
        points = _report_points(counts, expected)
        _say("latest values:")
        for line in _latest_values(influx.url, influx.database):
            _say(line)
    finally:
        _sigterm_and_reap(procs)
    bad = {n: p.returncode for n, p in procs.items() if p.returncode != 0}
    if bad:
        raise RuntimeError(f"services did not stop cleanly: {bad} (logs in {log_dir})")
    return summary, points


def _publish(args: argparse.Namespace) -> SimulationSummary:
    # A second, distinct time range per run: every demo's points are its own.
    start = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    return publish(
        SimulatorSettings.load(),
        count=args.messages,
        sites=args.sites,
        rate=args.rate,
        jitter=args.jitter,
        start=start,
    )


def _wait_for_points(
    procs: dict[str, subprocess.Popen],
    influx: InfluxSettings,
    summary: SimulationSummary,
    expected: int,
    timeout: float,
    log_dir: Path,
) -> dict[str, int]:
    """Points per measurement once InfluxDB holds ``expected`` of the run's range (or
    at the deadline); a service that exits meanwhile stops the demo."""
    first, last = summary.first_timestamp, summary.last_timestamp
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: see {log_dir / name}.log")
        try:
            counts = _count_points(influx.url, influx.database, first, last)
        except (urllib.error.URLError, RuntimeError):
            counts = {}
        if sum(counts.values()) >= expected:
            break
        time.sleep(1.0)
    return counts


def _report_points(counts: dict[str, int], expected: int) -> int:
    """Print the counts per measurement; the total, which must be ``expected``."""
    points = sum(counts.values())
    _say(f"influxdb: {points} points of {expected} expected")
    for name in sorted(counts):
        _say(f"  {name:<14} {counts[name]:>7} points")
    if points != expected:
        raise RuntimeError(f"expected {expected} points in InfluxDB, found {points}")
    return points


def _sigterm_and_reap(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every service still running, then wait (15 s each, then kill)."""
    for name, proc in procs.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _archive_to_moto() -> tuple[ArchiveSettings, ArchiveSummary]:
    """Archive what was ingested (age 0, today included) to the local moto S3."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    moto_url = services.default_moto().url
    settings = ArchiveSettings.load()
    settings.s3.bucket = settings.s3.bucket or DEMO_BUCKET
    settings.s3.endpoint_url = settings.s3.endpoint_url or moto_url
    s3 = boto3.client("s3", endpoint_url=settings.s3.endpoint_url, region_name=settings.s3.region)
    try:
        s3.create_bucket(Bucket=settings.s3.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    archived = archive(settings, older_than_days=0, include_today=True, progress=False)
    _say(
        f"archive: rows={archived.rows} objects={archived.objects} bytes={archived.bytes} "
        f"deleted_windows={archived.deleted} -> s3://{settings.s3.bucket}/{settings.s3.prefix}"
    )
    if archived.failed:
        raise RuntimeError(f"archive failures: {archived.failures}")
    return settings, archived


def _show_local_query(archive_directory: str) -> None:
    sql = (
        "SELECT site_id, count(*) AS points, round(avg(soc), 2) AS avg_soc, "
        "round(max(dc_voltage), 1) AS max_dc_voltage FROM field1 GROUP BY site_id ORDER BY site_id"
    )
    _say(f"edge query --local \"{sql}\"")
    _say(run_local_sql(sql, archive_directory).rstrip())


if __name__ == "__main__":
    sys.exit(main())
