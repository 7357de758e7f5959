"""``edge replay`` throughput against the parser's own rate (bench.parser).

    .venv/bin/python -m bench.replay [--messages 20000]

Preloads a fresh raw topic on the local broker (tansu, ``make services-up``) with
jittered gateway messages (bench.parser's corpus), then replays all of them
into the parsed topic (read, parse, produce, every delivery acknowledged) and
prints msgs/s and points/s next to ``edge.parser.to_lines`` alone over the same
messages in the same process: the replay's cost beyond parsing is Kafka I/O.

And the broker floor, in the same run, before and after the replay: a bare
confluent-kafka loop that reads the same raw records and produces, for each, the
same number of records of the same keys and sizes (a message becomes one parsed
record per point, 17 here) to a scratch topic, without parsing; with the replay's
own client settings (``READ_SETTINGS``, ``PRODUCER_SETTINGS``), every delivery
acknowledged. The replay cannot beat it: replay / floor is what our code costs,
floor / parser what the broker and the client library cost.
The topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.harness import ROOT, create_topic, quiet_log
from bench.parser import jittered_corpus
from edge.config.settings import KafkaSettings, ParserSettings
from edge.core.lifecycle import StopSignal
from edge.kafka.config import consumer_config, producer_config
from edge.kafka.topic_reader import BATCH, READ_SETTINGS
from edge.kafka.topics import ensure_topics, topic_names
from edge.ops.replay import PRODUCER_SETTINGS, Replay, ReplayShell, survey
from edge.ops.replay_plan import Plan, Window
from edge.parser import parse, to_lines


def preload(kafka: KafkaSettings, corpus: list[bytes], ts_ms: int) -> None:
    # lz4, as the bridge writes the raw topic (edge.kafka.config.producer_config)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 20, "acks": "all",
                         "compression.type": "lz4"})
    for body in corpus:
        while True:
            try:
                producer.produce(kafka.raw_topic, value=body, timestamp=ts_ms)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0


def floor(kafka: KafkaSettings, outputs: list[list[tuple[bytes, bytes]]], expected: int, topic: str) -> float:
    """msgs/s of the bare loop: read every raw record, produce the records a
    message becomes (``outputs``, taken in turn) to ``topic``, all acknowledged."""
    consumer = Consumer(consumer_config(kafka, f"{topic}.group", "bench-floor", **READ_SETTINGS))
    producer = Producer(producer_config(kafka, "bench-floor", **PRODUCER_SETTINGS))
    parts = sorted(consumer.list_topics(kafka.raw_topic, timeout=15).topics[kafka.raw_topic].partitions)
    failures: list = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failures.append(err)

    began = time.perf_counter()
    consumer.assign([TopicPartition(kafka.raw_topic, p, OFFSET_BEGINNING) for p in parts])
    open_parts, done = set(parts), 0
    while open_parts:
        fetched = consumer.consume(1, timeout=0.2)  # as TopicReader.read
        for msg in fetched + consumer.consume(BATCH - 1, timeout=0) if fetched else ():
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error().str()
                open_parts.discard(msg.partition())
                continue
            for key, line in outputs[done % len(outputs)]:
                while True:
                    try:
                        producer.produce(topic, value=line, key=key, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.1)
            done += 1
        producer.poll(0)
    left = producer.flush(60)
    seconds = time.perf_counter() - began
    consumer.close()
    assert left == 0 and not failures and done == expected, (left, failures[:3], done, expected)
    return done / seconds


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--messages", type=int, default=20_000)
    opts = args.parse_args()
    log = quiet_log().bind(service="replay")
    sample = (ROOT / "sample" / "sample.json").read_bytes()
    corpus = jittered_corpus(sample, opts.messages)
    points_per_msg = len(to_lines(corpus[0]))
    outputs = [parse(body).points for body in corpus[:500]]  # what the floor produces, made beforehand
    record_bytes = sum(len(k) + len(v) for points in outputs for k, v in points) / sum(map(len, outputs))

    began = time.perf_counter()
    for body in corpus:
        to_lines(body)
    parse_rate = len(corpus) / (time.perf_counter() - began)

    kafka = KafkaSettings(topic_prefix=f"bench-replay-{uuid.uuid4().hex[:8]}", partitions=3)
    ensure_topics(kafka)
    try:
        now_ms = int(time.time() * 1000)
        preload(kafka, corpus, now_ms)
        create_topic(scratch := f"{kafka.topic_prefix}.floor", kafka.partitions)
        floors = [floor(kafka, outputs, len(corpus), scratch)]
        settings = ParserSettings(kafka=kafka)
        shell = ReplayShell(settings, f"{kafka.topic_prefix}.replay", StopSignal(), log)
        try:
            window = Window(now_ms - 1, now_ms + 1)
            plan = Plan(kafka.raw_topic, kafka.parsed_topic, kafka.dlq_topic, window,
                        survey(shell.reader, window, given_to=True))
            progress = Replay(shell, (), log).run(plan, show_bar=False)
        finally:
            shell.close()
        floors.append(floor(kafka, outputs, len(corpus), scratch))
    finally:
        AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).delete_topics(
            [*topic_names(kafka), f"{kafka.topic_prefix}.floor"])
    assert progress.messages == len(corpus), progress.line()
    broker = sum(floors) / len(floors)
    print(f"corpus: {len(corpus)} jittered messages of {sum(map(len, corpus)) / len(corpus):,.0f} bytes,"
          f" {points_per_msg} points each: {points_per_msg} parsed records of {record_bytes:,.0f} bytes"
          f" (key + line) per message; {kafka.partitions} partitions")
    print(f"  to_lines alone  {parse_rate:10,.0f} msgs/s {parse_rate * points_per_msg:12,.0f} points/s")
    print(f"  edge replay     {progress.rate:10,.0f} msgs/s {progress.points / progress.seconds:12,.0f} points/s"
          f"  ({progress.seconds:.1f} s, every record acknowledged)")
    print(f"  broker floor    {broker:10,.0f} msgs/s {broker * points_per_msg:12,.0f} records/s"
          f"  (bare read + produce, no parsing; before the replay {floors[0]:,.0f}, after {floors[1]:,.0f})")
    print(f"  ratio           {progress.rate / parse_rate:10.3f} of the parser's rate")
    print(f"  ratio           {progress.rate / broker:10.3f} of the broker floor"
          f" (the floor is {broker / parse_rate:.3f} of the parser's rate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
