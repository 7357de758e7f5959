"""``edge archive``: InfluxDB -> Parquet -> S3 (or local disk), then bounded retention.

The run loop. Scope (``edge.archive.scope``): what the sink writes, or every
policy with ``--all-policies``. Work is done one window (one complete UTC day of
one measurement for one site in one policy, ``edge.archive.windows``) at a time
(``edge.archive.window_work``):

1. phase 1, for every window: count, export, upload, verify, write the manifest;
   one bad window never stops the others;
2. phase 2, once every window of the run is archived, and only if the store never
   failed during the run (S3 down: nothing is deleted, everything is retried next
   run), for each verified window: count it again in *every* retention policy
   (InfluxQL's DELETE removes the window from all of them: a policy that holds
   points there and was not archived refuses the delete, which is logged, counted
   and makes the run exit 6), seal the part in the manifest, ``DELETE`` exactly
   that window, mark it deleted (``edge.archive.retention``).

A fleet splits the work by site (``--shard I/N``, ``edge.archive.shard``): each
archiver plans every window, then keeps those of its sites.

A run killed anywhere resumes with the next run: an upload that was verified is
not repeated, a delete that did not happen is done, a half-written file is never
under its final name. Without S3 the layout is the same on local disk and nothing
is deleted unless asked (``--delete`` or ``archive.delete_without_s3``). InfluxDB
unreachable: the run stops where it is, deletes nothing more and raises
``UnreachableError``.

``archive(settings, ...)`` is the function the CLI (``edge.commands.archive``)
and the demo call.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime

from edge.archive import metrics
from edge.archive.dry_run import print_plan
from edge.archive.export import InfluxUnreachable
from edge.archive.nodes import NodeArchiveSource
from edge.archive.retention import wants_delete
from edge.archive.pool import WindowPool, worker_count
from edge.archive.scope import resolve_scope
from edge.archive.shard import Shard, parse_shard
from edge.archive.store import ArchiveStore, LocalStore
from edge.archive.stores import archive_store
from edge.archive.summary import ArchiveSummary
from edge.archive.window_work import DeleteRefused, StoreFailed, WindowWork, window_text
from edge.archive.windows import Window, archive_range, day_of_ns
from edge.config.settings import ArchiveSettings
from edge.core.errors import UnreachableError
from edge.runtime.progress import progress_bar


def archive(
    settings: ArchiveSettings,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    older_than_days: float | None = None,
    keep: bool = False,
    delete: bool | None = None,
    dry_run: bool = False,
    measurements: list[str] | None = None,
    all_policies: bool | None = None,
    include_today: bool = False,
    shard: str | None = None,
    node: str | None = None,
    sites: list[str] | None = None,
    workers: int | None = None,
    store: ArchiveStore | None = None,
    now: datetime | None = None,
    progress: bool | None = None,
    out=None,
    log=None,
    runtime=None,
) -> ArchiveSummary:
    """Archive every complete window in [start, end) (default: older than the configured age).

    ``delete``: None follows the settings (S3: delete after verify; local only: no
    delete unless ``archive.delete_without_s3``); ``keep`` wins over both.
    ``include_today`` lets in windows that are not complete yet (the current day).
    ``all_policies``: None follows ``archive.all_retention_policies``.
    ``shard``: ``"I/N"``, only the sites of archiver I of N (``edge.archive.shard``);
    None follows ``archive.shard``.
    ``node``: read and delete every window on that InfluxDB node, whatever the
    site map says (the old node of a moved site; ``edge.archive.nodes``).
    ``sites``: only these sites.
    ``workers``: processes for phase 1 (``edge.archive.pool``); None follows
    ``archive.workers`` (0: the cores). A ``store`` object given here lives in this
    process: the run is then sequential.
    Raises UsageError (range), NotFoundError (database, policy, measurement),
    UnreachableError (InfluxDB) and RefusedError (two policies, one table).
    """
    import structlog

    log = log or structlog.get_logger().bind(service="archive")
    out = out or sys.stdout
    split = parse_shard(settings.archive.shard if shard is None else shard)
    began = time.monotonic()
    start_ns, end_ns = archive_range(
        now or datetime.now(UTC),
        settings.archive.older_than_days if older_than_days is None else older_than_days,
        start,
        end,
        settle_minutes=settings.archive.settle_minutes,
        include_today=include_today,
    )
    local = LocalStore(settings.archive.directory)
    target = store or archive_store(settings)
    if isinstance(target, LocalStore) and target.root == local.root:
        target = local  # one store: manifests are written once
    delete = wants_delete(settings, target is not local, delete, keep)
    if all_policies is None:
        all_policies = settings.archive.all_retention_policies
    source = NodeArchiveSource(settings.influxdb, node)
    summary = ArchiveSummary()
    pool: WindowPool | None = None
    try:
        scope = replace(resolve_scope(source, settings, measurements, all_policies), node=node)
        if len(source.names) > 1:
            source.check_schema(scope.policies, scope.measurements)
        work = WindowWork(settings, source, target, local, delete, log, scope)
        count = 1 if store is not None else worker_count(settings.archive.workers if workers is None else workers)
        if count > 1 and not dry_run:  # the workers start while InfluxDB counts
            pool = WindowPool(settings, delete, scope, count)
        # The plan: a query per day, in at least two runs of days at once.
        windows = _planned_windows(work, start_ns, end_ns, summary, dry_run, split, max(2, count),
                                   set(sites or ()))
        _report_nodes(source, summary, log)
        if dry_run:
            print_plan(work, windows, out)
            return summary
        stopped = _archive_then_delete(work, windows, summary, runtime, progress, out, pool)
    finally:
        if pool is not None:
            pool.close()
        source.close()
        summary.seconds = time.monotonic() - began
    log.info("archive_finished", **summary.counts())
    if isinstance(stopped, InfluxUnreachable):
        raise UnreachableError(f"{stopped}; the run stopped there ({summary.line()})")
    return summary


def _planned_windows(
    work: WindowWork, start_ns: int | None, end_ns: int, summary: ArchiveSummary, dry_run: bool,
    shard: Shard | None, parts: int = 1, sites: set[str] | None = None,
) -> list[Window]:
    """The run's windows (this shard's, these sites'), counted in the summary and
    logged with what the run will do."""
    windows = [w for w in work.plan(start_ns, end_ns, parts)
               if (shard is None or shard.holds(w.site_id)) and (not sites or w.site_id in sites)]
    summary.windows = len(windows)
    work.log.info(
        "archive_planned",
        windows=len(windows),
        end=day_of_ns(end_ns).isoformat(),
        retention_policies=work.scope.policies,
        store=work.store.name,
        delete=work.delete,
        dry_run=dry_run,
        shard=shard.text() if shard else None,
        node=work.scope.node,
        sites=sorted(sites) or None,
    )
    return windows


def _report_nodes(source: NodeArchiveSource, summary: ArchiveSummary, log) -> None:
    """Schema differences between nodes, and sites found on a node the map does not
    give them: a warning each, counted in the summary and the metrics."""
    for what, answers in source.differences.items():
        log.warning("influx_schema_differs", what=what, nodes=answers)
    for stray in source.stray_lines():
        log.warning("archive_site_on_other_node", **stray,
                    hint=f"not archived from there; edge archive --node {stray['node']} --site {stray['site']}")
    summary.schema_differences = len(source.differences)
    summary.misplaced_sites = len(source.strays)
    metrics.SCHEMA_DIFFERENCES.set(summary.schema_differences)
    metrics.MISPLACED_SITES.set(summary.misplaced_sites)


def _archive_then_delete(
    work: WindowWork, windows: list[Window], summary: ArchiveSummary, runtime, progress, out, pool
) -> Exception | None:
    """Phase 1 for every window, then phase 2 only if nothing stopped the run;
    returns what stopped it, or None."""
    to_delete, failed_keys, stopped = _archive_windows(work, windows, summary, runtime, progress, out, pool)
    if isinstance(stopped, StoreFailed) and to_delete:
        work.log.warning("archive_store_failed_nothing_deleted", pending=len(to_delete))
    if stopped is None:
        stopped = _delete_windows(work, to_delete, failed_keys, summary)
    return stopped


def _window_results(work: WindowWork, windows: list[Window], pool: WindowPool | None):
    """``(window, index, summary, error, pid, peak RSS)`` per window as they finish:
    in this process, or over the pool's processes."""
    if pool is not None and len(windows) > 1:
        yield from pool.results(windows)
        return
    for w in windows:
        part = ArchiveSummary()
        try:
            yield w, work.archive_window(w, part), part, None, None, None
        except Exception as exc:  # the loop decides what it stops
            yield w, None, part, exc, None, None


