"""What the parser returns and raises. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field


class ParseError(ValueError):
    """The message cannot be turned into any point; the text says why and
    ``reason`` is the machine-readable code the DLQ record carries
    (``parse_error``, or ``nonexistent_local_time`` for a local time the clocks
    skipped)."""

    #: Why the compiled path handed this message to the pure parser (None: it did not).
    fallback: str | None = None

    def __init__(self, message: str, reason: str = "parse_error"):
        super().__init__(message)
        self.reason = reason


@dataclass
class ParseResult:
    """Points of one message, plus what was unusable in it.

    ``points`` are ``(series_key, line)`` pairs. ``problems`` names the parts of an
    otherwise usable message that could not be used (the caller dead-letters the
    original as ``partial`` with them). Counts: ``dropped_values`` NaN/infinite
    readings removed; ``empty_points`` points not emitted because no field was left;
    ``duplicate_points`` points not emitted because an earlier point of the message
    has the same series and time; ``unusable_readings`` numbers/booleans that could
    not be stored (named in ``problems``); ``ambiguous_times_resolved`` /
    ``ambiguous_times_unresolved`` a repeated local hour told apart by the receive
    time / taken as its earlier occurrence for want of one. ``fallback``: why the
    compiled path handed the message to the pure parser (None: it did not, or it is
    not built).
    """

    points: list[tuple[bytes, bytes]]
    problems: list[str] = field(default_factory=list)
    dropped_values: int = 0
    empty_points: int = 0
    duplicate_points: int = 0
    unusable_readings: int = 0
    ambiguous_times_resolved: int = 0
    ambiguous_times_unresolved: int = 0
    fallback: str | None = None

    @property
    def lines(self) -> list[bytes]:
        return [line for _, line in self.points]
