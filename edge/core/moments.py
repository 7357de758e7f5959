"""Moments given on an operator command's line (``--from``, ``--since``, ``--start``). Pure.

ISO 8601 date or date-time; UTC unless the text names an offset (``Z`` too).
Used as an argparse ``type=``: a bad value is a usage error naming the format.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def moment(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or date-time (2024-06-01, 2024-06-01T12:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
