"""Glue catalog entries for archive days: one table per measurement, one partition
per (site_id, date).

Tables look like the ones a Glue crawler makes for Parquet (classification parquet,
Hive Parquet SerDe), so the scheduled crawler and this code agree on the same table.
Every operation is idempotent: creating what exists is a no-op, columns are only
ever added (a column's type, once set, is kept), and concurrent writers are resolved
by Glue's table VersionId (optimistic locking) with a re-read and retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .layout import PARTITION_KEYS, ArchiveDay
from .manifest import Column

log = logging.getLogger("upload.catalog")

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
# What UpdateTable accepts of what GetTable returns.
TABLE_INPUT_KEYS = (
    "Name", "Description", "Owner", "LastAccessTime", "LastAnalyzedTime", "Retention",
    "StorageDescriptor", "PartitionKeys", "ViewOriginalText", "ViewExpandedText",
    "TableType", "Parameters", "TargetTable",
)
PARTITION_INPUT_KEYS = ("Values", "LastAccessTime", "StorageDescriptor", "Parameters", "LastAnalyzedTime")
UPDATE_ATTEMPTS = 5


@dataclass(frozen=True)
class ColumnMerge:
    columns: list[dict[str, str]]  # the table's columns after the merge, in order
    added: list[str]
    type_conflicts: list[str]  # "name: table type <- file type", kept as the table's


def glue_columns(columns: list[Column]) -> list[dict[str, str]]:
    """Glue column list for a day's columns: names lower-cased (Glue and Athena are
    case-insensitive), duplicates and partition keys left out (Athena rejects a
    column that repeats a partition key; its value comes from the path)."""
    out: list[dict[str, str]] = []
    seen: set[str] = set(PARTITION_KEYS)
    for column in columns:
        name = column.name.lower()
        if name in seen:
            continue
        seen.add(name)
        out.append({"Name": name, "Type": column.type})
    return out


def merge_columns(existing: list[dict[str, Any]], incoming: list[dict[str, str]]) -> ColumnMerge:
    """Existing columns first, unchanged; incoming columns they lack appended."""
    by_name = {c["Name"].lower(): c for c in existing}
    merged = [dict(c) for c in existing]
    added: list[str] = []
    conflicts: list[str] = []
    for column in incoming:
        current = by_name.get(column["Name"])
        if current is None:
            merged.append(dict(column))
            added.append(column["Name"])
        elif current["Type"].lower() != column["Type"].lower():
            conflicts.append(f"{column['Name']}: {current['Type']} <- {column['Type']}")
    return ColumnMerge(merged, added, conflicts)


def storage_descriptor(location: str, columns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Columns": columns,
        "Location": location,
        "InputFormat": PARQUET_INPUT,
        "OutputFormat": PARQUET_OUTPUT,
        "Compressed": False,
        "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        "StoredAsSubDirectories": False,
    }


def new_table_input(day: ArchiveDay, bucket: str, columns: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "Name": day.table_name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "typeOfData": "file"},
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in PARTITION_KEYS],
        "StorageDescriptor": storage_descriptor(day.table_location(bucket), columns),
    }


def table_input_from(table: dict[str, Any]) -> dict[str, Any]:
    return {key: table[key] for key in TABLE_INPUT_KEYS if key in table}


def ensure_table(glue: Any, database: str, day: ArchiveDay, bucket: str, columns: list[Column]) -> dict[str, Any]:
    """The measurement's table, created on first sight and widened when the file has
    columns the table lacks. Returns the table as GetTable describes it."""
    incoming = glue_columns(columns)
    for _ in range(UPDATE_ATTEMPTS):
        table = _get_table(glue, database, day.table_name)
        if table is None:
            try:
                glue.create_table(DatabaseName=database, TableInput=new_table_input(day, bucket, incoming))
            except glue.exceptions.AlreadyExistsException:
                continue  # created concurrently: merge into it on the next pass
            log.info("table_created", extra={"table": day.table_name, "columns": len(incoming)})
            continue  # re-read: return what Glue stored
        merge = merge_columns(table.get("StorageDescriptor", {}).get("Columns", []), incoming)
        if merge.type_conflicts:
            log.warning(
                "column_type_kept",
                extra={"table": day.table_name, "conflicts": merge.type_conflicts},
            )
        if not merge.added:
            return table
        table_input = table_input_from(table)
        table_input["StorageDescriptor"] = {**table_input.get("StorageDescriptor", {}), "Columns": merge.columns}
        kwargs: dict[str, Any] = {"DatabaseName": database, "TableInput": table_input}
        if table.get("VersionId"):
            kwargs["VersionId"] = table["VersionId"]
        try:
            glue.update_table(**kwargs)
        except glue.exceptions.ConcurrentModificationException:
            continue
        log.info("table_columns_added", extra={"table": day.table_name, "added": merge.added})
    raise RuntimeError(f"table {database}.{day.table_name} kept changing; gave up after {UPDATE_ATTEMPTS} attempts")


def ensure_partition(glue: Any, database: str, day: ArchiveDay, bucket: str, table: dict[str, Any]) -> str:
    """The object's partition, with the table's columns. Returns what was done:
    ``created``, ``updated`` (columns caught up with the table) or ``exists``."""
    columns = table["StorageDescriptor"]["Columns"]
    wanted = storage_descriptor(day.partition_location(bucket), columns)
    try:
        current = glue.get_partition(
            DatabaseName=database, TableName=day.table_name, PartitionValues=day.partition_values
        )["Partition"]
    except glue.exceptions.EntityNotFoundException:
        current = None
    if current is None:
        try:
            glue.create_partition(
                DatabaseName=database,
                TableName=day.table_name,
                PartitionInput={"Values": day.partition_values, "StorageDescriptor": wanted},
            )
            return "created"
        except glue.exceptions.AlreadyExistsException:
            return "exists"  # registered concurrently by a duplicate event
    if _column_names(current["StorageDescriptor"].get("Columns", [])) == _column_names(columns):
        return "exists"
    partition_input = {key: current[key] for key in PARTITION_INPUT_KEYS if key in current}
    partition_input["StorageDescriptor"] = {**current["StorageDescriptor"], "Columns": columns}
    glue.update_partition(
        DatabaseName=database,
        TableName=day.table_name,
        PartitionValueList=day.partition_values,
        PartitionInput=partition_input,
    )
    return "updated"


def _column_names(columns: list[dict[str, Any]]) -> list[str]:
    return [c["Name"].lower() for c in columns]


def _get_table(glue: Any, database: str, name: str) -> dict[str, Any] | None:
    try:
        return glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None
