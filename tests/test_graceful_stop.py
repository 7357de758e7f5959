"""Graceful stop as systemd does it: SIGTERM to each service while messages flow,
exit 0 within the 10 s bound (the units' TimeoutStopSec is 15 s), restart, and the
counts in InfluxDB are exact: nothing lost, nothing doubled."""

from __future__ import annotations

import time
from datetime import datetime


from tests.support.bridge_io import BackgroundPublisher
from tests.support.kafka import group_lag
from tests.support.pipeline import STAGES, pipeline  # noqa: F401 (fixture)
from tests.support.processes import wait_for

START = datetime(2024, 7, 1, 0, 0, 0)
STOP_BOUND_S = 10.0
MESSAGES = 2400
RATE = 150.0  # msgs/s: the stream lasts ~16 s, long enough for three stop/restarts



def test_sigterm_to_each_service_mid_stream_then_restart_gives_exact_counts(pipeline):
    p = pipeline
    running = {stage: p.start(stage) for stage in STAGES}
    wait_for(lambda: "partitions_assigned" in running["parse"].log()
             and "partitions_assigned" in running["sink"].log(), 60, what="consumers assigned")
    publisher = BackgroundPublisher(p.amqp, count=MESSAGES, sites=3, rate=RATE, start=START)
    publisher.start()
    stop_times = {}
    for stage in STAGES:
        time.sleep(1.5)
        assert publisher.is_alive(), f"SIGTERM to {stage} must land mid-stream"
        proc = running[stage]
        began = time.monotonic()
        code = proc.terminate(timeout=STOP_BOUND_S)
        stop_times[stage] = time.monotonic() - began
        assert code == 0, f"{stage} exited {code}:\n{proc.log()}"
        assert '"event": "stopped"' in proc.log(), proc.log()  # the graceful path ran to its end
        running[stage] = p.start(stage, "-restarted")
    summary = publisher.result(timeout=120)
    assert summary.confirmed == MESSAGES
    wait_for(lambda: p.points() >= 17 * MESSAGES, 120, interval=1.0, what=f"{17 * MESSAGES} points")
    time.sleep(1.0)
    assert p.points() == 17 * MESSAGES
    # And every offset of the stream was committed by the restarted consumers.
    wait_for(lambda: group_lag(p.kafka, p.groups["parse"], p.kafka.raw_topic) == 0, 30, what="parser lag 0")
    wait_for(lambda: group_lag(p.kafka, p.groups["sink"], p.kafka.parsed_topic) == 0, 30, what="sink lag 0")
    print("seconds from SIGTERM to exit:", {k: round(v, 2) for k, v in stop_times.items()})
