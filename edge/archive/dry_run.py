"""``edge archive --dry-run``: what the run would do, one line per window."""

from __future__ import annotations

from collections import defaultdict

from edge.archive.manifest import Step
from edge.archive.retention import DeleteVerdict
from edge.archive.window_work import WindowWork
from edge.archive.windows import Window


def print_plan(work: WindowWork, windows: list[Window], out) -> None:
    """One line per window: the next step, where it goes, and whether its delete
    would be allowed (a DELETE reaches the window in every policy)."""
    by_key: dict[tuple, list[Window]] = defaultdict(list)
    for w in windows:
        by_key[w.delete_key].append(w)
    verdicts: dict[tuple, DeleteVerdict] = {}
    for w in windows:
        decision, counts, _ = work.decide(w)
        then = ""
        if work.delete and decision.step is not Step.NOTHING:
            if w.delete_key not in verdicts:
                verdicts[w.delete_key] = work.preview_delete(by_key[w.delete_key])
            verdict = verdicts[w.delete_key]
            then = " then delete" if verdict.allowed else f" delete refused: {verdict.refused or verdict.changed}"
        print(
            f"{decision.step.value:12s} {w.label():60s} values={sum(counts.values())}"
            f" -> {work.store.url(w.part_key(decision.part_index))}{then}",
            file=out,
        )
