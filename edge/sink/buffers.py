"""What the sink holds between fetching and writing: records per partition, their
totals, and the pause that bounds them.

Records are appended to their partition's buffer in fetch order. Past
``max_buffered_lines`` / ``max_buffered_bytes`` a fetched record is not kept: its
partition is paused and seeks back to it, so it is fetched again once the writers
caught up. While InfluxDB is unavailable every partition stays paused. Records
handed to a write request stay counted until the request ends.
"""

from __future__ import annotations

from prometheus_client import Gauge

from edge.sink.batch import PartitionBuffer

BUFFERED_LINES = Gauge("edge_sink_buffered_lines", "Records consumed and not yet written")
PAUSED = Gauge("edge_sink_paused", "1 while fetching is paused (InfluxDB unavailable or buffer full)")


class SinkBuffers:
    def __init__(self, options, runner, log):
        self.max_lines = options.max_buffered_lines
        self.max_bytes = options.max_buffered_bytes
        self.runner = runner
        self.log = log
        self.by_partition: dict[int, PartitionBuffer] = {}
        self.lines = 0
        self.nbytes = 0
        self._writing: dict[int, tuple[int, int]] = {}  # id(buffer) -> (lines, bytes) in a request
        self.paused = False
        self.pause_reason = ""
        self._resync = False

    # ------------------------------------------------------------ partitions

    def assigned(self, partitions: list[int]) -> None:
        for partition in partitions:
            self.by_partition[partition] = PartitionBuffer(partition)
        self._resync = self._resync or self.paused  # new partitions of a paused sink are paused too

    def release(self, partitions: list[int]) -> None:
        """Forget revoked partitions' records, including those being written now."""
        for partition in partitions:
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
        seek_back: dict[int, int] = {}
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
        for partition, offset in seek_back.items():
            self.pause("buffer_full")
            self.runner.seek(partition, offset)

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

    # ------------------------------------------------------------ pause

    def pause(self, reason: str) -> None:
        if self.paused and (reason == self.pause_reason or reason == "buffer_full"):
            return
        already = self.paused  # paused for a full buffer, now for InfluxDB: say so
        self.paused = True
        self.pause_reason = reason
        if not already:
            PAUSED.set(1)
            self._resync = not self.runner.set_paused(True)
        # Buffer-full pauses come and go under load: not worth an info line each.
        (self.log.info if reason != "buffer_full" else self.log.debug)(
            "fetching_paused", reason=reason, buffered_lines=self.lines)

    def update_pause(self, *, influx_failing: bool) -> None:
        if self._resync:
            self._resync = not self.runner.set_paused(self.paused)
        if not self.paused or influx_failing:
            return
        if self.lines < self.max_lines and self.nbytes < self.max_bytes:
            self.paused = False
            PAUSED.set(0)
            self._resync = not self.runner.set_paused(False)
            (self.log.info if self.pause_reason != "buffer_full" else self.log.debug)(
                "fetching_resumed", buffered_lines=self.lines)
