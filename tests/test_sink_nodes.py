"""``edge sink`` with two InfluxDB nodes, each owning whole sites (issue 22, item 2),
as a real child process between the real tansu and real influxd processes.

What counts is what each node holds afterwards, read back per site: every test
line is its own series and time, so a site's count of points equals its count of
lines exactly, whatever was written twice. The tests that kill a node kill one
started here, on a port and directory of its own (the shared nodes are never
touched).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from confluent_kafka import Producer

from devtools import services as dev_services
from edge.core.lineproto import series_key
from tests.support import influx
from tests.support.pipeline import free_port, scrape, value
from tests.support.processes import EdgeProcess, wait_for
from tests.test_sink_service import BOOTSTRAP, committed_offsets, create_topics

MEASUREMENT = "nodetest"
BASE_NS = 1_700_000_000_000_000_000
SITES_A = ["north-1", "north-2", "west-3"]  # no rule names them: the default node
SITES_B = ["south-1", "south-2", "east 7"]  # node "b": the glob "south-*" and one exact name (with a space)
SITES = SITES_A + SITES_B
ON_B = set(SITES_B)


def site_of(i: int) -> str:
    return SITES[i % len(SITES)]


def line(i: int) -> bytes:
    site = site_of(i).replace(" ", "\\ ")
    return (f"{MEASUREMENT},device=EVCharger\\ Equipment,service_id={i % 5},site_id={site} "
            f"soc={i}.25,run={'true' if i % 2 else 'false'} {BASE_NS + i * 1000}").encode()


def expected_counts(total: int, sites: list[str]) -> dict[str, int]:
    counts = {site: 0 for site in sites}
    for i in range(total):
        if site_of(i) in counts:
            counts[site_of(i)] += 1
    return counts


def node_env(node_b_url: str) -> dict[str, str]:
    return {"EDGE_INFLUXDB__NODES": json.dumps({"b": {"url": node_b_url, "sites": ["south-*", "east 7"]}}),
            "EDGE_INFLUXDB__SITE_MAP_VERSION": "4"}


class Stream:
    """Produces lines 0..total-1 keyed by their series key, as the parser does,
    in paced chunks; notes when each chunk was acknowledged and how many of the
    default node's lines were in by then (``timeline``)."""

    def __init__(self, prefix: str, total: int, chunk: int = 600, pace_s: float = 0.0):
        self.prefix, self.total, self.chunk, self.pace_s = prefix, total, chunk, pace_s
        self.timeline: list[tuple[float, float, int]] = []  # (chunk began, acknowledged, default node's lines by then)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5, "acks": "all"})
        on_a = 0
        for start in range(0, self.total, self.chunk):
            began = time.monotonic()
            for i in range(start, min(self.total, start + self.chunk)):
                value = line(i)
                producer.produce(f"{self.prefix}.parsed", value=value, key=series_key(value))
                on_a += site_of(i) not in ON_B
            assert producer.flush(30) == 0
            self.timeline.append((began, time.monotonic(), on_a))
            if self.pace_s:
                time.sleep(self.pace_s)

    def start(self) -> "Stream":
        self.thread.start()
        return self

    def produced_at(self, count_a: int) -> float | None:
        """When the default node's ``count_a``-th line had been produced."""
        return next((t for _began, t, n in self.timeline if n >= count_a), None)


def site_counts(url: str, db: str) -> dict[str, int]:
    """Site -> points on one node ({} while the node is down or the database absent)."""
    try:
        series = influx.query(url, db, f'SELECT count("soc") FROM "{MEASUREMENT}" GROUP BY "site_id"')
    except (AssertionError, OSError):
        return {}
    return {s["tags"]["site_id"]: s["values"][0][1] for s in series}


def points_at(url: str, db: str, i: int) -> list[list]:
    series = influx.query(url, db, f'SELECT "soc", "run", "device", "site_id" FROM "{MEASUREMENT}" '
                                   f'WHERE time = {BASE_NS + i * 1000}')
    return [row[1:] for s in series for row in s["values"]]