def _archive_windows(work: WindowWork, windows: list[Window], summary: ArchiveSummary, runtime, progress, out,
                     pool: WindowPool | None = None):
    """Phase 1: export, upload and verify every window.

    Returns the windows to delete, the delete keys of windows that failed, and
    what stopped the run early (a failing store or an unreachable InfluxDB: while
    either misbehaves nothing leaves InfluxDB), or None.
    """
    show_bar = out.isatty() if progress is None else progress
    bar = progress_bar(len(windows), "day", "archive", enabled=show_bar)
    to_delete: list[tuple[Window, int]] = []
    failed_keys: set[tuple] = set()
    stopped: Exception | None = None
    results = _window_results(work, windows, pool)
    with bar:
        for done, (w, index, part, error, pid, peak) in enumerate(results):
            if runtime is not None:  # systemctl status shows where a long run is
                runtime.alive()
                runtime.status(f"archived {w.label()} ({done + 1}/{len(windows)})")
            summary.absorb(part)
            if pid is not None:
                summary.worker_peak_rss[pid] = max(peak, summary.worker_peak_rss.get(pid, 0))
            metrics.progress(done, summary.rows, summary.failed)
            if isinstance(error, (StoreFailed, InfluxUnreachable)):
                summary.fail(w, error, work.log)
                stopped = error
                results.close()
                break
            if error is not None:  # one bad window never stops the others
                summary.fail(w, error, work.log)
                failed_keys.add(w.delete_key)
            elif index is not None:
                to_delete.append((w, index))
            if error is None and not show_bar:
                outcome = (
                    "exported" if part.exported
                    else "already archived" if part.skipped or index is not None
                    else "nothing in InfluxDB"
                )
                work.log.info("window", window=w.label(), outcome=outcome, rows_total=summary.rows,
                              bytes_total=summary.bytes)
            bar.update(1)
            bar.set_postfix(rows=summary.rows, MB=round(summary.bytes / 1e6, 1), refresh=False)
    return to_delete, failed_keys, stopped


def _delete_windows(work: WindowWork, to_delete, failed_keys: set, summary: ArchiveSummary) -> Exception | None:
    """Phase 2: bounded retention, one DELETE per window across its policies."""
    log = work.log
    groups: dict[tuple, list[tuple[Window, int]]] = defaultdict(list)
    for w, index in to_delete:
        groups[w.delete_key].append((w, index))
    for key, members in groups.items():
        first = members[0][0]
        if key in failed_keys:
            # The same window of another policy failed: its points are not archived.
            log.warning("window_not_deleted", window=window_text(first), reason="another policy's window failed")
            continue
        try:
            work.delete_group(members, summary)
        except DeleteRefused as exc:
            summary.refused += 1
            summary.refusals.append(str(exc))
            metrics.DELETES_REFUSED.labels(reason="other_retention_policy").inc()
            log.warning("delete_refused", window=window_text(first), reason=str(exc))
        except (StoreFailed, InfluxUnreachable) as exc:
            summary.fail(first, exc, log)
            return exc
        except Exception as exc:
            summary.fail(first, exc, log)
    return None
