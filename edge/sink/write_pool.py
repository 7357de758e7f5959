"""The sink's write workers: a few threads doing /write requests while the main
thread keeps consuming.

Daemon threads, not a ThreadPoolExecutor: a write still hanging at the stop
deadline is abandoned (its records are not committed) instead of holding the
process at exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.influx.answers import Outcome, WriteResult
from edge.influx.client import InfluxClient
from edge.sink.batch import PartitionBuffer


@dataclass
class WriteRequest:
    """Records of one or more partitions written in one /write request: ``parts``
    says whose they are, in order (buffer, records taken from its head, their
    bytes), ``records`` holds them all, each partition's oldest first.

    Filled in by a write worker: ``result`` (OK once every line is either stored or
    known to be refused), ``dead`` (records for the DLQ: record, reason, message)
    and ``written`` (lines InfluxDB stored).
    """

    parts: list[tuple[PartitionBuffer, int, int]]
    records: list
    nbytes: int
    result: WriteResult | None = None
    dead: list = field(default_factory=list)
    written: int = 0


class WritePool:
    def __init__(self, size: int, perform: Callable[[WriteRequest, InfluxClient], None],
                 make_writer: Callable[[], InfluxClient]):
        self.size = size
        self._perform = perform
        self._make_writer = make_writer
        self._todo: queue.Queue = queue.Queue()
        self.done: queue.Queue = queue.Queue()
        self.in_flight = 0
        for i in range(size):
            threading.Thread(target=self._work, name=f"influx-write-{i}", daemon=True).start()

    def _work(self) -> None:
        writer = self._make_writer()  # one HTTP session per thread
        while True:
            request = self._todo.get()
            try:
                self._perform(request, writer)
            except Exception as exc:  # a bug must not kill the worker; retried later
                request.result = WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
            self.done.put(request)

    def submit(self, request: WriteRequest) -> None:
        self.in_flight += 1
        self._todo.put(request)

    def completed(self, timeout: float | None = None) -> list[WriteRequest]:
        """Finished requests; waits up to ``timeout`` for the first one if given."""
        out: list[WriteRequest] = []
        try:
            if timeout is not None and timeout > 0 and self.in_flight:
                out.append(self.done.get(timeout=timeout))
            while True:
                out.append(self.done.get_nowait())
        except queue.Empty:
            pass
        self.in_flight -= len(out)
        return out

    @property
    def free(self) -> int:
        return self.size - self.in_flight