def assert_each_site_on_its_node(url_a: str, url_b: str, db: str, total: int) -> None:
    """Exact counts per site, each site only on its node; values read back on the
    right node and absent from the other."""
    assert site_counts(url_a, db) == expected_counts(total, SITES_A)
    assert site_counts(url_b, db) == expected_counts(total, SITES_B)
    for i in (0, 4, 5, 11, total - 1):
        mine, other = (url_b, url_a) if site_of(i) in ON_B else (url_a, url_b)
        assert points_at(mine, db, i) == [[i + 0.25, bool(i % 2), "EVCharger Equipment", site_of(i)]]
        assert points_at(other, db, i) == []


def wait_counts(url: str, db: str, want: dict[str, int], timeout: float, sink: EdgeProcess) -> None:
    def reached():
        assert sink.alive(), sink.log()
        return site_counts(url, db) == want

    wait_for(reached, timeout, interval=0.5, what=f"{sum(want.values())} points on {url}")


def events(sink: EdgeProcess, name: str) -> list[dict]:
    out = []
    for raw in sink.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if record.get("event") == name:
            out.append(record)
    return out


def drop(url: str, db: str) -> None:
    try:
        influx.execute(url, f'DROP DATABASE "{db}"')
    except OSError:
        pass


def test_each_site_lands_only_on_its_node(names, edge_env, influx_nodes, tmp_path):
    url_a, url_b = influx_nodes[0].url, influx_nodes[1].url
    db, prefix = names["database"], names["prefix"]
    create_topics(prefix)
    total = 12_000
    Stream(prefix, total, chunk=2000).start().thread.join(60)
    sink = EdgeProcess(["sink"], {**edge_env, **node_env(url_b)}, tmp_path / "sink.log").start()
    try:
        wait_counts(url_b, db, expected_counts(total, SITES_B), 60, sink)
        wait_counts(url_a, db, expected_counts(total, SITES_A), 30, sink)
        time.sleep(1.0)  # anything more than expected would now show
        assert_each_site_on_its_node(url_a, url_b, db, total)
        wait_for(lambda: sum(committed_offsets(prefix, f"{prefix}.sink", 3)) == total, 15, what="commit")
        [starting] = events(sink, "starting")
        assert starting["nodes"] == {"default": url_a, "b": url_b} and starting["site_map_version"] == 4
        assert {e["node"] for e in events(sink, "influxdb_connected")} == {"default", "b"}
    finally:
        code = sink.terminate()
        drop(url_a, db)
        drop(url_b, db)
    assert code == 0, sink.log()


# A node of this file's own, killed with SIGKILL and started again on its data.
NODE_B = dev_services.InfluxInstance(name="influxdb-sink-nodes", port=18206)


@pytest.fixture
def node_b(local_services):
    dev_services.influx_start(NODE_B)
    yield NODE_B
    dev_services.stop_process(NODE_B.name)


def kill_node() -> None:
    assert dev_services.stop_process(NODE_B.name, sig=9)


class Watch:
    """Polls the default node's count every 0.2 s, to tell how far its sites fell
    behind what was produced while node b was down."""

    def __init__(self, url: str, db: str):
        self.url, self.db = url, db
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), sum(site_counts(self.url, self.db).values())))
            self.stop.wait(0.2)

    def worst_delay(self, stream: Stream, since: float, until: float) -> tuple[float, float]:
        """Bounds on the longest a default-node line waited between its produce and
        its landing, over the lines produced between ``since`` and ``until``. Lower:
        at each sample, the next line not landed yet had been acknowledged that long
        ago. Upper: each chunk had all landed by the first sample that shows it,
        counted from when its producing began."""
        lower = upper = 0.0
        for t, landed in self.samples:
            produced = stream.produced_at(landed + 1)
            if produced is not None and since <= produced <= until and t > produced:
                lower = max(lower, t - produced)
        for began, acked, n in stream.timeline:
            if since <= acked <= until:
                seen = next((t for t, landed in self.samples if landed >= n), None)
                if seen is not None:
                    upper = max(upper, seen - began)
        return lower, upper


