"""Capped exponential backoff with jitter: the one retry delay every service uses.

A delay, not a sleep: callers wait with ``stop.wait(delay)`` or keep a deadline in
their loop, so a SIGTERM or a rebalance is never stuck behind a retry. That is why
this is a dozen lines instead of tenacity, whose retries wrap a blocking call.
"""

from __future__ import annotations

import random


class Backoff:
    """initial, 2x, 4x ... up to maximum; each delay drawn from [ceiling/2, ceiling]
    so that many clients failing together do not retry together."""

    def __init__(self, initial_s: float, maximum_s: float, rng: random.Random | None = None):
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * (2**self.attempts))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
