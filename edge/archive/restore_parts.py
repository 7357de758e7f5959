"""Which archived parts hold a range, and their rows: the read side of the format.

The archive holds the hive layout ``<table>/site_id=<s>/date=<d>/`` with the
parts and ``_manifest.json`` (``edge.archive.layout``), in any ``ArchiveStore``
(local directory or S3). A day's parts are those its manifest lists (the
verified ones); a day without a manifest offers every ``part-*.parquet`` in it.
The manifest also says which columns are fields (its ``field_counts``); without
one, non-string columns are fields and string columns tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from edge.archive.layout import MANIFEST_NAME, PartKey, parse_part_key, table_prefix
from edge.archive.store import ArchiveStore, LocalStore


@dataclass(frozen=True)
class ArchivedPart:
    key: str  # relative to the archive root
    measurement: str  # the table's name, which the restored points carry
    site_id: str | None  # None: series without a site_id tag
    day: date
    rows: int | None  # from the manifest, when known
    fields: frozenset[str] | None  # from the manifest, when known


def fields_of(table_schema: pa.Schema) -> frozenset[str]:
    """Field columns when no manifest says: every non-string column but time."""
    return frozenset(f.name for f in table_schema if f.name != "time" and not pa.types.is_string(f.type))


def archived_parts(
    store: ArchiveStore, measurements: list[str] | None, sites: set[str] | None, first: date, last: date
) -> list[ArchivedPart]:
    """The verified parts of ``measurements`` (None: every table of the archive)
    for the days ``first``..``last`` (inclusive) of ``sites`` (None: every site)."""
    by_dir: dict[str, list[PartKey]] = {}
    for prefix in [table_prefix(m) for m in measurements] if measurements else [""]:
        for key in store.keys(prefix):
            found = parse_part_key(key)
            if found is None or not first <= found.day <= last or (sites and found.site_id not in sites):
                continue
            by_dir.setdefault(found.directory, []).append(found)
    out = []
    for directory, entries in sorted(by_dir.items()):
        manifest = store.get_json(f"{directory}/{MANIFEST_NAME}")
        listed = {p["file"]: p for p in (manifest or {}).get("parts", [])}
        for found in sorted(entries, key=lambda e: e.key):
            record = listed.get(found.file)
            if manifest is not None and record is None:
                continue  # not a verified part
            fields = frozenset(record["field_counts"]) if record else None
            rows = record["rows"] if record else None
            out.append(ArchivedPart(found.key, found.table, found.site_id, found.day, rows, fields))
    return out


def current_files(root: str) -> dict[str, list[str]]:
    """Every verified part of the local archive at ``root``, by table directory:
    what SQL over the archive reads (a part replaced by a consolidation, or one
    written but not yet in its manifest, is left out)."""
    store = LocalStore(root)
    out: dict[str, list[str]] = {}
    for part in archived_parts(store, None, None, date.min, date.max):
        out.setdefault(part.key.split("/", 1)[0], []).append(str(store.path(part.key)))
    return out


def read_batches(store: ArchiveStore, part: ArchivedPart, rows: int) -> Iterator[pa.RecordBatch]:
    """The part's rows, ``rows`` at a time."""
    with store.open_read(part.key) as f:
        yield from pq.ParquetFile(f).iter_batches(batch_size=rows)
