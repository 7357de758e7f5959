"""``edge archive``: InfluxDB -> Parquet -> S3, then bounded retention."""

from edge.archive.archiver import add_arguments, run

__all__ = ["add_arguments", "run"]
