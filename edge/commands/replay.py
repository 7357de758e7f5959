"""``edge replay``: parse the raw topic again from a moment on, into the parsed topic."""

from edge.ops.replay import add_arguments, run

__all__ = ["add_arguments", "run"]
