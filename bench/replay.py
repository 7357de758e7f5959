"""``edge replay`` throughput against the parser's own rate (bench.parser).

    .venv/bin/python -m bench.replay [--messages 20000]

Preloads a fresh raw topic on the local broker (tansu, ``make services-up``) with
jittered gateway messages (bench.parser's corpus), then replays all of them
into the parsed topic (read, parse, produce, every delivery acknowledged) and
prints msgs/s and points/s next to ``edge.parser.to_lines`` alone over the same
messages in the same process: the replay's cost beyond parsing is Kafka I/O.
The topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench.harness import ROOT, quiet_log
from bench.parser import jittered_corpus
from edge.config.settings import KafkaSettings, ParserSettings
from edge.core.lifecycle import StopSignal
from edge.kafka.topics import ensure_topics, topic_names
from edge.ops.replay import Replay, ReplayShell, survey
from edge.ops.replay_plan import Plan, Window
from edge.parser import to_lines


def preload(kafka: KafkaSettings, corpus: list[bytes], ts_ms: int) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 20, "acks": "all"})
    for body in corpus:
        while True:
            try:
                producer.produce(kafka.raw_topic, value=body, timestamp=ts_ms)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--messages", type=int, default=20_000)
    opts = args.parse_args()
    log = quiet_log().bind(service="replay")
    sample = (ROOT / "sample" / "sample.json").read_bytes()
    corpus = jittered_corpus(sample, opts.messages)
    points_per_msg = len(to_lines(corpus[0]))

    began = time.perf_counter()
    for body in corpus:
        to_lines(body)
    parse_rate = len(corpus) / (time.perf_counter() - began)

    kafka = KafkaSettings(topic_prefix=f"bench-replay-{uuid.uuid4().hex[:8]}", partitions=3)
    ensure_topics(kafka)
    try:
        now_ms = int(time.time() * 1000)
        preload(kafka, corpus, now_ms)
        settings = ParserSettings(kafka=kafka)
        shell = ReplayShell(settings, f"{kafka.topic_prefix}.replay", StopSignal(), log)
        try:
            window = Window(now_ms - 1, now_ms + 1)
            plan = Plan(kafka.raw_topic, kafka.parsed_topic, kafka.dlq_topic, window,
                        survey(shell.reader, window, given_to=True))
            progress = Replay(shell, (), log).run(plan, show_bar=False)
        finally:
            shell.close()
    finally:
        AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).delete_topics(topic_names(kafka))
    assert progress.messages == len(corpus), progress.line()
    print(f"corpus: {len(corpus)} jittered messages, {points_per_msg} points each")
    print(f"  to_lines alone  {parse_rate:10,.0f} msgs/s {parse_rate * points_per_msg:12,.0f} points/s")
    print(f"  edge replay     {progress.rate:10,.0f} msgs/s {progress.points / progress.seconds:12,.0f} points/s"
          f"  ({progress.seconds:.1f} s, every record acknowledged)")
    print(f"  ratio           {progress.rate / parse_rate:10.3f} of the parser's rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
