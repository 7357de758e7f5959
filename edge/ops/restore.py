"""Archived points back into InfluxDB, so Grafana can look at an archived day again.

Reads the archive through its store (``edge.archive.store.archive_store``: the
``[archive] directory``, or S3 when ``[s3] bucket`` is set; ``source`` chooses),
the measurements asked for or every one the archive holds in the range, keeps the
rows with ``start <= time < end``, and writes them to the database ``into`` in
batches of ``batch_lines`` lines, exact in value and type
(``edge.ops.restore_lines``). Writes into a database other than the live one
(``[influxdb] database``): writing into the live one needs ``into_live``, since
restored points then mix with live ones (harmlessly: the same series and time
overwrite). The database is created when missing (``[influxdb]
create_database``), on every node written to. Restoring twice gives the same
database.

Several InfluxDB nodes (``[influxdb.nodes]``, docs/scaling.md): each site's points
go to the node the site map gives it; ``into_node`` sends every point to that one
node instead, whatever the map says: how a site is moved between nodes (restore
it into its new node, then change the map).

Every measurement asked for must be in the archive for the range (and sites),
or nothing is written: the error names what is missing, where and when.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from edge.archive.restore_parts import ArchivedPart, archived_parts, fields_of, read_batches
from edge.archive.store import ArchiveStore, Source
from edge.archive.stores import archive_store
from edge.config.settings import ArchiveSettings
from edge.core.backoff import Backoff
from edge.core.errors import NotFoundError, RefusedError, UnreachableError, UsageError
from edge.core.words import noun
from edge.influx.client import InfluxClient
from edge.influx.answers import Outcome
from edge.influx.nodes import InfluxNodes
from edge.ops.restore_lines import bodies, line_array, value_count
from edge.runtime.progress import progress_bar, span_text

READ_ROWS = 50_000
WRITE_ATTEMPTS = 8
SITES_NAMED = 10  # more sites than this are counted, not listed


@dataclass
class RestoreSummary:
    into: str = ""
    parts: int = 0
    points: int = 0
    values: int = 0
    requests: int = 0
    seconds: float = 0.0
    points_by_measurement: Counter = field(default_factory=Counter)
    sites: set = field(default_factory=set)  # None stands for series without a site_id tag
    points_by_node: Counter = field(default_factory=Counter)
    several_nodes: bool = False  # the map has several nodes, or one was named: say where points went

    @property
    def values_per_s(self) -> float:
        return self.values / self.seconds if self.seconds > 0 else 0.0

    @property
    def measurements(self) -> list[str]:
        return sorted(self.points_by_measurement)

    def what(self) -> str:
        """What was restored: each measurement with its points, and the sites."""
        each = ", ".join(f"{m} ({self.points_by_measurement[m]} points)" for m in self.measurements)
        where = ""
        if self.several_nodes:
            nodes = ", ".join(f"{n} ({self.points_by_node[n]} points)" for n in sorted(self.points_by_node))
            where = f" on {noun(len(self.points_by_node), 'node')} {nodes or '(none)'}"
        return f"{each or 'nothing'} {sites_text(self.sites, 'from ')} into {self.into}{where}"

    def line(self) -> str:
        return (f"{self.what()}: parts={self.parts} points={self.points} values={self.values}"
                f" requests={self.requests} seconds={self.seconds:.1f} rate={self.values_per_s:,.0f} values/s")


def sites_text(sites: set | None, lead: str = "for ") -> str:
    """``for any site``, ``for site 000001``, ``for sites a, b`` (the first ten, then a count)."""
    if not sites:
        return f"{lead}any site"
    names = sorted("(no site_id)" if s is None else s for s in sites)
    shown = ", ".join(names[:SITES_NAMED])
    if len(names) > SITES_NAMED:
        shown += f" and {len(names) - SITES_NAMED} more"
    return f"{lead}{noun(len(names), 'site')} {shown}"


class Restorer:
    """Writes parts to the node of each part's site (``nodes.for_site``), or all to
    ``into_node``."""

    def __init__(self, nodes: InfluxNodes, store: ArchiveStore, batch_lines: int, log, into_node: str | None = None):
        self.nodes = nodes
        self.into_node = into_node
        self.store = store
        self.batch_lines = batch_lines
        self.log = log

    def node_of(self, part: ArchivedPart) -> str:
        return self.into_node or self.nodes.node_for(part.site_id)

    def restore(self, parts: list[ArchivedPart], start: datetime, end: datetime, bar=None) -> RestoreSummary:
        summary = RestoreSummary(into=self.nodes.settings.database,
                                 several_nodes=self.nodes.several or self.into_node is not None)
        began = time.monotonic()
        lo = pa.scalar(start, pa.timestamp("us", tz="UTC"))
        hi = pa.scalar(end, pa.timestamp("us", tz="UTC"))
        for part in parts:
            for batch in read_batches(self.store, part, READ_ROWS):
                times = batch.column("time")
                batch = batch.filter(pc.and_(pc.greater_equal(times, lo), pc.less(times, hi)))
                if batch.num_rows == 0:
                    continue
                fields = part.fields if part.fields is not None else fields_of(batch.schema)
                lines = line_array(batch, part.measurement, part.site_id, fields)
                node = self.node_of(part)
                for body, n in bodies(lines, self.batch_lines):
                    self._write(self.nodes.client(node), body, part)
                    summary.requests += 1
                    summary.points_by_node[node] += n
                    summary.points += n
                    summary.points_by_measurement[part.measurement] += n
                    summary.sites.add(part.site_id)
                summary.values += value_count(batch, fields)
                if bar is not None:
                    bar.update(batch.num_rows)
                    bar.set_postfix(values=summary.values, refresh=False)
            summary.parts += 1
        summary.seconds = time.monotonic() - began
        return summary

    def _write(self, writer: InfluxClient, body: bytes, part: ArchivedPart) -> None:
        backoff = Backoff(0.5, 10.0)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            result = writer.write(body)
            if result.ok:
                return
            if result.outcome is Outcome.REJECTED:
                raise RefusedError(f"influxdb refused points of {part.key} at {writer.base_url}: {result.error[:500]}")
            if result.outcome is Outcome.DATABASE_MISSING:
                created = writer.ensure_database()
                if not created.ok:
                    raise NotFoundError(f"influxdb: database {writer.settings.database} missing at "
                                        f"{writer.base_url} and not created: {created.error}")
                continue
            self.log.warning("restore_write_retried", attempt=attempt, error=result.error[:300], url=writer.base_url)
            time.sleep(backoff.next_delay())
        raise UnreachableError(f"influxdb: writing {part.key} to {writer.base_url} failed {WRITE_ATTEMPTS} times: "
                               f"{result.error[:300]}")


def find_parts(
    store: ArchiveStore, measurements: list[str] | None, sites: set[str] | None, start: datetime, end: datetime
) -> list[ArchivedPart]:
    """The parts to restore; NotFoundError naming each measurement asked for that
    the archive does not hold for the range and sites, and those it holds there
    (nothing is written then)."""
    first_day = start.astimezone(UTC).date()
    last_day = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    parts = archived_parts(store, measurements, sites, first_day, last_day)
    where = f"{sites_text(sites)} {span_text(start, end)} in {store.url('')}"
    if measurements:
        missing = [m for m in dict.fromkeys(measurements) if m not in {p.measurement for p in parts}]
        if missing:  # name what is there, so a mistyped name is seen as one (the error path only)
            held = {p.measurement for p in archived_parts(store, None, sites, first_day, last_day)}
            also = f" (found: {', '.join(sorted(held))})" if held else " (nothing archived there)"
            raise NotFoundError(f"no archived {', '.join(missing)} {where}{also}")
    elif not parts:
        raise NotFoundError(f"no archived measurement {where}")
    return parts


def restore(
    settings: ArchiveSettings,
    measurements: list[str] | None,
    start: datetime,
    end: datetime,
    into: str,
    *,
    sites: set[str] | None = None,
    into_live: bool = False,
    source: Source = "auto",
    batch_lines: int = 5000,
    progress: bool | None = False,
    into_node: str | None = None,
    log=None,
) -> RestoreSummary:
    """Write the archived points of ``measurements`` (None: every measurement the
    archive holds in the range) in ``[start, end)`` into the database ``into``, on
    each site's node, or all on the node ``into_node``."""
    import structlog

    log = log or structlog.get_logger().bind(service="restore")
    if isinstance(measurements, str):
        raise TypeError("measurements is a list of names (or None for every one)")
    if end <= start:
        raise UsageError("--end must be after --start")
    if into == settings.influxdb.database and not into_live:
        raise RefusedError(f"{into} is the live database ([influxdb] database): restore into another one, "
                           "or give --into-live to mix archived points into it")
    if into_node is not None and into_node not in settings.influxdb.node_names:
        raise UsageError(f"--into-node {into_node}: no InfluxDB node of that name "
                         f"(nodes: {', '.join(settings.influxdb.node_names)})")
    store = archive_store(settings, source)
    parts = find_parts(store, measurements, sites, start, end)
    nodes = InfluxNodes(settings.influxdb.model_copy(update={"database": into}))
    try:
        restorer = Restorer(nodes, store, batch_lines, log, into_node)
        targets = sorted({restorer.node_of(p) for p in parts}, key=nodes.names.index)
        for node in targets:
            created = nodes.client(node).ensure_database()
            if not created.ok:
                raise UnreachableError(f"influxdb: creating {into} on node {node} ({nodes.url(node)}): "
                                       f"{created.error}")
        log.info("restore_planned", measurements=sorted({p.measurement for p in parts}), parts=len(parts),
                 source=store.url(""), into=into, nodes={n: nodes.url(n) for n in targets},
                 site_map_version=nodes.version)
        total = sum(p.rows for p in parts) if all(p.rows is not None for p in parts) else None
        with progress_bar(total, "point", "restore", enabled=progress) as bar:
            summary = restorer.restore(parts, start, end, bar)
    finally:
        nodes.close()
    log.info("restore_finished", measurements=summary.points_by_measurement, sites=len(summary.sites),
             parts=summary.parts, points=summary.points, values=summary.values, requests=summary.requests,
             seconds=summary.seconds, points_by_node=dict(summary.points_by_node))
    return summary
