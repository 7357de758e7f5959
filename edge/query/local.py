"""SQL over the local archive with DuckDB, in the shape one runs in Athena.

Each measurement directory of the archive becomes a view named after it, over
``<measurement>/**/*.parquet`` with hive partitioning on, so
``SELECT count(*) FROM field6 WHERE site_id = '000001' AND "date" = '2023-07-01'``
reads the same here as in Athena. Partition values stay strings (``site_id``
``000001`` is not the number 1), as in the Glue catalog. Files of one measurement
are unioned by column name (schema drift: a field added later is NULL before).
Timestamps are shown in UTC. The result is CSV text with a header row.

``files`` (table -> its Parquet paths) replaces the glob: ``edge query --local``
passes the parts the days' manifests list (``edge.archive.restore_parts.
current_files``), so a consolidation in progress is seen before or after its
manifest switch, never half-way (old and new parts both, or neither).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import duckdb


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def measurement_dirs(archive_dir: str | Path) -> list[Path]:
    root = Path(archive_dir)
    if not root.is_dir():
        return []
    return sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")) and any(d.rglob("*.parquet"))
    )


def connect(archive_dir: str | Path, files: dict[str, list[str]] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per archived measurement (over ``files``
    when given, else every ``*.parquet`` under the measurement's directory)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    for d in measurement_dirs(archive_dir):
        if files is None:
            source = _quote_str(str(d / "**" / "*.parquet"))
        elif files.get(d.name):
            source = "[" + ", ".join(_quote_str(f) for f in files[d.name]) + "]"
        else:
            continue
        con.execute(
            f"CREATE VIEW {_quote_ident(d.name)} AS SELECT * FROM read_parquet("
            f"{source}, hive_partitioning = true, hive_types_autocast = false,"
            " union_by_name = true)"
        )
    return con


def _cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return value


class LocalQueryError(Exception):
    """DuckDB refused the statement; the message is one line (no caret diagram)."""


class MissingTable(LocalQueryError):
    def __init__(self, name: str, archive_dir: str | Path, tables: list[str]):
        self.name = name
        self.tables = tables
        there = f"tables there: {', '.join(tables)}" if tables else "it holds no Parquet files"
        super().__init__(f"no table {name} in the archive at {Path(archive_dir).resolve()} ({there})")


_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")


def one_line(message: str) -> str:
    """DuckDB's error without the ``LINE n:`` excerpt and its caret line."""
    text = message.split("\n\nLINE ", 1)[0]
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def tables(archive_dir: str | Path) -> list[str]:
    """The measurements archived under ``archive_dir``: the tables a query can name."""
    return [d.name for d in measurement_dirs(archive_dir)]


def run_local_sql(sql: str, archive_dir: str, files: dict[str, list[str]] | None = None) -> str:
    """Run ``sql`` over the archive under ``archive_dir`` (``files``: see ``connect``);
    the result as CSV text. Raises ``MissingTable`` (naming the directory and what
    it holds) or ``LocalQueryError``."""
    con = connect(archive_dir, files)
    try:
        return _csv(con.execute(sql))
    except duckdb.Error as exc:
        missing = _MISSING_TABLE.search(str(exc))
        if isinstance(exc, duckdb.CatalogException) and missing:
            raise MissingTable(missing.group(1), archive_dir, tables(archive_dir)) from None
        raise LocalQueryError(one_line(str(exc))) from None
    except RuntimeError as exc:  # DuckDB's answer to Ctrl-C
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise
    finally:
        con.close()


def _csv(cur) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if cur.description:
        writer.writerow([c[0] for c in cur.description])
        while rows := cur.fetchmany(10_000):
            writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()