def start_node_sink(edge_env, tmp_path, name: str, **options) -> EdgeProcess:
    env = {**edge_env, **node_env(NODE_B.url), "EDGE_SINK__RETRY_MAX_S": "1", **options}
    return EdgeProcess(["sink"], env, tmp_path / f"{name}.log").start()


def test_kill9_one_node_mid_stream_the_other_keeps_landing_then_every_point_lands(
        names, edge_env, node_b, tmp_path):
    url_a, db, prefix = "http://127.0.0.1:18086", names["database"], names["prefix"]
    create_topics(prefix)
    total = 36_000
    sink = start_node_sink(edge_env, tmp_path, "sink")
    watch = Watch(url_a, db)
    try:
        wait_for(lambda: "partitions_assigned" in sink.log(), 60, what="sink assigned")
        stream = Stream(prefix, total, pace_s=0.25).start()
        wait_for(lambda: sum(site_counts(NODE_B.url, db).values()) > 2000, 60, what="first points on b")
        kill_node()
        down_at = time.monotonic()
        assert stream.thread.is_alive(), "the kill came after the stream ended"
        # While b is down: a's sites keep landing, all of them, the sink never pauses.
        stream.thread.join(120)
        wait_counts(url_a, db, expected_counts(total, SITES_A), 60, sink)
        a_done = time.monotonic()
        assert site_counts(NODE_B.url, db) == {}  # still down
        time.sleep(1.0)
        dev_services.influx_start(NODE_B)
        up_at = time.monotonic()
        wait_counts(NODE_B.url, db, expected_counts(total, SITES_B), 90, sink)
        b_done = time.monotonic()
        time.sleep(1.0)
        assert_each_site_on_its_node(url_a, NODE_B.url, db, total)
        wait_for(lambda: sum(committed_offsets(prefix, f"{prefix}.sink", 3)) == total, 15, what="commit")
    finally:
        watch.stop.set()
        code = sink.terminate()
        drop(url_a, db)
        drop(NODE_B.url, db)
    assert code == 0, sink.log()
    [down] = events(sink, "influxdb_unavailable")
    [back] = events(sink, "influxdb_available")
    assert (down["node"], down["url"], back["node"], back["url"]) == ("b", NODE_B.url, "b", NODE_B.url)
    assert not [e for e in events(sink, "fetching_paused") if e.get("reason") == "influxdb_unavailable"]
    before = watch.worst_delay(stream, 0.0, down_at)
    during = watch.worst_delay(stream, down_at, up_at)
    print(f"\nnode b down {up_at - down_at:.1f} s; default node's sites: worst delay between {during[0]:.2f} and "
          f"{during[1]:.2f} s while b was down ({before[0]:.2f} .. {before[1]:.2f} s before; polled every 0.2 s), "
          f"all {total - sum(expected_counts(total, SITES_B).values())} "
          f"landed {a_done - down_at:.1f} s after the kill; b's backlog landed {b_done - up_at:.1f} s after "
          f"its restart")


