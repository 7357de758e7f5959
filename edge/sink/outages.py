"""Whether each thing the sink writes to takes writes now: every InfluxDB node,
and the DLQ.

Each has its own state. While one fails (InfluxDB down, 5xx, timeout, auth or
config trouble; for the DLQ, a produce not acknowledged) the records waiting for
it stay held and are retried with capped jittered backoff (``edge.core.backoff``),
one probe request at a time; the others carry on. Logged once when it starts
failing (``influxdb_unavailable`` / ``dlq_unavailable``) and once when a write
works again (``influxdb_available`` / ``dlq_available``); an InfluxDB node's
events name the node and its URL.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from edge.core.backoff import Backoff
from edge.influx.answers import WriteResult

INFLUXDB_UNAVAILABLE = "influxdb_unavailable"
DLQ_UNAVAILABLE = "dlq_unavailable"

WRITE_RETRIES = Counter("edge_sink_write_retries", "Write attempts that failed and will be retried")
NODE_RETRIES = Counter("edge_sink_node_write_retries",
                       "Write attempts that failed and will be retried, per InfluxDB node (node=\"dlq\": the DLQ)",
                       ["node"])
NODE_FAILING = Gauge("edge_sink_node_failing",
                     "1 while an InfluxDB node (node=\"dlq\": the DLQ) does not take the sink's writes", ["node"])


class Outage:
    """One target's failure state. ``failing``: the last failure while it fails
    (None while it works); ``retry_at``: when the next probe may go."""

    def __init__(self, reason: str, label: str, backoff: Backoff, log, **context):
        self.reason = reason
        self.backoff = backoff
        self.log = log
        self.context = context  # node=, url= in its events
        self.failing: WriteResult | None = None
        self.retry_at = 0.0
        self._retries = NODE_RETRIES.labels(node=label)
        self._gauge = NODE_FAILING.labels(node=label)
        self._gauge.set(0)

    def fail(self, result: WriteResult, now: float) -> None:
        """A write did not go through: wait before the next probe."""
        WRITE_RETRIES.inc()
        self._retries.inc()
        delay = self.backoff.next_delay()
        self.retry_at = now + delay
        if self.failing is None:
            self.log.warning(self.reason, **self.context, status=result.status, error=result.error[:500],
                             retry_in_s=round(delay, 2))
            self._gauge.set(1)
        self.failing = result

    def recovered(self) -> None:
        """A write went through: say so if it was failing."""
        if self.failing is None:
            return
        self.log.info(self.reason.replace("_unavailable", "_available"), **self.context,
                      after_attempts=self.backoff.attempts, last_error=self.failing.error[:300])
        self.failing = None
        self.backoff.reset()
        self._gauge.set(0)

    def forgive(self) -> None:
        """One more try right away (the last one, at stop), without a log."""
        self.failing = None
        self.retry_at = 0.0

    def waiting(self, now: float) -> bool:
        """Failing, and the next probe is not due yet."""
        return self.failing is not None and now < self.retry_at
