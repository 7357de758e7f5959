"""The archive run's metrics: live on its endpoint, and left in a textfile.

``edge archive`` runs from a timer and exits, so the run's outcome is also written
to ``[archive] metrics_textfile`` for node_exporter (``edge.runtime.textfile``).
The last successful run's time survives a failed run: it is read back from the
previous file before this run's file replaces it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from edge.runtime.textfile import load_gauge, write_textfile

PREFIX = "edge_archive_"
ROWS_EXPORTED = Gauge("edge_archive_rows_exported", "Rows exported to Parquet in this run")
WINDOWS_DONE = Gauge("edge_archive_windows_done", "Windows handled in this run (exported, skipped or failed)")
WINDOWS_FAILED = Gauge("edge_archive_windows_failed", "Windows that failed in this run")
LAST_SUCCESS = Gauge("edge_archive_last_success_timestamp_seconds", "Unix time the last run without a failed window ended")
SCHEMA_DIFFERENCES = Gauge(
    "edge_archive_schema_differences",
    "Schema questions (retention policies, field keys, tag keys) the InfluxDB nodes answered differently in this run",
)
MISPLACED_SITES = Gauge(
    "edge_archive_misplaced_sites",
    "Sites found on an InfluxDB node the site map does not give them (not archived from there) in this run",
)
DELETES_REFUSED = Counter(
    "edge_archive_deletes_refused",
    "Windows not deleted because the DELETE would remove points no archive holds",
    ["reason"],
)


def progress(windows_done: int, rows: int, failed: int) -> None:
    WINDOWS_DONE.set(windows_done)
    ROWS_EXPORTED.set(rows)
    WINDOWS_FAILED.set(failed)


def succeeded() -> None:
    """A run without a failed window ended now."""
    LAST_SUCCESS.set_to_current_time()


def write_run_textfile(path: str, success: bool) -> None:
    """This run's families in ``path``; a failed run keeps the last success's time."""
    if not success:
        load_gauge(path, LAST_SUCCESS)
    write_textfile(path, PREFIX)
