"""Lambda entry point: S3 ObjectCreated on ``archive/**.parquet`` -> Glue partition.

For each object in the event: parse its key (outside the layout: log and skip), read
the Parquet footer with a ranged GET (the last 64 KiB; once more if the footer is
larger), make sure the measurement's table exists with the file's columns, then make
sure the (site_id, date) partition exists.

Failure policy: what retrying cannot fix (key outside the layout, object already
gone, not a Parquet file) is logged and skipped. Anything else (throttling, access
denied, Glue unavailable) raises, so Lambda retries the event and, after its retries,
sends it to the on-failure queue with the error; the scheduled crawler also catches
up on anything missed.

Configuration (environment): ``DATABASE_NAME`` (required), ``ARCHIVE_PREFIX``
(default ``archive/``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import boto3

from . import catalog
from .layout import OutsideLayout, parse_key
from .parquet_schema import NeedMoreBytes, ParquetFooterError, columns_from_tail

log = logging.getLogger("upload")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

TAIL_BYTES = 64 * 1024
_clients: tuple[Any, Any] | None = None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    global _clients
    if _clients is None:
        _clients = (boto3.client("glue"), boto3.client("s3"))
    glue, s3 = _clients
    return process_event(
        event,
        glue=glue,
        s3=s3,
        database=os.environ["DATABASE_NAME"],
        prefix=os.environ.get("ARCHIVE_PREFIX", "archive/"),
    )


def s3_objects(event: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(bucket, key) of each ObjectCreated record; keys arrive URL-encoded."""
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        yield s3["bucket"]["name"], unquote_plus(s3["object"]["key"])


def process_event(event: dict[str, Any], *, glue: Any, s3: Any, database: str, prefix: str) -> dict[str, int]:
    counts = {"created": 0, "updated": 0, "exists": 0, "ignored": 0}
    for bucket, key in s3_objects(event):
        outcome = process_object(bucket, key, glue=glue, s3=s3, database=database, prefix=prefix)
        counts[outcome] += 1
    return counts


def process_object(bucket: str, key: str, *, glue: Any, s3: Any, database: str, prefix: str) -> str:
    try:
        obj = parse_key(key, prefix)
    except OutsideLayout as exc:
        log.warning("object ignored: outside the archive layout", extra={"bucket": bucket, "key": key, "reason": str(exc)})
        return "ignored"
    try:
        columns = read_columns(s3, bucket, key)
    except s3.exceptions.NoSuchKey:
        log.warning("object ignored: gone before it was read", extra={"bucket": bucket, "key": key})
        return "ignored"
    except ParquetFooterError as exc:
        log.error("object ignored: not a readable Parquet file", extra={"bucket": bucket, "key": key, "reason": str(exc)})
        return "ignored"
    table = catalog.ensure_table(glue, database, obj, bucket, columns)
    outcome = catalog.ensure_partition(glue, database, obj, bucket, table)
    log.info(
        "partition registered",
        extra={"table": obj.table_name, "site_id": obj.site_id, "date": obj.date, "outcome": outcome, "key": key},
    )
    return outcome


def read_columns(s3: Any, bucket: str, key: str) -> list:
    """Columns from the object's Parquet footer, fetched with ranged GETs."""
    tail, size = _get_tail(s3, bucket, key, TAIL_BYTES)
    try:
        return columns_from_tail(tail, size)
    except NeedMoreBytes as more:
        tail, size = _get_tail(s3, bucket, key, more.size)
        return columns_from_tail(tail, size)


def _get_tail(s3: Any, bucket: str, key: str, length: int) -> tuple[bytes, int | None]:
    response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{length}")
    body = response["Body"].read()
    # "bytes 100-199/200": the object's size is after the slash.
    content_range = response.get("ContentRange") or ""
    size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(body)
    return body, size
