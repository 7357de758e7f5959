"""(d)'s latency split by hop, from the record timestamps Kafka keeps (the
producer's wall clock at produce time): publish -> raw record (the bridge),
raw -> the last of the message's parsed records (the parser), last parsed record
-> queryable (the sink's fetch, batch and write, InfluxDB, the bench's poll)."""

from __future__ import annotations

import statistics
import uuid

from confluent_kafka import Consumer

from bench.harness import POINTS_PER_MESSAGE
from edge.config.settings import KafkaSettings
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
    def p99(values: list[float]) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(0.99 * len(values)))]

    parts = [f"{name} {statistics.median(v) * 1000:,.0f} / {p99(v) * 1000:,.0f} ms" for name, v in hops.items() if v]
    return "by hop, p50 / p99: " + ", ".join(parts) + " (Kafka record timestamps; sink = parsed -> queryable)"
