"""Counts in words for operator output: ``1 record``, ``2 records``, ``1 consumer
group``; one helper so that no message says ``1 failures``."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``plural`` when not noun + s)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """The noun alone, agreeing with ``n``: ``consumer group a``, ``consumer groups a, b``."""
    return singular if n == 1 else plural or singular + "s"
