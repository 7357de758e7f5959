"""``edge parse``: Kafka raw topic -> parsed topic and DLQ."""

from edge.parser.stage import add_arguments, run

__all__ = ["add_arguments", "run"]
