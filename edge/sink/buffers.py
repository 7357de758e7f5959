"""What the sink holds between fetching and writing: records per partition and
InfluxDB node (a "lane"), their totals within a bound, and each partition's
position.

Records are appended to their lane in fetch order. With one node (no
``[influxdb.nodes]``) a partition has one lane and a record is not looked at;
with several, a record goes to the lane of its site's node (``edge.sink.routing``).
Past ``max_buffered_lines`` / ``max_buffered_bytes`` a fetched record is not kept:
the offset of the first one let go is kept for a rewind (``take_rewinds``), so that
the runner, which pauses the full sink, reads it again once the writers caught
up. Records handed to a write request stay counted until the request ends.

A partition's position (what may be committed) is the lowest offset not yet
written in any of its lanes, records in a request counting as not written; with
nothing held, the offset after the last record taken.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Gauge

from edge.core.site_routes import DEFAULT_NODE
from edge.sink.batch import PartitionBuffer
from edge.sink.routing import NodeRouter

BUFFERED_LINES = Gauge("edge_sink_buffered_lines", "Records consumed and not yet written")


class SinkBuffers:
    def __init__(self, options, nodes: Sequence[str] = (DEFAULT_NODE,), router: NodeRouter | None = None):
        self.max_lines = options.max_buffered_lines
        self.max_bytes = options.max_buffered_bytes
        self.nodes = list(nodes)
        self.router = router if len(self.nodes) > 1 else None
        self.lanes: dict[str, dict[int, PartitionBuffer]] = {node: {} for node in self.nodes}
        self.by_partition: dict[int, dict[str, PartitionBuffer]] = {}
        self._next: dict[int, int] = {}  # partition -> offset expected next (several nodes)
        self.lines = 0
        self.nbytes = 0
        self._writing: dict[int, tuple[int, int, int]] = {}  # id(lane) -> (lines, bytes, first offset) in a request
        self._rewinds: dict[int, int] = {}  # partition -> first offset let go past the bound
        # partition -> offset of the first record taken since it was assigned: a
        # position is reported only past it, once something was written.
        self._start: dict[int, int] = {}

    # ------------------------------------------------------------ partitions

    def assigned(self, partitions: list[int]) -> None:
        for partition in partitions:
            lanes = {node: PartitionBuffer(partition, node=node) for node in self.nodes}
            self.by_partition[partition] = lanes
            for node, lane in lanes.items():
                self.lanes[node][partition] = lane
            self._next[partition] = -1

    def release(self, partitions: list[int]) -> None:
        """Forget revoked partitions' records, including those being written now."""
        for partition in partitions:
            self._rewinds.pop(partition, None)
            self._next.pop(partition, None)
            self._start.pop(partition, None)
            for node, lane in self.by_partition.pop(partition, {}).items():
                del self.lanes[node][partition]
                lines, nbytes, _first = self._writing.pop(id(lane), (0, 0, 0))
                self.lines -= len(lane.records) + lines
                self.nbytes -= lane.nbytes + nbytes
        BUFFERED_LINES.set(self.lines)

    def owns(self, lane: PartitionBuffer) -> bool:
        return self.lanes[lane.node].get(lane.partition) is lane

    def oldest_first(self, node: str, now: float) -> list[PartitionBuffer]:
        return sorted(self.lanes[node].values(), key=lambda b: b.oldest_at or now)

    def next_due(self, node: str, max_age_s: float, now: float) -> float:
        """Seconds until the oldest record held for ``node`` is due by age (0.5 at most)."""
        timeout = 0.5
        for lane in self.lanes[node].values():
            if lane.oldest_at is not None:
                timeout = min(timeout, lane.oldest_at + max_age_s - now)
        return timeout

    def positions(self, partitions=None) -> dict[int, int]:
        """Partition -> the offset to commit: every record before it was written."""
        out: dict[int, int] = {}
        for partition in self.by_partition if partitions is None else partitions:
            lanes = self.by_partition.get(partition)
            if lanes is None:
                continue
            lowest = None
            for lane in lanes.values():
                writing = self._writing.get(id(lane))
                first = writing[2] if writing else (lane.records[0].offset() if lane.records else None)
                if first is not None and (lowest is None or first < lowest):
                    lowest = first
            if lowest is None:
                lowest = self._next[partition] if self.router else lanes[DEFAULT_NODE].next_offset
            if lowest > self._start.get(partition, lowest):
                out[partition] = lowest
        return out

    # ------------------------------------------------------------ records

    def take(self, messages: list, now: float) -> None:
        """Append fetched records to their lane (the hot path)."""
        if self.router is not None:
            self._take_routed(messages, now)
            return
        buffers = self.lanes[DEFAULT_NODE]
        lines, nbytes = self.lines, self.nbytes
        seek_back = self._rewinds
        for msg in messages:
            partition = msg.partition()
            buf = buffers.get(partition)
            if buf is None:  # revoked meanwhile
                continue
            offset = msg.offset()
            if offset < buf.next_offset:  # fetched again after a pause or seek
                continue
            if partition in seek_back or lines >= self.max_lines or nbytes >= self.max_bytes:
                seek_back.setdefault(partition, offset)  # over the bound: fetch it again later
                continue
            size = len(msg)
            if buf.oldest_at is None:
                buf.oldest_at = now
            if buf.next_offset < 0:
                self._start[partition] = offset
            buf.records.append(msg)
            buf.nbytes += size
            buf.next_offset = offset + 1
            lines += 1
            nbytes += size
        self.lines, self.nbytes = lines, nbytes
        BUFFERED_LINES.set(lines)

    def _take_routed(self, messages: list, now: float) -> None:
        """``take`` with several nodes: the same, each record to its node's lane."""
        by_partition, nexts, router = self.by_partition, self._next, self.router
        cache = router.cache
        lines, nbytes = self.lines, self.nbytes
        seek_back = self._rewinds
        for msg in messages:
            partition = msg.partition()
            lanes = by_partition.get(partition)
            if lanes is None:  # revoked meanwhile
                continue
            offset = msg.offset()
            if offset < nexts[partition]:  # fetched again after a pause or seek
                continue
            if partition in seek_back or lines >= self.max_lines or nbytes >= self.max_bytes:
                seek_back.setdefault(partition, offset)  # over the bound: fetch it again later
                continue
            node = cache.get(msg.key())
            buf = lanes[node if node is not None else router.node_of(msg)]
            size = len(msg)
            if buf.oldest_at is None:
                buf.oldest_at = now
            if nexts[partition] < 0:
                self._start[partition] = offset
            buf.records.append(msg)
            buf.nbytes += size
            buf.next_offset = nexts[partition] = offset + 1
            lines += 1
            nbytes += size
        self.lines, self.nbytes = lines, nbytes
        BUFFERED_LINES.set(lines)

    def take_rewinds(self) -> dict[int, int]:
        """Partition -> offset to read again from: records let go past the bound."""
        rewinds, self._rewinds = self._rewinds, {}
        return rewinds

    def is_writing(self, lane: PartitionBuffer) -> bool:
        return id(lane) in self._writing

    def submitted(self, lane: PartitionBuffer, records: list, nbytes: int) -> None:
        self._writing[id(lane)] = (len(records), nbytes, records[0].offset())

    def put_back(self, lane: PartitionBuffer, records: list, nbytes: int, now: float) -> None:
        """Records of a request that did not succeed go back to the front."""
        self._writing.pop(id(lane), None)
        lane.records[:0] = records
        lane.nbytes += nbytes
        lane.oldest_at = lane.oldest_at or now

    def written(self, lane: PartitionBuffer, lines: int, nbytes: int) -> None:
        self._writing.pop(id(lane), None)
        self.lines -= lines
        self.nbytes -= nbytes
        BUFFERED_LINES.set(self.lines)
