"""``edge status``: one table: each service's state, lag, last write, DLQ, last archive run."""

from edge.ops.status import add_arguments, run

__all__ = ["add_arguments", "run"]
