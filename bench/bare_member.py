"""A bare consumer-group member for ``bench.recovery``: the services' consumer
settings (``edge.kafka.config.consumer_config``) and nothing of the stages.

    python -m bench.bare_member TOPIC GROUP [--instance ID] [--session-ms MS]

Prints one line, ``assigned <seconds since start> <partitions>``, when the group
hands it its partitions, then polls until killed. What its restart costs is what
the broker's group protocol costs: the floor under the services' recovery.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # before the imports: a restart's cost includes them

import argparse  # noqa: E402

from confluent_kafka import Consumer  # noqa: E402

from edge.config.settings import KafkaSettings  # noqa: E402
from edge.kafka.config import consumer_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("--instance", default="", help="group.instance.id; empty: dynamic membership")
    parser.add_argument("--session-ms", type=int, default=None)
    args = parser.parse_args()
    kafka = KafkaSettings(group_instance_id=args.instance)
    if args.session_ms:
        kafka.session_timeout_ms = args.session_ms
        kafka.heartbeat_interval_ms = max(100, args.session_ms // 4)
    conf = consumer_config(kafka, args.group, "bench-bare-member", service="bare")
    conf.pop("logger", None)
    consumer = Consumer(conf)

    def assigned(_consumer, partitions) -> None:
        print(f"assigned {time.monotonic() - T0:.3f} {len(partitions)}", flush=True)

    consumer.subscribe([args.topic], on_assign=assigned)
    while True:
        consumer.poll(0.1)


if __name__ == "__main__":
    main()
