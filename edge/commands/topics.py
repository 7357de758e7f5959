"""``edge topics``: create the raw, parsed and DLQ topics (idempotent)."""

from edge.kafka.topics import add_arguments, run

__all__ = ["add_arguments", "run"]