def test_kill9_the_sink_while_one_node_is_down_then_every_point_lands(names, edge_env, node_b, tmp_path):
    url_a, db, prefix = "http://127.0.0.1:18086", names["database"], names["prefix"]
    create_topics(prefix)
    total = 30_000
    sink = start_node_sink(edge_env, tmp_path, "sink")
    restarted = None
    try:
        wait_for(lambda: "partitions_assigned" in sink.log(), 60, what="sink assigned")
        stream = Stream(prefix, total, pace_s=0.25).start()
        wait_for(lambda: sum(site_counts(NODE_B.url, db).values()) > 1000, 60, what="first points on b")
        kill_node()
        landed = sum(site_counts(url_a, db).values())
        wait_for(lambda: sum(site_counts(url_a, db).values()) > landed + 2000, 60, what="a's sites landing")
        sink.kill()
        assert stream.thread.is_alive(), "the sink was killed after the stream ended"
        restarted = start_node_sink(edge_env, tmp_path, "sink-restarted")
        stream.thread.join(120)
        wait_counts(url_a, db, expected_counts(total, SITES_A), 90, restarted)
        dev_services.influx_start(NODE_B)
        wait_counts(NODE_B.url, db, expected_counts(total, SITES_B), 90, restarted)
        time.sleep(1.0)
        assert_each_site_on_its_node(url_a, NODE_B.url, db, total)
        wait_for(lambda: sum(committed_offsets(prefix, f"{prefix}.sink", 3)) == total, 15, what="commit")
    finally:
        code = restarted.terminate() if restarted else None
        sink.kill()
        drop(url_a, db)
        drop(NODE_B.url, db)
    assert code == 0, restarted.log()


def test_a_down_nodes_backlog_fills_the_bound_then_fetching_pauses_and_every_point_lands(
        names, edge_env, node_b, tmp_path):
    """The bound on what the sink holds counts the down node's records: once they
    fill it, fetching pauses (the healthy node's sites wait from then on), the
    records past it are read again later, and still every point lands once."""
    url_a, db, prefix = "http://127.0.0.1:18086", names["database"], names["prefix"]
    create_topics(prefix)
    total = 24_000
    port = free_port()
    sink = start_node_sink(edge_env, tmp_path, "sink", EDGE_SINK__MAX_BUFFERED_LINES="3000",
                           EDGE_METRICS__ENABLED="true", EDGE_METRICS__PORT=str(port))

    def metric(name: str, **labels) -> float:
        return value(scrape(port), name, **labels)

    try:
        wait_for(lambda: "partitions_assigned" in sink.log(), 60, what="sink assigned")
        assert metric("edge_influx_site_map_version") == 4
        assert metric("edge_sink_node_failing", node="b") == 0
        stream = Stream(prefix, total, pace_s=0.1).start()
        wait_for(lambda: sum(site_counts(NODE_B.url, db).values()) > 1000, 60, what="first points on b")
        kill_node()
        wait_for(lambda: metric("edge_sink_node_failing", node="b") == 1, 30, what="node b failing")
        wait_for(lambda: metric("edge_sink_paused", reason="buffer_full") == 1, 60, what="paused, the bound full")
        assert metric("edge_sink_paused", reason="influxdb_unavailable") == 0  # not blocked: a can still move
        assert metric("edge_sink_node_failing", node="default") == 0
        stream.thread.join(120)
        held_back = sum(expected_counts(total, SITES_A).values()) - sum(site_counts(url_a, db).values())
        dev_services.influx_start(NODE_B)
        wait_counts(NODE_B.url, db, expected_counts(total, SITES_B), 90, sink)
        wait_counts(url_a, db, expected_counts(total, SITES_A), 60, sink)
        time.sleep(1.0)
        assert_each_site_on_its_node(url_a, NODE_B.url, db, total)
        wait_for(lambda: sum(committed_offsets(prefix, f"{prefix}.sink", 3)) == total, 15, what="commit")
        assert metric("edge_sink_node_failing", node="b") == 0
        assert metric("edge_sink_node_write_retries_total", node="b") >= 1
        for node, sites in (("default", SITES_A), ("b", SITES_B)):
            assert metric("edge_sink_node_lines_written_total", node=node) >= sum(expected_counts(total, sites).values())
    finally:
        code = sink.terminate()
        drop(url_a, db)
        drop(NODE_B.url, db)
    assert code == 0, sink.log()
    print(f"\nbound 3,000 lines: {held_back} of the default node's lines were still waiting when b came back")
