"""(d)'s latency split by hop, from the record timestamps Kafka keeps (the
producer's wall clock at produce time): publish -> raw record (the bridge),
raw -> the last of the message's parsed records (the parser), last parsed record
-> queryable (the sink's fetch, batch and write, InfluxDB, the bench's poll).
And the broker's own floor: one bare hop through it at the same rate."""

from __future__ import annotations

import statistics
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.harness import PARTITIONS, POINTS_PER_MESSAGE, create_topic, p99
from edge.config.settings import KafkaSettings
from edge.kafka.config import consumer_config, producer_config
from edge.parser import to_lines


def _read(topic: str, expected: int, timeout_s: float = 60.0) -> list:
    consumer = Consumer({"bootstrap.servers": KafkaSettings().bootstrap_servers,
                         "group.id": f"bench-hops-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list = []
    idle = 0
    while len(out) < expected and idle < timeout_s:
        batch = consumer.consume(5000, timeout=1.0)
        idle = 0 if batch else idle + 1
        out += [m for m in batch if m.error() is None]
    consumer.close()
    return out


def _ts_of_line(line: bytes) -> int:
    return int(line.rsplit(b" ", 1)[1])


def hop_split(prefix: str, published_wall: dict[int, float], seen_wall: dict[int, float]) -> dict[str, list[float]]:
    """Per hop, seconds for each message seen in every hop (by its timestamp, ns)."""
    raw_at = {}
    for msg in _read(f"{prefix}.raw", len(published_wall)):
        raw_at[_ts_of_line(to_lines(msg.value())[0])] = msg.timestamp()[1] / 1000
    parsed_at: dict[int, float] = {}
    for msg in _read(f"{prefix}.parsed", len(published_wall) * POINTS_PER_MESSAGE):
        ts = _ts_of_line(msg.value())
        parsed_at[ts] = max(parsed_at.get(ts, 0.0), msg.timestamp()[1] / 1000)
    hops: dict[str, list[float]] = {"bridge": [], "parser": [], "sink": []}
    for ts, sent in published_wall.items():
        if ts in raw_at and ts in parsed_at and ts in seen_wall:
            hops["bridge"].append(raw_at[ts] - sent)
            hops["parser"].append(parsed_at[ts] - raw_at[ts])
            hops["sink"].append(seen_wall[ts] - parsed_at[ts])
    return hops


def hop_line(hops: dict[str, list[float]]) -> str:
    parts = [f"{name} {statistics.median(v) * 1000:,.0f} / {p99(v) * 1000:,.0f} ms" for name, v in hops.items() if v]
    return "by hop, p50 / p99: " + ", ".join(parts) + " (Kafka record timestamps; sink = parsed -> queryable)"


def broker_floor(rate: float, seconds: float) -> list[float]:
    """Seconds from produce() to consume for ``rate`` records a second, one key,
    through a bare producer and a bare consumer with the services' settings
    (``edge.kafka.config``) and the runner's way of consuming (one record, then
    what is already fetched): what one Kafka hop costs on this broker now."""
    kafka = KafkaSettings()
    topic = f"bench_floor_{uuid.uuid4().hex[:8]}"
    create_topic(topic)
    conf = consumer_config(kafka, f"bench-floor-{uuid.uuid4().hex[:8]}", "bench-floor")
    consumer = Consumer(conf)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    producer = Producer(producer_config(kafka, "bench-floor"))
    count = int(rate * seconds)
    latencies: list[float] = []

    def consume() -> None:
        deadline = time.monotonic() + seconds + 30
        while len(latencies) < count and time.monotonic() < deadline:
            got = consumer.consume(1, timeout=0.5)
            if got:
                got += consumer.consume(499, timeout=0)
            now = time.time()
            latencies.extend(now - float(m.value()) for m in got if m.error() is None)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    t0 = time.monotonic()
    for i in range(count):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, repr(time.time()).encode(), key=b"site")
        producer.poll(0)
    producer.flush(30)
    reader.join(seconds + 30)
    consumer.close()
    return latencies


def floor_line(latencies: list[float], rate: float) -> str:
    return (f"the broker's floor, one bare hop at {rate:.0f} records/s with the services' settings: "
            f"p50 {statistics.median(latencies) * 1000:,.0f} ms, p99 {p99(latencies) * 1000:,.0f} ms "
            f"({len(latencies)} records; the path has two such hops)")
