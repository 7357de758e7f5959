"""Structured logging for the edge services (structlog), on stderr.

One line per state change (connected, paused, resumed, stopping), never one per
message: per-message facts are counters in the metrics.

Format (``[log] format``): ``json`` is one JSON object per line, what the journal
keeps; ``console`` is structlog's readable rendering; ``auto`` (the default) picks
``console`` when stderr is a terminal and not the journal (``$JOURNAL_STREAM``),
``json`` otherwise (systemd, pipes, files). Logs never go to stdout, which belongs
to a command's own output.

librdkafka logs through Python too: ``LibrdkafkaLog`` is the ``logger`` every
Kafka client of the project gets (``edge.kafka.config``). Its syslog-level lines
become ``librdkafka`` events in the same format, and a line that repeats (a broker
that stays down reports the same failed connect several times a second) is
written once per state change: again only when its text changes, or as a reminder
after ``repeat_after_s`` with the number of repeats held back.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable

import structlog

from edge.config.settings import LogSettings


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was
    configured (a stream replaced or closed since must not break logging)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def use_console(format_: str, stream=None, environ=None) -> bool:
    """Whether ``auto`` means the readable console format here."""
    if format_ != "auto":
        return format_ == "console"
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    if environ.get("JOURNAL_STREAM"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_service = {"name": ""}  # the configured service: librdkafka's events carry it too


def configure(settings: LogSettings, service: str) -> structlog.stdlib.BoundLogger:
    _service["name"] = service
    level = getattr(logging, settings.level.upper(), logging.INFO)
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console(settings.format)
        else structlog.processors.JSONRenderer()
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


# ------------------------------------------------------------------ librdkafka

# Parts of a librdkafka line that change while its meaning does not.
_VOLATILE = (  # in this order: the second pattern ends at the first ")"
    re.compile(r",?\s*\d+ identical error\(s\) suppressed"),
    re.compile(r"\s*\(after \d+ms in state [A-Z_]+[^)]*\)"),
)
_THREAD = re.compile(r"^\[thrd:([^\]]*)\]:\s*")


def librdkafka_line(text: str) -> tuple[str, str]:
    """(thread or broker, message) of a librdkafka log line."""
    m = _THREAD.match(text)
    if not m:
        return "", text
    return m.group(1), text[m.end():]


def same_state(message: str) -> str:
    """The message without its counters and timings: equal means no state change."""
    for pattern in _VOLATILE:
        message = pattern.sub("", message)
    return message.strip()


class LibrdkafkaLog:
    """confluent_kafka's ``logger``: librdkafka's lines as rate-limited log events.

    confluent_kafka calls ``log(level, "%s [%s] %s", facility, client, text)`` from
    whichever thread polls the client.
    """

    def __init__(self, repeat_after_s: float = 300.0, clock: Callable[[], float] = time.monotonic, emit=None):
        self.repeat_after_s = repeat_after_s
        self.clock = clock
        self._emit = emit or _emit_structlog
        self._lock = threading.Lock()
        # (facility, thread) -> [state, time written, repeats held back]
        self._last: dict[tuple[str, str], list] = {}

    def log(self, level: int, fmt: str, *args) -> None:
        if len(args) == 3:
            facility, client, text = (str(a) for a in args)
        else:
            facility, client, text = "", "", fmt % args if args else fmt
        thread, message = librdkafka_line(text)
        state = same_state(message)
        now = self.clock()
        with self._lock:
            last = self._last.get((facility, thread))
            if last is not None and last[0] == state and now - last[1] < self.repeat_after_s:
                last[2] += 1
                return
            repeats = last[2] if last is not None and last[0] == state else 0
            self._last[(facility, thread)] = [state, now, 0]
        fields = {"facility": facility, "client": client, "thread": thread, "message": message}
        if repeats:
            fields["repeated"] = repeats
        self._emit(level, fields)

    # confluent_kafka only calls log(); these keep it usable as a logging.Logger.
    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return True


def _emit_structlog(level: int, fields: dict) -> None:
    structlog.get_logger().log(level, "librdkafka", service=_service["name"], **fields)


def librdkafka_logger() -> LibrdkafkaLog:
    """A fresh logger for one Kafka client (each client has its own states)."""
    return LibrdkafkaLog()
