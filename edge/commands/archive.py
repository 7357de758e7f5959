"""``edge archive``: InfluxDB -> Parquet -> S3, then bounded retention (``edge.archive.archiver``).

Prints the run's summary line; each failed window and each refused delete on
stderr. Exit 0: every window archived; 1: a window failed; 6: a delete was
refused because another retention policy holds points no archive holds.
"""

from __future__ import annotations

import argparse
import sys

from edge.core.errors import RefusedError, UsageError
from edge.core.moments import moment
from edge.core.words import count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    when = parser.add_argument_group("what to archive (whole, complete UTC days)")
    when.add_argument("--older-than", type=float, metavar="DAYS",
                      help="archive points older than DAYS (default: archive.older_than_days;"
                           " 0: up to the last complete day)")
    when.add_argument("--start", type=moment, help="first day to archive (ISO date/time, UTC unless given)")
    when.add_argument("--end", type=moment, help="archive up to this moment, exclusive (rounded down to a day)")
    when.add_argument("--include-today", action="store_true",
                      help="also days not complete yet (today; yesterday within archive.settle_minutes):"
                           " their points are still arriving, and with a delete, points written between"
                           " the last count and the DELETE are lost")
    when.add_argument("--measurement", action="append", dest="measurements", help="only this measurement (repeatable)")
    when.add_argument("--all-policies", action="store_true", default=None,
                      help="archive every retention policy of the database, each under"
                           " <measurement>__<policy>/ (default: archive.all_retention_policies)")
    when.add_argument("--shard", metavar="I/N",
                      help="a fleet of N archivers: this one (I, 1-based) takes only the sites whose"
                           " stable hash falls to it; two never take the same window (default: archive.shard)")
    when.add_argument("--site", action="append", dest="sites", metavar="SITE",
                      help="only this site (repeatable)")
    when.add_argument("--node", metavar="NODE",
                      help="read, count and delete every window on this InfluxDB node ('default' or a name of"
                           " [influxdb.nodes]) whatever the site map says: the old node of a moved site, with"
                           " --site (docs/scaling.md). Default: each site on its node of the map")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes exporting windows side by side (default: archive.workers; 0: the cores)")
    parser.add_argument("--keep", action="store_true", help="archive and verify, but never delete from InfluxDB")
    parser.add_argument("--delete", action="store_true", help="delete verified windows even when archiving to local disk only")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")


def check_arguments(args: argparse.Namespace) -> None:
    """Contradictory options are refused before anything is read (UsageError)."""
    if args.keep and args.delete:
        raise UsageError("--keep and --delete contradict each other")
    if args.older_than is not None and (args.start or args.end):
        raise UsageError("--older-than and --start/--end are exclusive")
    if args.older_than is not None and args.older_than < 0:
        raise UsageError(f"--older-than {args.older_than:g}: an age cannot be negative")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers {args.workers}: a count cannot be negative")
    from edge.archive.shard import parse_shard

    parse_shard(args.shard)  # a malformed I/N is refused before anything is read


def run(args: argparse.Namespace) -> int:
    from edge.archive import metrics
    from edge.config.settings import ArchiveSettings
    from edge.runtime.logs import configure
    from edge.runtime.supervision import ServiceRuntime

    check_arguments(args)
    settings = ArchiveSettings.load(getattr(args, "config", None))
    log = configure(settings.log, "archive")
    runtime = ServiceRuntime("archive", settings.metrics, log)
    runtime.start_metrics()
    code = 1
    try:
        code = _run(settings, args, log, runtime)
    finally:
        textfile = settings.archive.metrics_textfile
        if textfile and not args.dry_run:  # the run's outcome outlives the process
            metrics.write_run_textfile(textfile, success=code == 0)
    return code


def _run(settings, args: argparse.Namespace, log, runtime) -> int:
    from edge.archive import metrics
    from edge.archive.archiver import archive

    summary = archive(
        settings,
        args.start,
        args.end,
        older_than_days=args.older_than,
        keep=args.keep,
        delete=True if args.delete else None,
        dry_run=args.dry_run,
        measurements=args.measurements,
        all_policies=args.all_policies,
        include_today=args.include_today,
        shard=args.shard,
        node=args.node,
        sites=args.sites,
        workers=args.workers,
        log=log,
        runtime=runtime,
    )
    if args.dry_run:
        return 0
    print(f"archive: {summary.line()}")
    for failure in summary.failures:
        print(f"archive: failed {failure}", file=sys.stderr)
    for refusal in summary.refusals:
        print(f"archive: refused {refusal}", file=sys.stderr)
    if summary.refused:
        raise RefusedError(
            f"{count(summary.refused, 'archived window')} not deleted: another retention policy holds points"
            " there that no archive holds (see above)"
        )
    if not summary.failed:
        metrics.succeeded()
    return 1 if summary.failed else 0
