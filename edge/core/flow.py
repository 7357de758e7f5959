"""What a stage holds, and whether its input should be paused: pure values, no client.

A stage never pauses, resumes or seeks its input itself. After each step it
returns a ``Holding``: how much it holds against its bound, whether it is blocked
(and why), which partitions it wants read again from which offset, and how soon
it needs to be called again. The runner (``edge.kafka.flow``) turns that into
pause, resume and seek, the same way for every stage.

The rule, in ``pause_reason``: a blocked stage is paused for its own reason
(``influxdb_unavailable``, ``delivery_failed``); a stage at its bound is paused as
``buffer_full`` and resumed only once it is down to ``RESUME_AT`` of the bound
(hysteresis: a stage hovering at its bound is not paused and resumed on every
batch, and each resume costs a fetch from the broker).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

BUFFER_FULL = "buffer_full"
RESUME_AT = 0.75  # of the bound


@dataclass(frozen=True, slots=True)
class Holding:
    """One stage's answer after a step.

    ``held`` / ``bound``: what it holds now and the most it should (records held,
    outputs in flight); ``nbytes`` / ``max_bytes`` the same in bytes where the
    stage bounds bytes too (0 = unbounded). ``blocked``: why it cannot take more
    however little it holds (``None`` when it can). ``rewind``: partition -> offset
    to read again from (records it let go of and still needs). ``due_in_s``: the
    most the runner may wait for input before the next step.
    """

    held: int = 0
    bound: int = 0
    nbytes: int = 0
    max_bytes: int = 0
    blocked: str | None = None
    rewind: Mapping[int, int] = field(default_factory=dict)
    due_in_s: float = 0.05

    @property
    def fill(self) -> float:
        """The larger of the two fill ratios (0 when nothing is bounded)."""
        lines = self.held / self.bound if self.bound else 0.0
        size = self.nbytes / self.max_bytes if self.max_bytes else 0.0
        return max(lines, size)


def pause_reason(holding: Holding, paused_for: str | None) -> str | None:
    """Why input should be paused now (``None``: fetch), given why it is paused
    now (``paused_for``, ``None`` if it is not)."""
    if holding.blocked:
        return holding.blocked
    fill = holding.fill
    if fill >= 1.0:
        return BUFFER_FULL
    if paused_for is not None and fill > RESUME_AT:
        return BUFFER_FULL  # unblocked, but still too full to take more: not yet
    return None
