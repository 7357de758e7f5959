"""``edge config``: validate a config file and print the effective settings."""

from edge.ops.config_check import add_arguments, run

__all__ = ["add_arguments", "run"]
