"""Errors an operator can cause, each with its exit code.

Raised anywhere below the command line; ``edge.cli`` turns one into a single line on
stderr (``edge <command>: <message>``) and its exit code. Anything else is a bug and
keeps its traceback. The table is in the README ("Exit codes").
"""

from __future__ import annotations


class OperatorError(Exception):
    """Something the operator can fix: says what and where, never a traceback."""

    exit_code = 1


class UsageError(OperatorError):
    """Bad, contradictory or empty command-line options."""

    exit_code = 2


class ConfigError(OperatorError):
    """A settings file, value, variable or secret file that cannot be used."""

    exit_code = 3


class UnreachableError(OperatorError):
    """A hop (RabbitMQ, Kafka, InfluxDB, S3/AWS) that cannot be reached or refuses us."""

    exit_code = 4


class NotFoundError(OperatorError):
    """A measurement, database, window, bucket or table that does not exist."""

    exit_code = 5


class RefusedError(OperatorError):
    """The command refused to act because acting would lose data (e.g. a DELETE
    that would remove points the archive never read)."""

    exit_code = 6
