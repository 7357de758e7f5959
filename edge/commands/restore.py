"""``edge restore``: write archived points back into an InfluxDB database."""

from edge.ops.restore import add_arguments, run

__all__ = ["add_arguments", "run"]
