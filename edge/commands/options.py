"""Option types shared by the ``edge`` subcommands (argparse ``type=``). Pure."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(minimum: float, kind: Callable[[str], float] = int, what: str = "") -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` no smaller than ``minimum``."""
    noun = what or ("a whole number" if kind is int else "a number")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value != value or value < minimum:  # NaN compares false
            raise argparse.ArgumentTypeError(f"must be {noun} >= {minimum:g} (got {text})")
        return value

    parse.__name__ = f"at_least_{minimum:g}"
    return parse


def above(minimum: float) -> Callable[[str], float]:
    """An argparse type: a number strictly greater than ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > minimum:
            raise argparse.ArgumentTypeError(f"must be a number > {minimum:g} (got {text})")
        return value

    parse.__name__ = f"above_{minimum:g}"
    return parse
