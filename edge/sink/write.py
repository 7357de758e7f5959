"""One write request to InfluxDB, as a write worker does it: the sink's protocol.

Splits off records that are not line protocol (``bad_record``), creates the
database on first use when allowed, writes, and on a 400 finds the refused lines
(``edge.influx.rejected.find_rejected``) so the rest is stored and the refused ones
go to the DLQ (``influx_rejected``). Touches no state shared with the main thread
except the ``DatabaseGate``, whose flag only ever goes from False to True.
"""

from __future__ import annotations

from prometheus_client import Histogram

from edge.influx.answers import Outcome, WriteResult
from edge.influx.rejected import RetryLater, find_rejected
from edge.influx.client import InfluxClient
from edge.sink.batch import body_is_clean, split_bad_records
from edge.sink.write_pool import WriteRequest

WRITE_SECONDS = Histogram("edge_sink_write_seconds", "Duration of one /write request (any answer)",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


class DatabaseGate:
    """CREATE DATABASE (and the retention policy) once, before the first write."""

    def __init__(self, create: bool, retention_duration: str):
        self.create = create
        self.retention_duration = retention_duration
        self.ready = False

    def ensure(self, writer: InfluxClient) -> WriteResult:
        if self.ready:
            return WriteResult(Outcome.OK)
        result = writer.ensure_database(self.retention_duration)
        if result.ok:
            self.ready = True
        return result


def perform_write(request: WriteRequest, writer: InfluxClient, gate: DatabaseGate) -> None:
    records = request.records
    values = [m.value() for m in records]
    try:
        body = b"\n".join(values)
        clean = body_is_clean(body, len(values))
    except TypeError:  # a record without a value
        clean = False
    good = records
    if not clean:
        good_idx, bad = split_bad_records(values)
        request.dead = [(records[i], "bad_record", why) for i, why in bad.items()]
        good = [records[i] for i in good_idx]
        values = [values[i] for i in good_idx]
        body = b"\n".join(values)
    if not values:
        request.result = WriteResult(Outcome.OK)
        return
    ready = gate.ensure(writer)
    if not ready.ok:
        request.result = ready
        return
    with WRITE_SECONDS.time():
        result = writer.write(body)
    if result.outcome is Outcome.DATABASE_MISSING and gate.create:
        gate.ready = False
        created = gate.ensure(writer)
        result = writer.write(body) if created.ok else created
    if result.outcome is Outcome.REJECTED:
        try:
            rejected = find_rejected(values, result, writer.write)
        except RetryLater as exc:
            request.result = exc.result
            return
        request.dead += [(good[i], "influx_rejected", why) for i, why in sorted(rejected.items())]
        request.written = len(values) - len(rejected)
        request.result = WriteResult(Outcome.OK, result.status, result.error)
        return
    if result.ok:
        request.written = len(values)
    request.result = result
