"""Lambda entry point: S3 ObjectCreated on ``archive/**/_manifest.json`` -> Glue
table and partition.

The archiver writes a day's manifest after each of its Parquet parts was uploaded
and verified, so the manifest, not the Parquet object, triggers the function. For
each manifest in the event: parse its key (outside the layout: logged and ignored),
read it (JSON, a few KB), make sure the measurement's table exists with the day's
columns, then make sure the (site_id, date) partition exists. The Parquet objects
themselves are never read.

Failure policy:

- what no retry can fix and that is not ours (a key outside the layout, an object
  already gone) is logged and ignored;
- a manifest that is malformed or does not match its key is logged, skipped (the
  other records of the event go on), and parked in the failure queue with the
  reason (see ``failures``), without pointless retries;
- anything else (throttling, access denied, Glue unavailable) raises, so Lambda
  retries the event and, after its retries, sends it to the same queue with the
  error. The scheduled crawler catches up on anything missed either way.

Configuration (environment): ``DATABASE_NAME`` (required), ``ARCHIVE_PREFIX``
(default ``archive/``), ``FAILED_EVENTS_QUEUE_URL`` (where rejected manifests go).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import boto3

from . import catalog
from .failures import FailureQueue
from .layout import OutsideLayout, parse_manifest_key
from .manifest import MAX_MANIFEST_BYTES, ManifestError, read_manifest

log = logging.getLogger("upload")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

OUTCOMES = ("created", "updated", "exists", "ignored", "rejected")
_clients: tuple[Any, Any, Any] | None = None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    global _clients
    if _clients is None:
        _clients = (boto3.client("glue"), boto3.client("s3"), boto3.client("sqs"))
    glue, s3, sqs = _clients
    return process_event(
        event,
        glue=glue,
        s3=s3,
        failures=FailureQueue(sqs, os.environ.get("FAILED_EVENTS_QUEUE_URL"), context),
        database=os.environ["DATABASE_NAME"],
        prefix=os.environ.get("ARCHIVE_PREFIX", "archive/"),
    )


def s3_records(event: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(record, bucket, key) of each ObjectCreated record; keys arrive URL-encoded."""
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        yield record, s3["bucket"]["name"], unquote_plus(s3["object"]["key"])


def process_event(
    event: dict[str, Any], *, glue: Any, s3: Any, failures: FailureQueue, database: str, prefix: str
) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for record, bucket, key in s3_records(event):
        try:
            outcome = register_day(bucket, key, glue=glue, s3=s3, database=database, prefix=prefix)
        except ManifestError as exc:
            log.error("manifest_rejected", extra={"bucket": bucket, "key": key, "reason": str(exc)})
            failures.reject(record, bucket, key, str(exc))
            outcome = "rejected"
        counts[outcome] += 1
    return counts


def register_day(bucket: str, key: str, *, glue: Any, s3: Any, database: str, prefix: str) -> str:
    """Table and partition for the day whose manifest is at ``key``; the outcome."""
    try:
        day = parse_manifest_key(key, prefix)
    except OutsideLayout as exc:
        log.warning("manifest_ignored", extra={"bucket": bucket, "key": key, "reason": str(exc)})
        return "ignored"
    try:
        data = read_object(s3, bucket, key)
    except s3.exceptions.NoSuchKey:
        log.warning("manifest_ignored", extra={"bucket": bucket, "key": key, "reason": "gone before it was read"})
        return "ignored"
    schema = read_manifest(data, day)
    if schema.type_conflicts:
        log.warning("column_type_kept", extra={"key": key, "conflicts": schema.type_conflicts})
    table = catalog.ensure_table(glue, database, day, bucket, schema.columns)
    outcome = catalog.ensure_partition(glue, database, day, bucket, table)
    log.info(
        "partition_registered",
        extra={"table": day.table_name, "site_id": day.site_id, "date": day.date, "parts": schema.parts,
               "outcome": outcome, "key": key},
    )
    return outcome


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    response = s3.get_object(Bucket=bucket, Key=key)
    size = response.get("ContentLength", 0)
    if size > MAX_MANIFEST_BYTES:
        response["Body"].close()
        raise ManifestError(f"manifest is {size} bytes, more than {MAX_MANIFEST_BYTES}")
    return response["Body"].read()
