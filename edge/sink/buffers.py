"""What the sink holds between fetching and writing: records per partition and
their totals, within a bound.

Records are appended to their partition's buffer in fetch order. Past
``max_buffered_lines`` / ``max_buffered_bytes`` a fetched record is not kept: the
offset of the first one let go is kept for a rewind (``take_rewinds``), so that
the runner, which pauses the full sink, reads it again once the writers caught
up. Records handed to a write request stay counted until the request ends.
"""

from __future__ import annotations

from prometheus_client import Gauge

from edge.sink.batch import PartitionBuffer

BUFFERED_LINES = Gauge("edge_sink_buffered_lines", "Records consumed and not yet written")


class SinkBuffers:
    def __init__(self, options):
        self.max_lines = options.max_buffered_lines
        self.max_bytes = options.max_buffered_bytes
        self.by_partition: dict[int, PartitionBuffer] = {}
        self.lines = 0
        self.nbytes = 0
        self._writing: dict[int, tuple[int, int]] = {}  # id(buffer) -> (lines, bytes) in a request
        self._rewinds: dict[int, int] = {}  # partition -> first offset let go past the bound

    # ------------------------------------------------------------ partitions

    def assigned(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.by_partition[partition] = PartitionBuffer(partition)

    def release(self, partitions: list[int]) -> None:
        """Forget revoked partitions' records, including those being written now."""
        for partition in partitions:
            self._rewinds.pop(partition, None)
            buf = self.by_partition.pop(partition, None)
            if buf is None:
                continue
            lines, nbytes = self._writing.pop(id(buf), (0, 0))
            self.lines -= len(buf.records) + lines
            self.nbytes -= buf.nbytes + nbytes
        BUFFERED_LINES.set(self.lines)

    def owns(self, buf: PartitionBuffer) -> bool:
        return self.by_partition.get(buf.partition) is buf

    def oldest_first(self, now: float) -> list[PartitionBuffer]:
        return sorted(self.by_partition.values(), key=lambda b: b.oldest_at or now)

    def next_due(self, max_age_s: float, now: float) -> float:
        """Seconds until the oldest held record is due by age (0.5 at most)."""
        timeout = 0.5
        for buf in self.by_partition.values():
            if buf.oldest_at is not None:
                timeout = min(timeout, buf.oldest_at + max_age_s - now)
        return timeout

    # ------------------------------------------------------------ records

    def take(self, messages: list, now: float) -> None:
        """Append fetched records to their partition's buffer (the hot path)."""
        buffers = self.by_partition
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
            buf.records.append(msg)
            buf.nbytes += size
            buf.next_offset = offset + 1
            lines += 1
            nbytes += size
        self.lines, self.nbytes = lines, nbytes
        BUFFERED_LINES.set(lines)

    def take_rewinds(self) -> dict[int, int]:
        """Partition -> offset to read again from: records let go past the bound."""
        rewinds, self._rewinds = self._rewinds, {}
        return rewinds

    def is_writing(self, buf: PartitionBuffer) -> bool:
        return id(buf) in self._writing

    def submitted(self, buf: PartitionBuffer, lines: int, nbytes: int) -> None:
        self._writing[id(buf)] = (lines, nbytes)

    def put_back(self, buf: PartitionBuffer, records: list, nbytes: int, now: float) -> None:
        """Records of a request that did not succeed go back to the front."""
        self._writing.pop(id(buf), None)
        buf.records[:0] = records
        buf.nbytes += nbytes
        buf.oldest_at = buf.oldest_at or now

    def written(self, buf: PartitionBuffer, lines: int, nbytes: int) -> None:
        self._writing.pop(id(buf), None)
        self.lines -= lines
        self.nbytes -= nbytes
        BUFFERED_LINES.set(self.lines)
