"""InfluxDB's rule for points of one series at one time, over Arrow tables. Pure.

InfluxDB keeps one point per series (measurement + tag set) and time: a second
write of that point merges its fields into the first, and a field written again
replaces the earlier value. ``merge_points`` applies that rule to a day's archived
parts and the points InfluxDB holds for it now, oldest first, so the consolidated
part holds each (series, time) once with InfluxDB's values.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

TIME = "time"
_ORDER = "__edge_order"


def merge_points(tables: list[pa.Table], fields: Iterable[str]) -> pa.Table:
    """One row per (tags, time): for each field the latest non-null value.

    ``tables`` oldest first (rows within a table are one write each); columns
    missing from a table are null there. Every column that is not a field is part
    of the key (time and the tags). Rows come out sorted by time, then tags.
    """
    combined = pa.concat_tables(tables, promote_options="permissive").combine_chunks()
    names = combined.column_names
    field_set = set(fields)
    values = [n for n in names if n in field_set]
    keys = [n for n in names if n not in field_set]
    ordered = combined.append_column(_ORDER, pa.array(range(combined.num_rows), pa.int64()))
    # Without threads the groups see their rows in order: "last" is the latest
    # write, and it skips nulls: a write without a field leaves the field as it was.
    grouped = ordered.group_by(keys, use_threads=False).aggregate(
        [(f, "last", pc.ScalarAggregateOptions(skip_nulls=True)) for f in values]
    )
    grouped = grouped.rename_columns([n.removesuffix("_last") if n.endswith("_last") and n[:-5] in field_set else n
                                      for n in grouped.column_names])
    merged = grouped.select(names)
    return merged.sort_by([(n, "ascending") for n in [TIME] + [k for k in keys if k != TIME]])


def field_counts(table: pa.Table, fields: Iterable[str]) -> dict[str, int]:
    """Non-null values per field, the fields that have any (as a part's manifest counts them)."""
    counts = {}
    for name in sorted(set(fields) & set(table.column_names)):
        column = table.column(name)
        if n := len(column) - column.null_count:
            counts[name] = n
    return counts
