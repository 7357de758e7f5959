"""Structured logging for the edge services (structlog over the stdlib logger).

One line per state change (connected, paused, resumed, stopping), never one per
message: per-message facts are counters in ``edge.metrics``.
"""

from __future__ import annotations

import logging
import sys

import structlog

from edge.settings import LogSettings


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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(service=service)
