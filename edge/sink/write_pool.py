"""The sink's write workers: a few threads per InfluxDB node doing /write requests
while the main thread keeps consuming.

Each node has its own threads and its own queue of requests, so a node that is
slow or down (a request hanging until its timeout) never holds a writer another
node's records are waiting for. Finished requests of every node come back on one
queue, which the main thread reads.

Daemon threads, not a ThreadPoolExecutor: a write still hanging at the stop
deadline is abandoned (its records are not committed) instead of holding the
process at exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge.core.site_routes import DEFAULT_NODE
from edge.influx.answers import Outcome, WriteResult
from edge.influx.client import InfluxClient
from edge.sink.batch import PartitionBuffer


@dataclass
class WriteRequest:
    """Records of one node, from one or more partitions, written in one /write
    request: ``parts`` says whose they are, in order (lane, records taken from its
    head, their bytes), ``records`` holds them all, each partition's oldest first.

    Filled in by a write worker: ``result`` (OK once every line is either stored or
    known to be refused), ``dead`` (records for the DLQ: record, reason, message)
    and ``written`` (lines InfluxDB stored).
    """

    parts: list[tuple[PartitionBuffer, int, int]]
    records: list
    nbytes: int
    node: str = DEFAULT_NODE
    result: WriteResult | None = None
    dead: list = field(default_factory=list)
    written: int = 0


class WritePool:
    """``size`` writer threads per node; ``make_writer(node)`` gives each thread its
    own client (one HTTP session per thread)."""

    def __init__(self, size: int, perform: Callable[[WriteRequest, InfluxClient], None],
                 make_writer: Callable[[str], InfluxClient], nodes: Sequence[str] = (DEFAULT_NODE,)):
        self.size = size
        self.nodes = list(nodes)
        self._perform = perform
        self._make_writer = make_writer
        self._todo: dict[str, queue.Queue] = {node: queue.Queue() for node in self.nodes}
        self.done: queue.Queue = queue.Queue()
        self.busy: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.in_flight = 0
        several = len(self.nodes) > 1
        for node in self.nodes:
            for i in range(size):
                name = f"influx-write-{node}-{i}" if several else f"influx-write-{i}"
                threading.Thread(target=self._work, args=(node,), name=name, daemon=True).start()

    @property
    def threads(self) -> int:
        return self.size * len(self.nodes)

    def _work(self, node: str) -> None:
        writer = self._make_writer(node)
        todo = self._todo[node]
        while True:
            request = todo.get()
            try:
                self._perform(request, writer)
            except Exception as exc:  # a bug must not kill the worker; retried later
                request.result = WriteResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
            self.done.put(request)

    def submit(self, request: WriteRequest) -> None:
        self.in_flight += 1
        self.busy[request.node] += 1
        self._todo[request.node].put(request)

    def completed(self, timeout: float | None = None) -> list[WriteRequest]:
        """Finished requests of every node; waits up to ``timeout`` for the first one if given."""
        out: list[WriteRequest] = []
        try:
            if timeout is not None and timeout > 0 and self.in_flight:
                out.append(self.done.get(timeout=timeout))
            while True:
                out.append(self.done.get_nowait())
        except queue.Empty:
            pass
        self.in_flight -= len(out)
        for request in out:
            self.busy[request.node] -= 1
        return out

    def free(self, node: str = DEFAULT_NODE) -> int:
        """Writers of ``node`` with no request."""
        return self.size - self.busy[node]
