"""``edge restore --measurement M [--site S] --start T --end T --into DB``: archived
points back into InfluxDB, so Grafana can look at an archived day again.

Reads the archive (``[archive] directory``, or S3 when ``[s3] bucket`` is set;
``--source`` chooses), keeps the rows with ``start <= time < end``, and writes
them to the database ``--into`` in batches of ``--batch-lines`` lines, exact in
value and type (``edge.ops.restore_lines``). Writes into a database other than
the live one (``[influxdb] database``): writing into the live one needs
``--into-live``, since restored points then mix with live ones (harmlessly:
the same series and time overwrite). The database is created when missing
(``[influxdb] create_database``). Restoring twice gives the same database.

Progress bar (points, values/s) on a terminal; the closing line gives points,
values and values/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from edge.core.errors import NotFoundError, RefusedError, UnreachableError, UsageError
from edge.influx.errors import Outcome
from edge.influx.client import InfluxClient
from edge.core.moments import moment
from edge.ops.restore_lines import bodies, line_array, value_count
from edge.archive.reader import ArchivedPart, ArchiveReader, fields_of
from edge.config.settings import ArchiveSettings

READ_ROWS = 50_000
WRITE_ATTEMPTS = 8


@dataclass
class RestoreSummary:
    parts: int = 0
    points: int = 0
    values: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def values_per_s(self) -> float:
        return self.values / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"parts={self.parts} points={self.points} values={self.values} requests={self.requests}"
                f" seconds={self.seconds:.1f} rate={self.values_per_s:,.0f} values/s")


class Restorer:
    def __init__(self, writer: InfluxClient, reader: ArchiveReader, batch_lines: int, log):
        self.writer = writer
        self.reader = reader
        self.batch_lines = batch_lines
        self.log = log

    def restore(self, parts: list[ArchivedPart], start: datetime, end: datetime, bar=None) -> RestoreSummary:
        summary = RestoreSummary()
        began = time.monotonic()
        lo = pa.scalar(start, pa.timestamp("us", tz="UTC"))
        hi = pa.scalar(end, pa.timestamp("us", tz="UTC"))
        for part in parts:
            for batch in self.reader.batches(part, READ_ROWS):
                times = batch.column("time")
                batch = batch.filter(pc.and_(pc.greater_equal(times, lo), pc.less(times, hi)))
                if batch.num_rows == 0:
                    continue
                fields = part.fields if part.fields is not None else fields_of(batch.schema)
                lines = line_array(batch, part.measurement, part.site_id, fields)
                for body, n in bodies(lines, self.batch_lines):
                    self._write(body, part)
                    summary.requests += 1
                    summary.points += n
                summary.values += value_count(batch, fields)
                if bar is not None:
                    bar.update(batch.num_rows)
                    bar.set_postfix(values=summary.values, refresh=False)
            summary.parts += 1
        summary.seconds = time.monotonic() - began
        return summary

    def _write(self, body: bytes, part: ArchivedPart) -> None:
        delay = 0.5
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            result = self.writer.write(body)
            if result.ok:
                return
            if result.outcome is Outcome.REJECTED:
                raise RefusedError(f"influxdb refused points of {part.key}: {result.error[:500]}")
            if result.outcome is Outcome.DATABASE_MISSING:
                created = self.writer.ensure_database()
                if not created.ok:
                    raise NotFoundError(f"influxdb: database {self.writer.settings.database} missing and not "
                                        f"created: {created.error}")
                continue
            self.log.warning("restore_write_retried", attempt=attempt, error=result.error[:300])
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise UnreachableError(f"influxdb: writing {part.key} failed {WRITE_ATTEMPTS} times: {result.error[:300]}")


def _bar(total: int | None, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="point", desc="restore", file=sys.stderr, dynamic_ncols=True, unit_scale=True)


def restore(
    settings: ArchiveSettings,
    measurement: str,
    start: datetime,
    end: datetime,
    into: str,
    *,
    sites: set[str] | None = None,
    into_live: bool = False,
    source: str = "auto",
    batch_lines: int = 5000,
    progress: bool = False,
    log=None,
) -> RestoreSummary:
    """Write the archived points of ``measurement`` in ``[start, end)`` into ``into``."""
    import structlog

    log = log or structlog.get_logger().bind(service="restore")
    if end <= start:
        raise UsageError("--end must be after --start")
    if into == settings.influxdb.database and not into_live:
        raise RefusedError(f"{into} is the live database ([influxdb] database): restore into another one, "
                           "or give --into-live to mix archived points into it")
    use_s3 = source == "s3" or (source == "auto" and bool(settings.s3.bucket))
    if use_s3 and not settings.s3.bucket:
        raise UsageError("--source s3 needs [s3] bucket")
    reader = ArchiveReader(settings, use_s3)
    last_day = (end - timedelta(microseconds=1)).date()
    parts = reader.parts(measurement, sites, start.date(), last_day)
    if not parts:
        raise NotFoundError(f"no archived {measurement} for {sorted(sites) if sites else 'any site'} "
                            f"from {start.date()} to {last_day} in {reader.where}")
    writer = InfluxClient(settings.influxdb.model_copy(update={"database": into}))
    try:
        created = writer.ensure_database()
        if not created.ok:
            raise UnreachableError(f"influxdb: creating {into}: {created.error}")
        log.info("restore_planned", measurement=measurement, parts=len(parts), source=reader.where, into=into)
        total = sum(p.rows for p in parts) if all(p.rows is not None for p in parts) else None
        bar = _bar(total, progress)
        try:
            summary = Restorer(writer, reader, batch_lines, log).restore(parts, start, end, bar)
        finally:
            if bar is not None:
                bar.close()
    finally:
        writer.close()
    log.info("restore_finished", **vars(summary))
    return summary


# ------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measurement", required=True, help="measurement to restore (e.g. field6)")
    parser.add_argument("--site", action="append", default=[], help="only this site (repeatable)")
    parser.add_argument("--start", type=moment, required=True, help="from this day or moment (UTC unless given)")
    parser.add_argument("--end", type=moment, required=True, help="up to this day or moment, exclusive")
    parser.add_argument("--into", required=True, help="InfluxDB database to write into (created if missing)")
    parser.add_argument("--into-live", action="store_true",
                        help="allow --into to be the live database ([influxdb] database)")
    parser.add_argument("--source", choices=("auto", "local", "s3"), default="auto",
                        help="archive to read (default: S3 when [s3] bucket is set, else [archive] directory)")
    parser.add_argument("--batch-lines", type=int, default=5000, help="lines per /write request (default 5000)")


def run(args: argparse.Namespace) -> int:
    from edge.runtime import logs

    settings = ArchiveSettings.load(getattr(args, "config", None))
    log = logs.configure(settings.log, "restore")
    if args.batch_lines < 1:
        raise UsageError("--batch-lines must be at least 1")
    summary = restore(settings, args.measurement, args.start, args.end, args.into, sites=set(args.site) or None,
                      into_live=args.into_live, source=args.source, batch_lines=args.batch_lines,
                      progress=sys.stderr.isatty(), log=log)
    print(f"restore: {summary.line()}")
    return 0
