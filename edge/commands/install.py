"""``edge install``: install systemd units and a config skeleton."""

from edge.ops.install import add_arguments, run

__all__ = ["add_arguments", "run"]
