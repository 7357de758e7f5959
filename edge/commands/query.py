"""``edge query "SELECT ..."``: SQL over the archive, as CSV.

Athena (default): runs in the configured workgroup and database ([athena]), waits
with backoff, then copies the CSV result from S3 to ``--out`` and prints the
result's S3 location on stdout; without ``--out`` the CSV goes to stdout and the
location to stderr, so the CSV can be piped.

``--local``: the same SQL over the local archive directory with DuckDB (no AWS);
CSV to ``--out`` or stdout. The directory read is named on stderr with the
tables found there, and a table that is not there is said plainly, with what is.

Exit status (README, "Exit codes"): 0 success; 1 the query FAILED, was CANCELLED
or timed out (Athena's reason on stderr; a timed-out query is stopped), or DuckDB
refused it; 2 bad options (``--out`` into a directory that does not exist); 3
settings or AWS credentials; 4 AWS refused or could not be reached (permissions,
missing workgroup); 5 the archive directory or a table does not exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import ClientError

from edge.core.errors import NotFoundError, OperatorError, UsageError
from edge.runtime.logs import configure
from edge.query import athena
from edge.config.settings import QuerySettings

EXIT_OK = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge.commands.options import above

    parser.add_argument("sql", help="the SQL statement (Athena/Trino dialect)")
    parser.add_argument("--out", help="write the CSV result to this file (default: stdout)")
    parser.add_argument("--timeout", type=above(0),
                        help="seconds before the query is stopped (default: [athena] timeout_s)")
    parser.add_argument("--local", action="store_true", help="query the local archive with DuckDB instead of Athena")
    parser.add_argument("--archive-dir", help="local archive directory for --local (default: [archive] directory)")
    parser.add_argument("--workgroup", help="Athena workgroup (default: [athena] workgroup)")
    parser.add_argument("--database", help="Glue database (default: [athena] database)")


def check_out(out: str | None) -> None:
    """Refuse ``--out`` before any work: a query must not run (and cost) for
    nothing because its result has nowhere to go."""
    if not out:
        return
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {out} is a directory; name a file")
    if not path.parent.is_dir():
        raise UsageError(f"--out {out}: directory {path.parent} does not exist")


def run(args: argparse.Namespace) -> int:
    settings = QuerySettings.load(getattr(args, "config", None))
    log = configure(settings.log, "query")
    check_out(args.out)
    if args.local:
        return run_local(args, settings)
    updates = {k: v for k, v in (("workgroup", args.workgroup), ("database", args.database)) if v}
    athena_settings = settings.athena.model_copy(update=updates)
    timeout = athena_settings.timeout_s if args.timeout is None else args.timeout

    # AWS errors (credentials, permissions, a missing workgroup) go up to the CLI,
    # which says them in one line (edge.core.failures).
    athena_client, s3_client = athena.make_clients(athena_settings, settings.s3)
    try:
        result = athena.run_query(athena_client, args.sql, athena_settings, timeout)
    except athena.QueryFailed as exc:
        log.error("query_failed", query_execution_id=exc.query_execution_id, state=exc.state, reason=exc.reason)
        raise OperatorError(f"{exc.state}: {exc.reason}") from None
    except athena.QueryTimedOut as exc:
        log.error("query_timed_out", query_execution_id=exc.query_execution_id, timeout_s=exc.timeout_s)
        raise OperatorError(str(exc)) from None
    except ClientError as exc:
        if "WorkGroup does not exist" in str(exc):
            raise NotFoundError(f"Athena workgroup {athena_settings.workgroup} does not exist in "
                                f"{athena_settings.region} ([athena] workgroup, or --workgroup)") from None
        raise
    log.info(
        "query succeeded",
        query_execution_id=result.query_execution_id,
        data_scanned_bytes=result.data_scanned_bytes,
        execution_ms=result.execution_ms,
    )
    if args.out:
        athena.download_result(s3_client, result.output_location, Path(args.out))
        print(result.output_location)
    else:
        athena.download_result(s3_client, result.output_location, sys.stdout.buffer)
        print(result.output_location, file=sys.stderr)
    return EXIT_OK


def run_local(args: argparse.Namespace, settings: QuerySettings) -> int:
    from edge.archive.restore_parts import current_files
    from edge.query.local import LocalQueryError, MissingTable, run_local_sql, tables

    archive_dir = Path(args.archive_dir or settings.archive.directory).resolve()
    if not archive_dir.is_dir():
        raise NotFoundError(f"archive directory {archive_dir} does not exist "
                            "([archive] directory, or --archive-dir)")
    found = tables(archive_dir)
    print(f"edge query: archive {archive_dir} (tables: {', '.join(found) or 'none'})", file=sys.stderr, flush=True)
    try:
        csv_text = run_local_sql(args.sql, str(archive_dir), current_files(str(archive_dir)))
    except MissingTable as exc:
        raise NotFoundError(str(exc)) from None
    except LocalQueryError as exc:
        raise OperatorError(str(exc)) from None
    if args.out:
        Path(args.out).write_text(csv_text, encoding="utf-8")
    else:
        sys.stdout.write(csv_text)
        sys.stdout.flush()
    return EXIT_OK
