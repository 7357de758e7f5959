"""Athena queries: start in the workgroup, wait with backoff, fetch the CSV result.

- ``run_query`` starts the query, polls its state with exponential backoff (tenacity:
  ``poll_initial_s`` doubling up to ``poll_max_s``) and returns where Athena wrote
  the result. FAILED or CANCELLED raise ``QueryFailed`` carrying Athena's own reason;
  past the timeout the query is stopped (so it scans no more) and ``QueryTimedOut``
  is raised.
- ``download_result`` copies the result CSV from S3 to a file (written to a
  temporary name, then renamed: a failed download never leaves half a CSV) or to a
  binary stream.

Transient API errors (throttling, 5xx) are retried by botocore's standard retry mode.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from edge.config.settings import AthenaSettings, S3Settings

RUNNING_STATES = frozenset({"QUEUED", "RUNNING"})
FAILED_STATES = frozenset({"FAILED", "CANCELLED"})
CLIENT_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"})
CHUNK = 1024 * 1024


class QueryError(Exception):
    """A query that produced no result."""


class QueryFailed(QueryError):
    def __init__(self, query_execution_id: str, state: str, reason: str):
        super().__init__(f"query {query_execution_id} {state}: {reason}")
        self.query_execution_id = query_execution_id
        self.state = state
        self.reason = reason


class QueryTimedOut(QueryError):
    def __init__(self, query_execution_id: str, timeout_s: float, state: str):
        super().__init__(f"query {query_execution_id} still {state} after {timeout_s:g} s; stopped")
        self.query_execution_id = query_execution_id
        self.timeout_s = timeout_s


@dataclass(frozen=True)
class QueryResult:
    query_execution_id: str
    output_location: str  # s3://bucket/key.csv
    data_scanned_bytes: int | None
    execution_ms: int | None


def make_clients(athena: AthenaSettings, s3: S3Settings) -> tuple[Any, Any]:
    """Athena client from [athena]; S3 client for the results: the workgroup's
    region, the [s3] endpoint (moto_server, S3-compatible) when one is set."""
    session = boto3.session.Session(profile_name=athena.profile or s3.profile, region_name=athena.region)
    athena_client = session.client("athena", endpoint_url=athena.endpoint_url, config=CLIENT_CONFIG)
    s3_client = session.client("s3", endpoint_url=s3.endpoint_url or athena.endpoint_url, config=CLIENT_CONFIG)
    return athena_client, s3_client


def failure_reason(execution: dict[str, Any]) -> str:
    """Athena's explanation of a FAILED/CANCELLED query, as specific as it gives."""
    status = execution.get("Status", {})
    error = status.get("AthenaError", {})
    reason = status.get("StateChangeReason") or error.get("ErrorMessage")
    return reason or "no reason given by Athena"


def start_query(client: Any, sql: str, settings: AthenaSettings) -> str:
    kwargs: dict[str, Any] = {
        "QueryString": sql,
        "WorkGroup": settings.workgroup,
        "QueryExecutionContext": {"Database": settings.database},
    }
    if settings.output_location:
        kwargs["ResultConfiguration"] = {"OutputLocation": settings.output_location}
    return client.start_query_execution(**kwargs)["QueryExecutionId"]


def wait_for_query(client: Any, query_execution_id: str, settings: AthenaSettings, timeout_s: float) -> dict[str, Any]:
    """The query's final QueryExecution; stops the query and raises QueryTimedOut
    when it is still queued or running after ``timeout_s``."""

    def state_of(execution: dict[str, Any]) -> str:
        return execution["Status"]["State"]

    retrying = Retrying(
        retry=retry_if_result(lambda execution: state_of(execution) in RUNNING_STATES),
        wait=wait_exponential(multiplier=settings.poll_initial_s, min=settings.poll_initial_s, max=settings.poll_max_s),
        stop=stop_after_delay(timeout_s),
    )
    try:
        return retrying(lambda: client.get_query_execution(QueryExecutionId=query_execution_id)["QueryExecution"])
    except RetryError as exc:
        last = exc.last_attempt.result()
        client.stop_query_execution(QueryExecutionId=query_execution_id)
        raise QueryTimedOut(query_execution_id, timeout_s, state_of(last)) from None


def run_query(client: Any, sql: str, settings: AthenaSettings, timeout_s: float | None = None) -> QueryResult:
    timeout = settings.timeout_s if timeout_s is None else timeout_s
    query_execution_id = start_query(client, sql, settings)
    execution = wait_for_query(client, query_execution_id, settings, timeout)
    state = execution["Status"]["State"]
    if state in FAILED_STATES:
        raise QueryFailed(query_execution_id, state, failure_reason(execution))
    if state != "SUCCEEDED":
        raise QueryFailed(query_execution_id, state, f"unexpected query state {state}")
    location = (execution.get("ResultConfiguration") or {}).get("OutputLocation")
    if not location:
        raise QueryFailed(query_execution_id, state, "Athena reported no result location")
    stats = execution.get("Statistics") or {}
    return QueryResult(
        query_execution_id=query_execution_id,
        output_location=location,
        data_scanned_bytes=stats.get("DataScannedInBytes"),
        execution_ms=stats.get("TotalExecutionTimeInMillis"),
    )


def split_s3_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"not an s3://bucket/key URL: {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def download_result(s3_client: Any, output_location: str, out: str | Path | BinaryIO) -> int:
    """Copy the result object to ``out`` (a path or a binary stream); bytes copied."""
    bucket, key = split_s3_url(output_location)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    if not isinstance(out, (str, Path)):
        return _copy(body, out)
    path = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as f:
            copied = _copy(body, f)
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would have made it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return copied


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy(body: Any, out: BinaryIO) -> int:
    copied = 0
    for chunk in body.iter_chunks(CHUNK):
        out.write(chunk)
        copied += len(chunk)
    out.flush()
    return copied
