"""Where ``edge restore`` finds archived days: the local archive directory or S3.

Both hold the hive layout ``<measurement>/site_id=<s>/date=<d>/`` with the
parts and ``_manifest.json`` (``edge.archive.plan``). A day's parts are those its
manifest lists (the verified ones); a day without a manifest offers every
``part-*.parquet`` in it. The manifest also says which columns are fields (its
``field_counts``); without one, non-string columns are fields and string columns
tags.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from edge.archive.plan import MANIFEST_NAME, NO_SITE_PARTITION, hive_escape
from edge.config.settings import ArchiveSettings


@dataclass(frozen=True)
class ArchivedPart:
    key: str  # relative to the archive root
    measurement: str
    site_id: str | None  # None: series without a site_id tag
    day: date
    rows: int | None  # from the manifest, when known
    fields: frozenset[str] | None  # from the manifest, when known


def day_of_key(key: str, measurement: str) -> tuple[str | None, date] | None:
    """(site_id, day) of a part key ``<m>/site_id=<s>/date=<d>/part-N.parquet``."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != hive_escape(measurement):
        return None
    site, day, name = parts[1:]
    if not (site.startswith("site_id=") and day.startswith("date=") and name.endswith(".parquet")):
        return None
    if name.startswith("."):
        return None  # a temporary file
    try:
        when = date.fromisoformat(day.removeprefix("date="))
    except ValueError:
        return None
    site_id = site.removeprefix("site_id=")
    return (None if site_id == NO_SITE_PARTITION else unquote(site_id)), when


def fields_of(table_schema: pa.Schema) -> frozenset[str]:
    """Field columns when no manifest says: every non-string column but time."""
    return frozenset(f.name for f in table_schema if f.name != "time" and not pa.types.is_string(f.type))


class ArchiveReader:
    """Lists and reads archive parts, locally or on S3."""

    def __init__(self, settings: ArchiveSettings, use_s3: bool, client=None):
        self.root = Path(settings.archive.directory)
        self.use_s3 = use_s3
        if use_s3:
            from edge.archive.s3 import make_client

            self.bucket = settings.s3.bucket
            self.prefix = settings.s3.key_prefix
            self.client = client or make_client(settings.s3)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.use_s3 else str(self.root)

    def _keys(self, measurement: str) -> Iterator[str]:
        top = hive_escape(measurement) + "/"
        if self.use_s3:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + top)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix):]
        else:
            base = self.root / top
            if base.is_dir():
                for path in sorted(base.glob("site_id=*/date=*/*")):
                    yield path.relative_to(self.root).as_posix()

    def read_bytes(self, key: str) -> bytes:
        if self.use_s3:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        return (self.root / key).read_bytes()

    def _manifest(self, directory: str) -> dict | None:
        try:
            return json.loads(self.read_bytes(f"{directory}/{MANIFEST_NAME}"))
        except (FileNotFoundError, KeyError):
            return None
        except Exception as exc:  # S3's NoSuchKey
            if "NoSuchKey" in type(exc).__name__ or "NoSuchKey" in str(exc):
                return None
            raise

    def parts(self, measurement: str, sites: set[str] | None, first: date, last: date) -> list[ArchivedPart]:
        """The parts of ``measurement`` for the days ``first``..``last`` (inclusive)."""
        by_dir: dict[str, list[tuple[str, str | None, date]]] = {}
        for key in self._keys(measurement):
            found = day_of_key(key, measurement)
            if found is None:
                continue
            site, day = found
            if not first <= day <= last or (sites and site not in sites):
                continue
            by_dir.setdefault(key.rsplit("/", 1)[0], []).append((key, site, day))
        out = []
        for directory, entries in sorted(by_dir.items()):
            manifest = self._manifest(directory)
            listed = {p["file"]: p for p in (manifest or {}).get("parts", [])}
            for key, site, day in sorted(entries):
                record = listed.get(key.rsplit("/", 1)[1])
                if manifest is not None and record is None:
                    continue  # not a verified part
                fields = frozenset(record["field_counts"]) if record else None
                out.append(ArchivedPart(key, measurement, site, day, record["rows"] if record else None, fields))
        return out

    def batches(self, part: ArchivedPart, rows: int) -> Iterator[pa.RecordBatch]:
        source = pq.ParquetFile(io.BytesIO(self.read_bytes(part.key)) if self.use_s3 else self.root / part.key)
        yield from source.iter_batches(batch_size=rows)
