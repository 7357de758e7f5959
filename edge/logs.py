"""Structured logging for the edge services (structlog over the stdlib logger).

One line per state change (connected, paused, resumed, stopping), never one per
message: per-message facts are counters in ``edge.metrics``.
"""

from __future__ import annotations

import logging
import sys

import structlog

from edge.settings import LogSettings


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was
    configured (a stream replaced or closed since must not break logging)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(settings: LogSettings, service: str) -> structlog.stdlib.BoundLogger:
    level = getattr(logging, settings.level.upper(), logging.INFO)
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(service=service)
