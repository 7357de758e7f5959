"""Phase 1 over worker processes: one window per task (``archive.workers``).

Decoding InfluxDB's MessagePack and encoding Parquet hold the GIL, so the
parallelism is processes: each worker opens its own InfluxDB client and store
(``_start``) and runs ``WindowWork.archive_window`` for the windows it is given;
the parent keeps the order of the run (phase 2 only once every window is done),
the summary, the progress and what stops the run. A worker's memory is bounded
as one run's is (chunks of ``archive.chunk_rows``, row groups of
``archive.row_group_rows``; a consolidation holds one site-day); a worker is
replaced after ``TASKS_PER_WORKER`` windows so an allocator's high-water mark
does not stay, and each reports its peak RSS (``ArchiveSummary.worker_peak_rss``).
Workers are spawned (a forkserver's workers would keep it, and themselves, alive)
and die with the parent (Linux: ``PR_SET_PDEATHSIG``, and a worker whose parent
is already gone when it starts exits), so a killed run never leaves a worker
exporting a window the next run takes too.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

from edge.archive.scope import Scope
from edge.archive.summary import ArchiveSummary
from edge.archive.windows import Window
from edge.config.settings import ArchiveSettings

TASKS_PER_WORKER = 64
_work = None  # this worker's WindowWork


def worker_count(configured: int) -> int:
    """``archive.workers``: 0 means the machine's cores."""
    return configured or os.cpu_count() or 1


def _die_with_parent(parent: int) -> None:
    """SIGKILL this worker when the archiver dies; exit now if it already has
    (it may die while the worker is still starting)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(1)


def _start(parent: int, values: dict, delete: bool, scope: Scope) -> None:
    global _work
    _die_with_parent(parent)
    settings = ArchiveSettings.model_validate(values)  # the parent's settings, not re-read
    from edge.archive.nodes import NodeArchiveSource
    from edge.archive.store import LocalStore
    from edge.archive.stores import archive_store
    from edge.archive.window_work import WindowWork
    from edge.runtime.logs import configure

    log = configure(settings.log, "archive").bind(service="archive", worker=os.getpid())
    local = LocalStore(settings.archive.directory)
    target = archive_store(settings)
    if isinstance(target, LocalStore) and target.root == local.root:
        target = local
    _work = WindowWork(settings, NodeArchiveSource(settings.influxdb, scope.node), target, local, delete, log, scope)


def _one(window: Window):
    """One window in this worker: (index to delete or None, its summary, the error or None, pid, peak RSS bytes)."""
    summary = ArchiveSummary()
    index, error = None, None
    try:
        index = _work.archive_window(window, summary)
    except Exception as exc:  # the parent decides what it stops
        error = exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return index, summary, error, os.getpid(), peak


def _picklable(exc: Exception) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:
        return False


def _ready() -> int:
    return os.getpid()


class WindowPool:
    """``workers`` processes, started when made: made before the plan, their start
    (an interpreter, pyarrow: about 0.6 s each) overlaps InfluxDB's count."""

    def __init__(self, settings: ArchiveSettings, delete: bool, scope: Scope, workers: int):
        # spawn, not forkserver: a forkserver's workers are its children and keep it
        # alive, so they would outlive a killed archiver; spawned ones die with it.
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_start,
            initargs=(os.getpid(), settings.model_dump(), delete, scope), max_tasks_per_child=TASKS_PER_WORKER,
        )
        for _ in range(workers):
            self.executor.submit(_ready)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def results(self, windows: list[Window]):
        """Yield ``(window, index, summary, error, pid, peak RSS)`` as windows finish;
        the caller may stop early (``close()`` the generator): windows not started
        are not started."""
        pending = {}
        queue = list(reversed(windows))
        try:
            while queue or pending:
                while queue and len(pending) < 2 * self.workers:  # a short queue: a stop stops soon
                    w = queue.pop()
                    pending[self.executor.submit(_one, w)] = w
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    w = pending.pop(future)
                    index, summary, error, pid, peak = future.result()
                    yield w, index, summary, error, pid, peak
        finally:
            for future in pending:
                future.cancel()
