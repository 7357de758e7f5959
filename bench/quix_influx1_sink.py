"""Benchmark (e) child: Quix Streams' ``InfluxDB1Sink`` draining a topic into InfluxDB.

Runs inside the bench-only venv (``bench/requirements-quix.txt``), started by
``bench.pipeline.quix``; it does not import ``edge``. The topic holds the same points
as the parsed topic, as the JSON dicts InfluxDB1Sink takes (``_m`` measurement,
``_t`` epoch milliseconds, tags, fields). Prints one JSON line when ``--expect``
points were written: the times of the first and last writes, and the counts.

    python -m bench.quix_influx1_sink --broker 127.0.0.1:19092 --topic T --database D \
        --influx-port 18086 --expect N
"""

from __future__ import annotations

import argparse
import json
import time

from quixstreams import Application
from quixstreams.sinks.community.influxdb1 import InfluxDB1Sink

TAG_KEYS = ("site_id", "device", "service_id", "racks_index")
META = ("_m", "_t")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--influx-host", default="127.0.0.1")
    parser.add_argument("--influx-port", type=int, default=18086)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()

    app = Application(
        broker_address=args.broker,
        consumer_group=f"bench-quix-{args.topic}",
        auto_offset_reset="earliest",
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )
    progress = {"written": 0, "first": None, "first_count": 0, "last": None}

    class CountingInfluxDB1Sink(InfluxDB1Sink):
        def write(self, batch):
            super().write(batch)
            now = time.time()
            progress["written"] += batch.size
            if progress["first"] is None:
                progress["first"], progress["first_count"] = now, progress["written"]
            progress["last"] = now
            if progress["written"] >= args.expect:
                app.stop()

    sink = CountingInfluxDB1Sink(
        host=args.influx_host,
        port=args.influx_port,
        database=args.database,
        measurement=lambda v: v["_m"],
        tags_keys=lambda v: [k for k in TAG_KEYS if k in v],
        fields_keys=lambda v: [k for k in v if k not in META and k not in TAG_KEYS],
        time_setter="_t",
        time_precision="ms",
        batch_size=args.batch_size,
    )
    topic = app.topic(args.topic, value_deserializer="json")
    app.dataframe(topic).sink(sink)
    app.run()
    print(json.dumps(progress), flush=True)


if __name__ == "__main__":
    main()
