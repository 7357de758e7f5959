"""``edge sink``: Kafka parsed topic -> InfluxDB."""

from edge.sink.stage import add_arguments, run

__all__ = ["add_arguments", "run"]
