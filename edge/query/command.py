"""``edge query "SELECT ..."``: SQL over the archive, as CSV.

Athena (default): runs in the configured workgroup and database ([athena]), waits
with backoff, then copies the CSV result from S3 to ``--out`` and prints the
result's S3 location on stdout; without ``--out`` the CSV goes to stdout and the
location to stderr, so the CSV can be piped.

``--local``: the same SQL over the local archive directory with DuckDB (no AWS);
CSV to ``--out`` or stdout.

Exit status: 0 success; 1 the query FAILED or was CANCELLED (Athena's reason on
stderr) or the local query failed; 3 timed out (the query is stopped); 4 AWS
refused or could not be reached (credentials, permissions, missing workgroup).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from edge.query import athena
from edge.logs import configure
from edge.settings import QuerySettings

EXIT_OK = 0
EXIT_QUERY_FAILED = 1
EXIT_TIMEOUT = 3
EXIT_AWS_ERROR = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", help="the SQL statement (Athena/Trino dialect)")
    parser.add_argument("--out", help="write the CSV result to this file (default: stdout)")
    parser.add_argument("--timeout", type=float, help="seconds before the query is stopped (default: [athena] timeout_s)")
    parser.add_argument("--local", action="store_true", help="query the local archive with DuckDB instead of Athena")
    parser.add_argument("--archive-dir", help="local archive directory for --local (default: [archive] directory)")
    parser.add_argument("--workgroup", help="Athena workgroup (default: [athena] workgroup)")
    parser.add_argument("--database", help="Glue database (default: [athena] database)")


def run(args: argparse.Namespace) -> int:
    settings = QuerySettings.load(getattr(args, "config", None))
    log = configure(settings.log, "query")
    if args.local:
        return run_local(args, settings)
    updates = {k: v for k, v in (("workgroup", args.workgroup), ("database", args.database)) if v}
    athena_settings = settings.athena.model_copy(update=updates)
    timeout = athena_settings.timeout_s if args.timeout is None else args.timeout

    try:
        athena_client, s3_client = athena.make_clients(athena_settings, settings.s3)
        result = athena.run_query(athena_client, args.sql, athena_settings, timeout)
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
    except athena.QueryFailed as exc:
        log.error("query failed", query_execution_id=exc.query_execution_id, state=exc.state, reason=exc.reason)
        print(f"edge query: {exc.state}: {exc.reason}", file=sys.stderr)
        return EXIT_QUERY_FAILED
    except athena.QueryTimedOut as exc:
        log.error("query timed out", query_execution_id=exc.query_execution_id, timeout_s=exc.timeout_s)
        print(f"edge query: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except (ClientError, BotoCoreError) as exc:
        log.error("aws request failed", error=str(exc))
        print(f"edge query: {exc}", file=sys.stderr)
        return EXIT_AWS_ERROR
    return EXIT_OK


def run_local(args: argparse.Namespace, settings: QuerySettings) -> int:
    from edge.query.local import run_local_sql

    archive_dir = args.archive_dir or settings.archive.directory
    try:
        csv_text = run_local_sql(args.sql, archive_dir)
    except Exception as exc:  # DuckDB's errors (parser, binder, catalog) are all user-facing
        print(f"edge query --local: {exc}", file=sys.stderr)
        return EXIT_QUERY_FAILED
    if args.out:
        Path(args.out).write_text(csv_text, encoding="utf-8")
    else:
        sys.stdout.write(csv_text)
        sys.stdout.flush()
    return EXIT_OK
