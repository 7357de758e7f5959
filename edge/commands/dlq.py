"""``edge dlq``: list, show and redrive dead letters."""

from edge.ops.dlq import add_arguments, run

__all__ = ["add_arguments", "run"]
